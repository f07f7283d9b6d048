#!/usr/bin/env python
"""Parameters and MACs of RevBiFPN (or any MMDetection/MMPretrain/MMSegmentation
config) without a dataset.

MACs are reported in the convention of the RevBiFPN paper's Table 1 (old thop
0.0.31: conv MACs + 1 per output of a biased conv, 2 per BatchNorm element, 11 per
output of bilinear upsampling, Linear MACs; nothing for activations, adds, SE gates
or pooling) and as pure conv + linear multiply-accumulates. Counting logic:
``mmrevbifpn/utils/flops.py``.

Examples::

    # paper Table 1, every variant at its training resolution
    python tools/analysis_tools/get_flops.py --arch all
    python tools/analysis_tools/get_flops.py --arch s3 --part backbone --shape 800 1344
    python tools/analysis_tools/get_flops.py configs/.../faster-rcnn_revbifpn-s3.py --shape 800 1344
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmrevbifpn.utils.flops import (PARTS, count_config,  # noqa: E402
                                    count_revbifpn)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', nargs='?', help='config file (mmdet/mmpretrain/mmseg)')
    p.add_argument('--arch', help="RevBiFPN variant s0..s6, or 'all'")
    p.add_argument('--part', default='full', choices=PARTS,
                   help='with --arch: backbone, backbone+neck or full classifier')
    p.add_argument('--shape', type=int, nargs='+',
                   help='input H [W]; default: the variant training resolution '
                   '(--arch) or 800 1344 (config)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--depth', type=int, help='override the backbone depth d (--arch)')
    p.add_argument('--num-classes', type=int, default=1000)
    p.add_argument('--device', default=None,
                   help="'meta' (default for --arch: nothing is computed) or 'cpu'")
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides for the config (python literals)')
    args = p.parse_args(argv)
    if bool(args.config) == bool(args.arch):
        p.error('give either CONFIG or --arch')
    if args.shape and len(args.shape) == 1:
        args.shape = args.shape * 2
    return args


def _options(pairs):
    import ast
    out = {}
    for pair in pairs:
        k, v = pair.split('=', 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def _row(name, params, paper, macs):
    return (f'| {name} | {params:,} | {paper:,} ({paper / 1e9:.3f}G) | '
            f'{macs:,} ({macs / 1e9:.3f}G) |')


def report(res, title):
    lines = [f'### {title}, input {"x".join(map(str, res.input_shape))}', '',
             '| part | params | MACs, paper convention | pure conv+linear MACs |',
             '|---|---:|---:|---:|']
    for scope in res.scope_names():
        params = res.params[scope] if scope else res.params[''] - sum(
            res.params[s] for s in res.scope_names() if s)
        lines.append(_row(scope or '(other)', params, res.total('paper', [scope]),
                          res.total('macs', [scope])))
    lines.append(_row('**total**', res.params[''], res.total('paper'), res.total('macs')))
    kinds = res.by_kind('paper')
    lines += ['', 'paper-convention terms: ' + ', '.join(
        f'{k} {v:,}' for k, v in sorted(kinds.items())), '']
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.config:
        res = count_config(args.config, args.shape or (800, 1344), args.batch,
                           _options(args.cfg_options), args.device or 'cpu')
        print(report(res, osp.basename(args.config)))
        return res
    archs = ['s0', 's1', 's2', 's3', 's4', 's5', 's6'] if args.arch == 'all' else [args.arch]
    results = {}
    for arch in archs:
        res = count_revbifpn(arch, args.part, args.shape, args.batch, args.num_classes,
                             args.device or 'meta', args.depth)
        results[arch] = res
        if len(archs) == 1:
            title = f'RevBiFPN-{arch.upper()} {args.part}'
            if args.depth is not None:
                title += f' (d={args.depth})'
            print(report(res, title))
    if len(archs) > 1:
        print(f'| variant | input | params ({args.part}) | MACs, paper convention '
              '| pure conv+linear MACs |')
        print('|---|---|---:|---:|---:|')
        for arch, res in results.items():
            print(f'| {arch.upper()} | {"x".join(map(str, res.input_shape))} | '
                  f'{res.params[""]:,} | {res.total("paper"):,} | {res.total("macs"):,} |')
    return results


if __name__ == '__main__':
    main()
