"""RevSilo: bidirectional multi-scale additive coupling (paper Fig. 11)."""
from typing import Dict, Tuple

from torch import nn

from .base import GradSink, ReversibleModule, Streams
from .coupling import AdditiveCoupling


def _pair_key(pair: Tuple[int, int]) -> str:
    return f'{pair[0]}_{pair[1]}'


class RevSilo(ReversibleModule):
    """Reversible multi-scale fusion of ``num_inputs`` streams into ``num_outputs``.

    Stream 0 has the highest resolution. The *down* half fuses high to low resolution,
    ``y_j = x_j + sum_{i<j} D_ij(x_i)``; the *up* half fuses low to high,
    ``z_j = y_j + sum_{i>j} U_ij(y_i)``. With ``num_outputs = num_inputs + 1`` it is an
    expansion silo: the new lowest-resolution stream is ``sum_i D_i,new(x_i)`` and
    is dropped by the inverse.

    Args:
        down: ``{(i, j): module}`` with ``i < j``, ``i < num_inputs``.
        up: ``{(i, j): module}`` with ``i > j``.
        num_inputs: input streams ``m``.
        num_outputs: output streams ``n`` (``m`` or ``m + 1``).
    """

    def __init__(self, down: Dict[Tuple[int, int], nn.Module],
                 up: Dict[Tuple[int, int], nn.Module], num_inputs: int,
                 num_outputs: int) -> None:
        super().__init__()
        if num_outputs not in (num_inputs, num_inputs + 1):
            raise ValueError('a RevSilo keeps or adds one stream, got '
                             f'{num_inputs} -> {num_outputs}')
        self.num_inputs = num_inputs
        self.num_outputs = num_outputs
        self.down = nn.ModuleDict({_pair_key(k): v for k, v in down.items()})
        self.up = nn.ModuleDict({_pair_key(k): v for k, v in up.items()})
        streams = range(num_outputs)
        self._couplings = (
            AdditiveCoupling(down, order=list(streams), num_inputs=num_inputs),
            AdditiveCoupling(up, order=list(reversed(streams)),
                             num_inputs=num_outputs),
        )

    def _check(self, xs: Streams, n: int) -> None:
        if len(xs) != n:
            raise ValueError(f'RevSilo expects {n} streams, got {len(xs)}')

    def forward(self, xs: Streams, replay=None) -> Streams:
        self._check(xs, self.num_inputs)
        for coupling in self._couplings:
            xs = coupling.forward(xs, replay)
        return xs

    def inverse(self, ys: Streams) -> Streams:
        self._check(ys, self.num_outputs)
        for coupling in reversed(self._couplings):
            ys = coupling.inverse(ys)
        return ys

    def backward_pass(self, ys: Streams, dys: Streams, replay,
                      sink: GradSink) -> Tuple[Streams, Streams]:
        self._check(ys, self.num_outputs)
        for coupling in reversed(self._couplings):
            ys, dys = coupling.backward_pass(ys, dys, replay, sink)
        return ys, dys
