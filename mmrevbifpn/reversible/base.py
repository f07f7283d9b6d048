"""Interface shared by every reversible operation on a list of feature streams."""
from typing import Dict, List, Optional, Sequence, Tuple

from torch import Tensor, nn

Streams = List[Tensor]


class GradSink:
    """Accumulates parameter gradients computed inside the reversible backward."""

    def __init__(self) -> None:
        self.grads: Dict[nn.Parameter, Tensor] = {}

    def add(self, params: Sequence[nn.Parameter],
            grads: Sequence[Optional[Tensor]]) -> None:
        for p, g in zip(params, grads):
            if g is None:
                continue
            if p in self.grads:
                self.grads[p] = self.grads[p] + g
            else:
                self.grads[p] = g


class ReversibleModule(nn.Module):
    """A bijection between lists of streams that can also back-propagate by inversion.

    Subclasses implement:

    * ``forward(xs, replay=None)``: the map. ``replay`` (a :class:`Replay`) wraps every
      call of a learnable transform so its RNG state can be replayed.
    * ``inverse(ys)``: reconstruct ``xs`` from ``ys``.
    * ``backward_pass(ys, dys, replay, sink)``: from outputs and their gradients,
      reconstruct the inputs and their gradients, sending parameter gradients to
      ``sink``. Only one extra forward of each transform is allowed.
    """

    def forward(self, xs: Streams, replay=None) -> Streams:
        raise NotImplementedError

    def inverse(self, ys: Streams) -> Streams:
        raise NotImplementedError

    def backward_pass(self, ys: Streams, dys: Streams, replay,
                      sink: GradSink) -> Tuple[Streams, Streams]:
        raise NotImplementedError


def call(replay, transform: nn.Module, x: Tensor) -> Tensor:
    return transform(x) if replay is None else replay(transform, x)
