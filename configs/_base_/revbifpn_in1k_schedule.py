# Paper Appendix D: 350 epochs, SGD lr 0.1 momentum 0.9 for 8 x 64 images, linear
# warm-up from 1e-3 over 5 epochs, cosine decay to 1e-4 at epoch 340, then 10 epochs at
# 1e-4; EMA of the weights with decay 0.9999, which is the model evaluated.
# Weight decay is per variant (None here; filled from mmrevbifpn/recipes.py).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=None,
                   nesterov=False))

param_scheduler = [
    # 1e-3 -> 0.1 over epochs 0-5, updated every iteration
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    # 0.1 -> 1e-4 over epochs 5-340; the lr then stays at eta_min until epoch 350
    dict(type='CosineAnnealingLR', T_max=335, eta_min=1e-4, by_epoch=True, begin=5,
         end=340, convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=350, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The lr above is for 8 GPUs x 64 images; --auto-scale-lr rescales it linearly.
auto_scale_lr = dict(base_batch_size=512)

# Exponential moving average of the weights: ema = 0.9999 ema + 1e-4 w after every
# iteration (BatchNorm statistics averaged too, as in timm/TF). The hook swaps the EMA
# weights in for validation and testing and saves them as the checkpoint's state_dict
# (the raw weights go to 'ema_state_dict').
# RNGStateHook stores the random generators in checkpoints so --resume continues
# exactly (stochastic depth, dropout, mixup draws).
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, update_buffers=True, priority='ABOVE_NORMAL'),
    dict(type='RNGStateHook'),
]
