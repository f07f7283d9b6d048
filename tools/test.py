#!/usr/bin/env python
"""Evaluate a checkpoint with an MMDetection, MMPretrain or MMSegmentation config.

The command line is MMDetection's ``tools/test.py``; the toolbox is chosen by the
config's ``default_scope``. For detection the metrics come from the config's
``test_evaluator`` (``CocoMetric``: pycocotools bbox / segm AP, with the full AP
table in the log). Works from any directory and imports ``mmrevbifpn`` itself.

Examples:
    python tools/test.py configs/faster_rcnn_revbifpn_s0_1x_coco.py CKPT
    python tools/test.py CONFIG CKPT --out results.pkl --show-dir vis
    bash tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _toolbox import build_runner, check_data, init, load_cfg  # noqa: E402

init()
from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out', type=str,
        help='dump predictions to a pickle file (mmdet, mmpretrain: .pkl) or, for '
        'mmseg, save the predicted segmentation maps in this directory')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation '
                        '(uses the config\'s tta_model / tta_pipeline)')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/test.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args, scope: str):
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks. Refer to the '
            "usage 'visualization=dict(type='VisualizationHook')'")
    vis = hooks['visualization']
    # the toolboxes name the switch and the output folder differently
    switch, out_dir = {'mmdet': ('draw', 'test_out_dir'), 'mmseg': ('draw', None),
                       'mmpretrain': ('enable', 'out_dir')}[scope]
    vis[switch] = True
    if args.show:
        vis['show'] = True
        vis['wait_time'] = args.wait_time
    if args.show_dir:
        if out_dir is None:  # mmseg: the visualizer's save_dir
            cfg.visualizer['save_dir'] = args.show_dir
        else:
            vis[out_dir] = args.show_dir
    return cfg


def build_cfg(args):
    cfg, scope = load_cfg(args)

    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise SystemExit(f'error: checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args, scope)

    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise SystemExit('error: --tta needs tta_model and tta_pipeline in the config')
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        test_data_cfg.pipeline = cfg.tta_pipeline

    if args.out is not None and scope == 'mmseg':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    elif args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit('error: --out must be a .pkl file')
    check_data(cfg, ['test'])
    return cfg, scope


def main(argv=None):
    args = parse_args(argv)
    cfg, scope = build_cfg(args)
    runner = build_runner(cfg)

    if args.out is not None and scope != 'mmseg':
        if scope == 'mmdet':
            from mmdet.evaluation import DumpDetResults
            dump = DumpDetResults(out_file_path=args.out)
        else:
            from mmengine.evaluator import DumpResults
            dump = DumpResults(out_file_path=args.out)
        runner.test_evaluator.metrics.append(dump)

    return runner.test()


if __name__ == '__main__':
    main()
