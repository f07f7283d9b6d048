"""The MMPretrain ImageNet configs: recipe values against the paper, parameter counts,
checkpoint keys, learning-rate schedule."""
import math
import os.path as osp
import sys

import pytest
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _toolbox_helpers import (ARCHS, FULL_PARAMS, build_model, cls_config,  # noqa: E402
                              load_config, n_params, shared_path, tool_main)

pytest.importorskip('mmpretrain')

# Paper (Chiley et al. 2022) Tables 6-7, written out independently of
# mmrevbifpn/recipes.py: weight decay, head dropout, RandAugment N, mixup alpha,
# CutMix alpha, stochastic depth (max), train/test resolution.
PAPER = {
    's0': (1e-5, 0.25, 1, 0.0, 0.0, 0.0, 224),
    's1': (1e-5, 0.25, 1, 0.0, 0.0, 0.0, 256),
    's2': (1e-5, 0.3, 2, 0.0, 0.0, 0.0, 256),
    's3': (5e-5, 0.3, 2, 0.2, 0.2, 0.05, 288),
    's4': (5e-5, 0.4, 2, 0.2, 0.2, 0.1, 320),
    's5': (5e-5, 0.4, 3, 0.2, 0.2, 0.1, 352),
    's6': (5e-5, 0.6, 3, 0.2, 0.2, 0.3, 352),
}


@pytest.fixture(scope='module', params=ARCHS)
def cfg_arch(request):
    return load_config(cls_config(request.param)), request.param


def _step(pipeline, type_name):
    steps = [t for t in pipeline if t['type'] == type_name]
    assert len(steps) == 1, f'{type_name} in {pipeline}'
    return steps[0]


def _walk(obj, path=''):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f'{path}.{k}')
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f'{path}[{i}]')
    else:
        yield path, obj


def test_recipe_matches_paper(cfg_arch):
    cfg, arch = cfg_arch
    wd, dropout, ra_n, mixup, cutmix, sd, res = PAPER[arch]
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.optim_wrapper.optimizer.weight_decay == wd
    assert cfg.model.head.dropout == dropout
    assert cfg.model.backbone.drop_path_rate == sd
    assert cfg.model.backbone.arch == cfg.model.neck.arch == cfg.model.head.arch == arch

    augments = (cfg.model.get('train_cfg') or {}).get('augments', [])
    alphas = {a['type']: a['alpha'] for a in augments}
    assert alphas.get('Mixup', 0.0) == mixup
    assert alphas.get('CutMix', 0.0) == cutmix
    assert set(alphas) <= {'Mixup', 'CutMix'}

    for pipeline in (cfg.train_pipeline, cfg.train_dataloader.dataset.pipeline):
        assert _step(pipeline, 'RandomResizedCrop')['scale'] == res
        ra = _step(pipeline, 'RandAugment')
        assert ra['num_policies'] == ra_n
        assert ra['magnitude_level'] == 9 and ra['total_level'] == 10
        assert ra['magnitude_std'] == 0.5
    for pipeline in (cfg.test_pipeline, cfg.val_dataloader.dataset.pipeline,
                     cfg.test_dataloader.dataset.pipeline):
        assert _step(pipeline, 'CenterCrop')['crop_size'] == res
        assert _step(pipeline, 'ResizeEdge')['scale'] == round(res / 0.875)

    # nothing of the _base_ left unfilled
    unset = [p for p, v in _walk(cfg.to_dict()) if v is None and not p.startswith(
        ('.load_from', '.randomness', '.model.train_cfg'))]
    assert not unset, unset


def test_shared_recipe(cfg_arch):
    """Appendix D values common to all variants."""
    cfg, _ = cfg_arch
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum) == ('SGD', 0.1, 0.9)
    assert cfg.train_dataloader.batch_size == 64 and cfg.auto_scale_lr.base_batch_size == 512
    assert cfg.train_cfg.max_epochs == 350
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                                       mode='original')
    ema = [h for h in cfg.custom_hooks if h['type'] == 'EMAHook']
    assert len(ema) == 1 and ema[0]['momentum'] == pytest.approx(1 - 0.9999)
    for part in ('backbone', 'neck', 'head'):
        norm = cfg.model[part].norm_cfg
        assert (norm.type, norm.eps, norm.momentum) == ('BN', 1e-3, 0.1)
    assert cfg.val_evaluator == dict(type='Accuracy', topk=(1, 5))
    assert cfg.train_dataloader.dataset.data_root == 'data/imagenet'


@pytest.mark.filterwarnings('ignore:Detected call of')
def test_lr_schedule():
    """5-epoch linear warm-up from 1e-3 to 0.1, cosine to 1e-4 at epoch 340, then 1e-4
    for the last 10 epochs; simulated with mmengine's own schedulers (converted to
    iterations as in training), 40 iterations per epoch."""
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    cfg = load_config(cls_config('s0'))
    per_epoch = 40
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                          lr=cfg.optim_wrapper.optimizer.lr, momentum=0.9)
    wrapper = OptimWrapper(opt)
    schedulers = []
    for s in cfg.param_scheduler:
        s = dict(s)
        assert s.pop('convert_to_iter_based') is True
        t = PARAM_SCHEDULERS.get(s.pop('type'))
        schedulers.append(t.build_iter_from_epoch(wrapper, **s, epoch_length=per_epoch))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs * per_epoch):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in schedulers:
            s.step()
    warm = 5 * per_epoch
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[warm] == pytest.approx(0.1) and max(lrs) == pytest.approx(0.1)
    assert all(a < b for a, b in zip(lrs[:warm - 1], lrs[1:warm]))  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))  # then decay
    epoch = 172
    cosine = 1e-4 + (0.1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (epoch - 5) / 335))
    assert lrs[epoch * per_epoch] == pytest.approx(cosine, rel=1e-6)
    # the cosine ends one iteration before epoch 340, within 1e-9 of 1e-4 here (within
    # 1e-12 with ImageNet's 2502 iterations per epoch), and the lr stays there
    assert lrs[340 * per_epoch - 2] > lrs[340 * per_epoch - 1]
    assert lrs[340 * per_epoch - 1:] == pytest.approx([1e-4] * (10 * per_epoch + 1),
                                                      rel=1e-4)


@pytest.mark.parametrize('arch', ARCHS)
def test_build_and_param_count(arch):
    """Every config builds under mmpretrain (RevBiFPN, MBConvNeck and RevBiFPNClsHead
    resolve through the root registry) with the paper's parameter count."""
    from torch.nn.modules.batchnorm import _BatchNorm

    cfg = load_config(cls_config(arch))
    model = build_model(cfg, 'mmpretrain')
    assert type(model).__name__ == 'ImageClassifier'
    assert n_params(model) == FULL_PARAMS[arch]
    wd, dropout, _, mixup, cutmix, sd, _ = PAPER[arch]
    assert model.head.dropout.p == dropout
    assert model.backbone.drop_path_rate == sd
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.1 for m in norms)
    assert type(model.head.loss_module).__name__ == 'LabelSmoothLoss'
    batch_aug = model.data_preprocessor.batch_augments
    if mixup or cutmix:
        names = sorted(type(a).__name__ for a in batch_aug.augments)
        assert names == ['CutMix', 'Mixup']
    else:
        assert batch_aug is None


@pytest.mark.parametrize('arch', ARCHS)
def test_converted_authors_keys_load(arch):
    """An authors'-layout checkpoint (all keys and shapes of the reference, from
    shared/spec/reference_keys) converts to exactly the config model's state dict."""
    from mmrevbifpn.utils import convert_state_dict

    path = shared_path('spec', 'reference_keys', f'revbifpn_{arch}.txt')
    if not osp.exists(path):
        pytest.skip(f'{path} missing')
    authors = {}
    with open(path) as f:
        for line in f:
            key, shape = line.rstrip('\n').split('\t')
            dims = [int(d) for d in shape.strip('[]').split(',') if d.strip()]
            authors[key] = torch.empty(dims, device='meta')
    converted, _ = convert_state_dict(authors)
    model = build_model(load_config(cls_config(arch)), 'mmpretrain')
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in converted.items()}
    assert set(got) - set(expected) == set(), 'unexpected keys'
    assert set(expected) - set(got) == set(), 'missing keys'
    assert got == expected


def test_converted_fixture_loads_strict_and_matches_logits(tmp_path, reference_s0):
    """The authors' S0 fixture, converted by the project's tool, loads into the S0
    config with zero missing/unexpected keys and reproduces the reference logits."""
    from mmengine.runner import load_checkpoint

    dst = tmp_path / 'revbifpn_s0_in1k.pth'
    tool_main('model_converters/revbifpn_to_mmrevbifpn.py',
              shared_path('fixtures', 'reference_s0.pt'), str(dst))
    model = build_model(load_config(cls_config('s0')), 'mmpretrain', device='cpu')
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(reference_s0['input'].float(), mode='tensor')
    torch.testing.assert_close(logits, reference_s0['logits'], rtol=1e-4, atol=1e-4)


def test_neck_head_with_cp_train_step():
    from mmrevbifpn.models import MBConvNeck, RevBiFPNClsHead

    torch.manual_seed(0)
    feats = [torch.randn(2, c, s, s, requires_grad=True)
             for c, s in zip((48, 64, 80, 160), (16, 8, 4, 2))]
    neck = MBConvNeck(arch='s0', with_cp=True).train()
    head = RevBiFPNClsHead(10, arch='s0', with_cp=True).train()
    head(neck(feats)).sum().backward()
