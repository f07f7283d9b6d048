# FCN with a RevBiFPN-S2 backbone (+ MBConv neck) on Cityscapes (data/cityscapes):
# 512x1024 crops, 80k iterations, 4 GPUs x 2 images, as mmseg's
# configs/hrnet/fcn_hr18_4xb2-80k_cityscapes-512x1024.py.
# Initialised from the ImageNet classifier (configs/revbifpn_s2_8xb64_in1k.py): make
# `checkpoint_file` with tools/model_converters/extract_backbone.py (a trained checkpoint)
# or tools/model_converters/revbifpn_to_mmrevbifpn.py (the authors' release).
_base_ = [
    './_base_/revbifpn_seg_fcn.py', 'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
]
checkpoint_file = 'checkpoints/revbifpn_s2_in1k.pth'
neck_channels = [96, 128, 256, 640]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='s2',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    neck=dict(
        arch='s2',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file, prefix='neck.')),
    decode_head=dict(
        in_channels=neck_channels,
        channels=sum(neck_channels),
    ))
