"""MMSegmentation: the FCN configs, the COCO -> semantic-mask converter, and a short
train + mIoU evaluation through the real tools on masks derived from tiny_coco."""
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _toolbox_helpers import (BACKBONE_NECK_PARAMS, SEG_ARCHS, SEG_SETS,  # noqa: E402
                              build_model, cls_config, load_config, metric, n_params,
                              run_tool, seg_config, shared_path, tool_main, write_config)

pytest.importorskip('mmseg')

TINY_COCO = shared_path('data', 'tiny_coco')
NECK = {'s2': [96, 128, 256, 640], 's4': [192, 256, 512, 1280],
        's6': [320, 416, 848, 2128]}


@pytest.mark.parametrize('dataset', sorted(SEG_SETS))
@pytest.mark.parametrize('arch', SEG_ARCHS)
def test_seg_config_builds(arch, dataset):
    _, num_classes, crop = SEG_SETS[dataset]
    cfg = load_config(seg_config(arch, dataset))
    assert cfg.default_scope == 'mmseg'
    head = cfg.model.decode_head
    assert head.type == 'FCNHead' and head.input_transform == 'resize_concat'
    assert tuple(head.in_index) == (0, 1, 2, 3)
    assert list(head.in_channels) == NECK[arch] and head.channels == sum(NECK[arch])
    assert head.num_classes == num_classes
    assert tuple(cfg.crop_size) == crop and tuple(cfg.model.data_preprocessor.size) == crop
    for part, prefix in (('backbone', 'backbone.'), ('neck', 'neck.')):
        init = cfg.model[part].init_cfg
        assert init.type == 'Pretrained' and init.prefix == prefix
        assert init.checkpoint == f'checkpoints/revbifpn_{arch}_in1k.pth'

    model = build_model(cfg, 'mmseg')
    assert type(model).__name__ == 'EncoderDecoder'
    # backbone + neck exactly as the ImageNet classifier's; FCN head: 1x1 conv + BN
    # over the concatenated pyramid, then the classifier
    c = sum(NECK[arch])
    head_params = c * c + 2 * c + c * num_classes + num_classes
    assert n_params(model.backbone) + n_params(model.neck) == BACKBONE_NECK_PARAMS[arch]
    assert n_params(model.decode_head) == head_params


def test_seg_forward_shapes():
    """Whole-image inference pads to a multiple of 32 and crops the prediction back."""
    cfg = load_config(seg_config('s2', 'ade20k'))
    cfg.model.backbone.init_cfg = cfg.model.neck.init_cfg = None
    model = build_model(cfg, 'mmseg', device='cpu').eval()
    from mmseg.structures import SegDataSample
    img = torch.randint(0, 255, (3, 72, 100), dtype=torch.uint8)
    sample = SegDataSample(metainfo=dict(img_shape=(72, 100), ori_shape=(72, 100)))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), False)
        assert data['inputs'].shape[-2:] == (96, 128)
        out = model(**data, mode='predict')
    assert out[0].pred_sem_seg.data.shape == (1, 72, 100)


@pytest.fixture(scope='module')
def coco_semseg(tmp_path_factory):
    if not osp.isdir(TINY_COCO):
        pytest.skip(f'{TINY_COCO} missing')
    pytest.importorskip('pycocotools')
    out = tmp_path_factory.mktemp('coco_semseg')
    tool_main('dataset_converters/coco_to_semseg.py', TINY_COCO, str(out))
    return out


def test_coco_to_semseg(coco_semseg):
    from PIL import Image
    from pycocotools.coco import COCO

    classes = json.loads((coco_semseg / 'classes.json').read_text())
    assert len(classes) == 81 and classes[0] == 'background' and classes[1] == 'person'
    for split, n in (('train', 50), ('val', 50)):
        imgs = sorted(os.listdir(coco_semseg / 'img_dir' / split))
        masks = sorted(os.listdir(coco_semseg / 'ann_dir' / split))
        assert len(imgs) == len(masks) == n
        assert [osp.splitext(i)[0] for i in imgs] == [osp.splitext(m)[0] for m in masks]

    # one image checked against pycocotools directly: every pixel of the smallest
    # non-crowd instance carries its class (it is painted last)
    coco = COCO(osp.join(TINY_COCO, 'annotations', 'instances_val2017.json'))
    cat_ids = sorted(coco.getCatIds())
    img_id = next(i for i in sorted(coco.getImgIds()) if coco.getAnnIds(imgIds=[i]))
    info = coco.imgs[img_id]
    mask = np.array(Image.open(coco_semseg / 'ann_dir' / 'val' /
                               (osp.splitext(info['file_name'])[0] + '.png')))
    assert mask.shape == (info['height'], info['width']) and mask.dtype == np.uint8
    anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id])) if not a['iscrowd']]
    smallest = min(anns, key=lambda a: a['area'])
    inst = coco.annToMask(smallest).astype(bool)
    assert (mask[inst] == cat_ids.index(smallest['category_id']) + 1).all()
    union = np.zeros_like(inst)
    for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id])):
        union |= coco.annToMask(a).astype(bool)
    assert (mask[~union] == 0).all() and (mask[union] > 0).all()


def test_seg_train_and_test(coco_semseg, tmp_path):
    """FCN RevBiFPN-S2 (the Cityscapes config), initialised from an S2 ImageNet
    classifier checkpoint through extract_backbone.py, trained 4 iterations on the
    derived COCO masks and evaluated (mIoU) with tools/test.py."""
    classes = json.loads((coco_semseg / 'classes.json').read_text())

    # an S2 "ImageNet" checkpoint (random weights), reduced to backbone+neck
    cls_cfg = load_config(cls_config('s2'))
    classifier = build_model(cls_cfg, 'mmpretrain', device='cpu')
    classifier.init_weights()
    cls_ckpt = tmp_path / 'revbifpn_s2_cls.pth'
    torch.save(dict(state_dict=classifier.state_dict(), meta=dict()), str(cls_ckpt))
    backbone_ckpt = tmp_path / 'revbifpn_s2_in1k.pth'
    tool_main('model_converters/extract_backbone.py', str(cls_ckpt), str(backbone_ckpt))

    # the config's init_cfg loads it: every backbone and neck tensor
    seg_cfg = load_config(seg_config('s2', 'cityscapes'))
    seg_cfg.model.backbone.init_cfg.checkpoint = str(backbone_ckpt)
    seg_cfg.model.neck.init_cfg.checkpoint = str(backbone_ckpt)
    segmentor = build_model(seg_cfg, 'mmseg', device='cpu')
    segmentor.init_weights()
    ref = classifier.state_dict()
    for part in ('backbone', 'neck'):
        for k, v in getattr(segmentor, part).state_dict().items():
            assert torch.equal(v, ref[f'{part}.{k}']), f'{part}.{k}'
    del classifier, segmentor

    def dataset(split, pipeline):
        return (f"dict(type='BaseSegDataset', data_root={str(coco_semseg)!r}, "
                f"data_prefix=dict(img_path='img_dir/{split}', "
                f"seg_map_path='ann_dir/{split}'), img_suffix='.jpg', "
                f"seg_map_suffix='.png', metainfo=dict(classes={tuple(classes)!r}), "
                f'pipeline={pipeline})')

    cfg = write_config(str(tmp_path / 'coco_fcn_s2.py'), f"""
    _base_ = [{seg_config('s2', 'cityscapes')!r}]
    crop_size = (64, 64)
    data_preprocessor = dict(size=crop_size)
    init = dict(type='Pretrained', checkpoint={str(backbone_ckpt)!r})
    model = dict(
        data_preprocessor=data_preprocessor,
        backbone=dict(init_cfg=dict(init, prefix='backbone.')),
        neck=dict(init_cfg=dict(init, prefix='neck.')),
        decode_head=dict(num_classes={len(classes)}))
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(128, 96), ratio_range=(0.75, 1.25),
             keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackSegInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 96), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs'),
    ]
    train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        dataset=dict(_delete_=True, **{dataset('train', 'train_pipeline')}))
    val_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False,
        dataset=dict(_delete_=True, **{dataset('val', 'test_pipeline')}))
    test_dataloader = val_dataloader
    train_cfg = dict(max_iters=4, val_interval=4)
    default_hooks = dict(logger=dict(interval=1),
                         checkpoint=dict(interval=4, max_keep_ckpts=1))
    randomness = dict(seed=0)
    """)
    work = tmp_path / 'work'
    out = run_tool('train.py', cfg, '--work-dir', str(work))
    for prefix in ('backbone.', 'neck.'):  # mmengine's PretrainedInit log line
        assert f'load {prefix} in model from: {backbone_ckpt}' in out
    assert 'Iter(train) [4/4]' in out
    val_miou = metric(out, 'mIoU')
    ckpt = work / 'iter_4.pth'
    assert ckpt.is_file()
    test_out = run_tool('test.py', cfg, str(ckpt), '--work-dir', str(tmp_path / 'test'))
    miou, aacc = metric(test_out, 'mIoU'), metric(test_out, 'aAcc')
    print(f'\ntiny_coco semantic masks (81 classes), FCN RevBiFPN-S2, 4 iterations: '
          f'mIoU {miou:.2f}, aAcc {aacc:.2f} (val during training: mIoU {val_miou:.2f})')
    assert 0 <= miou <= 100 and 0 <= aacc <= 100
    assert miou == val_miou
