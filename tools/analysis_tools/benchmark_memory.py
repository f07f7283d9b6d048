#!/usr/bin/env python
"""Training-step memory and speed of RevBiFPN: reversible vs plain autograd vs
gradient checkpointing, and Faster R-CNN RevBiFPN-S3 vs HRNetV2p-W18 vs ResNet-50.

For every point one training step (forward, loss, backward) is measured in a fresh
process (``--no-subprocess`` runs them in this one), reporting

* ``saved``: bytes the forward leaves for backward, deterministic: unique storages
  packed through ``saved_tensors_hooks`` (parameters/buffers excluded) plus what the
  reversible Function keeps aside (RNG snapshots);
* ``alive``: the allocator's view of the same: tensor memory allocated by the forward
  and still alive when it returns (it also sees copies hooks cannot);
* ``peak``: peak tensor memory of the step above the memory held before it (CUDA
  ``max_memory_allocated``; on CPU the allocator events recorded by
  ``torch.profiler``, not RSS);
* ``time``: step time, median of interleaved repeats of all settings in one process
  on the same weights (absolute times on a shared machine are noise; ratios are not).

Settings: ``reversible`` (default RevBiFPN; neck/head checkpointed), ``plain``
(``reversible=False``, nothing checkpointed) and ``checkpoint``
(``reversible=False, with_cp=True``: ``torch.utils.checkpoint`` per make-layer,
neck and head checkpointed).

Modes (``--modes``): ``depth`` (S0 backbone, d = 2..8, paper Fig. 4), ``classifier``
(whole S0 classifier), ``resolution`` (largest input within ``--budget-mib``, paper
Fig. 12), ``variants`` (S0..S6 memory vs MACs), ``detection`` (Faster R-CNN at
800x1344, batch 1; needs mmdet; slow on CPU), or ``all`` (everything but detection).

Writes ``results.json``, ``results.md`` and PNG plots to ``--out``.

Example::

    python tools/analysis_tools/benchmark_memory.py --modes depth classifier \\
        --out work_dirs/benchmarks
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

MiB = 2**20
SETTINGS = ('reversible', 'plain', 'checkpoint')
RESULT_TAG = '@@BENCHMARK_RESULT@@'
DET_DEFAULTS = ('revbifpn-s3', 'hrnetv2p-w18', 'r50-fpn')
VARIANTS = ('s0', 's1', 's2', 's3', 's4', 's5', 's6')


# ============================================================== worker side
def _set_with_cp(module, value: bool) -> None:
    for m in module.modules():
        if hasattr(m, 'with_cp') and isinstance(getattr(m, 'with_cp'), bool):
            m.with_cp = value


def apply_setting(model, setting: str) -> None:
    """Switch a model (same weights) between reversible / plain / checkpoint."""
    from mmrevbifpn.models import MBConvNeck, RevBiFPN, RevBiFPNClsHead
    backbone = model.backbone
    is_rev = isinstance(backbone, RevBiFPN)
    if setting == 'reversible' and not is_rev:
        raise ValueError('the reversible setting needs a RevBiFPN backbone')
    if setting == 'plain':
        _set_with_cp(model, False)
    elif setting == 'checkpoint':
        _set_with_cp(model, True)
    else:  # reversible: the default configuration (neck/head checkpointed)
        _set_with_cp(model, False)
        for m in model.modules():
            if isinstance(m, (MBConvNeck, RevBiFPNClsHead)):
                m.with_cp = True
    if is_rev:
        backbone.reversible = setting == 'reversible'
        backbone.with_cp = setting == 'checkpoint'


def _revbifpn_target(spec):
    """(model, forward_fn, loss_fn, info) for the backbone / classifier kinds."""
    import torch

    from mmrevbifpn.utils.flops import build_revbifpn_parts, count_revbifpn
    from mmrevbifpn.utils.memory import tensor_bytes
    part = 'backbone' if spec['kind'] == 'backbone' else 'full'
    torch.manual_seed(spec.get('seed', 0))
    model = build_revbifpn_parts(spec['arch'], part, device='cpu', depth=spec.get('depth'))
    model.backbone.init_weights()
    device = torch.device(spec['device'])
    model.to(device).train()
    h, w = spec['shape']
    g = torch.Generator().manual_seed(1)
    x = torch.randn(spec['batch'], 3, h, w, generator=g).to(device)
    if part == 'backbone':
        with torch.no_grad():
            shapes = [o.shape for o in model.backbone(x)]
        weights = [torch.randn(s, generator=g).to(device) for s in shapes]

        def forward():
            return model.backbone(x)

        def loss_fn(out):
            return sum((o * wt).sum() for o, wt in zip(out, weights))

        pyramid = sum(int(torch.Size(s).numel()) * 4 for s in shapes)
    else:
        labels = torch.randint(0, 1000, (spec['batch'], ), generator=g).to(device)

        def forward():
            return model.head(model.neck(model.backbone(x)))

        def loss_fn(out):
            return torch.nn.functional.cross_entropy(out, labels)

        with torch.no_grad():
            pyramid = tensor_bytes(model.backbone(x))
    flops = count_revbifpn(spec['arch'], part, (h, w), spec['batch'],
                           depth=spec.get('depth'))
    info = dict(params=flops.params[''], macs_paper=flops.total('paper'),
                macs=flops.total('macs'), pyramid_bytes=pyramid)
    return model, forward, loss_fn, info


def _det_config(name: str):
    """mmengine Config of a detector by short name or path."""
    from mmengine.config import Config
    if osp.exists(name):
        return Config.fromfile(name)
    import mmdet
    root = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
    if name == 'hrnetv2p-w18':
        return Config.fromfile(osp.join(root, 'hrnet', 'faster-rcnn_hrnetv2p-w18-1x_coco.py'))
    if name == 'r50-fpn':
        return Config.fromfile(osp.join(root, 'faster_rcnn', 'faster-rcnn_r50_fpn_1x_coco.py'))
    if name.startswith('revbifpn-'):
        # The HRNet recipe with the backbone swapped for RevBiFPN + its MBConv neck,
        # HRFPN on the neck widths (shared/spec/detection-params.md).
        from mmrevbifpn.models import variant
        arch = name.split('-', 1)[1]
        cfg = Config.fromfile(osp.join(root, 'hrnet', 'faster-rcnn_hrnetv2p-w18-1x_coco.py'))
        widths = list(variant(arch)['neck_channels'])
        cfg.model.backbone = dict(type='RevBiFPN', arch=arch)
        cfg.model.neck = [dict(type='MBConvNeck', arch=arch),
                          dict(type='HRFPN', in_channels=widths, out_channels=256)]
        cfg.model.data_preprocessor.pad_size_divisor = 32
        return cfg
    raise ValueError(f'unknown detector {name!r}; give a config path or one of '
                     f'{DET_DEFAULTS}')


def _detector_target(spec):
    import torch

    from mmrevbifpn.utils.flops import build_from_config, count_model, dummy_data_samples
    cfg = _det_config(spec['config'])
    torch.manual_seed(spec.get('seed', 0))
    model, cfg = build_from_config(cfg)
    device = torch.device(spec['device'])
    model.to(device).train()
    h, w = spec['shape']
    g = torch.Generator().manual_seed(1)
    x = torch.randn(spec['batch'], 3, h, w, generator=g).to(device)
    samples = dummy_data_samples('mmdet', (h, w), spec['batch'], num_gt=5)
    for s in samples:
        s.gt_instances = s.gt_instances.to(device)

    def forward():
        torch.manual_seed(2)  # identical proposal sampling in every step
        return model.loss(x, samples)

    def loss_fn(losses):
        total = 0
        for k, v in losses.items():
            if 'loss' in k:
                total = total + (sum(v) if isinstance(v, (list, tuple)) else v)
        return total

    info = {}
    if spec.get('count_macs', True):
        eval_samples = dummy_data_samples('mmdet', (h, w), 1)
        names = [n for n in ('backbone', 'neck', 'rpn_head', 'roi_head')
                 if hasattr(model, n)]
        res = count_model(model, (1, 3, h, w),
                          lambda m, t: m(t, eval_samples, mode='tensor'), scopes=names)
        info.update(params=res.params[''], params_backbone=res.params['backbone'],
                    macs_paper=res.total('paper'), macs=res.total('macs'),
                    macs_backbone_neck=res.total('macs', ['backbone', 'neck']),
                    macs_paper_backbone_neck=res.total('paper', ['backbone', 'neck']))
        model.train()
    return model, forward, loss_fn, info


def worker(spec: dict) -> dict:
    """Run one measurement described by ``spec`` (in this process)."""
    import torch

    from mmrevbifpn.utils.memory import measure_step, time_step
    torch.set_num_threads(spec.get('threads', 1))
    if spec['kind'] == 'detector':
        model, forward, loss_fn, info = _detector_target(spec)
    else:
        model, forward, loss_fn, info = _revbifpn_target(spec)
    out = dict(spec=spec, info=info)
    if spec['task'] == 'memory':
        apply_setting(model, spec['setting'])
        if spec['device'] != 'cpu' or spec.get('warmup', False):
            time_step(model, forward, loss_fn, spec['device'])
        t0 = time.perf_counter()
        out['memory'] = measure_step(model, forward, loss_fn, spec['device'])
        out['wall_s'] = time.perf_counter() - t0
    else:  # interleaved timing of all settings on the same weights
        times: Dict[str, List[dict]] = {s: [] for s in spec['settings']}
        for setting in spec['settings']:  # warm-up round
            apply_setting(model, setting)
            time_step(model, forward, loss_fn, spec['device'])
        for _ in range(spec['repeats']):
            for setting in spec['settings']:
                apply_setting(model, setting)
                times[setting].append(time_step(model, forward, loss_fn, spec['device']))
        out['times'] = times
    return out


# ============================================================== driver side
class Runner:
    """Runs worker specs in fresh processes (or in-process) and logs them."""

    def __init__(self, args) -> None:
        self.args = args
        self.records: List[dict] = []

    def run(self, **spec) -> Optional[dict]:
        a = self.args
        spec.setdefault('device', a.device)
        spec.setdefault('threads', a.threads)
        spec.setdefault('batch', a.batch)
        label = ' '.join(f'{k}={v}' for k, v in spec.items()
                         if k not in ('device', 'threads', 'settings'))
        t0 = time.time()
        if a.no_subprocess:
            try:
                res = worker(spec)
            except Exception as e:  # noqa: BLE001  (report and continue)
                res = dict(spec=spec, error=f'{type(e).__name__}: {e}')
        else:
            res = self._subprocess(spec)
        res['elapsed_s'] = round(time.time() - t0, 2)
        self.records.append(res)
        status = res.get('error') or _short(res)
        print(f'[{res["elapsed_s"]:7.1f}s] {label}: {status}', flush=True)
        return res

    def _subprocess(self, spec: dict) -> dict:
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
                   OMP_NUM_THREADS=str(spec['threads']),
                   MKL_NUM_THREADS=str(spec['threads']))
        cmd = [sys.executable, osp.abspath(__file__), '--worker', json.dumps(spec)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=self.args.point_timeout)
        except subprocess.TimeoutExpired:
            return dict(spec=spec, error=f'timeout after {self.args.point_timeout}s')
        for line in p.stdout.splitlines():
            if line.startswith(RESULT_TAG):
                return json.loads(line[len(RESULT_TAG):])
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return dict(spec=spec, error=f'exit {p.returncode}: ' + ' | '.join(tail))


def _short(res: dict) -> str:
    if 'memory' in res:
        m = res['memory']
        return (f"saved {m['saved'] / MiB:.2f} MiB, alive {m['alive_after_forward'] / MiB:.2f}"
                f" MiB, peak {m['peak'] / MiB:.1f} MiB")
    if 'times' in res:
        return ', '.join(f"{k} {statistics.median(t['wall'] for t in v):.3f}s wall / "
                         f"{statistics.median(t['cpu'] for t in v):.3f}s cpu"
                         for k, v in res['times'].items())
    return 'ok'


def _mem(runner: Runner, **spec) -> Dict[str, dict]:
    out = {}
    for setting in spec.pop('settings', SETTINGS):
        res = runner.run(task='memory', setting=setting, **spec)
        if res and 'memory' in res:
            out[setting] = dict(res['memory'], **res['info'])
    return out


def _time(runner: Runner, settings=SETTINGS, repeats: Optional[int] = None,
          **spec) -> Dict[str, dict]:
    repeats = runner.args.repeats if repeats is None else repeats
    res = runner.run(task='time', settings=list(settings), repeats=repeats, **spec)
    if not res or 'times' not in res:
        return {}
    return summarize_times(res['times'])


def summarize_times(times: Dict[str, List[dict]]) -> Dict[str, dict]:
    """Medians per setting, plus the median over rounds of the per-round ratio to
    ``plain`` (the rounds are interleaved, so a round shares the machine's load)."""
    out = {s: dict(median=statistics.median(t['wall'] for t in v),
                   cpu_median=statistics.median(t['cpu'] for t in v),
                   runs=[round(t['wall'], 4) for t in v],
                   cpu_runs=[round(t['cpu'], 4) for t in v])
           for s, v in times.items()}
    add_paired_ratios(out)
    return out


def add_paired_ratios(timing: Dict[str, dict]) -> None:
    plain = timing.get('plain')
    if not plain:
        return
    for entry in timing.values():
        for key, runs in (('ratio', 'runs'), ('cpu_ratio', 'cpu_runs')):
            entry[key] = statistics.median(
                a / b for a, b in zip(entry[runs], plain[runs]))


def mode_depth(runner, args) -> dict:
    rows = {}
    for d in args.depths:
        spec = dict(kind='backbone', arch=args.arch, depth=d, shape=args.shape)
        rows[d] = dict(memory=_mem(runner, **spec),
                       time=_time(runner, **spec) if args.repeats else {})
    return rows


def mode_classifier(runner, args) -> dict:
    spec = dict(kind='classifier', arch=args.arch, shape=args.shape)
    return dict(memory=_mem(runner, **spec),
                time=_time(runner, **spec) if args.repeats else {})


def mode_resolution(runner, args) -> dict:
    """Peak of one step vs input side (batch 1) and the largest side that fits."""
    budget = args.budget_mib * MiB
    out = {}
    for setting in SETTINGS:
        probes: Dict[int, dict] = {}

        def probe(side):
            side = max(32, side // 32 * 32)
            if side not in probes:
                m = _mem(runner, kind='backbone', arch=args.arch, shape=[side, side],
                         batch=1, settings=[setting]).get(setting)
                probes[side] = m
            return probes[side]

        for side in args.res_grid:
            probe(side)
        # fit peak ~ a + b * side^2 on the grid, then walk to the exact boundary
        ok = {s: m for s, m in probes.items() if m}
        side = max(ok)
        if len(ok) >= 2:
            (s1, m1), (s2, m2) = sorted(ok.items())[-2:]
            b = (m2['peak'] - m1['peak']) / (s2**2 - s1**2)
            a = m2['peak'] - b * s2**2
            if b > 0:
                side = int(((budget - a) / b)**0.5) // 32 * 32
        side = max(32, min(side, args.max_side))
        for _ in range(args.max_probes):
            m = probe(side)
            if m is None:
                break
            if m['peak'] <= budget:
                nxt = probe(side + 32) if side + 32 <= args.max_side else None
                if nxt is None or nxt['peak'] > budget:
                    break
                side += 32
            else:
                side -= 32
                if side < 32:
                    break
        fits = [s for s, m in probes.items() if m and m['peak'] <= budget]
        out[setting] = dict(max_side=max(fits) if fits else None,
                            probes={s: m for s, m in sorted(probes.items()) if m})
    return out


def mode_variants(runner, args) -> dict:
    from mmrevbifpn.models import variant
    out = {}
    for arch in args.variants:
        res = variant(arch)['resolution']
        out[arch] = _mem(runner, kind=args.variants_kind, arch=arch, shape=[res, res],
                         batch=args.variants_batch, settings=args.variants_settings)
    return out


def mode_detection(runner, args) -> dict:
    out = {}
    for name in args.det_configs:
        settings = ['reversible', 'plain', 'checkpoint'] if 'revbifpn' in name \
            else ['plain', 'checkpoint']
        spec = dict(kind='detector', config=name, shape=args.det_shape, batch=1)
        out[name] = dict(memory=_mem(runner, settings=settings, **spec),
                         time=_time(runner, settings=settings, repeats=args.det_repeats,
                                    count_macs=False, **spec)
                         if args.det_repeats else {})
    return out


# ============================================================== reporting
def _mib(b):
    return f'{b / MiB:,.2f}' if b is not None else 'n/a'


def _ratio(a, b):
    return a / b if a is not None and b else float('nan')


def check_targets(results) -> List[dict]:
    """The issue's targets, each with measured value and met / missed."""
    rows = []
    dep = results.get('depth', {})
    d_lo, d_hi = (min(dep), max(dep)) if dep else (None, None)

    def add(name, value, target, met, note=''):
        rows.append(dict(target=name, measured=value, goal=target, met=met, note=note))

    if dep:
        lo = dep[d_lo]['memory']
        if 'reversible' in lo and 'plain' in lo:
            r, p = lo['reversible'], lo['plain']
            add(f'backbone saved, reversible / plain (d={d_lo})',
                f"1/{p['saved'] / r['saved']:.0f} ({_mib(r['saved'])} vs {_mib(p['saved'])} MiB)",
                '<= 1/80', r['saved'] * 80 <= p['saved'])
            add(f'backbone saved, reversible / output pyramid (d={d_lo})',
                f"{r['saved'] / r['pyramid_bytes']:.3f}x", '<= 1.05x',
                r['saved'] <= 1.05 * r['pyramid_bytes'])
            add(f'backbone peak, reversible / plain (d={d_lo})',
                f"{r['peak'] / p['peak']:.3f} ({_mib(r['peak'])} vs {_mib(p['peak'])} MiB)",
                '<= 0.5', r['peak'] <= 0.5 * p['peak'])
        hi = dep[d_hi]['memory']
        if d_hi != d_lo and 'reversible' in hi and 'reversible' in lo:
            a, b = lo['reversible']['saved'], hi['reversible']['saved']
            add(f'reversible saved equal for d={d_lo} and d={d_hi}',
                f'{_mib(a)} vs {_mib(b)} MiB ({abs(b - a) / a * 100:.1f}%)', 'within 2%',
                abs(b - a) <= 0.02 * a)
        for clock, key in (('wall', 'ratio'), ('CPU', 'cpu_ratio')):
            ratios = {d: v['time']['reversible'][key] for d, v in dep.items()
                      if v.get('time', {}).get('reversible', {}).get(key)}
            if ratios:
                worst = max(ratios.values())
                add(f'backbone step time, reversible / plain ({clock} time)',
                    ', '.join(f'd={d}: {r:.2f}' for d, r in ratios.items()), '<= 1.35',
                    worst <= 1.35)
    cls = results.get('classifier')
    if cls and 'reversible' in cls['memory'] and 'plain' in cls['memory']:
        r, p = cls['memory']['reversible'], cls['memory']['plain']
        add('whole classifier saved, plain / reversible',
            f"{p['saved'] / r['saved']:.1f}x ({_mib(r['saved'])} vs {_mib(p['saved'])} MiB)",
            '>= 30x', p['saved'] >= 30 * r['saved'])
        t = cls.get('time', {})
        if 'reversible' in t and 'plain' in t:
            for clock, key in (('wall', 'ratio'), ('CPU', 'cpu_ratio')):
                add(f'whole classifier step time, reversible / plain ({clock} time)',
                    f"{t['reversible'][key]:.2f}", '<= 1.35',
                    t['reversible'][key] <= 1.35)
    res = results.get('resolution')
    if res and res.get('reversible', {}).get('max_side') and res.get('plain', {}).get('max_side'):
        r, p = res['reversible']['max_side'], res['plain']['max_side']
        add(f"largest trainable side in {results['meta']['budget_mib']} MiB, reversible / plain",
            f'{r} vs {p} ({r / p:.2f}x)', '>= 2x', r >= 2 * p)
    det = results.get('detection', {})
    rev = next((k for k in det if 'revbifpn' in k), None)
    hr = next((k for k in det if 'hrnet' in k), None)
    if rev and hr and 'reversible' in det[rev]['memory'] and 'plain' in det[hr]['memory']:
        a, b = det[rev]['memory']['reversible'], det[hr]['memory']['plain']
        add(f'Faster R-CNN peak, {rev} / {hr}',
            f"1/{b['peak'] / a['peak']:.2f} ({_mib(a['peak'])} vs {_mib(b['peak'])} MiB)",
            '<= 1/2.4', a['peak'] * 2.4 <= b['peak'])
        if a.get('macs') and b.get('macs'):
            add(f'Faster R-CNN MACs, {rev} vs {hr}',
                f"{a['macs'] / 1e9:.1f} vs {b['macs'] / 1e9:.1f} GMAC", 'fewer',
                a['macs'] < b['macs'])
    return rows


def _mem_table(title, keyname, rows: Dict, with_time=False) -> List[str]:
    head = (f'| {keyname} | setting | params | MACs (paper conv.) | saved MiB | '
            'alive after fwd MiB | peak MiB | saved vs plain | peak vs plain |')
    sep = '|---|---|---:|---:|---:|---:|---:|---:|---:|'
    if with_time:
        head += ' step s, wall / CPU | time vs plain, wall / CPU |'
        sep += '---:|---:|'
    lines = [f'### {title}', '', head, sep]
    for key, entry in rows.items():
        mem = entry['memory'] if 'memory' in entry else entry
        tim = entry.get('time', {}) if 'memory' in entry else {}
        plain = mem.get('plain')
        for s, m in mem.items():
            line = (f"| {key} | {s} | {m.get('params', 0):,} | "
                    f"{m.get('macs_paper', 0) / 1e9:.3f}G | {_mib(m['saved'])} | "
                    f"{_mib(m['alive_after_forward'])} | {_mib(m['peak'])} | "
                    f"{_fmt_ratio(m['saved'], plain and plain['saved'])} | "
                    f"{_fmt_ratio(m['peak'], plain and plain['peak'])} |")
            if with_time:
                t = tim.get(s, {})
                if t:
                    line += (f" {t['median']:.3f} / {t['cpu_median']:.3f} | "
                             f"{t.get('ratio', float('nan')):.2f} / "
                             f"{t.get('cpu_ratio', float('nan')):.2f} |")
                else:
                    line += ' n/a | n/a |'
            lines.append(line)
    return lines + ['']


def _fmt_ratio(a, b):
    if not b:
        return 'n/a'
    r = a / b
    return f'1/{1 / r:.1f}' if r < 1 else f'{r:.2f}'


def write_markdown(results, path):
    meta = results['meta']
    L = ['# RevBiFPN training-step memory and speed', '',
         f"Machine: {meta['machine']}; torch {meta['torch']}, {meta['device']}, "
         f"{meta['threads']} thread(s); code {meta.get('git', 'unknown')}, "
         f"{meta.get('date', '')}. Command: `{meta['command']}`", '',
         'saved = bytes left for backward (saved tensors + kept aside, deterministic); '
         'alive = allocator bytes allocated by the forward and alive at its end; '
         'peak = peak tensor memory of the step above the memory held before it; '
         'step times are medians of interleaved repeats in one process (wall clock '
         'and CPU time of the process); "time vs plain" is the median over rounds of '
         'the per-round ratio.', '']
    targets = check_targets(results)
    if targets:
        L += ['## Targets', '', '| target | measured | goal | met |', '|---|---|---|:-:|']
        for t in targets:
            L.append(f"| {t['target']} | {t['measured']} | {t['goal']} | "
                     f"{'yes' if t['met'] else '**no**'} |")
        L.append('')
    if results.get('depth'):
        L += _mem_table(f"Depth sweep: {meta['arch'].upper()} backbone, "
                        f"{meta['shape'][0]}x{meta['shape'][1]}, batch {meta['batch']}",
                        'd', results['depth'], with_time=True)
    if results.get('classifier'):
        L += _mem_table(f"Whole {meta['arch'].upper()} classifier (backbone + MBConvNeck + "
                        f"head), {meta['shape'][0]}x{meta['shape'][1]}, batch {meta['batch']}",
                        'model', {'classifier': results['classifier']}, with_time=True)
    if results.get('resolution'):
        res = results['resolution']
        L += [f"### Resolution sweep: {meta['arch'].upper()} backbone, batch 1, budget "
              f"{meta['budget_mib']} MiB peak", '',
              '| setting | largest side within budget | probes: side -> peak MiB (saved MiB) |',
              '|---|---:|---|']
        for s, v in res.items():
            probes = ', '.join(f"{side}: {_mib(m['peak'])} ({_mib(m['saved'])})"
                               for side, m in v['probes'].items())
            L.append(f"| {s} | {v['max_side']} | {probes} |")
        L.append('')
    if results.get('variants'):
        L += _mem_table(f"Variants at their training resolution, "
                        f"{meta['variants_kind']}, batch {meta['variants_batch']}",
                        'variant', results['variants'])
    if results.get('detection'):
        det = results['detection']
        L += [f"### Faster R-CNN, {meta['det_shape'][0]}x{meta['det_shape'][1]}, batch 1", '',
              '| detector | setting | params | MACs backbone+neck (pure) | MACs total (pure) | '
              'saved MiB | alive MiB | peak MiB | step s, wall / CPU | time vs plain, wall / CPU |',
              '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
        for name, entry in det.items():
            for s, m in entry['memory'].items():
                t = entry.get('time', {}).get(s, {})
                L.append(f"| {name} | {s} | {m.get('params', 0):,} | "
                         f"{m.get('macs_backbone_neck', 0) / 1e9:.1f}G | "
                         f"{m.get('macs', 0) / 1e9:.1f}G | {_mib(m['saved'])} | "
                         f"{_mib(m['alive_after_forward'])} | {_mib(m['peak'])} | "
                         + (f"{t['median']:.2f} / {t['cpu_median']:.2f} | "
                            f"{t.get('ratio', float('nan')):.2f} / "
                            f"{t.get('cpu_ratio', float('nan')):.2f} |" if t else 'n/a | n/a |'))
        L.append('')
    errors = [r for r in results.get('records', []) if r.get('error')]
    if errors:
        L += ['### Failed points', '']
        L += [f"- `{json.dumps(r['spec'])}`: {r['error']}" for r in errors]
        L.append('')
    with open(path, 'w') as f:
        f.write('\n'.join(L))
    return '\n'.join(L)


def make_plots(results, out_dir) -> List[str]:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib not installed: no plots')
        return []
    meta = results['meta']
    styles = dict(reversible=('tab:green', 'o', '-'), plain=('tab:red', 's', '-'),
                  checkpoint=('tab:blue', '^', '--'))
    files = []

    def save(fig, name):
        path = osp.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)

    dep = results.get('depth')
    if dep:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key, label in ((axes[0], 'saved', 'saved for backward (MiB)'),
                               (axes[1], 'peak', 'peak tensor memory of the step (MiB)')):
            for s in SETTINGS:
                ds = [d for d in dep if s in dep[d]['memory']]
                if not ds:
                    continue
                c, mk, ls = styles[s]
                ax.plot(ds, [dep[d]['memory'][s][key] / MiB for d in ds], color=c,
                        marker=mk, ls=ls, label=s)
            ax.set_xlabel('depth d (extra 4-stream make-layers)')
            ax.set_ylabel(label)
            ax.grid(alpha=.3)
            ax.legend()
        fig.suptitle(f"{meta['arch'].upper()} backbone, {meta['shape'][0]}x{meta['shape'][1]}, "
                     f"batch {meta['batch']}: memory vs depth")
        save(fig, 'memory_vs_depth.png')
    res = results.get('resolution')
    if res:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for s, v in res.items():
            sides = list(v['probes'])
            c, mk, ls = styles[s]
            ax.plot(sides, [v['probes'][x]['peak'] / MiB for x in sides], color=c, marker=mk,
                    ls=ls, label=f"{s} (max {v['max_side']})")
        ax.axhline(meta['budget_mib'], color='k', lw=1, ls=':', label='budget')
        ax.set_xlabel('input side (pixels, batch 1)')
        ax.set_ylabel('peak tensor memory of the step (MiB)')
        ax.set_yscale('log')
        ax.grid(alpha=.3, which='both')
        ax.legend()
        ax.set_title(f"{meta['arch'].upper()} backbone: memory vs resolution")
        save(fig, 'memory_vs_resolution.png')
    var = results.get('variants')
    if var:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key, label in ((axes[0], 'saved', 'saved for backward (MiB)'),
                               (axes[1], 'peak', 'peak tensor memory of the step (MiB)')):
            for s in SETTINGS:
                pts = [(v[s]['macs_paper'] / 1e9, v[s][key] / MiB, a) for a, v in var.items()
                       if s in v]
                if not pts:
                    continue
                c, mk, ls = styles[s]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c, marker=mk,
                        ls=ls, label=s)
                for x, y, a in pts:
                    ax.annotate(a.upper(), (x, y), fontsize=7, xytext=(3, 3),
                                textcoords='offset points')
            ax.set_xscale('log')
            ax.set_yscale('log')
            ax.set_xlabel('GMACs (paper convention)')
            ax.set_ylabel(label)
            ax.grid(alpha=.3, which='both')
            ax.legend()
        fig.suptitle(f"RevBiFPN variants ({meta['variants_kind']}) at their training "
                     f"resolution, batch {meta['variants_batch']}: memory vs MACs")
        save(fig, 'memory_vs_macs.png')
    det = results.get('detection')
    if det:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels, vals, colors = [], [], []
        for name, entry in det.items():
            for s, m in entry['memory'].items():
                labels.append(f'{name}\n{s}')
                vals.append(m['peak'] / MiB)
                colors.append(styles[s][0])
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel('peak tensor memory of the step (MiB)')
        ax.set_title(f"Faster R-CNN, {meta['det_shape'][0]}x{meta['det_shape'][1]}, batch 1")
        save(fig, 'detection_peak.png')
    return files


def load_results(path: str) -> dict:
    """results.json with integer keys restored (depths, sides) and paired ratios."""

    def fix(obj):
        if isinstance(obj, dict):
            return {(int(k) if isinstance(k, str) and k.isdigit() else k): fix(v)
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [fix(v) for v in obj]
        return obj
    with open(path) as f:
        results = fix(json.load(f))
    timings = [v.get('time') for v in results.get('depth', {}).values()]
    timings.append(results.get('classifier', {}).get('time'))
    timings += [v.get('time') for v in results.get('detection', {}).values()]
    for t in timings:
        if t and 'runs' in next(iter(t.values())):
            add_paired_ratios(t)
    return results


def _git_revision() -> str:
    try:
        rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=REPO, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return (rev or 'unknown') + ('+local changes' if dirty else '')


def _machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    desc = f'{os.cpu_count()}-core CPU ({cpu})'
    if torch.cuda.is_available():
        desc += f', GPU {torch.cuda.get_device_name(0)}'
    else:
        desc += ', no GPU'
    return desc


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--modes', nargs='+', default=['depth', 'classifier'],
                   choices=['depth', 'classifier', 'resolution', 'variants', 'detection',
                            'all'])
    p.add_argument('--arch', default='s0', help='variant for depth/classifier/resolution')
    p.add_argument('--shape', type=int, nargs='+', default=[224],
                   help='input H [W] for depth/classifier')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--depths', type=int, nargs='+', default=[2, 3, 4, 5, 6, 7, 8])
    p.add_argument('--repeats', type=int, default=5,
                   help='timing repeats per setting (0: no timing)')
    p.add_argument('--budget-mib', type=float, default=512,
                   help='memory budget (peak MiB) for the resolution sweep')
    p.add_argument('--res-grid', type=int, nargs='+', default=[224, 320, 448],
                   help='sides always probed in the resolution sweep')
    p.add_argument('--max-side', type=int, default=4096)
    p.add_argument('--max-probes', type=int, default=8)
    p.add_argument('--variants', nargs='+', default=list(VARIANTS))
    p.add_argument('--variants-kind', default='classifier', choices=['backbone', 'classifier'])
    p.add_argument('--variants-batch', type=int, default=1)
    p.add_argument('--variants-settings', nargs='+', default=['reversible', 'plain'],
                   choices=SETTINGS)
    p.add_argument('--det-configs', nargs='+', default=list(DET_DEFAULTS),
                   help='detector configs: paths or revbifpn-s3 / hrnetv2p-w18 / r50-fpn')
    p.add_argument('--det-shape', type=int, nargs=2, default=[800, 1344])
    p.add_argument('--det-repeats', type=int, default=3)
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--point-timeout', type=int, default=3600)
    p.add_argument('--no-subprocess', action='store_true',
                   help='measure in this process (faster; for smoke tests)')
    p.add_argument('--out', default='work_dirs/benchmarks')
    p.add_argument('--no-plots', action='store_true')
    p.add_argument('--from-json', help='only rewrite results.md and the plots of a '
                   'previous results.json (into --out)')
    args = p.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = args.shape * 2
    if 'all' in args.modes:
        args.modes = ['depth', 'classifier', 'resolution', 'variants']
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        res = worker(json.loads(args.worker))
        print(RESULT_TAG + json.dumps(res), flush=True)
        return res
    os.makedirs(args.out, exist_ok=True)
    if args.from_json:
        results = load_results(args.from_json)
        text = write_markdown(results, osp.join(args.out, 'results.md'))
        if not args.no_plots:
            make_plots(results, args.out)
        print(text)
        return results
    import torch
    runner = Runner(args)
    results = dict(meta=dict(
        machine=_machine(), torch=torch.__version__, device=args.device,
        threads=args.threads, arch=args.arch, shape=args.shape, batch=args.batch,
        budget_mib=args.budget_mib, variants_kind=args.variants_kind,
        variants_batch=args.variants_batch, det_shape=args.det_shape,
        command='python tools/analysis_tools/benchmark_memory.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        date=time.strftime('%Y-%m-%d %H:%M'), git=_git_revision()))
    modes = dict(depth=mode_depth, classifier=mode_classifier, resolution=mode_resolution,
                 variants=mode_variants, detection=mode_detection)
    for mode in args.modes:
        print(f'== {mode}', flush=True)
        results[mode] = modes[mode](runner, args)
    results['records'] = runner.records
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1, default=str)
    text = write_markdown(results, osp.join(args.out, 'results.md'))
    if not args.no_plots:
        make_plots(results, args.out)
    print(text)
    return results


if __name__ == '__main__':
    main()
