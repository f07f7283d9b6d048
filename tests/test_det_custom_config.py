"""The documented snippet (docs/detection.md) that puts RevBiFPN into someone else's
MMDetection config -- RetinaNet with its plain FPN neck -- through ``custom_imports``,
trained one step with tools/train.py, starting from a converted checkpoint."""
import os.path as osp
import re
import sys
import textwrap

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _det_helpers import (DEMO_DATA, REPO, converted_s0, run_tool,  # noqa: E402,F401
                          train_iters)

DOC = osp.join(REPO, 'docs', 'detection.md')


def documented_snippet() -> str:
    with open(DOC) as f:
        text = f.read()
    m = re.search(r'<!-- snippet: retinanet -->\s*```python\n(.*?)```', text, re.S)
    assert m, 'the RetinaNet snippet is missing from docs/detection.md'
    return m.group(1)


def test_snippet_is_a_plain_mmdet_config():
    snippet = documented_snippet()
    assert "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'" in snippet
    assert "custom_imports = dict(imports=['mmrevbifpn']" in snippet
    assert "type='RevBiFPN'" in snippet and 'MBConvNeck' not in snippet


def test_retinanet_with_revbifpn_trains_one_step(tmp_path, converted_s0):  # noqa: F811
    overrides = f'''
    # --- test overrides: bundled demo images, 128 px, one iteration ---
    model['backbone']['init_cfg']['checkpoint'] = {converted_s0!r}
    data_root = {DEMO_DATA + '/'!r}
    train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=False), batch_sampler=None,
        dataset=dict(
            data_root=data_root, ann_file='annotations/instances_train.json',
            data_prefix=dict(img='images/'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=True),
                      dict(type='Resize', scale=(128, 128), keep_ratio=False),
                      dict(type='PackDetInputs')]))
    val_dataloader = None
    val_evaluator = None
    val_cfg = None
    test_dataloader = None
    test_evaluator = None
    test_cfg = None
    train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1)
    param_scheduler = []
    optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
    default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                         checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                         interval=1))
    log_processor = dict(by_epoch=False)
    '''
    cfg = tmp_path / 'retinanet_revbifpn_s0_fpn.py'
    cfg.write_text(documented_snippet() + textwrap.dedent(overrides))
    work = tmp_path / 'work'
    out = run_tool('train.py', str(cfg), '--work-dir', str(work)).out
    assert train_iters(out) == [1]
    losses = re.findall(r'loss_cls: ([\d.]+)\s+loss_bbox: ([\d.]+)', out)
    assert losses and all(float(v) > 0 for v in losses[-1])

    from mmrevbifpn.utils import compat
    compat.apply()
    ckpt = torch.load(work / 'iter_1.pth', map_location='cpu')['state_dict']
    init = torch.load(converted_s0, map_location='cpu')['state_dict']
    # a RetinaNet with RevBiFPN's weights under backbone.*, the plain FPN as neck
    assert 'bbox_head.retina_cls.weight' in ckpt and 'neck.lateral_convs.0.conv.weight' in ckpt
    bb = {k for k in ckpt if k.startswith('backbone.')}
    assert bb == {k for k in init if k.startswith('backbone.')}
    # initialised from the converted checkpoint, then one SGD step (weight decay off
    # for the test, so every change is a gradient) moved the weights, through the
    # reversible backward, from the first make-layer to the last one
    def changed(key):
        assert key in bb, key
        return not torch.equal(ckpt[key].float(), init[key].float())

    assert changed('backbone.layers.0.blocks.0.blocks.0.f.dw_conv.conv.weight')
    assert changed('backbone.layers.4.blocks.1.blocks.3.g.project_conv.conv.weight')
    assert changed('backbone.layers.4.silo.down.0_3.project_conv.conv.weight')
    # ... but not the last up-transforms into stream 0 (stride 4): RetinaNet's FPN
    # starts at stride 8 (start_level=1), so their gradient is exactly zero
    assert not changed('backbone.layers.4.silo.up.3_0.project_conv.conv.weight')
    assert not changed('backbone.layers.4.silo.up.1_0.dw_conv.conv.weight')
