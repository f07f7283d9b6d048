"""Opt-in drift detection for reversible backbones during training."""
import logging
import math
from contextlib import nullcontext
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import Tensor

from ...reversible import AutocastState
from ..reconstruction import ReconstructionError, reconstruction_error


@HOOKS.register_module()
class ReconstructionCheckHook(Hook):
    """Every ``interval`` training iterations, check that the reversible backbone
    still reconstructs its input accurately: the activations its backward pass
    rebuilds, hence the gradients, depend on it.

    The hook keeps the backbone input of the checked iteration (the batch after the
    data preprocessor, at most ``max_samples`` images) and, after that iteration,
    runs :func:`~mmrevbifpn.engine.reconstruction_error` on it with the current
    weights, by default under the autocast state of the training forward (so
    ``--amp`` runs are checked in their precision). The error
    ``max|x_rec - x| / max|x|`` is logged as
    ``train/recon_error`` and, above ``threshold``, a warning is logged (or, with
    ``raise_on_drift=True``, training stops with a RuntimeError). Non-finite
    reconstructions always count as drift.

    Cost: one backbone forward and one reconstruction (about one backbone training
    step) every ``interval`` iterations. Training is not affected: no gradients,
    no BatchNorm statistic updates, the global RNG is restored. With SyncBN every
    rank must run the check (they do: the schedule is by iteration).

    Args:
        interval (int): check every ``interval`` iterations. Default: 500.
        threshold (float): warn above this relative error. Default: 1e-3 (float32
            training of the published variants stays below 1e-4; bfloat16/float16
            autocast needs a larger value, see ``docs/reliability.md``).
        max_samples (int, optional): images of the batch to use (BatchNorm in
            training mode then normalises over these). Default: 2; None: all.
        backbone (str): attribute path of the reversible module in the model.
            Default: ``'backbone'``.
        raise_on_drift (bool): raise instead of warning. Default: False.
        amp (bool): check under the training forward's autocast state (True), or
            in the parameters' precision (False: separates faults and ill-conditioned
            weights from low-precision rounding, which alone gives errors of ~0.5 with
            bfloat16). Default: True.

    Example (config)::

        custom_hooks = [dict(type='ReconstructionCheckHook', interval=500)]
    """
    priority = 'LOW'

    def __init__(self, interval: int = 500, threshold: float = 1e-3,
                 max_samples: Optional[int] = 2, backbone: str = 'backbone',
                 raise_on_drift: bool = False, amp: bool = True) -> None:
        if not (isinstance(interval, int) and interval >= 1):
            raise ValueError(f'interval must be a positive int, got {interval!r}')
        if not (isinstance(threshold, (int, float)) and threshold > 0):
            raise ValueError(f'threshold must be a positive number, got {threshold!r}')
        if max_samples is not None and not (isinstance(max_samples, int)
                                            and max_samples >= 1):
            raise ValueError(f'max_samples must be None or an int >= 1, got {max_samples!r}')
        self.interval = interval
        self.threshold = float(threshold)
        self.max_samples = max_samples
        self.backbone = backbone
        self.raise_on_drift = raise_on_drift
        self.amp = amp
        self.history: List[Tuple[int, ReconstructionError]] = []
        self._handle = None
        self._captured = None

    def _find_backbone(self, runner):
        module = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for name in self.backbone.split('.'):
            if not hasattr(module, name):
                raise AttributeError(
                    f'ReconstructionCheckHook: {type(module).__name__} has no attribute '
                    f'{name!r}; set backbone= to the path of the reversible module')
            module = getattr(module, name)
        if not hasattr(module, 'ops'):
            raise TypeError(
                f'ReconstructionCheckHook: {self.backbone} is a {type(module).__name__}, '
                'not a reversible network (no `ops`); the check needs e.g. RevBiFPN')
        return module

    def before_train(self, runner) -> None:
        self._find_backbone(runner)  # fail early on a wrong path

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        self._captured = None
        self._remove_hook()
        self._handle = self._find_backbone(runner).register_forward_pre_hook(
            self._capture)

    def _capture(self, module, args) -> None:
        """Forward pre-hook: keep the input and the autocast state, once."""
        self._remove_hook()
        x = args[0]
        if isinstance(x, Tensor):
            if self.max_samples is not None:
                x = x[:self.max_samples]
            device_type = x.device.type if x.device.type != 'cpu' else 'cuda'
            autocast = AutocastState(device_type) if self.amp else None
            self._captured = (x.detach().clone(), autocast)

    def _remove_hook(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._remove_hook()
        captured, self._captured = self._captured, None
        if captured is None:
            return
        x, autocast = captured
        backbone = self._find_backbone(runner)
        if autocast is None:  # check in the parameters' precision
            param = next(backbone.parameters(), None)
            x = x if param is None else x.to(param.dtype)
        with autocast.restore() if autocast is not None else nullcontext():
            err = reconstruction_error(backbone, x)
        self.history.append((runner.iter + 1, err))
        runner.message_hub.update_scalar('train/recon_error', err.rel)
        msg = (f'reconstruction check (iter {runner.iter + 1}): relative error '
               f'{err.rel:.3g} (max abs {err.max_abs:.3g}, rms {err.rms_rel:.3g})')
        if math.isfinite(err.rel) and err.rel <= self.threshold:
            print_log(msg, logger='current', level=logging.INFO)
            return
        msg = (f'{msg} exceeds threshold {self.threshold:g}: the reversible backward '
               'reconstructs activations inaccurately, so gradients are unreliable. '
               'Causes: a transform that is not a deterministic function of its input, '
               'parameters changed between forward and backward, diverging weights, or '
               'too low a precision (try float32, or reversible=False to compare).')
        if self.raise_on_drift:
            raise RuntimeError(msg)
        print_log(msg, logger='current', level=logging.WARNING)
