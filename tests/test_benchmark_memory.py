"""Smoke test of tools/analysis_tools/benchmark_memory.py on a tiny input.

Benchmarks are never timed tests: only the deterministic saved-bytes accounting is
asserted here (no timings, no peak ratios).
"""
import importlib.util
import os.path as osp

import torch

from mmrevbifpn.utils.memory import TensorMemoryTracker

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_memory.py')
    spec = importlib.util.spec_from_file_location('benchmark_memory', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tracker_sees_allocations():
    with TensorMemoryTracker('cpu') as tr:
        a = torch.empty(1 << 20, dtype=torch.uint8)
        tr.mark('a')
        del a
        b = torch.empty(1 << 19, dtype=torch.uint8)
    assert tr.marks['a'][0] >= 1 << 20
    assert tr.peak >= 1 << 20
    assert tr.end < tr.peak
    del b


def test_benchmark_smoke(tmp_path):
    tool = _load_tool()
    res = tool.main(['--modes', 'depth', 'classifier', '--shape', '64', '--batch', '1',
                     '--depths', '2', '--repeats', '0', '--no-subprocess', '--no-plots',
                     '--out', str(tmp_path)])
    mem = res['depth'][2]['memory']
    rev, plain, cp = mem['reversible'], mem['plain'], mem['checkpoint']
    # the reversible backbone keeps exactly its output pyramid (S0: no RNG snapshots)
    assert rev['saved'] == rev['pyramid_bytes'] == \
        4 * (48 * 16 * 16 + 64 * 8 * 8 + 80 * 4 * 4 + 160 * 2 * 2)
    assert rev['kept_aside'] == 0
    assert rev['alive_after_forward'] <= 1.05 * rev['pyramid_bytes']
    assert plain['saved'] > 50 * rev['saved']
    assert rev['saved'] < cp['saved'] < plain['saved']
    cls = res['classifier']['memory']
    assert cls['plain']['saved'] > 30 * cls['reversible']['saved']
    assert (tmp_path / 'results.md').exists() and (tmp_path / 'results.json').exists()
    targets = {t['target']: t for t in tool.check_targets(res)}
    assert targets['backbone saved, reversible / output pyramid (d=2)']['met']
