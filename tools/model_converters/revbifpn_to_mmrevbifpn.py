#!/usr/bin/env python
"""Convert an authors' RevBiFPN checkpoint (``revbifpn_s*.pth.tar``) to mmrevbifpn.

The output is an MMPretrain-style checkpoint ``{'state_dict', 'meta'}`` with keys
``backbone.*``, ``neck.*`` and ``head.*``: it loads into ``configs/revbifpn_s*_in1k.py``
as is, and detection/segmentation configs load its backbone and neck through
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

Every source key must map, and every converted tensor must have the shape the
variant expects (``--arch``, or inferred); DST is written atomically and never
overwritten.

Example:
    python tools/model_converters/revbifpn_to_mmrevbifpn.py \
        revbifpn_s0.pth.tar checkpoints/revbifpn_s0_in1k.pth
"""
import argparse
import hashlib
import os
import os.path as osp
import sys
import tempfile
from typing import Dict, List, Mapping, Optional, Tuple

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmrevbifpn.models import RevBiFPN  # noqa: E402
from mmrevbifpn.utils import (ConversionError, convert_state_dict,  # noqa: E402
                              unwrap_state_dict)
from mmrevbifpn.utils.reference_model import expected_shapes  # noqa: E402


def sha256sum(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def compare(converted: Mapping[str, torch.Tensor], mapping: Dict[str, str],
            expected: Dict[str, Tuple[int, ...]]) -> List[str]:
    """Human-readable problems, source keys first; empty when everything matches."""
    source_of = {v: k for k, v in mapping.items()}
    problems = []
    for key, value in converted.items():
        if key not in expected:
            problems.append(f'unexpected key {source_of[key]} (-> {key})')
        elif tuple(value.shape) != expected[key]:
            problems.append(f'shape mismatch {source_of[key]}: checkpoint '
                            f'{list(value.shape)} vs model {list(expected[key])}')
    for key in expected:
        if key not in converted:
            problems.append(f'missing key (model expects {key})')
    return problems


def infer_arch(converted, mapping, num_classes) -> Tuple[Optional[str], Dict[str, List[str]]]:
    reports = {}
    for arch in RevBiFPN.arch_settings:
        problems = compare(converted, mapping, expected_shapes(arch, num_classes))
        if not problems:
            return arch, reports
        reports[arch] = problems
    return None, reports


def atomic_save(obj, dst: str) -> None:
    """Write to a temporary file beside DST, then link it into place; an existing
    DST (even one created meanwhile) is never replaced."""
    directory = osp.dirname(osp.abspath(dst))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(dst) + '.', dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give DST the usual mode
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, dst)  # fails if dst exists: no race with another writer
        except FileExistsError:
            raise SystemExit(f'error: {dst} already exists; refusing to overwrite it. '
                             'Choose another DST or remove the file first.')
    finally:
        os.unlink(tmp)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help="authors' checkpoint (flat state dict, or under "
                   "'state_dict'/'model')")
    p.add_argument('dst', help='output path (must not exist)')
    p.add_argument('--arch', choices=sorted(RevBiFPN.arch_settings),
                   help='variant the checkpoint is for (default: inferred from shapes)')
    p.add_argument('--num-classes', type=int, default=None,
                   help='classifier classes (default: from head.fc.weight)')
    p.add_argument('--sha256', help='expected SHA-256 of SRC; conversion stops on mismatch')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'error: source checkpoint {args.src} does not exist')
    if osp.exists(args.dst):
        raise SystemExit(f'error: {args.dst} already exists; refusing to overwrite it. '
                         'Choose another DST or remove the file first.')
    if args.sha256:
        digest = sha256sum(args.src)
        if digest.lower() != args.sha256.lower():
            raise SystemExit(f'error: SHA-256 of {args.src} is {digest}, expected '
                             f'{args.sha256}: the file is corrupt or not the one meant.')
    try:
        ckpt = torch.load(args.src, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f'error: cannot read {args.src} as a PyTorch checkpoint: {e}')
    if not isinstance(ckpt, Mapping):
        raise SystemExit(f'error: {args.src} holds a {type(ckpt).__name__}, not a state dict')
    state_dict = unwrap_state_dict(ckpt)
    try:
        converted, mapping = convert_state_dict(state_dict)
    except ConversionError as e:
        raise SystemExit(f'error: {e}')
    num_classes = args.num_classes
    if num_classes is None and 'head.fc.weight' in converted:
        num_classes = converted['head.fc.weight'].shape[0]
    num_classes = num_classes or 1000

    if args.arch:
        problems = compare(converted, mapping, expected_shapes(args.arch, num_classes))
        arch = None if problems else args.arch
        reports = {args.arch: problems}
    else:
        arch, reports = infer_arch(converted, mapping, num_classes)
    if arch is None:
        lines = []
        for name, problems in sorted(reports.items(), key=lambda kv: len(kv[1]))[:3]:
            lines.append(f'  {name}: {len(problems)} problems, first: ' +
                         '; '.join(problems[:5]))
        raise SystemExit('error: the checkpoint matches no RevBiFPN variant '
                         f"{'(--arch ' + args.arch + ')' if args.arch else ''}:\n" +
                         '\n'.join(lines))
    meta = dict(arch=arch, num_classes=num_classes, source=osp.basename(args.src),
                converter='mmrevbifpn revbifpn_to_mmrevbifpn')
    atomic_save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'converted {len(converted)} tensors of RevBiFPN-{arch.upper()} '
          f'({num_classes} classes) -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
