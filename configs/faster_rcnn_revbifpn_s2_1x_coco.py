# Faster R-CNN, RevBiFPN-S2 backbone, 1x schedule (12 epochs), COCO.
# Parameters: 23.86M (docs/detection.md). Backbone widths [96, 128, 160, 320],
# neck widths [96, 128, 256, 640].
_base_ = './_base_/faster_rcnn_revbifpn_1x_coco.py'

checkpoint_file = 'checkpoints/revbifpn_s2_in1k.pth'

model = dict(
    backbone=dict(
        arch='s2',
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[96, 128, 160, 320],
            out_channels=[96, 128, 256, 640],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[96, 128, 256, 640], out_channels=256),
    ])
