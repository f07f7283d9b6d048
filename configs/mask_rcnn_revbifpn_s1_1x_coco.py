# Mask R-CNN, RevBiFPN-S1 backbone, 1x schedule (12 epochs), COCO.
# Parameters: 23.12M (docs/detection.md). Backbone widths [64, 80, 96, 208],
# neck widths [64, 80, 160, 416].
_base_ = './_base_/mask_rcnn_revbifpn_1x_coco.py'

checkpoint_file = 'checkpoints/revbifpn_s1_in1k.pth'

model = dict(
    backbone=dict(
        arch='s1',
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[64, 80, 96, 208],
            out_channels=[64, 80, 160, 416],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[64, 80, 160, 416], out_channels=256),
    ])
