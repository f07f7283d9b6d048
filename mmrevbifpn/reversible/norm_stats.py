"""Reuse of the forward pass's BatchNorm batch statistics in the recompute.

In training mode BatchNorm normalises with the statistics of the batch. When the
reversible backward recomputes a transform it feeds it the same input as the forward
did, so BatchNorm would compute the same statistics again: a full reduction per call,
plus a second running-statistics update that then has to be undone. Instead, the
no-grad forward records each call's ``(mean, invstd)`` and the recompute normalises
with them in one elementwise pass, under an autograd Function whose backward is the
exact training-mode BatchNorm backward.

Calls are intercepted at :func:`torch.nn.functional.batch_norm` (a
:class:`~torch.overrides.TorchFunctionMode` entered only while a BatchNorm layer runs,
so the transform's other ops pay nothing), so every ``_BatchNorm`` built on it
(``nn.BatchNorm*``, a single-process ``SyncBatchNorm``, mmcv variants) is covered
without reimplementing its forward. Layers that compute their statistics some other
way (``SyncBatchNorm`` across processes) are recomputed as before.
"""
from collections import deque
from contextlib import contextmanager
from typing import Callable, Deque, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.overrides import TorchFunctionMode

__all__ = ['BatchStats', 'MIN_REDUCTION', 'MAX_FRACTION_OF_OUTPUT', 'stats_budget']

# Which calls keep their statistics. Two floats per channel are kept for a call that
# reduced `reduction` values per channel, so the time saved per byte kept grows with
# `reduction`:
# * below MIN_REDUCTION values per channel the reduction is cheaper than the
#   bookkeeping of reusing it (the coarse streams at small inputs);
# * the statistics kept by one forward are capped at MAX_FRACTION_OF_OUTPUT of its
#   output pyramid, largest reductions first: they grow with depth and width, the
#   pyramid does not, and reversible memory must stay the pyramid whatever the depth.
#   At detection resolutions the cap does not bind.
MIN_REDUCTION = 1024
MAX_FRACTION_OF_OUTPUT = 0.01


def stats_budget(outputs: Sequence[Tensor]) -> float:
    """Bytes of statistics a forward with these outputs may keep."""
    return MAX_FRACTION_OF_OUTPUT * sum(y.nbytes for y in outputs)


class _Record:
    __slots__ = ('mean', 'invstd', 'reduction')

    def __init__(self, mean: Tensor, invstd: Tensor, reduction: int) -> None:
        self.mean, self.invstd, self.reduction = mean, invstd, reduction

    def nbytes(self) -> int:
        return self.mean.nbytes + self.invstd.nbytes


def _batch_norm_args(input, running_mean, running_var, weight=None, bias=None,
                     training=False, momentum=0.1, eps=1e-5):
    return input, running_mean, running_var, weight, bias, training, momentum, eps


class _NormalizeWithStats(torch.autograd.Function):
    """Training-mode BatchNorm with the batch statistics given instead of computed."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                mean: Tensor, invstd: Tensor, eps: float) -> Tensor:
        shape = (1, -1) + (1, ) * (x.dim() - 2)
        scale = invstd if weight is None else weight * invstd
        shift = -mean * scale if bias is None else bias - mean * scale
        # The same affine map the native kernel applies, so the recomputed output
        # matches the forward's and the inversion stays exact.
        y = torch.addcmul(shift.view(shape), x, scale.view(shape))
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return y.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight, mean, invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                ctx.needs_input_grad[2]]
        grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
            grad_out, x, weight, None, None, mean, invstd, True, ctx.eps, mask)
        return grad_x, grad_w, grad_b, None, None, None


class BatchStats(TorchFunctionMode):
    """Records (forward) or reuses (recompute) the batch statistics of BatchNorm calls.

    One instance covers one call of one transform: the forward fills it in call order,
    the recompute of the same transform consumes it in the same order (and frees it).
    Calls without a record (small reductions, or a layer that bypassed
    ``F.batch_norm`` in the forward) compute their statistics as usual.
    """

    def __init__(self) -> None:
        super().__init__()
        self.records: Deque[Optional[_Record]] = deque()
        self.replaying = False

    @contextmanager
    def around(self, norms: Sequence[nn.Module]) -> Iterator[None]:
        """Route the forward of each layer in ``norms`` through this mode.

        The layers get an instance-level ``forward`` for the duration of the body (the
        class method, or a ``forward`` already set on the instance, runs inside it).
        """
        patched = []
        try:
            for m in norms:
                own = m.__dict__.get('forward')
                m.forward = self._within(m.forward)
                patched.append((m, own))
            yield
        finally:
            for m, own in patched:
                if own is None:
                    del m.forward
                else:
                    m.forward = own

    def _within(self, forward: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def run(*args, **kwargs):
            with self:
                return forward(*args, **kwargs)
        return run

    def nbytes(self) -> int:
        return sum(r.nbytes() for r in self.kept())

    def kept(self) -> Iterator[_Record]:
        return (r for r in self.records if r is not None)

    def keeps_any(self) -> bool:
        return any(r is not None for r in self.records)

    def drop(self, record: _Record) -> None:
        """Forget ``record``: its call will compute its statistics again."""
        self.records = deque(None if r is record else r for r in self.records)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.batch_norm:
            return func(*args, **kwargs)
        x, running_mean, running_var, weight, bias, training, momentum, eps = \
            _batch_norm_args(*args, **kwargs)
        if not training:
            return func(*args, **kwargs)
        if self.replaying:
            record = self.records.popleft() if self.records else None
            if record is None:
                return func(*args, **kwargs)
            if record.mean.numel() != x.shape[1]:
                raise RuntimeError(
                    'RevBiFPN reversible backward: the recomputed transform called '
                    'BatchNorm in a different order than its forward did; make the '
                    'transform deterministic or build the model with reversible=False.')
            return _NormalizeWithStats.apply(x, weight, bias, record.mean, record.invstd,
                                             eps)
        reduction = x.numel() // x.shape[1] if x.dim() >= 2 else 0
        if reduction < MIN_REDUCTION:
            self.records.append(None)
            return func(*args, **kwargs)
        out, mean, invstd = torch.native_batch_norm(
            x, weight, bias, running_mean, running_var, True, momentum, eps)
        self.records.append(_Record(mean, invstd, reduction))
        return out
