"""Detector initialisation from a converted ImageNet checkpoint, and the backbone's
``frozen_stages`` / ``norm_eval`` inside a detector (as MMDetection's backbones)."""
import os.path as osp
import sys

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _det_helpers import (DEMO_DATA, build_detector, converted_s0,  # noqa: E402,F401
                          det_config, load_config)


def _prefixed(state_dict, prefix):
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


@pytest.mark.parametrize('kind', ['faster', 'mask'])
def test_converted_checkpoint_initialises_backbone_and_neck(kind, converted_s0,
                                                            monkeypatch):
    import mmengine.runner.checkpoint as ckpt_mod

    loads = []
    real = ckpt_mod.load_state_dict

    def spy(module, state_dict, *args, **kwargs):
        loads.append((type(module).__name__, set(state_dict),
                      set(module.state_dict())))
        return real(module, state_dict, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod, 'load_state_dict', spy)
    cfg = load_config(det_config(kind, 's0'))
    # the config's init_cfg, only pointed at the converted file
    cfg.model.backbone.init_cfg.checkpoint = converted_s0
    cfg.model.neck[0].init_cfg.checkpoint = converted_s0
    model = build_detector(cfg.model)
    before_rpn = model.rpn_head.rpn_conv.weight.detach().clone()
    model.init_weights()

    # exactly one load per module, with identical key sets: no missing, no unexpected
    by_module = {name: (src, dst) for name, src, dst in loads}
    assert sorted(by_module) == ['MBConvNeck', 'RevBiFPN'], loads
    for name, (src, dst) in by_module.items():
        assert src == dst, (name, sorted(dst - src)[:5], sorted(src - dst)[:5])

    ckpt = torch.load(converted_s0, map_location='cpu', weights_only=True)['state_dict']
    for prefix, module in (('backbone.', model.backbone), ('neck.', model.neck[0])):
        expected = _prefixed(ckpt, prefix)
        actual = module.state_dict()
        assert set(actual) == set(expected) and len(actual) > 50
        for key, value in expected.items():
            assert torch.equal(actual[key], value.to(actual[key].dtype)), key
    # the rest (HRFPN, heads) is not in the checkpoint and keeps its own init
    assert not any(k.startswith(('neck.1.', 'rpn_head.', 'roi_head.'))
                   for k in ckpt)
    assert not torch.equal(before_rpn, torch.zeros_like(before_rpn))


def _real_batch(model, n=2, size=128):
    """``n`` bundled demo images with their real boxes, through mmdet's pipeline."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(size, size), keep_ratio=True),
        dict(type='Pad', size=(size, size)),
        dict(type='PackDetInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmdet'):
        ds = DATASETS.build(dict(
            type='CocoDataset', data_root=DEMO_DATA + '/',
            ann_file='annotations/instances_train.json', data_prefix=dict(img='images/'),
            filter_cfg=dict(filter_empty_gt=True), pipeline=pipeline))
    return model.data_preprocessor(pseudo_collate([ds[i] for i in range(n)]), True)


def _detector(frozen_stages, norm_eval):
    cfg = load_config(det_config('faster', 's0'))
    cfg.model.backbone.update(init_cfg=None, frozen_stages=frozen_stages,
                              norm_eval=norm_eval)
    cfg.model.neck[0].init_cfg = None
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    model.init_weights()
    return model


def _bn_stats(module):
    return {n: b.clone() for n, b in module.named_buffers() if 'running' in n}


def test_frozen_stages_and_norm_eval_after_train():
    torch.set_num_threads(1)
    model = _detector(frozen_stages=2, norm_eval=True)
    model.train()  # what the runner does; must re-apply freezing and norm_eval
    bb = model.backbone
    # (a sliced ModuleList is a new container: check the layers' own modules)
    frozen, trainable = bb.layers[:2], bb.layers[2:]
    assert all(not p.requires_grad for p in frozen.parameters())
    assert all(not m.training for layer in frozen for m in layer.modules())
    assert all(p.requires_grad for p in trainable.parameters())
    bns = [m for m in trainable.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)  # norm_eval
    others = [m for layer in trainable for m in layer.modules()
              if not isinstance(m, _BatchNorm)]
    assert all(m.training for m in others)
    neck_bns = [m for m in model.neck.modules() if isinstance(m, _BatchNorm)]
    assert neck_bns and all(m.training for m in neck_bns)  # norm_eval is the backbone's

    # one real training step: frozen weights get no gradient and stay, backbone BN
    # statistics stay (norm_eval), the neck's BN statistics move
    data = _real_batch(model)
    frozen_before = {n: p.detach().clone() for n, p in frozen.named_parameters()}
    bb_stats, neck_stats = _bn_stats(bb), _bn_stats(model.neck)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    assert all(p.grad is None for p in frozen.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in trainable.parameters())
    opt.step()
    for n, p in frozen.named_parameters():
        assert torch.equal(p, frozen_before[n]), n
    for n, v in _bn_stats(bb).items():
        assert torch.equal(v, bb_stats[n]), n
    assert any(not torch.equal(v, neck_stats[n]) for n, v in _bn_stats(model.neck).items())

    # eval() then train() again: still frozen
    model.eval()
    model.train()
    assert all(not m.training for layer in frozen for m in layer.modules())
    assert all(not m.training for m in bns)


def test_no_freezing_by_default_trains_everything():
    model = _detector(frozen_stages=-1, norm_eval=False)
    model.train()
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert all(m.training for m in model.backbone.modules())
