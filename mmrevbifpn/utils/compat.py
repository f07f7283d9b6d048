"""Compatibility of the pinned OpenMMLab stack (mmengine 0.10.7) with torch >= 2.6.

Applied by ``tools/train.py`` and ``tools/test.py`` (and usable from any script) with
:func:`apply`. Nothing in site-packages is modified; the fixes are process-local.

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine 0.10.7
   does not pass ``weights_only``. Plain weight files load fine, but the checkpoints
   mmengine's ``CheckpointHook`` writes also hold the ``MessageHub`` state
   (:class:`mmengine.logging.HistoryBuffer` objects with NumPy arrays), so ``--resume``
   fails with an ``UnpicklingError``. :func:`allow_mmengine_checkpoints` adds exactly
   the types such checkpoints contain to torch's weights-only allow-list
   (``torch.serialization.add_safe_globals``): loading stays restricted (no arbitrary
   code), and resuming works.
2. mmengine resolves ``_base_ = 'mmdet::...'`` with ``pkg_resources``, which
   setuptools deprecates (and removes in setuptools >= 82). :func:`patch_package_utils`
   silences the deprecation warning and, when ``pkg_resources`` is missing, replaces
   mmengine's ``is_installed`` / ``get_installed_path`` with ``importlib`` versions.
3. ``--launcher pytorch`` on a machine without CUDA: mmengine calls
   ``torch.cuda.set_device(LOCAL_RANK)`` and builds DDP with
   ``device_ids=[LOCAL_RANK]``, both of which fail for CPU processes.
   :func:`allow_cpu_distributed` skips the former and drops the latter for CPU
   models, and uses backend gloo instead of nccl (only when CUDA is unavailable).
"""
import collections
import importlib.metadata
import importlib.util
import os.path as osp
import warnings
from typing import List

__all__ = ['apply', 'allow_cpu_distributed', 'allow_mmengine_checkpoints',
           'mmengine_checkpoint_globals', 'patch_package_utils']

_applied = False


def mmengine_checkpoint_globals() -> List:
    """The non-tensor types found in checkpoints written by mmengine's runner
    (message hub history buffers with NumPy arrays and scalars, schedulers'
    ``Counter`` milestones)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:  # NumPy 2 moved the implementation to numpy._core; pickles name either
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    safe = [HistoryBuffer, np.ndarray, np.dtype, collections.Counter,
            collections.OrderedDict, collections.defaultdict]
    for name in ('numpy.core.multiarray._reconstruct',
                 'numpy._core.multiarray._reconstruct'):
        safe.append((_reconstruct, name))
    for name in ('numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar'):
        safe.append((scalar, name))
    # dtype classes (numpy.dtypes.Float64DType, ...) pickled with arrays and scalars
    seen = set()
    for code in '?bBhHiIlLqQefdgFDGUSVOMm':
        try:
            cls = type(np.dtype(code))
        except TypeError:  # pragma: no cover
            continue
        if cls not in seen:
            seen.add(cls)
            safe.append(cls)
    return safe


def _history_buffer_getattr(obj, name: str):
    """Stands in for ``builtins.getattr`` while unpickling: a ``HistoryBuffer`` pickles
    its statistics methods (``HistoryBuffer.min`` ...) as ``getattr(HistoryBuffer,
    'min')`` (pickle protocol 2). Only that is allowed, never a general ``getattr``."""
    from mmengine.logging import HistoryBuffer
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in allowed and hasattr(HistoryBuffer, name):
        return getattr(HistoryBuffer, name)
    raise RuntimeError(f'checkpoint asks for getattr({obj!r}, {name!r}), which is not a '
                       'HistoryBuffer statistics method; refusing to load it')


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(..., weights_only=True)`` read mmengine runner checkpoints."""
    import torch
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4: weights_only is not the default anyway
        return
    add(mmengine_checkpoint_globals())
    # the unpickler resolves '__builtin__ getattr' to this restricted function
    add([(_history_buffer_getattr, 'builtins.getattr')])


def _is_installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        return spec is not None and spec.origin is not None


def _get_installed_path(package: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None:
        # distribution name differs from the module (mmcv-full -> mmcv, ...)
        dist = importlib.metadata.distribution(package)
        top = (dist.read_text('top_level.txt') or package).split()[0]
        spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        raise RuntimeError(f'cannot find the installed path of {package}')
    return osp.dirname(spec.origin)


def patch_package_utils() -> None:
    """Keep mmengine's package helpers working without ``pkg_resources`` noise."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated',
                            category=UserWarning)
    warnings.filterwarnings('ignore', message='.*pkg_resources.*',
                            category=DeprecationWarning)
    try:
        import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    import mmengine.config.config as config_mod
    import mmengine.utils as utils_mod
    import mmengine.utils.package_utils as pkg_mod
    for mod in (pkg_mod, utils_mod, config_mod):
        if hasattr(mod, 'is_installed'):
            mod.is_installed = _is_installed
        if hasattr(mod, 'get_installed_path'):
            mod.get_installed_path = _get_installed_path


def allow_cpu_distributed() -> None:
    """Let mmengine's ``pytorch`` launcher run CPU processes (backend gloo), e.g.
    ``bash tools/dist_train.sh CONFIG 2`` on a machine without GPUs. Does nothing
    when CUDA is available."""
    import torch
    if torch.cuda.is_available():
        return
    import mmengine.dist.utils as dist_utils
    from mmengine.device import (is_mlu_available, is_musa_available,
                                 is_npu_available)
    from mmengine.logging import print_log
    from mmengine.model.wrappers import MMDistributedDataParallel

    init_dist_pytorch = dist_utils._init_dist_pytorch
    if getattr(init_dist_pytorch, '_mmrevbifpn_cpu', False):
        return

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if is_mlu_available() or is_npu_available() or is_musa_available():
            return init_dist_pytorch(backend, init_backend=init_backend, **kwargs)
        if backend == 'nccl':
            print_log('CUDA is not available: using the gloo backend instead of nccl',
                      logger='current')
            backend = 'gloo'
        if init_backend != 'torch':
            raise ValueError(f'init_backend={init_backend!r} needs CUDA')
        torch.distributed.init_process_group(backend=backend, **kwargs)

    _init_dist_pytorch._mmrevbifpn_cpu = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch

    ddp_init = MMDistributedDataParallel.__init__

    def __init__(self, module, detect_anomalous_params=False, **kwargs):
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)  # DDP of a CPU module takes none
            kwargs.pop('output_device', None)
        ddp_init(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = __init__


def apply() -> None:
    """Apply all fixes (idempotent)."""
    global _applied
    if _applied:
        return
    patch_package_utils()
    allow_mmengine_checkpoints()
    allow_cpu_distributed()
    _applied = True
