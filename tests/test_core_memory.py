"""Deterministic memory accounting: what a training forward leaves for backward."""
import pytest
import torch

from mmrevbifpn.models import RevBiFPN
from mmrevbifpn.utils import backbone_saved_bytes, tensor_bytes


def saved_and_pyramid(depth, reversible, size=64, batch=2):
    torch.manual_seed(0)
    model = RevBiFPN(dict(RevBiFPN.arch_settings['s0'], depth=depth),
                     reversible=reversible).train()
    x = torch.randn(batch, 3, size, size)
    saved = backbone_saved_bytes(model, x)
    with torch.no_grad():
        pyramid = tensor_bytes(model(x))
    return saved, pyramid


@pytest.fixture(scope='module')
def sweep():
    return {(d, rev): saved_and_pyramid(d, rev) for d in (2, 4, 8) for rev in (True, False)}


def test_reversible_saves_only_the_output_pyramid(sweep):
    for d in (2, 4, 8):
        saved, pyramid = sweep[(d, True)]
        assert 0 < saved <= 1.05 * pyramid


def test_reversible_memory_is_constant_in_depth(sweep):
    assert sweep[(2, True)][0] == sweep[(4, True)][0] == sweep[(8, True)][0]


def test_plain_autograd_memory_grows_linearly(sweep):
    s2, s4, s8 = (sweep[(d, False)][0] for d in (2, 4, 8))
    assert s2 < s4 < s8
    # equal increments per extra make-layer
    assert (s8 - s4) == pytest.approx(2 * (s4 - s2), rel=0.02)
    assert s2 > 20 * sweep[(2, True)][0]


def test_stochastic_depth_keeps_only_rng_snapshots_aside():
    torch.manual_seed(0)
    model = RevBiFPN('s0', drop_path_rate=0.2).train()
    x = torch.randn(2, 3, 64, 64)
    saved = backbone_saved_bytes(model, x)
    with torch.no_grad():
        pyramid = tensor_bytes(model(x))
    snapshot = torch.get_rng_state().nbytes
    n_stochastic = sum(1 for m in model.modules() if getattr(m, 'drop_prob', 0) > 0)
    assert saved == pyramid + n_stochastic * snapshot
