"""Test-only hook for test_rel_ddp.py (imported by its configs via custom_imports)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmrevbifpn.engine.hooks.rng_state_hook import get_rng_state, set_rng_state


@HOOKS.register_module()
class RewindRandomnessHook(Hook):
    """Start every training iteration from the generator state of the first one.

    With it, a single process that accumulates the gradients of N one-image
    iterations draws the same random numbers (samplers, dropout, Mixup) for each
    image as N data-parallel ranks with the same seed do for theirs.
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.state = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.state is None:
            self.state = get_rng_state()
        else:
            set_rng_state(self.state)
