"""A hook that kills the training process right after a given iteration (after the
checkpoint of that iteration is written), to simulate an interrupted run. Imported by
the resume test's config through ``custom_imports``."""
import os

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAfterIterHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, iteration: int, exit_code: int = 17) -> None:
        self.iteration = iteration
        self.exit_code = exit_code

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            os._exit(self.exit_code)  # no clean-up, as a killed job
