"""Distributed data parallel (2 processes, gloo, CPU).

Model level: ``DistributedDataParallel(RevBiFPN-S0 + heads)`` launched with torchrun
(``_rel_ddp_worker.py``) against one process on the whole batch.
Tool level: the S0 detector and classifier through ``tools/dist_train.sh``
(mmengine's ``pytorch`` launcher) against one process accumulating the same images.
"""
import os.path as osp

import pytest
import torch

from . import _rel_ddp_worker as worker
from ._rel_utils import (REPO, assert_no_ddp_errors, free_port, load_checkpoint,
                         one_thread, run, torchrun)  # noqa: F401  (one_thread: fixture)
from ._toolbox_helpers import run_tool
from .conftest import shared_path

pytestmark = pytest.mark.usefixtures('one_thread')

WORKER = osp.join(REPO, 'tests', '_rel_ddp_worker.py')


@pytest.fixture(scope='module')
def ddp_model_level(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp') / 'result.pt'
    log = torchrun(WORKER, str(out), timeout=240)
    return torch.load(out, weights_only=True), log


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in b)


def test_ddp_runs_without_reducer_errors(ddp_model_level):
    results, log = ddp_model_level
    assert_no_ddp_errors(log)
    assert set(results) == set(worker.CASES)
    for case, r in results.items():
        assert r['rank_spread'] == 0.0, case  # every rank holds the same parameters
        assert len(r['losses']) == worker.STEPS
        assert all(torch.isfinite(torch.tensor(r['losses']))), case


@pytest.mark.parametrize('case', [c for c, v in worker.CASES.items() if v[2]])
def test_ddp_step_equals_single_process(ddp_model_level, case):
    results, _ = ddp_model_level
    ddp, ref = results[case], worker.reference(case)
    first, last = max_diff(ddp['first'], ref['first']), max_diff(ddp['last'], ref['last'])
    print(f'\n{case}: max |DDP - single process| after 1 step {first:.3g}, after '
          f'{worker.STEPS} steps {last:.3g}; losses {ddp["losses"]} vs {ref["losses"]}')
    # bitwise equal with the same thread count; rounding differs with more threads
    assert first <= 1e-5 and last <= 1e-4
    assert ddp['losses'] == pytest.approx(ref['losses'], rel=1e-5)


# ------------------------------------------------------------------ tool level
# One SGD step of DDP with 2 ranks x 1 image must equal one process that
# accumulates the gradients of the same 2 images (optim_wrapper accumulative_counts=2):
# both average two one-image gradients (train-mode BatchNorm uses per-image statistics
# in both). Every iteration of the single process starts from the generator state of
# its first (RewindRandomnessHook), as each rank does with the same seed, so the
# samplers, dropout, stochastic depth and Mixup draw the same numbers.
_COMMON = """
custom_imports = dict(imports=['mmrevbifpn', 'tests._rel_hooks'],
                      allow_failed_imports=False)
param_scheduler = []
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.0, weight_decay=0.0))
# the drift check runs too: it must leave training unchanged under DDP
custom_hooks = [dict(type='RewindRandomnessHook'),
                dict(type='ReconstructionCheckHook', interval=1)]
log_processor = dict(window_size=1)
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
"""
DETECTOR = f"""
_base_ = {osp.join(REPO, 'demo', 'faster_rcnn_revbifpn_s0_demo.py')!r}
img_scale = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_iters=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=5))
{_COMMON}"""
CIFAR = shared_path('data', 'cifar10_mini')
CLASSIFIER = f"""
_base_ = [{osp.join(REPO, 'configs', 'revbifpn_s0_8xb64_in1k.py')!r}]
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
data_preprocessor = dict(num_classes=10)
model = dict(
    backbone=dict(drop_path_rate=0.1),  # S0 has none: exercise its replay under DDP
    neck=dict(with_cp=True),  # gradient checkpointing under DDP too
    head=dict(num_classes=10, with_cp=True),  # head dropout 0.25 (S0 recipe)
    train_cfg=dict(_delete_=True, augments=[dict(type='Mixup', alpha=0.2)]))
train_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root={CIFAR!r}, data_prefix='train',
                 pipeline=pipeline))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2)
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(
    _delete_=True, type='CheckpointHook', interval=1, by_epoch=False))
{_COMMON}"""


def _state(path):
    sd = load_checkpoint(path)['state_dict']
    return {k: v for k, v in sd.items()
            if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))}


def _dist_vs_accumulated(tmp_path, config_text):
    cfg = tmp_path / 'ddp.py'
    cfg.write_text(config_text)
    (tmp_path / 'acc.py').write_text(
        "_base_ = './ddp.py'\n"
        "optim_wrapper = dict(accumulative_counts=2)\n")
    log = run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg), '2',
               '--work-dir', str(tmp_path / 'ddp')], timeout=300,
              env=dict(PORT=str(free_port())))
    assert_no_ddp_errors(log)
    run_tool('train.py', str(tmp_path / 'acc.py'), '--work-dir', str(tmp_path / 'acc'))
    ddp = _state(tmp_path / 'ddp' / 'iter_1.pth')  # after one SGD step
    single = _state(tmp_path / 'acc' / 'iter_2.pth')  # after one SGD step
    initial = _state(tmp_path / 'acc' / 'iter_1.pth')  # accumulated, not stepped
    assert ddp.keys() == single.keys()
    diff = max_diff(ddp, single)
    update = max_diff(single, initial)
    return diff, update, log


def test_detector_dist_train_equals_single_process(tmp_path):
    diff, update, log = _dist_vs_accumulated(tmp_path, DETECTOR)
    print(f'\nFaster R-CNN S0, dist_train.sh 2 ranks: max |DDP - single| {diff:.3g} '
          f'(largest update {update:.3g})')
    assert update > 1e-4 and diff <= 1e-6
    assert (tmp_path / 'ddp' / 'iter_2.pth').is_file()  # a second DDP iteration ran
    assert 'reconstruction check (iter 2)' in log and 'exceeds threshold' not in log


def test_classifier_dist_train_equals_single_process(tmp_path):
    if not osp.isdir(CIFAR):
        pytest.skip(f'{CIFAR} missing')
    diff, update, log = _dist_vs_accumulated(tmp_path, CLASSIFIER)
    print(f'\nImageClassifier S0, dist_train.sh 2 ranks: max |DDP - single| {diff:.3g} '
          f'(largest update {update:.3g})')
    assert update > 1e-4 and diff <= 1e-6
