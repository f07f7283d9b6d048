# Faster R-CNN, RevBiFPN-S0 backbone, 1x schedule (12 epochs), COCO.
# Parameters: 19.55M (docs/detection.md). Backbone widths [48, 64, 80, 160],
# neck widths [48, 64, 128, 320].
_base_ = './_base_/faster_rcnn_revbifpn_1x_coco.py'

checkpoint_file = 'checkpoints/revbifpn_s0_in1k.pth'

model = dict(
    backbone=dict(
        arch='s0',
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[48, 64, 80, 160],
            out_channels=[48, 64, 128, 320],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[48, 64, 128, 320], out_channels=256),
    ])
