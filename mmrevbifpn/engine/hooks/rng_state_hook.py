"""Save the random-number-generator state in checkpoints, so ``--resume`` is exact."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS


def get_rng_state() -> dict:
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                 python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make a resumed run draw the same random numbers as an uninterrupted one.

    MMEngine's checkpoints keep the seed but not the generator state, so after
    ``--resume`` dropout, stochastic depth, Mixup/CutMix and the detectors' anchor
    and proposal samplers draw different numbers than the uninterrupted run would
    have: losses differ from the first resumed iteration on.

    This hook stores the torch, NumPy and Python generator states in every
    checkpoint (``checkpoint['rng_state']``) and sets them at the start of the next
    training iteration: after resuming, *and* in the run that wrote the checkpoint.
    Both runs therefore start that iteration in the same state, whatever was drawn
    in between (validation, data-loader restarts).

    Exact when the data pipeline's randomness lives in data-loader workers
    (``num_workers >= 1``: MMEngine seeds them per rank and worker) or the pipeline
    is deterministic: with ``num_workers=0``, random transforms of the first resumed
    batch draw from the main process before the state is set. In distributed runs
    only rank 0 writes checkpoints, so every rank resumes with rank 0's state.

    Example (config)::

        custom_hooks = [dict(type='RNGStateHook')]
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = get_rng_state()
        checkpoint['rng_state'] = self._pending

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning): start from the configured seed
        state = checkpoint.get('rng_state')
        if state is None:
            print_log('RNGStateHook: the checkpoint holds no generator state (written '
                      'without this hook); resumed losses will differ from an '
                      'uninterrupted run', logger='current', level=30)
        self._pending = state

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            set_rng_state(self._pending)
            self._pending = None
