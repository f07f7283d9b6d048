"""End-to-end detection through the real tools: ``tools/train.py`` trains RevBiFPN-S0
Faster R-CNN and Mask R-CNN (from scratch, 160 px, a few iterations) on the bundled
real COCO images, ``tools/test.py`` evaluates the checkpoint with pycocotools, and
``--resume`` continues an interrupted run. All tools run from outside the repository.
"""
import os.path as osp
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _det_helpers import (REPO, TESTS, metrics, run_tool, small_config,  # noqa: E402
                          tool_env, train_iters, train_losses)

AP_KEYS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
COCO_TABLE = 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]'


def check_coco_output(out: str, iou_types) -> dict:
    found = metrics(out)
    for iou in iou_types:
        for key in AP_KEYS:
            name = f'{iou}_{key}'
            assert name in found, f'{name} missing from tools/test.py output'
            assert 0.0 <= found[name] <= 1.0 or found[name] == -1.0
        assert f'Evaluate annotation type *{iou}*' in out  # pycocotools ran
    assert out.count(COCO_TABLE) >= len(iou_types)
    return found


@pytest.fixture(scope='module')
def faster_run(tmp_path_factory):
    """Faster R-CNN S0, 4 iterations with AdamW, killed after iteration 2 (after its
    checkpoint), then resumed with ``--resume``."""
    tmp = tmp_path_factory.mktemp('faster')
    work = tmp / 'work'
    extra = """
    optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                         optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
    """
    cfg = small_config(str(tmp / 'faster.py'), 'faster', max_iters=4, ckpt_interval=2,
                       extra=extra)
    killed_cfg = small_config(
        str(tmp / 'faster_killed.py'), 'faster', max_iters=4, ckpt_interval=2,
        extra=extra + """
    custom_imports = dict(imports=['mmrevbifpn', '_det_interrupt'],
                          allow_failed_imports=False)
    custom_hooks = [dict(type='KillAfterIterHook', iteration=2)]
    """)
    first = run_tool('train.py', killed_cfg, '--work-dir', str(work), check=False,
                     env={'PYTHONPATH': TESTS})
    assert first.returncode == 17, first.out[-4000:]
    left = dict(files=sorted(p.name for p in work.iterdir()),
                last=(work / 'last_checkpoint').read_text().strip())
    resumed = run_tool('train.py', cfg, '--work-dir', str(work), '--resume')
    return dict(cfg=cfg, work=work, first=first.out, left=left, resumed=resumed.out,
                tmp=tmp)


def test_interrupted_run_left_iteration_2(faster_run):
    left = faster_run['left']
    assert train_iters(faster_run['first']) == [1, 2]
    assert 'iter_2.pth' in left['files'] and 'iter_4.pth' not in left['files']
    assert left['last'].endswith('iter_2.pth')


def test_checkpoint_needs_compat_under_weights_only(faster_run):
    """The problem --resume has to solve: with torch's default weights_only=True a
    plain torch.load of an mmengine checkpoint fails; the project's compat fix
    allow-lists its contents (still a weights-only load)."""
    ckpt = str(faster_run['work'] / 'iter_2.pth')
    plain = subprocess.run([sys.executable, '-c',
                            f'import torch; torch.load({ckpt!r}, map_location="cpu")'],
                           capture_output=True, text=True, env=tool_env(), timeout=300)
    assert plain.returncode != 0, 'plain torch.load unexpectedly accepted the checkpoint'
    assert 'Weights only load failed' in plain.stderr, plain.stderr[-2000:]
    fixed = subprocess.run(
        [sys.executable, '-c',
         'import sys, torch; sys.path.insert(0, sys.argv[2]); '
         'from mmrevbifpn.utils import compat; compat.apply(); '
         'ck = torch.load(sys.argv[1], map_location="cpu"); '
         'print("iter", ck["meta"]["iter"], sorted(ck))', ckpt, REPO],
        capture_output=True, text=True, env=tool_env(), timeout=300)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "iter 2 ['message_hub', 'meta', 'optimizer', 'param_schedulers', " \
        "'state_dict']" in fixed.stdout


def test_resume_continues_from_saved_iteration(faster_run):
    out, work = faster_run['resumed'], faster_run['work']
    assert 'resumed epoch: 0, iter: 2' in out, out[-4000:]
    assert train_iters(out) == [3, 4]
    from mmrevbifpn.utils import compat
    compat.apply()
    ck2 = torch.load(work / 'iter_2.pth', map_location='cpu')
    ck4 = torch.load(work / 'iter_4.pth', map_location='cpu')
    assert ck4['meta']['iter'] == 4
    # the optimiser state was restored, not restarted: AdamW counted 4 steps
    steps = {float(s['step']) for s in ck4['optimizer']['state'].values()}
    assert steps == {4.0}, steps
    assert {float(s['step']) for s in ck2['optimizer']['state'].values()} == {2.0}
    # and training went on from the saved weights
    w2 = ck2['state_dict']['roi_head.bbox_head.fc_cls.weight']
    w4 = ck4['state_dict']['roi_head.bbox_head.fc_cls.weight']
    assert not torch.equal(w2, w4)


def test_faster_rcnn_test_tool_coco_ap(faster_run):
    """tools/test.py on the resumed run's final checkpoint: bbox AP from pycocotools
    on the 13 bundled train images (real annotations), plus --out predictions."""
    tmp = faster_run['tmp']
    pkl = tmp / 'preds.pkl'
    out = run_tool('test.py', faster_run['cfg'], str(faster_run['work'] / 'iter_4.pth'),
                   '--work-dir', str(tmp / 'test'), '--out', str(pkl)).out
    check_coco_output(out, ['bbox'])
    assert all(loss > 0 for loss in train_losses(faster_run['resumed']))
    import pickle
    with open(pkl, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 13
    assert preds[0]['pred_instances']['bboxes'].shape[-1] == 4


def test_mask_rcnn_train_and_test_tools(tmp_path):
    cfg = small_config(str(tmp_path / 'mask.py'), 'mask', max_iters=2)
    train = run_tool('train.py', cfg, '--work-dir', str(tmp_path / 'work')).out
    assert train_iters(train) == [1, 2]
    losses = train.split('Iter(train) [2/2]')[-1]
    assert 'loss_mask:' in losses
    out = run_tool('test.py', cfg, str(tmp_path / 'work' / 'iter_2.pth'),
                   '--work-dir', str(tmp_path / 'test')).out
    check_coco_output(out, ['bbox', 'segm'])
