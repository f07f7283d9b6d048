"""Measure how well a reversible network reconstructs its input, as its backward does.

Reversible back-propagation never stores activations: it reconstructs them from the
outputs. If reconstruction drifts (weights that make a coupling numerically
ill-conditioned, low precision, a transform that is not a deterministic function of its
input), the gradients are silently wrong. :func:`reconstruction_error` runs the forward
and then exactly the reconstruction the backward pass performs (every op's
``backward_pass``, with the forward's stochastic-depth masks and autocast state
replayed and BatchNorm in its current mode), and compares the reconstructed stem input
with the real one.

It needs no particular backbone: anything with an ``ops`` list of
:class:`~mmrevbifpn.reversible.ReversibleModule` (``RevBiFPN`` has one), or such a list.
It changes nothing observable: no gradients are accumulated, BatchNorm running
statistics are not updated and the global RNG is restored.
"""
from contextlib import ExitStack
from typing import List, NamedTuple, Sequence, Union

import torch
from torch import Tensor, nn

from ..reversible import (GradSink, Replay, ReversibleModule, frozen_norm_stats,
                          module_facts)

OpsLike = Union[nn.Module, Sequence[ReversibleModule]]


class ReconstructionError(NamedTuple):
    """``max_abs = max|x_rec - x|``, ``rel = max_abs / max|x|`` (the figure the
    drift check compares with its threshold) and ``rms_rel = ||x_rec - x|| / ||x||``.
    Non-finite reconstructions give ``inf``."""
    max_abs: float
    rel: float
    rms_rel: float


def _ops_of(model: OpsLike) -> List[ReversibleModule]:
    ops = getattr(model, 'ops', model)
    if isinstance(ops, nn.Module) or not isinstance(ops, (list, tuple)) or not ops \
            or not all(isinstance(op, ReversibleModule) for op in ops):
        raise TypeError(
            'reconstruction check needs a reversible network: a module with an `ops` '
            'list of ReversibleModule (e.g. RevBiFPN) or such a list, got '
            f'{type(model).__name__}')
    return list(ops)


def reconstruct_input(model: OpsLike, x: Tensor) -> Tensor:
    """Forward ``x`` through ``model``'s reversible ops, then reconstruct the input
    from the outputs with the ops' ``backward_pass`` (zero cotangents), as the
    reversible backward does. Returns the reconstructed input (detached)."""
    ops = _ops_of(model)
    x = x.detach()
    device_type = x.device.type if x.device.type != 'cpu' else 'cuda'
    devices = [x.device] if x.device.type != 'cpu' else []
    replay = Replay(device_type)  # records the current autocast state
    with ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(
            devices=devices, device_type=x.device.type if devices else 'cuda'))
        stack.enter_context(frozen_norm_stats(
            m for op in ops for m in module_facts(op).norms))
        stack.enter_context(torch.no_grad())
        xs = [x]
        for op in ops:
            xs = op(xs, replay)
        replay.cap_norm_stats(xs)
        dys = [torch.zeros_like(y) for y in xs]
        replay.replaying = True
        sink = GradSink()  # parameter gradients of the zero cotangents: discarded
        stack.enter_context(replay.autocast.restore())
        for op in reversed(ops):
            xs, dys = op.backward_pass(xs, dys, replay, sink)
    return xs[0].detach()


def reconstruction_error(model: OpsLike, x: Tensor) -> ReconstructionError:
    """Error of :func:`reconstruct_input` against ``x`` (see :class:`ReconstructionError`)."""
    rec = reconstruct_input(model, x).float()
    ref = x.detach().float()
    if rec.shape != ref.shape:
        raise ValueError(f'the network reconstructs a {tuple(rec.shape)} input from a '
                         f'{tuple(ref.shape)} one: it is not invertible')
    diff = rec - ref
    if not torch.isfinite(diff).all():
        return ReconstructionError(float('inf'), float('inf'), float('inf'))
    max_abs = diff.abs().max().item() if diff.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    norm = ref.norm().item()
    tiny = torch.finfo(torch.float32).tiny
    return ReconstructionError(max_abs, max_abs / max(scale, tiny),
                               diff.norm().item() / max(norm, tiny))
