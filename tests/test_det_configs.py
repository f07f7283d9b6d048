"""Every MMDetection config builds, matches the paper's parameter counts, and is
MMDetection's HRNet recipe with only the backbone and neck replaced."""
import copy
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _det_helpers import (ARCHS, BACKBONE_WIDTHS, CONFIGS, FASTER_PAPER_M,
                          FASTER_PARAMS_M, MASK_PAPER_M, MASK_PARAMS_M, NECK_WIDTHS,
                          build_detector, det_config, load_config, n_params)  # noqa: E402

KINDS = ('faster', 'mask')
ALL = [(k, a, s) for k in KINDS for a in ARCHS for s in ('1x', '2x')]
HRNET = {'faster': 'hrnet/faster-rcnn_hrnetv2p-w18-{}_coco.py',
         'mask': 'hrnet/mask-rcnn_hrnetv2p-w18-{}_coco.py'}


def mmdet_config(name: str) -> str:
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', name)


def test_config_set_is_complete():
    import glob
    names = {osp.basename(p) for p in glob.glob(osp.join(CONFIGS, '*_rcnn_revbifpn_*.py'))}
    expected = {osp.basename(det_config(k, a, s)) for k, a, s in ALL}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize('kind,arch', [(k, a) for k in KINDS for a in ARCHS])
def test_param_count_matches_paper(kind, arch):
    """Built on the meta device (no memory, no init): exact count of the spec's
    construction, and the paper's table to +-0.01M (Mask S4: 55.52M, see docs)."""
    cfg = load_config(det_config(kind, arch, '1x'))
    model = build_detector(cfg.model, device='meta')
    n = n_params(model) / 1e6
    exact = (FASTER_PARAMS_M if kind == 'faster' else MASK_PARAMS_M)[arch]
    paper = (FASTER_PAPER_M if kind == 'faster' else MASK_PAPER_M)[arch]
    assert abs(n - exact) < 5e-5, f'{kind} {arch}: {n:.4f}M, spec {exact:.4f}M'
    if (kind, arch) == ('mask', 's4'):
        # the paper's 55.50M is inconsistent with its Table 9 (52.88M + the 2.64M
        # mask branch every other variant adds); the built model has 55.52M
        assert round(n, 2) == 55.52 and abs(n - paper) > 0.01
    else:
        assert abs(n - paper) <= 0.01 + 1e-9, f'{kind} {arch}: {n:.4f}M vs paper {paper}M'
    # the model really is RevBiFPN + MBConvNeck + HRFPN
    assert type(model.backbone).__name__ == 'RevBiFPN'
    assert [type(m).__name__ for m in model.neck] == ['MBConvNeck', 'HRFPN']


@pytest.mark.parametrize('kind,arch,schedule', ALL)
def test_config_contents(kind, arch, schedule):
    cfg = load_config(det_config(kind, arch, schedule))
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['mmrevbifpn'], allow_failed_imports=False)
    m = cfg.model
    assert m.type == ('FasterRCNN' if kind == 'faster' else 'MaskRCNN')
    assert m.data_preprocessor.pad_size_divisor == 32
    bb = m.backbone
    assert bb.type == 'RevBiFPN' and bb.arch == arch
    assert tuple(bb.out_indices) == (0, 1, 2, 3)
    assert 'depth' not in bb and 'extra' not in bb  # nothing left of ResNet/HRNet
    ckpt = f'checkpoints/revbifpn_{arch}_in1k.pth'
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    mb, fpn = m.neck
    assert mb.type == 'MBConvNeck' and fpn.type == 'HRFPN'
    assert tuple(mb.in_channels) == BACKBONE_WIDTHS[arch]
    assert tuple(mb.out_channels) == NECK_WIDTHS[arch]
    assert mb.init_cfg == dict(type='Pretrained', checkpoint=ckpt, prefix='neck.')
    assert tuple(fpn.in_channels) == NECK_WIDTHS[arch] and fpn.out_channels == 256
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == 'data/coco/'
    metric = cfg.test_evaluator.metric
    assert cfg.test_evaluator.type == 'CocoMetric'
    assert metric == ('bbox' if kind == 'faster' else ['bbox', 'segm'])
    epochs = 12 if schedule == '1x' else 24
    assert cfg.train_cfg.max_epochs == epochs
    steps = cfg.param_scheduler[1]
    assert steps.type == 'MultiStepLR' and steps.end == epochs
    assert steps.milestones == ([8, 11] if schedule == '1x' else [16, 22])


def _no_scope(obj):
    """Drop the ``_scope_`` keys mmengine adds to dicts inherited via ``mmdet::``."""
    if isinstance(obj, dict):
        return {k: _no_scope(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_no_scope(v) for v in obj)
    return obj


def _strip(cfg_dict):
    d = _no_scope(copy.deepcopy(cfg_dict))
    for key in ('custom_imports', 'checkpoint_file'):
        d.pop(key, None)
    for key in ('backbone', 'neck'):
        d['model'].pop(key)
    return d


@pytest.mark.parametrize('kind,schedule', [(k, s) for k in KINDS for s in ('1x', '2x')])
def test_everything_else_is_mmdet_hrnet_recipe(kind, schedule):
    """Apart from backbone and neck, the config equals MMDetection 3.3.0's HRNet
    config (model heads, data pipeline, optimiser, schedule, runtime)."""
    ours = load_config(det_config(kind, 's2', schedule)).to_dict()
    ref = load_config(mmdet_config(HRNET[kind].format(schedule))).to_dict()
    a, b = _strip(ours), _strip(ref)
    assert a.keys() == b.keys(), set(a) ^ set(b)
    for key in a:
        assert a[key] == b[key], f'{kind} {schedule}: {key} differs from mmdet HRNet'


def test_detector_forward_shapes():
    """S0 Faster R-CNN on a 2x3x96x128 batch: the neck output feeds HRFPN's 5
    levels with 256 channels at strides 4..64 (HRFPN pools the last level)."""
    import torch
    cfg = load_config(det_config('faster', 's0'))
    cfg.model.backbone.init_cfg = None
    cfg.model.neck[0].init_cfg = None
    model = build_detector(cfg.model).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(2, 3, 96, 128))
    assert [tuple(f.shape) for f in feats] == [
        (2, 256, 24, 32), (2, 256, 12, 16), (2, 256, 6, 8), (2, 256, 3, 4),
        (2, 256, 1, 2)]
