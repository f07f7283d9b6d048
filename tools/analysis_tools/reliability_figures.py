#!/usr/bin/env python
"""Measure the mixed-precision and drift-detection figures of ``docs/reliability.md``.

* bfloat16 autocast (CPU): gradients of one training step of the reversible backbone
  against plain autograd under the same autocast and against float32;
* the stem-input reconstruction error of the reversible backward, in float32 and
  bfloat16, train and eval mode;
* the drift check (:func:`mmrevbifpn.engine.reconstruction_error`) on a healthy model
  and with injected faults.

The tests (``tests/test_rel_amp.py``, ``tests/test_rel_drift.py``) use these functions
on smaller inputs.

Example:
    python tools/analysis_tools/reliability_figures.py --size 128 --batch 4
    python tools/analysis_tools/reliability_figures.py --device cuda --dtype float16 --size 224
"""
import argparse
import os.path as osp
import sys
from contextlib import nullcontext
from typing import Dict, Tuple

import torch
from torch import Tensor

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmrevbifpn.engine import reconstruction_error  # noqa: E402
from mmrevbifpn.models import RevBiFPN  # noqa: E402

Grads = Dict[str, Tensor]
#: autocast dtype of the "amp" runs (``--dtype``); CPU autocast supports both
AMP_DTYPE = torch.bfloat16
#: where models and inputs live (``--device``; the tests use the CPU)
DEVICE = torch.device('cpu')


def build(arch: str = 's0', reversible: bool = True, seed: int = 0, **kwargs) -> RevBiFPN:
    torch.manual_seed(seed)
    model = RevBiFPN(arch, reversible=reversible, **kwargs)
    model.init_weights()
    return model.to(DEVICE).train()


def inputs(size: int, batch: int, seed: int = 1) -> Tuple[Tensor, list]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g)
    weights = [torch.randn(1, c, 1, 1, generator=g) for c in RevBiFPN.arch_settings['s0']['channels']]
    return x.to(DEVICE), [w.to(DEVICE) for w in weights]


def autocast(amp: bool):
    return torch.autocast(DEVICE.type, dtype=AMP_DTYPE) if amp else nullcontext()


def _short(amp: bool) -> str:
    return {torch.bfloat16: 'bf16', torch.float16: 'fp16'}[AMP_DTYPE] if amp else 'fp32'


def train_step(model: RevBiFPN, x: Tensor, weights, amp: bool) -> Tuple[float, Grads]:
    """One forward/backward of ``sum_l mean((w_l * feat_l)^2)``; the parameter gradients."""
    model.zero_grad()
    torch.manual_seed(5)  # same stochastic-depth masks in every run
    with autocast(amp):
        feats = model(x)
        loss = sum((f.float() * w).square().mean() for f, w in zip(feats, weights))
    loss.backward()
    return loss.item(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def compare(grads: Grads, ref: Grads) -> Dict[str, float]:
    """Relative L2 error over all gradients, their cosine, the median and worst
    per-tensor relative error."""
    a = torch.cat([grads[k].flatten().double() for k in ref])
    b = torch.cat([ref[k].flatten().double() for k in ref])
    per = sorted(((grads[k] - ref[k]).double().norm() / ref[k].double().norm().clamp_min(1e-30)).item()
                 for k in ref)
    return dict(rel=((a - b).norm() / b.norm()).item(),
                cos=(a @ b / (a.norm() * b.norm())).item(),
                median=per[len(per) // 2], worst=per[-1])


def amp_gradients(arch='s0', size=64, batch=4, drop_path_rate=0.1) -> Dict[str, Dict[str, float]]:
    x, w = inputs(size, batch)
    grads = {}
    for rev in (True, False):
        for amp in (False, True):
            model = build(arch, rev, drop_path_rate=drop_path_rate)
            grads[rev, amp] = train_step(model, x, w, amp)[1]
    fp32, low = grads[False, False], _short(True)
    return {
        'reversible fp32 vs plain fp32': compare(grads[True, False], fp32),
        f'reversible {low} vs plain {low}': compare(grads[True, True], grads[False, True]),
        f'reversible {low} vs plain fp32': compare(grads[True, True], fp32),
        f'plain {low} vs plain fp32': compare(grads[False, True], fp32),
    }


def reconstruction(arch='s0', size=64, batch=4) -> Dict[str, float]:
    """Relative stem-input reconstruction error (max|x_rec - x| / max|x|)."""
    x, _ = inputs(size, batch)
    model = build(arch, drop_path_rate=0.1)
    out = {}
    for amp in (False, True):
        for train in (True, False):
            model.train(train)
            with autocast(amp):
                out[f"{_short(amp)} {'train' if train else 'eval'}"] = \
                    reconstruction_error(model, x).rel
    return out


def inject_noise(module: torch.nn.Module, scale: float):
    """Fault: ``module`` adds noise the reversible backward cannot replay (it draws
    random numbers without being a recognised stochastic layer)."""
    forward = module.forward
    module.forward = lambda t: forward(t) + scale * torch.randn_like(t)
    return lambda: setattr(module, 'forward', forward)


def inject_weight_change(module: torch.nn.Module, scale: float):
    """Fault: after its first call, ``module``'s weights change (as when parameters
    are modified between forward and backward)."""
    def hook(mod, args, out):
        handle.remove()
        with torch.no_grad():
            for p in mod.parameters():
                p.mul_(1 + scale)
    handle = module.register_forward_hook(hook)
    return handle.remove


def drift(arch='s0', size=64, batch=2) -> Dict[str, float]:
    x, _ = inputs(size, batch)
    model = build(arch, drop_path_rate=0.0)
    target = model.layers[1].blocks[0].blocks[0].f
    out = {'healthy': reconstruction_error(model, x).rel}
    undo = inject_noise(target, 1e-2)
    out['unreplayed noise 1e-2 in one transform'] = reconstruction_error(model, x).rel
    undo()
    undo = inject_weight_change(target, 0.1)
    out['weights x1.1 between forward and backward'] = reconstruction_error(model, x).rel
    undo()
    return out


def fault_gradient_error(arch='s0', size=64, batch=2) -> Dict[str, float]:
    """What the unreplayed-noise fault does to the gradients, silently: reversible vs
    plain autograd, both with the fault (and without, for reference)."""
    x, w = inputs(size, batch)
    out = {}
    for fault in (False, True):
        models = [build(arch, rev, drop_path_rate=0.0) for rev in (True, False)]
        if fault:
            for m in models:
                inject_noise(m.layers[1].blocks[0].blocks[0].f, 1e-2)
        g_rev, g_plain = (train_step(m, x, w, amp=False)[1] for m in models)
        out['with fault' if fault else 'healthy'] = compare(g_rev, g_plain)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--arch', default='s0')
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--dtype', choices=['bfloat16', 'float16'], default='bfloat16',
                   help='autocast dtype of the mixed-precision runs')
    p.add_argument('--device', default='cpu', help="e.g. 'cuda' to measure --amp on a GPU")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    global AMP_DTYPE, DEVICE
    AMP_DTYPE = getattr(torch, args.dtype)
    DEVICE = torch.device(args.device)
    print(f'RevBiFPN-{args.arch.upper()}, batch {args.batch}, {args.size}x{args.size}, '
          f'train mode, drop_path_rate 0.1, {args.device}, torch {torch.__version__}')
    print('\n| gradients | rel. L2 | cosine | median tensor | worst tensor |\n|---|---|---|---|---|')
    for name, r in amp_gradients(args.arch, args.size, args.batch).items():
        print(f"| {name} | {r['rel']:.3g} | {r['cos']:.6f} | {r['median']:.3g} | {r['worst']:.3g} |")
    print('\n| stem-input reconstruction | max abs err / max abs input |\n|---|---|')
    for name, r in reconstruction(args.arch, args.size, args.batch).items():
        print(f'| {name} | {r:.3g} |')
    print('\n| drift check (fp32, train) | relative error |\n|---|---|')
    for name, r in drift(args.arch, args.size).items():
        print(f'| {name} | {r:.3g} |')
    print('\n| reversible vs plain gradients, noise fault | rel. L2 | worst tensor |\n|---|---|---|')
    for name, r in fault_gradient_error(args.arch, args.size).items():
        print(f"| {name} | {r['rel']:.3g} | {r['worst']:.3g} |")


if __name__ == '__main__':
    main()
