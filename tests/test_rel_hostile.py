"""Hostile input: every custom arch and input either works, with exact inversion, or is
refused with a ValueError that names the constraint (property-based, hypothesis)."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrevbifpn.engine import reconstruction_error
from mmrevbifpn.models import RevBiFPN
from ._rel_utils import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures('one_thread')

S0 = RevBiFPN.arch_settings['s0']
KEYS = sorted(S0)
FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

# ------------------------------------------------------------------ strategies
junk = st.sampled_from([None, 'ab', '', [1], float('nan'), float('inf'), True, {}, 3])


def four(elem):
    """4 values per stream, or the wrong number, or not a sequence at all."""
    return st.one_of(st.tuples(elem, elem, elem, elem),
                     st.lists(elem, min_size=0, max_size=5), junk)


HOSTILE_VALUES = {
    'channels': four(st.one_of(st.sampled_from([48, 64, 16, 32, 2, 8, 10, 0, -16, 15, 47]),
                               st.floats(0, 64))),
    'depth': st.one_of(st.integers(-2, 2), st.floats(-1, 2), junk),
    'kernel_sizes': four(st.one_of(st.integers(-1, 7), st.floats(0, 5))),
    'kernel_pads': four(st.one_of(st.integers(-2, 4), st.floats(0, 3))),
    'expand_ratios': four(st.one_of(st.floats(-1, 4), st.sampled_from([0, 1, 2, 1e-9]))),
    'se_ratios': four(st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0, 0.25, 1e-9]))),
    'drop_path_rate': st.one_of(st.floats(-0.5, 1.5), junk),
}


@st.composite
def hostile_arch(draw):
    """A small valid arch with up to three values replaced, maybe a key dropped or
    an unknown key added."""
    arch = dict(S0, channels=(48, 16, 16, 32), depth=0)
    for key in draw(st.sets(st.sampled_from(KEYS), max_size=3)):
        arch[key] = draw(HOSTILE_VALUES[key])
    change = draw(st.sampled_from(['none'] * 4 + ['drop', 'add']))
    if change == 'drop':
        del arch[draw(st.sampled_from(KEYS))]
    elif change == 'add':
        arch['width'] = 1
    return arch


@st.composite
def valid_arch(draw):
    even = st.integers(1, 20).map(lambda v: 2 * v)
    pick = lambda options: tuple(draw(st.sampled_from(options)) for _ in range(4))  # noqa
    return dict(channels=(draw(st.sampled_from([48, 64])), draw(even), draw(even), draw(even)),
                depth=draw(st.integers(0, 1)), kernel_sizes=pick([1, 3, 5]),
                kernel_pads=pick([0, 2]), expand_ratios=pick([1, 2, 1.5, 4]),
                se_ratios=pick([0, 0.125, 0.25, 1.0]),
                drop_path_rate=draw(st.sampled_from([0.0, 0.2])))


def build(arch, **kwargs):
    torch.manual_seed(0)
    model = RevBiFPN(arch, **kwargs)
    model.init_weights()
    return model


def assert_exact_inversion(model, x):
    """Eval: float32 round off only; train: the reversible backward's reconstruction
    with batch statistics (worst seen 2.2e-4, batch 1 at 96x32)."""
    err = reconstruction_error(model, x)
    assert err.rel <= (1e-3 if model.training else 1e-5), err


# ----------------------------------------------------------------------- arch
@FAST
@given(hostile_arch())
def test_custom_arch_builds_or_names_the_constraint(arch):
    try:
        model = build(arch)
    except ValueError as e:
        msg = str(e)
        assert 'arch' in msg or 'drop_path_rate' in msg, msg
        named = [k for k in KEYS if k in msg]
        assert named or 'keys' in msg, msg
        return
    # accepted: it must run and invert exactly
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model(x)
    assert [f.shape[1] for f in feats] == list(arch['channels'])
    assert_exact_inversion(model, x)


@pytest.mark.parametrize('arch', [None, 3, ['s0'], ('s0', )])
def test_arch_of_wrong_type(arch):
    with pytest.raises((TypeError, ValueError), match='arch must be a str or dict'):
        RevBiFPN(arch)


@pytest.mark.parametrize('kwargs,match', [
    (dict(drop_path_rate='0.1'), 'drop_path_rate'),
    (dict(drop_path_rate=float('nan')), 'drop_path_rate'),
    (dict(in_channels=4), r'channels\[0\]=48 is too small for in_channels=4'),
    (dict(in_channels=0), 'in_channels'),
])
def test_bad_keyword_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RevBiFPN('s0', **kwargs)


def test_stem_must_keep_every_image_channel():
    # channels[0]=32 stacks 2 channels: the blue channel would be dropped silently
    with pytest.raises(ValueError, match='must include every image channel'):
        RevBiFPN(dict(S0, channels=(32, 64, 80, 160)))
    RevBiFPN(dict(S0, channels=(32, 64, 80, 160)), in_channels=2)


def test_expand_ratio_too_small_for_width_names_it():
    with pytest.raises(ValueError, match=r'int\(8 \* 0.1\) = 0 hidden channels'):
        RevBiFPN(dict(S0, channels=(48, 16, 16, 32), expand_ratios=(1, 0.1, 1, 1)))


# ---------------------------------------------------------------------- input
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(valid_arch(), st.integers(0, 3), st.sampled_from([0, 32, 64, 96, 40, 33]),
       st.sampled_from([32, 64, 16]), st.sampled_from(['train', 'eval', 'norm_eval']),
       st.sampled_from([torch.float32, torch.float64, torch.uint8, torch.float16]))
def test_input_works_with_exact_inversion_or_names_the_constraint(arch, n, h, w, mode, dtype):
    model = build(arch, norm_eval=mode == 'norm_eval').train(mode != 'eval')
    x = torch.randn(n, 3, h, w).to(dtype) if dtype.is_floating_point else \
        torch.randint(0, 255, (n, 3, h, w), dtype=dtype)
    try:
        feats = model(x)
    except ValueError as e:
        assert 'RevBiFPN' in str(e) or 'BatchNorm' in str(e), str(e)
        return
    assert len(feats) == 4
    assert [tuple(f.shape[-2:]) for f in feats] == [(h // s, w // s) for s in (4, 8, 16, 32)]
    if n == 0:
        return
    if model.training:
        loss = sum(f.square().mean() for f in feats)
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert_exact_inversion(model, x)


@pytest.mark.parametrize('x,match', [
    (torch.zeros(3, 32, 32), 'N x C x H x W'),
    (torch.zeros(1, 1, 3, 32, 32), 'N x C x H x W'),
    ([torch.zeros(1, 3, 32, 32)], 'N x C x H x W'),
    (torch.zeros(2, 3, 0, 32), 'positive multiples of 32'),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), 'floating-point'),
    (torch.zeros(2, 3, 32, 32, dtype=torch.float64), 'torch.float64 but RevBiFPN is torch.float32'),
    (torch.zeros(1, 3, 32, 32), 'BatchNorm one value per channel'),
])
def test_bad_input_is_named(x, match):
    model = RevBiFPN(dict(S0, depth=0)).train()
    with pytest.raises(ValueError, match=match):
        model(x)


def test_single_image_is_fine_where_batchnorm_does_not_need_batch_statistics():
    model = RevBiFPN(dict(S0, depth=0))
    for m in (model.eval(), RevBiFPN(dict(S0, depth=0), norm_eval=True).train()):
        assert len(m(torch.zeros(1, 3, 32, 32))) == 4
    with torch.autocast('cpu', dtype=torch.bfloat16):  # autocast casts these
        for dtype in (torch.bfloat16, torch.float16):
            assert len(model.train()(torch.zeros(2, 3, 32, 32, dtype=dtype))) == 4
        with pytest.raises(ValueError, match='float64 but RevBiFPN is torch.float32'):
            model(torch.zeros(2, 3, 32, 32, dtype=torch.float64))


def test_nonfinite_input_propagates_without_crashing():
    model = build(dict(S0, channels=(48, 16, 16, 32), depth=0)).eval()
    x = torch.full((2, 3, 32, 32), math.nan)
    assert all(torch.isnan(f).any() for f in model(x))
