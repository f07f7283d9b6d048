# Mask R-CNN, RevBiFPN-S3 backbone, 1x schedule (12 epochs), COCO.
# Parameters: 33.04M (docs/detection.md). Backbone widths [128, 160, 208, 416],
# neck widths [128, 160, 336, 848].
_base_ = './_base_/mask_rcnn_revbifpn_1x_coco.py'

checkpoint_file = 'checkpoints/revbifpn_s3_in1k.pth'

model = dict(
    backbone=dict(
        arch='s3',
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[128, 160, 208, 416],
            out_channels=[128, 160, 336, 848],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[128, 160, 336, 848], out_channels=256),
    ])
