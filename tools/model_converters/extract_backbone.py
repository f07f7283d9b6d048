#!/usr/bin/env python
"""Extract the backbone and neck weights of a RevBiFPN ImageNet classifier checkpoint.

Takes a checkpoint of ``configs/revbifpn_s*_8xb64_in1k.py`` (written by
``tools/train.py``; its ``state_dict`` holds the EMA weights, which are the ones
evaluated) or one converted from the authors' release by
``revbifpn_to_mmrevbifpn.py``, and writes a small weights-only file
``{'state_dict': {'backbone.*', 'neck.*'}, 'meta'}``: no head, optimizer, EMA copy or
message-hub state. Detection and segmentation configs load it with::

    backbone=dict(..., init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.'))
    neck=dict(type='MBConvNeck', ..., init_cfg=dict(type='Pretrained', checkpoint=DST,
                                                    prefix='neck.'))

Example:
    python tools/model_converters/extract_backbone.py \
        work_dirs/revbifpn_s2_8xb64_in1k/epoch_350.pth checkpoints/revbifpn_s2_in1k.pth
"""
import argparse
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Mapping, Tuple

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def load_trusted(path: str) -> Mapping:
    """``torch.load`` with ``weights_only`` allowing the types mmengine puts in its
    runner checkpoints (no arbitrary code is executed)."""
    from mmrevbifpn.utils.compat import allow_mmengine_checkpoints
    allow_mmengine_checkpoints()
    return torch.load(path, map_location='cpu', weights_only=True)


def extract(checkpoint: Mapping, ema: bool = True) -> Tuple['OrderedDict', str]:
    """``backbone.*``/``neck.*`` tensors of a classifier checkpoint, and where they
    came from. With ``ema=False`` the raw (non-averaged) weights of a checkpoint written
    with mmengine's ``EMAHook`` are taken instead."""
    state = checkpoint.get('state_dict', checkpoint)
    source = 'state_dict'
    if not ema:
        ema_state = checkpoint.get('ema_state_dict')
        if ema_state is None:
            raise ValueError('--raw: the checkpoint has no ema_state_dict (it was not '
                             'trained with EMAHook), so its state_dict is already raw')
        # EMAHook swaps on saving: state_dict = EMA weights, ema_state_dict = raw ones
        state = {k[len('module.'):]: v for k, v in ema_state.items()
                 if k.startswith('module.')}
        source = 'ema_state_dict (raw weights)'
    out = OrderedDict((k, v) for k, v in state.items()
                      if k.startswith(('backbone.', 'neck.')))
    if not any(k.startswith('backbone.') for k in out):
        raise ValueError('no backbone.* weights found: is this a checkpoint of a '
                         'configs/revbifpn_s*_in1k.py classifier (or a converted one)?')
    return out, source


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help='classifier checkpoint (trained or converted)')
    p.add_argument('dst', help='output weights file')
    p.add_argument('--raw', action='store_true',
                   help='take the raw weights instead of the EMA weights (checkpoints '
                   'written with EMAHook only)')
    p.add_argument('--no-neck', action='store_true',
                   help='keep only backbone.* (for configs without the MBConvNeck)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'error: {args.src} does not exist')
    if osp.abspath(args.src) == osp.abspath(args.dst):
        raise SystemExit('error: DST must differ from SRC')
    ckpt = load_trusted(args.src)
    try:
        state, source = extract(ckpt, ema=not args.raw)
    except ValueError as e:
        raise SystemExit(f'error: {e}')
    if args.no_neck:
        state = OrderedDict((k, v) for k, v in state.items() if k.startswith('backbone.'))
    meta = dict(source=osp.basename(args.src), weights=source,
                converter='mmrevbifpn extract_backbone')
    if isinstance(ckpt.get('meta'), Mapping):
        for key in ('arch', 'epoch', 'iter', 'mmengine_version'):
            if key in ckpt['meta']:
                meta[key] = ckpt['meta'][key]
    dst_dir = osp.dirname(osp.abspath(args.dst))
    os.makedirs(dst_dir, exist_ok=True)
    torch.save(dict(state_dict=state, meta=meta), args.dst)
    n_b = sum(k.startswith('backbone.') for k in state)
    n_n = len(state) - n_b
    print(f'wrote {n_b} backbone and {n_n} neck tensors from {source} -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
