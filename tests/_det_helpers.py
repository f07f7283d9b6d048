"""Helpers of the detection tests: paths, small test configs on the bundled demo
subset, and running the real ``tools/*.py`` in a subprocess."""
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap
from typing import Dict, List, Optional

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.join(REPO, 'tests')
CONFIGS = osp.join(REPO, 'configs')
DEMO_DATA = osp.join(REPO, 'demo', 'coco_subset')
ARCHS = ('s0', 's1', 's2', 's3', 's4', 's5', 's6')

#: Backbone and MBConv-neck widths of the published variants (spec section 4.1)
BACKBONE_WIDTHS = {'s0': (48, 64, 80, 160), 's1': (64, 80, 96, 208),
                   's2': (96, 128, 160, 320), 's3': (128, 160, 208, 416),
                   's4': (192, 256, 320, 640), 's5': (256, 336, 416, 848),
                   's6': (320, 416, 528, 1056)}
NECK_WIDTHS = {'s0': (48, 64, 128, 320), 's1': (64, 80, 160, 416),
               's2': (96, 128, 256, 640), 's3': (128, 160, 336, 848),
               's4': (192, 256, 512, 1280), 's5': (256, 336, 672, 1696),
               's6': (320, 416, 848, 2128)}

#: Exact parameter counts of the built detectors (shared/spec/detection-params.md)
FASTER_PARAMS_M = {'s0': 19.5510, 's1': 20.4753, 's2': 23.8591, 's3': 30.3953,
                   's4': 52.8791, 's5': 77.8267, 's6': 127.5082}
MASK_PARAMS_M = {'s0': 22.1943, 's1': 23.1186, 's2': 26.5023, 's3': 33.0386,
                 's4': 55.5224, 's5': 80.4700, 's6': 130.1514}
#: The paper's Table 9 / Table 10 (Mask S4: the paper prints 55.50, see the docs)
FASTER_PAPER_M = {'s0': 19.55, 's1': 20.48, 's2': 23.86, 's3': 30.40, 's4': 52.88,
                  's5': 77.83, 's6': 127.51}
MASK_PAPER_M = {'s0': 22.19, 's1': 23.12, 's2': 26.50, 's3': 33.04, 's4': 55.50,
                's5': 80.47, 's6': 130.15}


@pytest.fixture(scope='module')
def converted_s0(tmp_path_factory):
    """``shared/fixtures/reference_s0.pt`` (the authors' S0 layout, random weights)
    converted by the real converter, ``tools/model_converters/revbifpn_to_mmrevbifpn.py``."""
    from conftest import shared_path
    src = shared_path('fixtures', 'reference_s0.pt')
    if not osp.exists(src):
        pytest.fail(f'numerical fixture missing: {src} (set MMREVBIFPN_SHARED)')
    dst = str(tmp_path_factory.mktemp('ckpt') / 'revbifpn_s0_in1k.pth')
    sys.path.insert(0, osp.join(REPO, 'tools', 'model_converters'))
    try:
        import revbifpn_to_mmrevbifpn as conv
    finally:
        sys.path.pop(0)
    assert conv.main([src, dst]) == 0
    return dst


def det_config(kind: str, arch: str, schedule: str = '1x') -> str:
    return osp.join(CONFIGS, f'{kind}_rcnn_revbifpn_{arch}_{schedule}_coco.py')


def load_config(path: str):
    from mmengine.config import Config

    from mmrevbifpn.utils import compat
    compat.apply()
    return Config.fromfile(path)


def build_detector(cfg_model, device: Optional[str] = None):
    """Build a detector config with MMDetection's registry."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        if device is None:
            return MODELS.build(cfg_model)
        with torch.device(device):
            return MODELS.build(cfg_model)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def small_config(path: str, kind: str = 'faster', max_iters: int = 2, size: int = 160,
                 extra: str = '', ckpt_interval: Optional[int] = None,
                 ann: str = 'train') -> str:
    """A test config: the real S0 config of ``kind`` from scratch, trained for
    ``max_iters`` iterations (batch 2) on the bundled demo subset resized to
    ``size`` x ``size`` px (one input shape: CPU conv kernels are set up once),
    tested on the same ``ann`` split keeping the top 20 detections per image
    whatever their score (score_thr 0), so a barely trained model still yields
    COCO AP."""
    with_mask = kind == 'mask'
    metric = "['bbox', 'segm']" if with_mask else "'bbox'"
    text = f'''
    _base_ = {det_config(kind, 's0')!r}
    data_root = {DEMO_DATA + '/'!r}
    size = ({size}, {size})
    model = dict(
        backbone=dict(init_cfg=None, norm_eval=False),
        neck=[
            dict(type='MBConvNeck', in_channels=[48, 64, 80, 160],
                 out_channels=[48, 64, 128, 320], init_cfg=None),
            dict(type='HRFPN', in_channels=[48, 64, 128, 320], out_channels=256),
        ],
        test_cfg=dict(rcnn=dict(score_thr=0.0, max_per_img=20)))
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
        dict(type='Resize', scale=size, keep_ratio=False),
        dict(type='PackDetInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=size, keep_ratio=False),
        dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                              'img_shape', 'scale_factor')),
    ]
    train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=True), batch_sampler=None,
        dataset=dict(data_root=data_root, ann_file='annotations/instances_train.json',
                     data_prefix=dict(img='images/'), pipeline=train_pipeline))
    test_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False,
        dataset=dict(data_root=data_root, ann_file='annotations/instances_{ann}.json',
                     data_prefix=dict(img='images/'), pipeline=test_pipeline))
    test_evaluator = dict(ann_file=data_root + 'annotations/instances_{ann}.json',
                          metric={metric})
    val_dataloader = None
    val_evaluator = None
    val_cfg = None
    train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={max_iters})
    param_scheduler = []
    default_hooks = dict(
        logger=dict(type='LoggerHook', interval=1),
        checkpoint=dict(type='CheckpointHook', by_epoch=False,
                        interval={ckpt_interval or max_iters}))
    log_processor = dict(by_epoch=False)
    randomness = dict(seed=0)
    '''
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text) + textwrap.dedent(extra))
    return path


def tool_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    # one compute thread: predictable on 2 shared cores (OpenMP spin-waiting of 2
    # threads on a busy machine is several times slower)
    env['OMP_NUM_THREADS'] = '1'
    env.pop('PYTHONPATH', None)  # the tools must find mmrevbifpn by themselves
    env.update(extra or {})
    return env


def run_tool(script: str, *args: str, timeout: int = 400, cwd: Optional[str] = None,
             env: Optional[Dict[str, str]] = None, check: bool = True):
    """Run ``tools/<script>`` (from ``cwd``, default: a directory outside the repo);
    return the CompletedProcess with ``.out`` = stdout + stderr."""
    cmd: List[str] = [sys.executable, osp.join(REPO, 'tools', script), *args]
    proc = subprocess.run(cmd, cwd=cwd or osp.dirname(REPO), env=tool_env(env),
                          capture_output=True, text=True, timeout=timeout)
    proc.out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(cmd)} exited with {proc.returncode}:\n{proc.out[-6000:]}')
    return proc


def metrics(output: str, prefix: str = 'coco/') -> Dict[str, float]:
    """Every ``coco/<name>: value`` an mmengine runner printed (last value wins)."""
    found = {}
    for name, value in re.findall(re.escape(prefix) + r'(\w+):\s*(-?[\d.]+)', output):
        found[name] = float(value)
    return found


def train_iters(output: str) -> List[int]:
    """The iteration numbers of the ``Iter(train) [i/n]`` log lines."""
    return [int(i) for i in re.findall(r'Iter\(train\)\s*\[\s*(\d+)/\d+\]', output)]


def train_losses(output: str) -> List[float]:
    return [float(v) for v in re.findall(r'Iter\(train\).*?\bloss: ([\d.]+)', output)]
