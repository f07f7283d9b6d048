#!/usr/bin/env python
"""Activation memory a RevBiFPN backbone keeps for backward: reversible vs plain.

Counts, with :func:`mmrevbifpn.utils.backbone_saved_bytes`, the bytes of the tensors
a training-mode forward of the backbone leaves alive for the backward pass, for the
same weights run reversibly (default) and with plain autograd (``reversible=False``).
Used at the end of ``make demo`` with the demo run's input size.

Examples:
    python demo/memory_report.py --arch s0 --batch 2 --size 256 256
    python demo/memory_report.py --config demo/faster_rcnn_revbifpn_s0_demo.py
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmrevbifpn.models import RevBiFPN  # noqa: E402
from mmrevbifpn.utils import backbone_saved_bytes  # noqa: E402


def measure(arch: str, batch: int, height: int, width: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    rev = RevBiFPN(arch=arch, reversible=True).train()
    plain = RevBiFPN(arch=arch, reversible=False).train()
    plain.load_state_dict(rev.state_dict())
    x = torch.randn(batch, 3, height, width)
    out = dict(reversible=backbone_saved_bytes(rev, x),
               plain=backbone_saved_bytes(plain, x))
    # the output pyramid: widths c_s at stride 4 * 2**s
    out['outputs'] = sum(batch * c * (height // (4 << s)) * (width // (4 << s)) * 4
                         for s, c in enumerate(rev.channels))
    return out


def from_config(path: str):
    """(arch, batch size, (H, W)) of a config's training input: the Resize scale of
    its train pipeline padded up to a multiple of 32."""
    from mmengine.config import Config

    from mmrevbifpn.utils import compat
    compat.apply()
    cfg = Config.fromfile(path)
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'Resize']
    if not resize:
        raise SystemExit(f'error: no Resize in the train pipeline of {path}')
    w, h = resize[0]['scale']
    d = RevBiFPN.size_divisor
    return (cfg.model.backbone.get('arch', 's0'), cfg.train_dataloader.batch_size,
            (-(-h // d) * d, -(-w // d) * d))


def mib(n: int) -> str:
    return f'{n / 2**20:8.2f} MiB'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', help='take arch, batch size and input size from this '
                   'detection config (fixed-size Resize in its train pipeline)')
    p.add_argument('--arch', default='s0')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', type=int, nargs=2, default=(256, 256), metavar=('H', 'W'),
                   help='input size (multiples of 32)')
    args = p.parse_args(argv)
    h, w = args.size
    if args.config:
        args.arch, args.batch, (h, w) = from_config(args.config)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    r = measure(args.arch, args.batch, h, w)
    print(f'Backbone activation memory kept for backward, RevBiFPN-{args.arch.upper()}, '
          f'input {args.batch}x3x{h}x{w} (float32, training mode):')
    print(f'  plain autograd (reversible=False): {mib(r["plain"])}  ({r["plain"]:,} bytes)')
    print(f'  reversible (this project)        : {mib(r["reversible"])}  '
          f'({r["reversible"]:,} bytes)')
    print(f'  of which the output pyramid      : {mib(r["outputs"])}')
    print(f'  saving: {r["plain"] / max(r["reversible"], 1):.1f}x less memory for '
          f'backward with reversible recomputation')
    return 0


if __name__ == '__main__':
    sys.exit(main())
