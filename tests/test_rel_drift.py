"""Drift detection (reconstruction check) and in-place modification of the outputs."""
import os.path as osp
import sys

import pytest
import torch
from torch import nn

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                            'tools', 'analysis_tools'))
import reliability_figures as figures  # noqa: E402

from mmrevbifpn.engine import (ReconstructionCheckHook, reconstruct_input,  # noqa: E402
                               reconstruction_error)
from mmrevbifpn.models import RevBiFPN  # noqa: E402
from ._rel_utils import one_thread  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures('one_thread')

TINY = dict(RevBiFPN.arch_settings['s0'], channels=(48, 16, 16, 32), depth=1)
HEALTHY = 1e-4  # float32, train mode; measured 1.5e-5 for S0 at 64x64


def tiny(**kwargs):
    torch.manual_seed(0)
    model = RevBiFPN(TINY, **kwargs)
    model.init_weights()
    return model.train()


# ---------------------------------------------------------------- the helper
def test_healthy_model_reconstructs_and_check_has_no_side_effects():
    model = figures.build('s0', drop_path_rate=0.2)
    x = torch.randn(2, 3, 64, 64)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    rng = torch.get_rng_state()
    err = reconstruction_error(model, x)
    assert err.rel <= HEALTHY and err.rms_rel <= err.rel
    assert torch.equal(rng, torch.get_rng_state())  # global RNG untouched
    assert all(torch.equal(buffers[k], v) for k, v in model.named_buffers())
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_helper_matches_backward_reconstruction_in_eval():
    model = tiny().eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        via_inverse = model.inverse(model(x))
    assert torch.allclose(reconstruct_input(model, x), via_inverse, atol=1e-6)
    assert torch.allclose(reconstruct_input(model.ops, x), via_inverse, atol=1e-6)


def test_helper_refuses_non_reversible_modules():
    with pytest.raises(TypeError, match='reversible network'):
        reconstruction_error(nn.Conv2d(3, 3, 1), torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize('fault', ['noise', 'weights'])
def test_check_catches_injected_fault(fault):
    """A transform that draws random numbers the backward cannot replay, or weights
    that change between forward and backward: both silently corrupt the reversible
    gradients, and both push the reconstruction error far above the healthy level."""
    model = figures.build('s0', drop_path_rate=0.0)
    x = torch.randn(2, 3, 64, 64)
    healthy = reconstruction_error(model, x).rel
    target = model.layers[1].blocks[0].blocks[0].f
    undo = (figures.inject_noise(target, 1e-2) if fault == 'noise' else
            figures.inject_weight_change(target, 0.1))
    faulty = reconstruction_error(model, x).rel
    undo()
    print(f'\n{fault}: healthy {healthy:.3g}, with fault {faulty:.3g}')
    assert healthy <= HEALTHY
    assert faulty > 100 * healthy and faulty > 1e-3  # the hook's default threshold
    assert reconstruction_error(model, x).rel == pytest.approx(healthy, rel=0.5)


def test_unreplayed_noise_corrupts_gradients_silently():
    """Why the check exists: the fault above gives wrong gradients without any error."""
    err = figures.fault_gradient_error('s0', size=64, batch=2)
    print(f"\nreversible vs plain gradients, worst tensor: healthy "
          f"{err['healthy']['worst']:.3g}, with the noise fault {err['with fault']['worst']:.3g}")
    assert err['healthy']['worst'] <= 1e-4
    assert err['with fault']['worst'] > 1e-3


# ------------------------------------------------------------------ the hook
def toy_model(fault=None):
    """An mmengine BaseModel around a small RevBiFPN; records its losses."""
    from mmengine.model import BaseModel

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.backbone = tiny(drop_path_rate=0.1)
            self.head = nn.Conv2d(32, 1, 1)
            self.losses = []

        def forward(self, inputs, mode='tensor'):
            feats = self.backbone(inputs)
            if mode != 'loss':
                return feats
            loss = self.head(feats[-1]).square().mean() + sum(f.mean() for f in feats)
            self.losses.append(loss.item())
            return dict(loss=loss)

    model = Toy()
    if fault == 'stateful':
        # not a function of its input: the output depends on how often it ran
        target = model.backbone.layers[0].blocks[0].blocks[0].g
        forward, calls = target.forward, []

        def stateful(t):
            calls.append(1)
            return forward(t) * (1 + 0.05 * len(calls))
        target.forward = stateful
    return model


def run_toy(work_dir, fault=None, **hook_kwargs):
    """Train the toy model 4 iterations; returns (the check hook, losses, log text)."""
    from mmengine.runner import Runner
    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(3, 64, 64)) for _ in range(8)]
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=False)
    hooks = [dict(type='ReconstructionCheckHook', **hook_kwargs)] if hook_kwargs else []
    runner = Runner(
        model=toy_model(fault), work_dir=str(work_dir), train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=4), custom_hooks=hooks,
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        experiment_name=f'rel_drift_{osp.basename(str(work_dir))}_{id(loader)}')
    runner.train()
    hook = next((h for h in runner.hooks if isinstance(h, ReconstructionCheckHook)), None)
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    return hook, runner.model.losses, log


def test_hook_logs_error_and_leaves_training_unchanged(tmp_path):
    hook, losses, log = run_toy(tmp_path / 'a', interval=2, threshold=1e-3)
    _, losses_without, _ = run_toy(tmp_path / 'b')
    assert [it for it, _ in hook.history] == [2, 4]
    assert all(err.rel <= HEALTHY for _, err in hook.history)
    assert 'reconstruction check (iter 2)' in log and 'exceeds threshold' not in log
    assert 'recon_error' in log
    assert len(losses) == 4 and losses == losses_without


def test_hook_warns_on_injected_fault(tmp_path):
    hook, _, log = run_toy(tmp_path, fault='stateful', interval=2, threshold=1e-3)
    assert all(err.rel > 1e-3 for _, err in hook.history)
    assert 'exceeds threshold 0.001' in log


def test_hook_can_stop_training(tmp_path):
    with pytest.raises(RuntimeError, match='exceeds threshold'):
        run_toy(tmp_path, fault='stateful', interval=1, threshold=1e-3,
                raise_on_drift=True)


@pytest.mark.parametrize('amp', [True, False])
def test_hook_checks_in_the_precision_of_the_training_forward(amp):
    """The backbone input and the autocast state are captured from the forward."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    model = nn.Module()
    model.backbone = tiny()
    runner = SimpleNamespace(model=model, iter=0,
                             message_hub=MessageHub.get_instance('rel_drift_amp'))
    hook = ReconstructionCheckHook(interval=1, threshold=10.0, amp=amp)
    hook.before_train_iter(runner, 0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model.backbone(torch.randn(4, 3, 64, 64))
    hook.after_train_iter(runner, 0)
    (_, err), = hook.history
    print(f'\ncheck with amp={amp} after a bf16 forward: {err.rel:.3g}')
    assert (err.rel > 1e-2) if amp else (err.rel < HEALTHY)


def test_hook_is_registered_and_validates_arguments():
    import mmrevbifpn  # noqa: F401
    from mmengine.registry import HOOKS
    assert HOOKS.get('ReconstructionCheckHook') is ReconstructionCheckHook
    with pytest.raises(ValueError, match='interval'):
        ReconstructionCheckHook(interval=0)
    with pytest.raises(ValueError, match='threshold'):
        ReconstructionCheckHook(threshold=-1)


# ------------------------------------------- in-place change of the pyramid
@pytest.mark.parametrize('level', range(4))
def test_inplace_change_of_returned_pyramid_raises(level):
    model = tiny()
    feats = list(model(torch.randn(2, 3, 32, 32)))
    torch.relu_(feats[level])  # e.g. a neck that activates its input in place
    loss = sum(f.square().mean() for f in feats)
    with pytest.raises(RuntimeError, match='modified in place before backward'):
        loss.backward()


def test_cloned_pyramid_may_be_modified():
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for inplace in (False, True):
        model = tiny()
        feats = model(x)
        feats = ([torch.relu_(f.clone()) for f in feats] if inplace else
                 [torch.relu(f) for f in feats])
        loss = sum(f.square().mean() for f in feats)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.equal(grads[0], grads[1])


def test_inplace_change_of_parameters_before_backward_raises():
    model = tiny()
    loss = sum(f.square().mean() for f in model(torch.randn(2, 3, 32, 32)))
    with torch.no_grad():
        model.layers[0].blocks[0].blocks[0].f.project_conv.conv.weight.mul_(1.1)
    with pytest.raises(RuntimeError, match='modified in place between forward and backward'):
        loss.backward()
