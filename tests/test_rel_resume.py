"""Resume: a run interrupted after k iterations and resumed with ``--resume`` gives the
same losses as an uninterrupted run with the same seed; checkpoints written by
``tools/train.py`` load in ``tools/test.py`` under torch's ``weights_only`` default.

The classifier runs with every source of randomness the recipes use: head dropout,
stochastic depth, Mixup (main process), RandomFlip (data-loader worker), momentum SGD,
a warm-up schedule, the EMA hook and a validation at the checkpoint iteration.
``RNGStateHook`` stores the generator state in the checkpoints (MMEngine keeps only
the seed).
"""
import json
import os.path as osp
import shutil

import pytest
import torch

from ._rel_utils import REPO, load_checkpoint
from ._toolbox_helpers import run_tool
from .conftest import shared_path

CIFAR = shared_path('data', 'cifar10_mini')
CONFIG = f"""
_base_ = [{osp.join(REPO, 'configs', 'revbifpn_s0_8xb64_in1k.py')!r}]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
data_preprocessor = dict(num_classes=10)
model = dict(
    backbone=dict(drop_path_rate=0.1),
    head=dict(num_classes=10),
    train_cfg=dict(_delete_=True, augments=[dict(type='Mixup', alpha=0.2)]))
train_dataloader = dict(
    _delete_=True, batch_size=4, num_workers=1, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root={CIFAR!r}, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True, batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root={CIFAR!r}, data_prefix='val',
                 indices=4, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=2)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
optim_wrapper = dict(optimizer=dict(lr=0.01, momentum=0.9, weight_decay=1e-5))
custom_hooks = [
    dict(type='EMAHook', momentum=0.1, update_buffers=True, priority='ABOVE_NORMAL'),
    dict(type='RNGStateHook'),
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(
    _delete_=True, type='CheckpointHook', interval=2, by_epoch=False))
log_processor = dict(window_size=1)
randomness = dict(seed=0, deterministic=True)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
"""


def train(*args):
    return run_tool('train.py', *map(str, args))


def losses(work_dir):
    """Per-iteration training losses, full precision, from the runner's scalars."""
    (path, ) = list(work_dir.glob('*/vis_data/scalars.json'))
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if 'loss' in record:
            out[record['iter']] = record['loss']
    return out


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    if not osp.isdir(CIFAR):
        pytest.skip(f'{CIFAR} missing')
    tmp = tmp_path_factory.mktemp('resume')
    cfg = tmp / 'cls.py'
    cfg.write_text(CONFIG)
    full, resumed = tmp / 'full', tmp / 'resumed'
    train(cfg, '--work-dir', full)
    # interrupted after iteration 2: its work dir holds the iteration-2 checkpoint
    resumed.mkdir()
    shutil.copy(full / 'iter_2.pth', resumed / 'iter_2.pth')
    (resumed / 'last_checkpoint').write_text(str(resumed / 'iter_2.pth'))
    out = train(cfg, '--work-dir', resumed, '--resume')
    assert 'Auto resumed from the latest checkpoint' in out or 'resumed' in out.lower()
    return dict(cfg=cfg, full=full, resumed=resumed, tmp=tmp)


def test_resumed_losses_equal_uninterrupted(runs):
    full, resumed = losses(runs['full']), losses(runs['resumed'])
    assert sorted(full) == [1, 2, 3, 4] and sorted(resumed) == [3, 4]
    diff = max(abs(full[i] - resumed[i]) for i in (3, 4))
    print(f'\nresumed at iteration 2: losses {[resumed[i] for i in (3, 4)]} vs '
          f'uninterrupted {[full[i] for i in (3, 4)]}, max difference {diff:.3g}')
    assert diff == 0.0


def test_resumed_weights_equal_uninterrupted(runs):
    a = load_checkpoint(runs['full'] / 'iter_4.pth')
    b = load_checkpoint(runs['resumed'] / 'iter_4.pth')
    for key in ('state_dict', 'ema_state_dict'):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert 'rng_state' in a and a['meta']['iter'] == 4


def test_train_checkpoint_loads_in_test_tool(runs):
    """tools/test.py reads the checkpoint with torch.load's weights_only default."""
    assert torch.__version__ >= '2.6'  # weights_only=True is the default
    ckpt = runs['full'] / 'iter_4.pth'
    out = run_tool('test.py', str(runs['cfg']), str(ckpt), '--work-dir',
                   str(runs['tmp'] / 'test'))
    assert 'Load checkpoint from' in out and 'accuracy/top1' in out
