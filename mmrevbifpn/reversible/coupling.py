"""Multi-stream additive coupling, the building block of RevBlock and RevSilo."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .base import GradSink, Streams, call
from .facts import module_facts


def _promote(t: Tensor, dtype: torch.dtype) -> Tensor:
    return t.to(torch.promote_types(t.dtype, dtype))


class AdditiveCoupling:
    """``y_j = x_j + sum_i T_ij(x_i)``, every transform reading the *original* inputs.

    ``order`` is a processing order of the streams such that every transform
    ``(i, j)`` has its source ``i`` before its target ``j``; sums are accumulated in
    that order. Streams ``j >= num_inputs`` are new (``x_j = 0``): they exist only in
    the output and are dropped by the inverse.

    Inversion visits sources in ``order``: when source ``i`` is reached, every
    transform into ``i`` has already been subtracted, so ``x_i`` is exact.

    The transforms are owned (registered) by the module that builds the coupling; the
    coupling only schedules them.

    Args:
        transforms: ``{(source, target): module}``.
        order: processing order of all stream indices.
        num_inputs: number of input streams.
    """

    def __init__(self, transforms: Dict[Tuple[int, int], nn.Module],
                 order: Sequence[int], num_inputs: int) -> None:
        rank = {s: r for r, s in enumerate(order)}
        for (i, j) in transforms:
            if i >= num_inputs:
                raise ValueError(f'transform {i}->{j} reads a stream that is not an input')
            if rank[i] >= rank[j]:
                raise ValueError(f'transform {i}->{j} breaks the coupling order {order}')
        self.transforms = dict(transforms)
        self.order = list(order)
        self.num_inputs = num_inputs
        self.num_outputs = len(order)
        self.targets = {i: [j for j in self.order if (i, j) in self.transforms]
                        for i in self.order}

    # Under autocast a transform returns bf16/fp16; a new stream built from it would be
    # stored, and inverted, in low precision. Transform outputs are therefore promoted
    # to (at least) the streams' dtype, in the forward, the inverse and the backward.

    def forward(self, xs: Streams, replay=None) -> Streams:
        dtype = xs[0].dtype
        out: List[Optional[Tensor]] = [
            xs[j] if j < self.num_inputs else None for j in range(self.num_outputs)]
        for i in self.order:
            for j in self.targets[i]:
                t = _promote(call(replay, self.transforms[(i, j)], xs[i]), dtype)
                out[j] = t if out[j] is None else out[j] + t
        return out

    def inverse(self, ys: Streams) -> Streams:
        xs = list(ys[:self.num_inputs])
        for i in self.order:
            if i >= self.num_inputs:
                continue
            for j in self.targets[i]:
                if j < self.num_inputs:
                    xs[j] = xs[j] - _promote(self.transforms[(i, j)](xs[i]), xs[j].dtype)
        return xs

    def backward_pass(self, ys: Streams, dys: Streams, replay,
                      sink: GradSink) -> Tuple[Streams, Streams]:
        # dL/dx_i = dL/dy_i + sum_j J_{T_ij}(x_i)^T dL/dy_j: one recompute of each
        # transform gives both its output (to invert) and its vector-Jacobian product.
        xs = list(ys[:self.num_inputs])
        dxs = list(dys[:self.num_inputs])
        dtype = xs[0].dtype
        for i in self.order:
            targets = self.targets[i] if i < self.num_inputs else []
            if not targets:
                continue
            x_i = xs[i].detach().requires_grad_(True)
            params = [p for j in targets
                      for p in module_facts(self.transforms[(i, j)]).trainable()]
            with torch.enable_grad():
                outs = [_promote(call(replay, self.transforms[(i, j)], x_i), dtype)
                        for j in targets]
            grads = torch.autograd.grad(
                outs, [x_i] + params, grad_outputs=[dys[j] for j in targets],
                allow_unused=True)
            if grads[0] is not None:
                dxs[i] = dxs[i] + grads[0]
            sink.add(params, grads[1:])
            for j, t in zip(targets, outs):
                if j < self.num_inputs:
                    xs[j] = xs[j] - t.detach()
            xs[i] = x_i.detach()
        return xs, dxs
