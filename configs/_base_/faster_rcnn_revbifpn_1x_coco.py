# Faster R-CNN with RevBiFPN on COCO, 1x schedule: the shared part of
# configs/faster_rcnn_revbifpn_s*_1x_coco.py.
#
# Mirrors MMDetection 3.3.0's configs/hrnet/faster-rcnn_hrnetv2p-w*-1x_coco.py (the recipe the
# RevBiFPN authors fine-tuned with): MMDetection's Faster R-CNN model, COCO
# detection dataset (data/coco/), 1x schedule and default runtime, with
# the HRNet backbone replaced by RevBiFPN and the neck by MBConvNeck -> HRFPN.
# The values here are RevBiFPN-S0's; the per-variant configs override them.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmrevbifpn'], allow_failed_imports=False)

# ImageNet weights converted with tools/model_converters/revbifpn_to_mmrevbifpn.py
# (see docs/detection.md); they initialise the backbone and the MBConv neck.
checkpoint_file = 'checkpoints/revbifpn_s0_in1k.pth'

model = dict(
    # RevBiFPN needs H and W divisible by 32 (stem /4, then 3 halvings).
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='RevBiFPN',
        arch='s0',
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=True,  # as MMDetection's HRNet backbone (its default)
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    # A list of necks is built into an nn.Sequential: the per-level MBConv transforms
    # map backbone widths to the variant's neck widths, then HRFPN fuses them.
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[48, 64, 80, 160],
            out_channels=[48, 64, 128, 320],
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
        dict(type='HRFPN', in_channels=[48, 64, 128, 320], out_channels=256),
    ])
