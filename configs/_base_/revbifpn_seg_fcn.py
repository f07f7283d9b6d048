# FCN over the RevBiFPN pyramid, as MMSegmentation's HRNet FCN
# (mmseg configs/_base_/models/fcn_hr18.py): the 4 neck outputs are resized to stride 4,
# concatenated, and fed to a 1x1 FCNHead. arch, the head widths and the pretrained
# checkpoint are set per variant by configs/fcn_revbifpn_s*_*.py.
custom_imports = dict(imports=['mmrevbifpn'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
# backbone and neck keep the ImageNet BatchNorm settings (eps 1e-3, momentum 0.1)
backbone_norm_cfg = dict(type='SyncBN', eps=1e-3, momentum=0.1, requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # RevBiFPN needs H and W divisible by 32: pad test images too (the prediction is
    # cropped back to the image)
    test_cfg=dict(size_divisor=32))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='RevBiFPN',
        arch=None,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        norm_cfg=backbone_norm_cfg),
    neck=dict(
        type='MBConvNeck',
        arch=None,
        with_cp=True,
        norm_cfg=backbone_norm_cfg),
    decode_head=dict(
        type='FCNHead',
        in_channels=None,  # the neck widths
        in_index=(0, 1, 2, 3),
        channels=None,  # their sum
        input_transform='resize_concat',
        kernel_size=1,
        num_convs=1,
        concat_input=False,
        dropout_ratio=-1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    # model training and testing settings
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
