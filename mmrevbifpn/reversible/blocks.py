"""Reversible residual block (RevBlock) and its per-stream parallel application."""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from .base import GradSink, ReversibleModule, Streams
from .coupling import AdditiveCoupling


class RevBlock(ReversibleModule):
    """Reversible residual block on one stream (RevNet coupling).

    With ``a, b = torch.chunk(x, 2, dim=1)``: ``b' = b + F(a)``, ``a' = a + G(b')``,
    output ``cat(a', b')``. ``f`` maps ``ceil(C/2) -> floor(C/2)`` channels and ``g``
    the reverse.
    """

    def __init__(self, f: nn.Module, g: nn.Module) -> None:
        super().__init__()
        self.f = f
        self.g = g
        self._couplings = (AdditiveCoupling({(0, 1): f}, order=(0, 1), num_inputs=2),
                           AdditiveCoupling({(1, 0): g}, order=(1, 0), num_inputs=2))

    @staticmethod
    def _split(x: Tensor) -> List[Tensor]:
        return list(torch.chunk(x, 2, dim=1))

    def forward(self, xs: Streams, replay=None) -> Streams:
        halves = self._split(xs[0])
        for coupling in self._couplings:
            halves = coupling.forward(halves, replay)
        return [torch.cat(halves, dim=1)]

    def inverse(self, ys: Streams) -> Streams:
        halves = self._split(ys[0])
        for coupling in reversed(self._couplings):
            halves = coupling.inverse(halves)
        return [torch.cat(halves, dim=1)]

    def backward_pass(self, ys: Streams, dys: Streams, replay,
                      sink: GradSink) -> Tuple[Streams, Streams]:
        halves, dhalves = self._split(ys[0]), self._split(dys[0])
        for coupling in reversed(self._couplings):
            halves, dhalves = coupling.backward_pass(halves, dhalves, replay, sink)
        return [torch.cat(halves, dim=1)], [torch.cat(dhalves, dim=1)]


class StreamBlocks(ReversibleModule):
    """One :class:`RevBlock` per stream, applied independently."""

    def __init__(self, blocks: Sequence[RevBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def _check(self, xs: Streams) -> None:
        if len(xs) != len(self.blocks):
            raise ValueError(f'{type(self).__name__} has {len(self.blocks)} streams, '
                             f'got {len(xs)}')

    def forward(self, xs: Streams, replay=None) -> Streams:
        self._check(xs)
        return [blk([x], replay)[0] for blk, x in zip(self.blocks, xs)]

    def inverse(self, ys: Streams) -> Streams:
        self._check(ys)
        return [blk.inverse([y])[0] for blk, y in zip(self.blocks, ys)]

    def backward_pass(self, ys: Streams, dys: Streams, replay,
                      sink: GradSink) -> Tuple[Streams, Streams]:
        self._check(ys)
        xs, dxs = [], []
        for blk, y, dy in zip(self.blocks, ys, dys):
            (x, ), (dx, ) = blk.backward_pass([y], [dy], replay, sink)
            xs.append(x)
            dxs.append(dx)
        return xs, dxs
