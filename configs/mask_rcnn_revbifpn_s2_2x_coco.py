# Mask R-CNN, RevBiFPN-S2 backbone, 2x schedule (24 epochs), COCO.
# Same schedule change as MMDetection's configs/hrnet/*-2x_coco.py.
_base_ = './mask_rcnn_revbifpn_s2_1x_coco.py'

# learning policy
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1)
]
