# Mask R-CNN, RevBiFPN-S5 backbone, 1x schedule (12 epochs), COCO.
# Parameters: 80.47M (docs/detection.md). Backbone widths [256, 336, 416, 848],
# neck widths [256, 336, 672, 1696].
_base_ = './_base_/mask_rcnn_revbifpn_1x_coco.py'

checkpoint_file = 'checkpoints/revbifpn_s5_in1k.pth'

model = dict(
    backbone=dict(
        arch='s5',
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[256, 336, 416, 848],
            out_channels=[256, 336, 672, 1696],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[256, 336, 672, 1696], out_channels=256),
    ])
