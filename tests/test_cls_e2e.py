"""End-to-end classification through the real tools/train.py and tools/test.py.

* S0 on cifar10_mini (mmpretrain CustomDataset, 32 px images resized to 64): train a
  few iterations, evaluate top-1/top-5 with tools/test.py.
* S3's full recipe (RandomResizedCrop, RandAugment N=2, Mixup/CutMix, stochastic depth,
  EMA) on hymenoptera_mini: one short epoch, then check that the EMA weights are the
  ones validated, saved as ``state_dict`` and evaluated by tools/test.py.
* The authors' S0 fixture converted and evaluated on an ImageNet-layout folder.
* extract_backbone.py on a trained checkpoint.
"""
import os
import os.path as osp
import pickle
import re
import shutil
import sys

import pytest
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _toolbox_helpers import (cls_config, metric, run_tool, shared_path,  # noqa: E402
                              tool_main, write_config)

pytest.importorskip('mmpretrain')

CIFAR = shared_path('data', 'cifar10_mini')
HYMENOPTERA = shared_path('data', 'hymenoptera_mini')
# ImageNet-1k class indices of the hymenoptera_mini classes (n02219486 ant, n02206856 bee)
IMAGENET_INDEX = {'ants': 310, 'bees': 309}

_RUNTIME = """
    default_hooks = dict(
        logger=dict(interval=1),
        checkpoint=dict(_delete_=True, type='CheckpointHook', interval={ckpt_interval},
                        by_epoch={by_epoch}, max_keep_ckpts=1))
    randomness = dict(seed=0)
    env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
"""


def _loader(batch_size, dataset):
    return (f'dict(_delete_=True, batch_size={batch_size}, num_workers=0, '
            f"sampler=dict(type='DefaultSampler', shuffle={dataset.pop('shuffle')}), "
            f'dataset=dict({", ".join(f"{k}={v}" for k, v in dataset.items())}))')


def _load(path):
    from mmrevbifpn.utils.compat import allow_mmengine_checkpoints
    allow_mmengine_checkpoints()
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def cifar_run(tmp_path_factory):
    """S0 trained 4 iterations (batch 8, 64 px) on cifar10_mini with tools/train.py."""
    if not osp.isdir(CIFAR):
        pytest.skip(f'{CIFAR} missing')
    tmp = tmp_path_factory.mktemp('cifar')
    train_ds = dict(type="'CustomDataset'", data_root=repr(CIFAR), data_prefix="'train'",
                    pipeline='train_pipeline', shuffle=True)
    val_ds = dict(type="'CustomDataset'", data_root=repr(CIFAR), data_prefix="'val'",
                  pipeline='test_pipeline', shuffle=False)
    cfg = write_config(str(tmp / 'cifar_s0.py'), f"""
    _base_ = [{cls_config('s0')!r}]
    # CIFAR-10 images are 32x32: resize up to 64 (a multiple of 32, as RevBiFPN needs)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(64, 64), backend='pillow', interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(64, 64), backend='pillow', interpolation='bicubic'),
        dict(type='PackInputs'),
    ]
    data_preprocessor = dict(num_classes=10)
    model = dict(head=dict(num_classes=10))
    train_dataloader = {_loader(8, train_ds)}
    val_dataloader = {_loader(25, val_ds)}
    test_dataloader = val_dataloader
    optim_wrapper = dict(optimizer=dict(lr=0.01))
    param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=4)]
    train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=4)
    {_RUNTIME.format(ckpt_interval=4, by_epoch=False)}
    """)
    work = tmp / 'work'
    out = run_tool('train.py', cfg, '--work-dir', str(work))
    ckpt = work / 'iter_4.pth'
    assert ckpt.is_file(), out[-3000:]
    return dict(cfg=cfg, ckpt=str(ckpt), work=work, train_out=out, tmp=tmp)


def test_cifar_train_and_test(cifar_run):
    out = cifar_run['train_out']
    assert 'RevBiFPN' in out or 'ImageClassifier' in out or 'Iter(train)' in out
    losses = [float(x) for x in re.findall(r'\bloss: ([\d.]+)', out)]
    assert len(losses) >= 4 and all(0 < v < 50 for v in losses), losses
    val_top1 = metric(out, 'accuracy/top1')

    test_out = run_tool('test.py', cifar_run['cfg'], cifar_run['ckpt'], '--work-dir',
                        str(cifar_run['tmp'] / 'test'))
    top1, top5 = metric(test_out, 'accuracy/top1'), metric(test_out, 'accuracy/top5')
    print(f'\ncifar10_mini S0, 4 iterations: val top-1 {val_top1:.1f}, '
          f'test top-1 {top1:.1f} top-5 {top5:.1f}')
    assert 0 <= top1 <= top5 <= 100
    assert top1 == val_top1  # same (EMA) weights, same images


def test_extract_backbone(cifar_run, tmp_path):
    """The one-liner turning a trained classifier checkpoint into backbone+neck weights,
    loaded as the detection/segmentation configs do (Pretrained, prefix)."""
    from mmengine.model.weight_init import PretrainedInit

    from mmrevbifpn.models import MBConvNeck, RevBiFPN

    dst = tmp_path / 'revbifpn_s0_backbone.pth'
    assert tool_main('model_converters/extract_backbone.py', cifar_run['ckpt'], str(dst)) == 0
    src = _load(cifar_run['ckpt'])
    got = torch.load(str(dst), map_location='cpu', weights_only=True)['state_dict']
    assert got and all(k.startswith(('backbone.', 'neck.')) for k in got)
    expected = {k: v for k, v in src['state_dict'].items()
                if k.startswith(('backbone.', 'neck.'))}
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)  # the EMA weights

    backbone, neck = RevBiFPN('s0'), MBConvNeck(arch='s0')
    for module, prefix in ((backbone, 'backbone.'), (neck, 'neck.')):
        PretrainedInit(checkpoint=str(dst), prefix=prefix)(module)
        for k, v in module.state_dict().items():
            assert torch.equal(v, got[prefix + k]), k

    raw = tmp_path / 'raw.pth'
    tool_main('model_converters/extract_backbone.py', cifar_run['ckpt'], str(raw), '--raw')
    raw_sd = torch.load(str(raw), map_location='cpu', weights_only=True)['state_dict']
    assert raw_sd.keys() == got.keys()
    assert any(not torch.equal(raw_sd[k], got[k]) for k in got)


def test_full_recipe_pipeline_and_ema(tmp_path):
    """S3's recipe on hymenoptera_mini (2 classes, 64 px): RandomResizedCrop,
    RandAugment, Mixup/CutMix, stochastic depth and EMA through tools/train.py; the
    validation and tools/test.py both evaluate the EMA weights."""
    if not osp.isdir(HYMENOPTERA):
        pytest.skip(f'{HYMENOPTERA} missing')
    train_ds = dict(type="'CustomDataset'", data_root=repr(HYMENOPTERA),
                    data_prefix="'train'", pipeline='train_pipeline', shuffle=True)
    val_ds = dict(type="'CustomDataset'", data_root=repr(HYMENOPTERA),
                  data_prefix="'val'", pipeline='test_pipeline', shuffle=False)
    val_dump = tmp_path / 'val_preds.pkl'
    cfg = write_config(str(tmp_path / 'hymenoptera_s3.py'), f"""
    _base_ = [{cls_config('s3')!r}]
    from mmrevbifpn.recipes import in1k_variant_cfg
    # the S3 recipe at 64 px instead of 288
    globals().update(in1k_variant_cfg('s3', _base_, resolution=64))
    data_preprocessor = dict(num_classes=2)
    model = dict(head=dict(num_classes=2, topk=(1, )))
    train_dataloader = {_loader(8, train_ds)}
    val_dataloader = {_loader(20, val_ds)}
    test_dataloader = val_dataloader
    val_evaluator = [dict(type='Accuracy', topk=(1, )),
                     dict(type='DumpResults', out_file_path={str(val_dump)!r})]
    test_evaluator = dict(type='Accuracy', topk=(1, ))
    train_cfg = dict(max_epochs=1)
    {_RUNTIME.format(ckpt_interval=1, by_epoch=True)}
    """)
    work = tmp_path / 'work'
    out = run_tool('train.py', cfg, '--work-dir', str(work))
    # the recipe's pieces really ran
    from mmengine.config import Config
    dumped = Config.fromfile(str(work / 'hymenoptera_s3.py'))
    types = [t['type'] for t in dumped.train_dataloader.dataset.pipeline]
    assert types == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
                     'PackInputs']
    assert dumped.train_dataloader.dataset.pipeline[3]['num_policies'] == 2
    assert sorted(a['type'] for a in dumped.model.train_cfg.augments) == ['CutMix', 'Mixup']
    assert dumped.model.backbone.drop_path_rate == 0.05
    assert '[5/5]' in out  # 40 images, batch 8: one epoch of 5 iterations
    val_top1 = metric(out, 'accuracy/top1')

    ckpt = _load(str(work / 'epoch_1.pth'))
    ema_sd = ckpt['state_dict']
    raw_sd = {k[len('module.'):]: v for k, v in ckpt['ema_state_dict'].items()
              if k.startswith('module.')}
    assert raw_sd.keys() == ema_sd.keys()
    float_keys = [k for k, v in ema_sd.items() if v.is_floating_point()]
    assert any(not torch.equal(ema_sd[k], raw_sd[k]) for k in float_keys)

    # tools/test.py evaluates the checkpoint's state_dict (= EMA) ...
    test_dump = tmp_path / 'test_preds.pkl'
    test_out = run_tool('test.py', cfg, str(work / 'epoch_1.pth'), '--out', str(test_dump),
                        '--work-dir', str(tmp_path / 'test'))
    # ... and the same checkpoint with the raw weights as state_dict gives other outputs
    raw_ckpt = tmp_path / 'raw.pth'
    torch.save(dict(state_dict=raw_sd, meta=dict()), str(raw_ckpt))
    raw_dump = tmp_path / 'raw_preds.pkl'
    run_tool('test.py', cfg, str(raw_ckpt), '--out', str(raw_dump), '--work-dir',
             str(tmp_path / 'test_raw'))

    def scores(path):
        with open(path, 'rb') as f:
            return torch.stack([torch.as_tensor(r['pred_score']) for r in pickle.load(f)])

    val_scores, test_scores, raw_scores = map(scores, (val_dump, test_dump, raw_dump))
    assert val_scores.shape == test_scores.shape == (20, 2)
    # validation during training (EMAHook swaps the EMA weights in) == tools/test.py
    torch.testing.assert_close(test_scores, val_scores, rtol=1e-4, atol=1e-5)
    diff_raw = (raw_scores - test_scores).abs().max().item()
    assert diff_raw > 1e-4, 'raw and EMA weights should predict differently'
    top1 = metric(test_out, 'accuracy/top1')
    print(f'\nhymenoptera_mini S3 recipe, 1 epoch (5 iterations): val top-1 '
          f'{val_top1:.1f}, test top-1 (EMA) {top1:.1f}; max |score(raw) - '
          f'score(EMA)| = {diff_raw:.3g}')
    assert top1 == val_top1


def test_converted_checkpoint_on_imagenet_layout(tmp_path):
    """The authors' S0 fixture, converted, evaluated by tools/test.py on a folder in
    MMPretrain's ImageNet layout (val/*.JPEG + meta/val.txt) with the unchanged S0
    config: hymenoptera_mini's val photos, labelled with their ImageNet classes."""
    if not osp.isdir(HYMENOPTERA):
        pytest.skip(f'{HYMENOPTERA} missing')
    root = tmp_path / 'imagenet'
    (root / 'val').mkdir(parents=True)
    (root / 'meta').mkdir()
    lines = []
    for cls, index in sorted(IMAGENET_INDEX.items()):
        for name in sorted(os.listdir(osp.join(HYMENOPTERA, 'val', cls)))[:4]:
            shutil.copyfile(osp.join(HYMENOPTERA, 'val', cls, name), root / 'val' / name)
            lines.append(f'{name} {index}')
    (root / 'meta' / 'val.txt').write_text('\n'.join(lines) + '\n')

    ckpt = tmp_path / 'revbifpn_s0_in1k.pth'
    tool_main('model_converters/revbifpn_to_mmrevbifpn.py',
              shared_path('fixtures', 'reference_s0.pt'), str(ckpt))
    out = run_tool(
        'test.py', cls_config('s0'), str(ckpt), '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.batch_size=8', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False')
    assert 'missing keys' not in out and 'unexpected key' not in out
    top1, top5 = metric(out, 'accuracy/top1'), metric(out, 'accuracy/top5')
    print(f'\nconverted reference_s0 (random weights) on 8 ImageNet-layout images: '
          f'top-1 {top1:.1f} top-5 {top5:.1f}')
    assert 0 <= top1 <= top5 <= 100
