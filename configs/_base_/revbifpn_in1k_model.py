# RevBiFPN ImageNet classifier (paper Fig. 13): reversible backbone, one MBConv per
# pyramid level (neck), the top-down fusion head. Values left as None are per variant;
# configs/revbifpn_s*_8xb64_in1k.py fill them from mmrevbifpn/recipes.py (Tables 6-7).
custom_imports = dict(imports=['mmrevbifpn'], allow_failed_imports=False)

# BatchNorm momentum 0.1 in PyTorch's convention (the paper's 0.9), eps 1e-3.
norm_cfg = dict(type='BN', eps=1e-3, momentum=0.1)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='RevBiFPN',
        arch=None,
        drop_path_rate=None,  # stochastic depth (maximum, last make-layer)
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg),
    # neck and head checkpoint their MBConvs (with_cp=True, their default), so the
    # whole classifier stores almost nothing for backward besides the pyramid.
    neck=dict(type='MBConvNeck', arch=None, with_cp=True, norm_cfg=norm_cfg),
    head=dict(
        type='RevBiFPNClsHead',
        num_classes=1000,
        arch=None,
        dropout=None,
        with_cp=True,
        norm_cfg=norm_cfg,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
