"""The bundled demo dataset (redistributable images only, with attribution), the demo
config, and the clear errors of ``tools/run_demo.sh`` and the tools for bad data
paths. (``make demo`` itself trains for minutes and is not run here; the e2e tests
run the same tools on the same data.)"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _det_helpers import DEMO_DATA, REPO, load_config, run_tool  # noqa: E402

sys.path.insert(0, osp.join(REPO, 'tools'))

REDISTRIBUTABLE = {4, 5, 7, 8}


def _coco(split):
    with open(osp.join(DEMO_DATA, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def test_bundled_subset_is_redistributable_real_coco():
    files = set(os.listdir(osp.join(DEMO_DATA, 'images')))
    with open(osp.join(DEMO_DATA, 'ATTRIBUTION.md')) as f:
        attribution = f.read()
    listed = set()
    for split, n_img, n_ann in (('train', 13, 74), ('val', 20, 110)):
        coco = _coco(split)
        assert len(coco['images']) == n_img and len(coco['annotations']) == n_ann
        assert len(coco['categories']) == 80
        assert {im['license'] for im in coco['images']} <= REDISTRIBUTABLE
        assert {lic['id'] for lic in coco['licenses']} <= REDISTRIBUTABLE
        ids = {im['id'] for im in coco['images']}
        assert {a['image_id'] for a in coco['annotations']} <= ids
        for im in coco['images']:
            assert im['file_name'] in files
            # attribution: file, licence and the Flickr source of every image
            row = next(line for line in attribution.splitlines()
                       if f"images/{im['file_name']}" in line)
            assert im['flickr_url'] in row and f"(id {im['license']})" in row
            listed.add(im['file_name'])
        for a in coco['annotations']:  # original COCO annotations: boxes and masks
            assert len(a['bbox']) == 4 and a['area'] > 0 and a['segmentation']
    assert listed == files  # nothing unlicensed in the folder
    size = sum(osp.getsize(osp.join(DEMO_DATA, 'images', f)) for f in files)
    assert size < 8 * 2**20


def test_subset_matches_its_source_when_available(tmp_path):
    """Rebuilding from ../shared/data/tiny_coco gives the bundled annotations."""
    from conftest import shared_path
    src = shared_path('data', 'tiny_coco')
    if not osp.isdir(src):
        pytest.fail(f'data missing: {src} (set MMREVBIFPN_SHARED)')
    out = tmp_path / 'subset'
    subprocess.run([sys.executable, osp.join(REPO, 'tools', 'misc', 'make_demo_subset.py'),
                    src, str(out)], check=True, capture_output=True, timeout=120)
    for split in ('train', 'val'):
        with open(out / 'annotations' / f'instances_{split}.json') as f:
            assert json.load(f) == _coco(split)
    assert sorted(os.listdir(out / 'images')) == sorted(
        os.listdir(osp.join(DEMO_DATA, 'images')))


def test_demo_config_trains_from_scratch_on_the_bundled_subset():
    from _toolbox import data_problems  # tools/_toolbox.py
    cfg = load_config(osp.join(REPO, 'demo', 'faster_rcnn_revbifpn_s0_demo.py'))
    assert cfg.model.backbone.type == 'RevBiFPN' and cfg.model.backbone.arch == 's0'
    assert cfg.model.backbone.init_cfg is None and cfg.model.neck[0].init_cfg is None
    assert osp.samefile(cfg.train_dataloader.dataset.data_root, DEMO_DATA)
    # evaluated on the images it was trained on (stated as such in the demo output)
    assert cfg.test_dataloader.dataset.ann_file == cfg.train_dataloader.dataset.ann_file
    assert data_problems(cfg, ['train', 'test']) == []
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'


def _run_demo(env_extra, tmp_path):
    env = dict(os.environ, WORK_DIR=str(tmp_path / 'work'), **env_extra)
    return subprocess.run(['bash', osp.join(REPO, 'tools', 'run_demo.sh')], env=env,
                          capture_output=True, text=True, timeout=120)


def test_run_demo_wrong_data_path(tmp_path):
    proc = _run_demo({'DEMO_DATA': str(tmp_path / 'nowhere')}, tmp_path)
    assert proc.returncode == 1
    assert "[demo] error: data folder" in proc.stderr and 'nowhere' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'work').exists()


def test_run_demo_missing_annotation_file(tmp_path):
    data = tmp_path / 'data'
    (data / 'images').mkdir(parents=True)
    proc = _run_demo({'DEMO_DATA': str(data)}, tmp_path)
    assert proc.returncode == 1
    assert 'annotations/instances_train.json' in proc.stderr and 'missing' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_run_demo_missing_images(tmp_path):
    data = tmp_path / 'data'
    (data / 'annotations').mkdir(parents=True)
    (data / 'images').mkdir()
    (data / 'annotations' / 'instances_train.json').write_text(
        json.dumps(_coco('train')))
    proc = _run_demo({'DEMO_DATA': str(data)}, tmp_path)
    assert proc.returncode == 1
    assert '13 of 13 images' in proc.stderr and 'Traceback' not in proc.stderr


def test_train_tool_names_the_missing_paths(tmp_path):
    cfg = osp.join(REPO, 'configs', 'faster_rcnn_revbifpn_s0_1x_coco.py')
    proc = run_tool('train.py', cfg, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                    f'train_dataloader.dataset.data_root={tmp_path}/coco/',
                    cwd=str(tmp_path), check=False)
    assert proc.returncode != 0
    assert 'error: the dataset of this config is not where the config points' in proc.out
    assert f'data_root {str(tmp_path)}/coco/' in proc.out.replace("'", '')
    assert 'Traceback' not in proc.out
    (tmp_path / 'coco' / 'annotations').mkdir(parents=True)
    (tmp_path / 'coco' / 'train2017').mkdir()
    proc = run_tool('train.py', cfg, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                    f'train_dataloader.dataset.data_root={tmp_path}/coco/',
                    cwd=str(tmp_path), check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.out
    assert 'annotations/instances_train2017.json' in proc.out and 'does not exist' in proc.out


def test_tool_command_lines(tmp_path):
    """MMDetection's options map onto the runner config (no training here)."""
    import importlib.util

    def load_tool(name):
        spec = importlib.util.spec_from_file_location(
            f'_det_tools_{name}', osp.join(REPO, 'tools', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    train_tool, test_tool = load_tool('train'), load_tool('test')
    cfg = osp.join(REPO, 'demo', 'faster_rcnn_revbifpn_s0_demo.py')
    ckpt = tmp_path / 'iter_7.pth'
    ckpt.write_bytes(b'')

    c, scope = train_tool.build_cfg(train_tool.parse_args(
        [cfg, '--work-dir', str(tmp_path / 'w'), '--resume', str(ckpt), '--amp',
         '--auto-scale-lr', '--cfg-options', 'train_dataloader.batch_size=4']))
    assert scope == 'mmdet' and c.work_dir == str(tmp_path / 'w')
    assert c.resume is True and c.load_from == str(ckpt)
    assert c.optim_wrapper.type == 'AmpOptimWrapper' and c.optim_wrapper.loss_scale == 'dynamic'
    assert c.auto_scale_lr.enable is True and c.train_dataloader.batch_size == 4
    c, _ = train_tool.build_cfg(train_tool.parse_args([cfg, '--resume']))
    assert c.resume is True and c.load_from is None  # latest checkpoint of work_dir
    assert c.work_dir == './work_dirs/faster_rcnn_revbifpn_s0_demo'
    with pytest.raises(SystemExit, match='does not exist'):
        train_tool.build_cfg(train_tool.parse_args([cfg, '--resume', str(tmp_path / 'x')]))

    c, _ = test_tool.build_cfg(test_tool.parse_args(
        [cfg, str(ckpt), '--show-dir', 'vis', '--work-dir', str(tmp_path / 't')]))
    assert c.load_from == str(ckpt)
    vis = c.default_hooks.visualization
    assert vis.type == 'DetVisualizationHook' and vis.draw is True
    assert vis.test_out_dir == 'vis'
    with pytest.raises(SystemExit, match='pkl'):
        test_tool.build_cfg(test_tool.parse_args([cfg, str(ckpt), '--out', 'x.json']))
    with pytest.raises(SystemExit, match='does not exist'):
        test_tool.build_cfg(test_tool.parse_args([cfg, str(tmp_path / 'none.pth')]))
