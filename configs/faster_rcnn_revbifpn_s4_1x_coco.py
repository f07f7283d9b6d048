# Faster R-CNN, RevBiFPN-S4 backbone, 1x schedule (12 epochs), COCO.
# Parameters: 52.88M (docs/detection.md). Backbone widths [192, 256, 320, 640],
# neck widths [192, 256, 512, 1280].
_base_ = './_base_/faster_rcnn_revbifpn_1x_coco.py'

checkpoint_file = 'checkpoints/revbifpn_s4_in1k.pth'

model = dict(
    backbone=dict(
        arch='s4',
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[192, 256, 320, 640],
            out_channels=[192, 256, 512, 1280],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[192, 256, 512, 1280], out_channels=256),
    ])
