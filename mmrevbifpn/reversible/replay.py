"""Per-call record of what a reversible forward must replay during its backward."""
from contextlib import nullcontext
from typing import Dict

from torch import Tensor, nn

from .state import AutocastState, RNGState, is_stochastic


class Replay:
    """Calls transforms, recording (forward) or replaying (backward) their RNG state.

    One instance belongs to one call of the reversible function, so two forwards before
    one backward keep separate records. The RNG state is stored only for transforms that
    draw random numbers in their current mode (stochastic depth, dropout): deterministic
    transforms cost nothing.
    """

    def __init__(self, device_type: str = 'cuda') -> None:
        self.autocast = AutocastState(device_type)
        self.rng_states: Dict[nn.Module, RNGState] = {}
        self.replaying = False

    def __call__(self, transform: nn.Module, x: Tensor) -> Tensor:
        if self.replaying:
            state = self.rng_states.get(transform)
            with state.restore() if state is not None else nullcontext():
                return transform(x)
        if is_stochastic(transform):
            self.rng_states[transform] = RNGState(x)
        return transform(x)

    def nbytes(self) -> int:
        """Bytes kept aside for the backward pass (RNG snapshots)."""
        return sum(s.nbytes() for s in self.rng_states.values())
