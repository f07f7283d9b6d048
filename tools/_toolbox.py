"""Shared set-up of ``tools/train.py`` and ``tools/test.py``.

* makes ``mmrevbifpn`` importable from any working directory (the repository root is
  put on ``sys.path`` when the package is not installed) and registers its modules;
* applies :mod:`mmrevbifpn.utils.compat` (torch >= 2.6 ``weights_only`` loading of
  mmengine checkpoints for ``--resume``, ``pkg_resources``);
* picks the toolbox from the config's ``default_scope`` (``mmdet``, ``mmpretrain``,
  ``mmseg``), so the same tools drive detection, classification and segmentation;
* checks that the data a config points to exists, with a readable error.
"""
import importlib
import os.path as osp
import sys
from typing import Iterable, Iterator, List

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLBOXES = ('mmdet', 'mmpretrain', 'mmseg')
# mmpretrain datasets that download their data by default (download=True)
_DOWNLOADING = ('CIFAR', 'MNIST', 'FashionMNIST')


def init() -> None:
    """Make ``mmrevbifpn`` importable, apply the compatibility fixes, register models."""
    try:
        import mmrevbifpn  # noqa: F401
    except ImportError:
        sys.path.insert(0, REPO_ROOT)
    from mmrevbifpn.utils import compat
    compat.apply()
    import mmrevbifpn  # noqa: F401,F811  (registers RevBiFPN, MBConvNeck, ...)


def prepare(cfg, config_path: str) -> str:
    """Import and register the toolbox named by ``cfg.default_scope``; return it."""
    scope = cfg.get('default_scope', None)
    if scope is None:
        raise SystemExit(
            f'error: {config_path} sets no default_scope, so the toolbox is unknown; '
            f"add e.g. default_scope = 'mmdet' (one of {', '.join(TOOLBOXES)}).")
    if scope not in TOOLBOXES:
        raise SystemExit(f'error: {config_path} has default_scope={scope!r}; these tools '
                         f"support {', '.join(TOOLBOXES)}.")
    try:
        importlib.import_module(scope)
        utils = importlib.import_module(f'{scope}.utils')
    except ImportError as e:
        raise SystemExit(f'error: {config_path} is a {scope} config but {scope} cannot be '
                         f'imported ({e}). Install the stack with `make setup`.')
    utils.register_all_modules(init_default_scope=False)
    if scope == 'mmdet':
        utils.setup_cache_size_limit_of_dynamo()
    return scope


def load_cfg(args):
    """The config of ``args.config`` with ``--cfg-options``, ``--launcher`` and
    ``--work-dir`` applied (CLI > config > ``work_dirs/<config name>``); returns
    ``(cfg, scope)`` with the config's toolbox imported and registered."""
    from mmengine.config import Config

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    scope = prepare(cfg, args.config)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg, scope


def _datasets(ds) -> Iterator[dict]:
    """A dataset config and the ones it wraps (RepeatDataset, ConcatDataset, ...)."""
    if not isinstance(ds, dict):
        return
    yield from _datasets(ds.get('dataset'))
    for sub in ds.get('datasets') or ():
        yield from _datasets(sub)
    yield ds


def _is_remote(path: str) -> bool:
    return '://' in path


def data_problems(cfg, phases: Iterable[str]) -> List[str]:
    """Missing data roots, image folders and annotation files of ``phases``."""
    problems = []
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader', None)
        if not loader:
            continue
        for ds in _datasets(loader.get('dataset')):
            if ds.get('backend_args') or 'type' not in ds:
                continue  # remote storage, or a wrapper already handled
            if ds.get('download', str(ds['type']).startswith(_DOWNLOADING)):
                continue  # the dataset fetches its files itself (CIFAR, MNIST)
            root = ds.get('data_root') or ''
            if _is_remote(root):
                continue
            if root and not osp.isdir(root):
                problems.append(f'{phase}: data_root {root!r} is not a directory '
                                f'(resolved: {osp.abspath(root)})')
                continue
            ann = ds.get('ann_file') or ''
            if ann and not _is_remote(ann):
                path = osp.join(root, ann)
                if not osp.isfile(path):
                    problems.append(f'{phase}: annotation file {path!r} does not exist '
                                    f'(resolved: {osp.abspath(path)})')
            prefix = ds.get('data_prefix')
            prefixes = prefix.values() if isinstance(prefix, dict) else [prefix]
            for p in prefixes:
                if isinstance(p, str) and p and not _is_remote(p):
                    path = osp.join(root, p)
                    if not osp.isdir(path):
                        problems.append(f'{phase}: image folder {path!r} does not exist '
                                        f'(resolved: {osp.abspath(path)})')
        evaluators = cfg.get(f'{phase}_evaluator', None)
        for ev in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
            ann = ev.get('ann_file') if isinstance(ev, dict) else None
            if ann and not _is_remote(ann) and not osp.isfile(ann):
                problems.append(f'{phase}: evaluator annotation file {ann!r} does not '
                                f'exist (resolved: {osp.abspath(ann)})')
    return problems


def check_data(cfg, phases: Iterable[str]) -> None:
    problems = data_problems(cfg, phases)
    if problems:
        raise SystemExit(
            'error: the dataset of this config is not where the config points:\n  ' +
            '\n  '.join(dict.fromkeys(problems)) +
            '\nPaths are relative to the current directory. Put the data there (e.g. '
            'link your COCO copy to data/coco) or override the paths, e.g. '
            '--cfg-options train_dataloader.dataset.data_root=/path/to/coco/')


def build_runner(cfg):
    """The runner a config asks for (``runner_type``), else mmengine's ``Runner``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
