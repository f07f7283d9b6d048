# `make demo`: RevBiFPN-S0 Faster R-CNN trained FROM SCRATCH on the bundled
# demo/coco_subset "train" images (13 real COCO images, 74 real annotations), on CPU,
# in a few minutes, then evaluated with COCO AP on THE SAME images.
#
# This shows that the whole pipeline (reversible backbone, MBConv neck, HRFPN, RPN,
# RoI head, pycocotools evaluation) learns: the loss falls and the detector fits the
# images it was trained on. It is an overfitting sanity check, not a measure of how
# well the model generalises (that needs ImageNet-pretrained weights and COCO, see
# docs/detection.md).
#
# The detector is that of configs/faster_rcnn_revbifpn_s0_1x_coco.py (same modules and
# parameter count). The demo changes only: initialisation (from scratch, no checkpoint
# is shipped), norm_eval off (BatchNorm statistics must be learnt), fewer proposals
# and sampled RoIs (CPU time), and the data, image size, schedule and optimiser.
_base_ = '../configs/faster_rcnn_revbifpn_s0_1x_coco.py'

data_root = '{{ fileDirname }}/coco_subset/'
img_scale = (224, 224)  # every image resized to 224x224 (COCO images are ~640x480)
max_iters = 100

model = dict(
    # no pretrained checkpoint on disk: train from scratch (reference initialisation)
    backbone=dict(init_cfg=None, norm_eval=False),
    neck=[
        dict(
            type='MBConvNeck',
            in_channels=[48, 64, 80, 160],
            out_channels=[48, 64, 128, 320],
            init_cfg=None),
        dict(type='HRFPN', in_channels=[48, 64, 128, 320], out_channels=256),
    ],
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=500)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    # one input shape for every batch (CPU conv kernels are set up once per shape);
    # predictions are mapped back to the original image size for evaluation
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',  # the training images
        data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_evaluator = dict(
    ann_file=data_root + 'annotations/instances_train.json', metric='bbox')
val_dataloader = None
val_evaluator = None

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters,
         eta_min_ratio=0.05)
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False, window_size=10)
randomness = dict(seed=0)
