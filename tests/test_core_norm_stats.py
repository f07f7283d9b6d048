"""The recompute reuses the forward's BatchNorm batch statistics, exactly.

Reuse must not change what back-propagation computes (gradients, running statistics,
the RNG), must only keep what it accounts for, must stay within its memory cap, and
must fall back to recomputing for norm layers it cannot see.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmrevbifpn.models import RevBiFPN
from mmrevbifpn.reversible import (RevBlock, frozen_norm_stats, norm_stats,
                                   reversible_forward)
from mmrevbifpn.reversible.norm_stats import _NormalizeWithStats
from mmrevbifpn.utils import backbone_saved_bytes, tensor_bytes

from .test_core_gradients import input_of, loss_of, make, max_rel, step


@pytest.fixture
def reuse_everything(monkeypatch):
    """Keep statistics for every BatchNorm call, however small, without a cap."""
    monkeypatch.setattr(norm_stats, 'MIN_REDUCTION', 1)
    monkeypatch.setattr(norm_stats, 'MAX_FRACTION_OF_OUTPUT', float('inf'))


class CountingNormalize:
    """Counts the recompute's uses of recorded statistics."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = _NormalizeWithStats.apply

        def apply(*args):
            self.calls += 1
            return original(*args)
        monkeypatch.setattr(_NormalizeWithStats, 'apply', apply)


def training_bn_calls(model, x, min_reduction=1):
    """(channels, reduction) of every training-mode BatchNorm call of a forward (which
    leaves the running statistics as they were)."""
    calls = []
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    hooks = [m.register_forward_pre_hook(
        lambda m, args: calls.append((args[0].shape[1], args[0].numel() // args[0].shape[1])))
        for m in norms if m.training]
    with torch.no_grad(), frozen_norm_stats(norms):
        model(x)
    for h in hooks:
        h.remove()
    return [(c, n) for c, n in calls if n >= min_reduction]


@pytest.mark.parametrize('shape,affine,channels_last', [
    ((4, 6, 8, 8), True, False), ((4, 6, 8, 8), False, False),
    ((4, 6, 8, 8), True, True), ((16, 5), True, False), ((2, 3, 4, 4, 4), True, False)])
def test_normalize_with_stats_is_training_batchnorm(shape, affine, channels_last):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    c = shape[1]
    w = torch.rand(c, dtype=torch.float64) + 0.5 if affine else None
    b = torch.randn(c, dtype=torch.float64) if affine else None
    gy = torch.randn(shape, dtype=torch.float64)
    eps = 1e-3
    _, mean, invstd = torch.native_batch_norm(x, w, b, None, None, True, 0.1, eps)

    def grads(fn):
        leaves = [t.detach().requires_grad_() if t is not None else None for t in (x, w, b)]
        y = fn(*leaves)
        y.backward(gy)
        return [y.detach()] + [t.grad for t in leaves if t is not None]

    ref = grads(lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.1, eps))
    got = grads(lambda x, w, b: _NormalizeWithStats.apply(x, w, b, mean, invstd, eps))
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('arch,kw', [('s0', {}), ('s3', dict(drop_path_rate=0.3))])
def test_gradients_with_every_statistic_reused_equal_plain(arch, kw, reuse_everything,
                                                           monkeypatch):
    counter = CountingNormalize(monkeypatch)
    rev_model = make(arch, True, **kw)
    n_calls = len(training_bn_calls(rev_model, input_of(torch.float64, False)))
    rev = step(rev_model, input_of(torch.float64))
    assert counter.calls == n_calls > 0  # every training-mode call of the recompute
    plain = step(make(arch, False, **kw), input_of(torch.float64))
    assert torch.equal(rev[0], plain[0])
    assert max_rel(rev[1], plain[1]) <= 1e-10
    for k in plain[2]:  # running statistics updated once, as plain autograd does
        torch.testing.assert_close(rev[2][k], plain[2][k], rtol=1e-12, atol=1e-12)
    assert all(v.item() == 1 for k, v in rev[2].items() if k.endswith('num_batches_tracked'))
    assert torch.equal(rev[3], plain[3])  # the global RNG


def test_kept_statistics_are_accounted_exactly(reuse_everything):
    model = make('s0', True, dtype=torch.float32)
    x = input_of(torch.float32, False)
    with torch.no_grad():
        pyramid = tensor_bytes(model(x))
    expected = sum(2 * c * 4 for c, _ in training_bn_calls(model, x))
    assert expected > 0
    assert backbone_saved_bytes(model, x) == pyramid + expected


def test_default_threshold_keeps_large_reductions_only():
    model = RevBiFPN('s0').train()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        pyramid = tensor_bytes(model(x))
    calls = training_bn_calls(model, x)
    large = [(c, n) for c, n in calls if n >= norm_stats.MIN_REDUCTION]
    assert 0 < len(large) < len(calls)
    kept = backbone_saved_bytes(model, x) - pyramid
    assert 0 < kept <= min(sum(2 * c * 4 for c, _ in large),
                           norm_stats.MAX_FRACTION_OF_OUTPUT * pyramid)


def test_cap_keeps_memory_constant_in_depth():
    """Statistics grow with depth, the pyramid does not: the cap holds them at a fixed
    fraction of it, largest reductions first."""
    saved = {}
    for depth in (2, 8):
        torch.manual_seed(0)
        model = RevBiFPN(dict(RevBiFPN.arch_settings['s0'], depth=depth)).train()
        x = torch.randn(1, 3, 256, 256)
        with torch.no_grad():
            pyramid = tensor_bytes(model(x))
        uncapped = sum(2 * c * 4 for c, n in training_bn_calls(model, x)
                       if n >= norm_stats.MIN_REDUCTION)
        saved[depth] = backbone_saved_bytes(model, x)
        assert saved[depth] <= (1 + norm_stats.MAX_FRACTION_OF_OUTPUT) * pyramid
    assert uncapped > norm_stats.MAX_FRACTION_OF_OUTPUT * pyramid  # the cap binds at d=8
    assert abs(saved[8] - saved[2]) <= norm_stats.MAX_FRACTION_OF_OUTPUT * pyramid


def test_recompute_updates_norm_keeps_no_statistics(reuse_everything):
    model = make('s0', True, dtype=torch.float32, recompute_updates_norm=True)
    x = input_of(torch.float32, False)
    with torch.no_grad():
        pyramid = tensor_bytes(model(x))
    assert backbone_saved_bytes(model, x) == pyramid


class OwnStatsBatchNorm(nn.BatchNorm2d):
    """Computes its statistics without ``F.batch_norm``, as a cross-process SyncBN."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        mean = x.mean((0, 2, 3))
        var = x.var((0, 2, 3), unbiased=False)
        with torch.no_grad():
            n = x.numel() / x.shape[1]
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        shape = (1, -1, 1, 1)
        return ((x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
                * self.weight.view(shape) + self.bias.view(shape))


def with_own_stats_norms(model):
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                own = OwnStatsBatchNorm(child.num_features, child.eps, child.momentum)
                own.load_state_dict(child.state_dict())
                setattr(parent, name, own.to(child.weight.dtype))
    return model


def test_norm_layers_that_bypass_batch_norm_are_recomputed(reuse_everything, monkeypatch):
    counter = CountingNormalize(monkeypatch)
    x = input_of(torch.float64, False)
    probe = with_own_stats_norms(make('s0', True))
    assert backbone_saved_bytes(probe, x) == tensor_bytes(probe(x))  # nothing kept
    rev = step(with_own_stats_norms(make('s0', True)), input_of(torch.float64))
    plain = step(with_own_stats_norms(make('s0', False)), input_of(torch.float64))
    assert counter.calls == 0
    assert max_rel(rev[1], plain[1]) <= 1e-10
    for k in plain[2]:
        torch.testing.assert_close(rev[2][k], plain[2][k], rtol=1e-12, atol=1e-12)


def test_norm_layers_are_left_as_they_were(reuse_everything):
    model = make('s0', True, dtype=torch.float32)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    calls = []
    own, original = norms[0], norms[0].forward

    def users_forward(x):
        calls.append(1)
        return original(x)
    own.forward = users_forward
    sum(f.sum() for f in model(torch.randn(2, 3, 64, 64))).backward()
    assert len(calls) == 2  # forward and recompute both ran the user's forward
    assert own.__dict__['forward'] is users_forward
    assert all('forward' not in m.__dict__ for m in norms[1:])


class ChangesItsMind(nn.Module):
    """Runs two BatchNorms in the forward but skips the first when called again."""

    def __init__(self) -> None:
        super().__init__()
        self.wide, self.narrow = nn.Conv2d(2, 4, 1), nn.Conv2d(4, 2, 1)
        self.norm_wide, self.norm_narrow = nn.BatchNorm2d(4), nn.BatchNorm2d(2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        h = self.wide(x)
        if self.calls == 1:
            h = self.norm_wide(h)
        return self.norm_narrow(self.narrow(h))


def test_recompute_that_changes_its_batchnorm_calls_is_reported(reuse_everything):
    block = RevBlock(ChangesItsMind(), nn.Conv2d(2, 2, 1)).train()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    (y, ) = reversible_forward([block], [x])
    with pytest.raises(RuntimeError, match='different order'):
        y.sum().backward()


@pytest.mark.parametrize('kw', [dict(frozen_stages=2), dict(norm_eval=True)])
def test_frozen_stages_and_eval_norms_with_reuse_equal_plain(kw, reuse_everything):
    x = input_of(torch.float64, False)
    rev, plain = make('s0', True, **kw), make('s0', False, **kw)
    grads = []
    for model in (rev, plain):
        torch.manual_seed(0)
        loss_of(model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    assert max_rel(*grads) <= 1e-10
    for b_rev, b_plain in zip(rev.buffers(), plain.buffers()):
        torch.testing.assert_close(b_rev, b_plain, rtol=1e-12, atol=1e-12)
