"""Reversible back-propagation as one ``torch.autograd.Function``.

The forward runs a sequence of :class:`ReversibleModule` ops without building a graph
and keeps only their final outputs (via ``save_for_backward``, so in-place changes are
detected). The backward walks the ops in reverse, reconstructing each op's inputs from
its outputs while recomputing the transforms, and returns the gradients of the input
*and of every parameter*: parameters are real inputs of the Function, so
``torch.autograd.grad`` and DDP's gradient hooks see them like any other leaf.
"""
from contextlib import ExitStack
from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

from .base import GradSink, ReversibleModule, Streams
from .facts import module_facts
from .replay import Replay
from .state import frozen_norm_stats


class _RunInfo:
    """What the Function needs besides tensors (kept on ``ctx``)."""

    def __init__(self, ops: Sequence[ReversibleModule], num_inputs: int,
                 params: Sequence[nn.Parameter], recompute_updates_norm: bool,
                 device_type: str) -> None:
        self.ops = list(ops)
        self.num_inputs = num_inputs
        self.params = list(params)
        self.recompute_updates_norm = recompute_updates_norm
        self.replay = Replay(device_type, reuse_norm_stats=not recompute_updates_norm)
        self.param_versions = [p._version for p in self.params]
        # Backward work stops at the first op (from the input side) after which
        # nothing needs a gradient: frozen early stages cost no recomputation.
        self.first_trainable_op = next(
            (k for k, op in enumerate(self.ops) if module_facts(op).any_trainable()),
            len(self.ops))


class ReversibleFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, info: _RunInfo, *tensors: Tensor) -> Tuple[Tensor, ...]:
        xs = list(tensors[:info.num_inputs])
        for op in info.ops:
            xs = op(xs, info.replay)
        inputs = {id(t) for t in tensors}
        ys = tuple(y.clone() if id(y) in inputs else y for y in xs)
        info.replay.cap_norm_stats(ys)
        ctx.info = info
        ctx.save_for_backward(*ys)
        return ys

    @staticmethod
    def backward(ctx, *dys: Tensor):
        info: _RunInfo = ctx.info
        if torch.is_grad_enabled():
            raise RuntimeError(
                'RevBiFPN reversible backward does not support double backward '
                '(create_graph=True); build the backbone with reversible=False.')
        try:
            ys = list(ctx.saved_tensors)
        except RuntimeError as e:
            if 'inplace' not in str(e):
                raise
            raise RuntimeError(
                'An output of the reversible RevBiFPN backbone was modified in place '
                'before backward. Reversible back-propagation reconstructs activations '
                'from these outputs, so they must stay unchanged: clone them first '
                '(e.g. `feats = [f.clone() for f in feats]`) or use out-of-place ops.'
            ) from e
        changed = [i for i, (p, v) in enumerate(zip(info.params, info.param_versions))
                   if p._version != v]
        if changed:
            raise RuntimeError(
                f'{len(changed)} parameter(s) of the reversible RevBiFPN backbone were '
                'modified in place between forward and backward (e.g. an optimizer step '
                'before backward). Recomputation needs the forward-time weights: call '
                'backward before updating them.')
        if info.replay.replaying:
            raise RuntimeError(
                'backward through the same reversible forward twice is not supported '
                '(retain_graph=True); run the forward again.')
        info.replay.replaying = True
        sink = GradSink()
        needs_input_grad = any(ctx.needs_input_grad[1:1 + info.num_inputs])
        stop = 0 if needs_input_grad else info.first_trainable_op
        dys = list(dys)
        with ExitStack() as stack:
            stack.enter_context(info.replay.autocast.restore())
            if not info.recompute_updates_norm:
                stack.enter_context(frozen_norm_stats(
                    m for op in info.ops[stop:] for m in module_facts(op).norms))
            for k in range(len(info.ops) - 1, stop - 1, -1):
                ys, dys = info.ops[k].backward_pass(ys, dys, info.replay, sink)
        input_grads = [dx if needs_input_grad else None for dx in dys] \
            if stop == 0 else [None] * info.num_inputs
        param_grads = [sink.grads.get(p) for p in info.params]
        return (None, *input_grads, *param_grads)


def reversible_forward(ops: Sequence[ReversibleModule], xs: Streams,
                       recompute_updates_norm: bool = False) -> Streams:
    """Run ``ops`` in sequence, storing only the final outputs for backward.

    Falls back to a plain forward when no gradient is needed (eval, ``no_grad``).

    Args:
        ops: reversible ops, applied in order.
        xs: input streams.
        recompute_updates_norm: let BatchNorm update its running statistics again
            during recomputation (the authors' behaviour: two updates per step).
            Default False: one update per step, as with plain autograd.
    """
    params = [p for op in ops for p in module_facts(op).params]
    if not torch.is_grad_enabled() or not (
            any(x.requires_grad for x in xs) or any(p.requires_grad for p in params)):
        for op in ops:
            xs = op(xs)
        return xs
    device_type = xs[0].device.type if xs[0].device.type != 'cpu' else 'cuda'
    info = _RunInfo(ops, len(xs), params, recompute_updates_norm, device_type)
    return list(ReversibleFunction.apply(info, *xs, *params))


def saved_bytes(outputs: Sequence[Tensor]) -> int:
    """Bytes the Function keeps aside besides saved tensors (RNG snapshots)."""
    fn = outputs[0].grad_fn
    info = getattr(fn, 'info', None)
    return info.replay.nbytes() if info is not None else 0
