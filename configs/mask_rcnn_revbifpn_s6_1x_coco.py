# Mask R-CNN, RevBiFPN-S6 backbone, 1x schedule (12 epochs), COCO.
# Parameters: 130.15M (docs/detection.md). Backbone widths [320, 416, 528, 1056],
# neck widths [320, 416, 848, 2128].
_base_ = './_base_/mask_rcnn_revbifpn_1x_coco.py'

checkpoint_file = 'checkpoints/revbifpn_s6_in1k.pth'

model = dict(
    backbone=dict(
        arch='s6',
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[320, 416, 528, 1056],
            out_channels=[320, 416, 848, 2128],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[320, 416, 848, 2128], out_channels=256),
    ])
