"""Per-call record of what a reversible forward must replay during its backward."""
from contextlib import ExitStack
from typing import Dict, List, Sequence

from torch import Tensor, nn

from .facts import module_facts
from .norm_stats import BatchStats, stats_budget
from .state import AutocastState, RNGState, is_stochastic


class Replay:
    """Calls transforms, recording (forward) or replaying (backward) their state.

    One instance belongs to one call of the reversible function, so two forwards before
    one backward keep separate records. Per transform it keeps:

    * the RNG state, only for transforms that draw random numbers in their current mode
      (stochastic depth, dropout): deterministic transforms cost nothing;
    * with ``reuse_norm_stats``, the batch statistics of its training-mode BatchNorm
      calls (:class:`BatchStats`), so the recompute skips their reductions and leaves
      the running statistics alone.

    Args:
        device_type: device whose autocast settings are captured besides the CPU's.
        reuse_norm_stats: record and reuse BatchNorm batch statistics.
    """

    def __init__(self, device_type: str = 'cuda', reuse_norm_stats: bool = True) -> None:
        self.autocast = AutocastState(device_type)
        self.reuse_norm_stats = reuse_norm_stats
        self.rng_states: Dict[nn.Module, RNGState] = {}
        self.norm_stats: Dict[nn.Module, BatchStats] = {}
        self.replaying = False

    def __call__(self, transform: nn.Module, x: Tensor) -> Tensor:
        with ExitStack() as stack:
            if self.replaying:
                state = self.rng_states.get(transform)
                if state is not None:
                    stack.enter_context(state.restore())
                stats = self.norm_stats.pop(transform, None)
                if stats is not None:
                    stats.replaying = True
                    stack.enter_context(stats.around(self._training_norms(transform)))
                return transform(x)
            if is_stochastic(transform):
                self.rng_states[transform] = RNGState(x)
            norms = self._training_norms(transform)
            if not norms:
                return transform(x)
            stats = BatchStats()
            stack.enter_context(stats.around(norms))
            out = transform(x)
        if stats.keeps_any():
            self.norm_stats[transform] = stats
        return out

    def cap_norm_stats(self, outputs: Sequence[Tensor]) -> None:
        """Keep batch statistics within ``MAX_FRACTION_OF_OUTPUT`` of the forward's
        ``outputs``, largest reductions first; call once the forward is done."""
        budget = stats_budget(outputs)
        records = sorted(((r, s) for s in self.norm_stats.values() for r in s.kept()),
                         key=lambda rs: -rs[0].reduction)
        for record, stats in records:
            if record.nbytes() <= budget:
                budget -= record.nbytes()
            else:
                budget = 0
                stats.drop(record)
        self.norm_stats = {t: s for t, s in self.norm_stats.items()
                           if s.keeps_any()}

    def _training_norms(self, transform: nn.Module) -> List[nn.Module]:
        if not self.reuse_norm_stats:
            return []
        return [m for m in module_facts(transform).norms if m.training]

    def nbytes(self) -> int:
        """Bytes kept aside for the backward pass (RNG snapshots, batch statistics)."""
        return sum(s.nbytes() for s in self.rng_states.values()) + sum(
            s.nbytes() for s in self.norm_stats.values())
