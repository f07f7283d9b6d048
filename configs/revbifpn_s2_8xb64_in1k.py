# RevBiFPN-S2 on ImageNet-1k: 8 GPUs x 64 images, 350 epochs, the paper's recipe
# (Chiley et al. 2022, Appendix D). Shared settings are in the _base_ files; the
# per-variant ones (resolution, weight decay, head dropout, RandAugment N, mixup, CutMix,
# stochastic depth; paper Tables 6-7) come from the table in mmrevbifpn/recipes.py.
_base_ = [
    './_base_/revbifpn_in1k_model.py', './_base_/revbifpn_in1k_data.py',
    './_base_/revbifpn_in1k_schedule.py', './_base_/revbifpn_in1k_runtime.py'
]

from mmrevbifpn.recipes import in1k_variant_cfg

globals().update(in1k_variant_cfg('s2', _base_))
