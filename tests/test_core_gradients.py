"""Reversible back-propagation equals plain autograd: gradients, BatchNorm, RNG."""
import pytest
import torch

from mmrevbifpn.models import RevBiFPN

SIZE = 64


def make(arch, reversible, dtype=torch.float64, **kw):
    torch.manual_seed(1)
    model = RevBiFPN(arch, reversible=reversible, **kw)
    model.init_weights()
    # random BN affine so no transform is trivially near-zero
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.0)
            m.bias.data.normal_(0, 0.1)
    return model.to(dtype).train()


def loss_of(feats):
    g = torch.Generator().manual_seed(3)
    return sum((f * torch.randn(f.shape, generator=g, dtype=f.dtype)).sum() for f in feats)


def step(model, x, seed=0):
    """One training step; returns loss, grads (params + input), buffers, RNG after."""
    torch.manual_seed(seed)
    loss = loss_of(model(x))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    if x.requires_grad:
        grads['<input>'] = x.grad.clone()
    bufs = {n: b.clone() for n, b in model.named_buffers()}
    return loss.detach(), grads, bufs, torch.get_rng_state()


def max_rel(ga, gb):
    assert ga.keys() == gb.keys()
    return max(((ga[k] - gb[k]).norm() / gb[k].norm().clamp_min(1e-30)).item() for k in gb)


def input_of(dtype, requires_grad=True, size=SIZE):
    torch.manual_seed(2)
    return torch.randn(2, 3, size, size, dtype=dtype, requires_grad=requires_grad)


# s0: no stochastic depth; s3 with a raised rate: every transform draws masks
CASES = [('s0', {}), ('s3', dict(drop_path_rate=0.3))]


@pytest.fixture(scope='module', params=CASES, ids=[c[0] for c in CASES])
def float64_steps(request):
    arch, kw = request.param
    size = SIZE
    rev = step(make(arch, True, **kw), input_of(torch.float64, size=size))
    plain = step(make(arch, False, **kw), input_of(torch.float64, size=size))
    return arch, rev, plain


def test_float64_gradients_equal_plain_autograd(float64_steps):
    arch, (l_rev, g_rev, _, _), (l_plain, g_plain, _, _) = float64_steps
    assert torch.equal(l_rev, l_plain)
    assert '<input>' in g_rev
    assert max_rel(g_rev, g_plain) <= 1e-10
    nonzero = [g.abs().sum() > 0 for k, g in g_rev.items() if k.endswith('conv.weight')]
    # with stochastic depth some transforms are dropped for the whole batch
    assert all(nonzero) if arch == 's0' else sum(nonzero) > len(nonzero) // 2


def test_batchnorm_statistics_updated_once(float64_steps):
    arch, (_, _, b_rev, _), (_, _, b_plain, _) = float64_steps
    tracked = [k for k in b_rev if k.endswith('num_batches_tracked')]
    assert tracked and all(b_rev[k].item() == 1 for k in tracked)
    for k in b_plain:
        torch.testing.assert_close(b_rev[k], b_plain[k], rtol=1e-12, atol=1e-12)


def test_global_rng_consumed_as_plain_autograd(float64_steps):
    # the backward replays forward RNG inside fork_rng: no extra draws are visible
    arch, (_, _, _, rng_rev), (_, _, _, rng_plain) = float64_steps
    assert torch.equal(rng_rev, rng_plain)


@pytest.mark.parametrize('arch,kw', CASES, ids=[c[0] for c in CASES])
def test_float32_gradients(arch, kw):
    size = SIZE
    _, g_rev, _, _ = step(make(arch, True, torch.float32, **kw),
                          input_of(torch.float32, size=size))
    _, g_plain, _, _ = step(make(arch, False, torch.float32, **kw),
                            input_of(torch.float32, size=size))
    assert max_rel(g_rev, g_plain) <= 1e-4


def test_recompute_updates_norm_reproduces_authors_double_update():
    model = make('s0', True, recompute_updates_norm=True)
    step(model, input_of(torch.float64, requires_grad=False))
    tracked = [b for n, b in model.named_buffers() if n.endswith('num_batches_tracked')]
    assert all(b.item() == 2 for b in tracked)


def test_autograd_grad_equals_backward():
    model = make('s0', True)
    x = input_of(torch.float64)
    params = [p for p in model.parameters()]
    torch.manual_seed(0)
    grads = torch.autograd.grad(loss_of(model(x)), [x] + params)
    assert all(g is not None for g in grads)
    # autograd.grad must not touch .grad
    assert all(p.grad is None for p in params)
    _, g_back, _, _ = step(make('s0', True), input_of(torch.float64))
    names = ['<input>'] + [n for n, _ in model.named_parameters()]
    assert max_rel(dict(zip(names, grads)), g_back) == 0.0


def test_two_forwards_before_one_backward():
    """Each forward keeps its own RNG record: interleaving does not corrupt gradients."""
    kw = dict(drop_path_rate=0.3)
    xa = input_of(torch.float64, False)
    xb = input_of(torch.float64, False) * 0.5
    rev = make('s0', True, **kw)
    torch.manual_seed(10)
    loss_a = loss_of(rev(xa))
    torch.manual_seed(11)
    loss_b = loss_of(rev(xb))
    loss_a.backward()
    g_a = {n: p.grad.clone() for n, p in rev.named_parameters()}
    rev.zero_grad()
    loss_b.backward()
    g_b = {n: p.grad.clone() for n, p in rev.named_parameters()}

    plain = make('s0', False, **kw)
    torch.manual_seed(10)
    loss_of(plain(xa)).backward()
    ref_a = {n: p.grad.clone() for n, p in plain.named_parameters()}
    plain.zero_grad()
    torch.manual_seed(11)
    loss_of(plain(xb)).backward()
    ref_b = {n: p.grad.clone() for n, p in plain.named_parameters()}
    assert max_rel(g_a, ref_a) <= 1e-10
    assert max_rel(g_b, ref_b) <= 1e-10


def test_eval_and_no_grad_skip_bookkeeping():
    model = make('s0', True, dtype=torch.float32).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    feats = model(x)  # params require grad: a graph is built even in eval
    assert feats[0].grad_fn is not None
    with torch.no_grad():
        feats = model(x)
    assert all(f.grad_fn is None for f in feats)


def test_frozen_stages_get_no_gradient_and_match_plain():
    rev = make('s0', True, frozen_stages=2)
    plain = make('s0', False, frozen_stages=2)
    x = input_of(torch.float64, False)
    _, g_rev, _, _ = step_partial(rev, x)
    _, g_plain, _, _ = step_partial(plain, x)
    assert g_rev.keys() == g_plain.keys()
    assert not any(k.startswith(('layers.0.', 'layers.1.')) for k in g_rev)
    assert max_rel(g_rev, g_plain) <= 1e-10


def step_partial(model, x):
    torch.manual_seed(0)
    loss = loss_of(model(x))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss, grads, None, None


def test_double_backward_is_refused_clearly():
    model = make('s0', True, dtype=torch.float32)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    (g, ) = torch.autograd.grad(loss_of(model(x)), x, create_graph=False)
    assert g.shape == x.shape
    with pytest.raises(RuntimeError, match='double backward'):
        torch.autograd.grad(loss_of(model(x)), x, create_graph=True)


def test_inplace_change_of_output_is_reported():
    model = make('s0', True, dtype=torch.float32)
    feats = model(torch.randn(2, 3, 32, 32))
    loss = loss_of(feats)
    feats[0].mul_(2)
    with pytest.raises(RuntimeError, match='modified in place'):
        loss.backward()
