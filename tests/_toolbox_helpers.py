"""Helpers of the classification/segmentation tests: config loading, model building and
running the real ``tools/train.py`` / ``tools/test.py`` in a subprocess."""
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap
from typing import Dict, List, Optional

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('MMREVBIFPN_SHARED', osp.join(osp.dirname(REPO), 'shared'))
CONFIGS = osp.join(REPO, 'configs')
ARCHS = ('s0', 's1', 's2', 's3', 's4', 's5', 's6')
SEG_ARCHS = ('s2', 's4', 's6')
SEG_SETS = {'cityscapes': ('512x1024_80k_cityscapes', 19, (512, 1024)),
            'ade20k': ('512x512_160k_ade20k', 150, (512, 512))}

#: "full" parameter column of shared/spec/reference-numbers.md (classification model)
FULL_PARAMS = {'s0': 3_419_196, 's1': 5_112_300, 's2': 10_576_528, 's3': 19_574_184,
               's4': 48_687_336, 's5': 81_998_976, 's6': 142_307_972}
#: "backbone+neck" parameter column of the same table
BACKBONE_NECK_PARAMS = {'s0': 1_556_328, 's1': 2_439_724, 's2': 5_721_040,
                        's3': 12_167_150, 's4': 34_454_352, 's5': 59_217_680,
                        's6': 108_706_586}


def shared_path(*parts: str) -> str:
    return osp.join(SHARED, *parts)


def cls_config(arch: str) -> str:
    return osp.join(CONFIGS, f'revbifpn_{arch}_8xb64_in1k.py')


def seg_config(arch: str, dataset: str) -> str:
    return osp.join(CONFIGS, f'fcn_revbifpn_{arch}_{SEG_SETS[dataset][0]}.py')


def load_config(path: str):
    """``Config.fromfile`` with the project's compatibility fixes applied, as the
    tools do (``mmseg::`` bases need the package helpers)."""
    from mmengine.config import Config

    from mmrevbifpn.utils import compat
    compat.apply()
    return Config.fromfile(path)


def build_model(cfg, scope: str, device: str = 'meta'):
    """Build ``cfg.model`` with the toolbox registry (on the meta device by default:
    no memory, no initialisation cost)."""
    import importlib

    import torch
    from mmengine.registry import DefaultScope

    utils = importlib.import_module(f'{scope}.utils')
    utils.register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model_cfg = cfg.model.copy()
    if 'data_preprocessor' not in model_cfg and cfg.get('data_preprocessor'):
        model_cfg['data_preprocessor'] = cfg.data_preprocessor
    with DefaultScope.overwrite_default_scope(scope), torch.device(device):
        return registry.build(model_cfg)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def write_config(path: str, text: str) -> str:
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text))
    return path


def run_tool(script: str, *args: str, timeout: int = 300, cwd: Optional[str] = None,
             env: Optional[Dict[str, str]] = None) -> str:
    """Run ``tools/<script>`` with this interpreter; return stdout+stderr, failing the
    test (with the output's tail) on a non-zero exit."""
    full_env = dict(os.environ)
    # one thread: OpenMP threads spinning on 2 shared cores slow training 10-40x
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env['PYTHONPATH'] = REPO + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.update(env or {})
    cmd: List[str] = [sys.executable, osp.join(REPO, 'tools', script), *args]
    proc = subprocess.run(cmd, cwd=cwd or REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(cmd)} exited with {proc.returncode}:\n{out[-6000:]}')
    return out


def tool_main(script: str, *args: str):
    """Run ``main(argv)`` of a small tool (converters) in this process: the same code as
    on the command line, without paying the interpreter start-up again."""
    import importlib.util

    path = osp.join(REPO, 'tools', script)
    name = '_tool_' + osp.splitext(script)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.main(list(args))
    except SystemExit as e:
        if e.code not in (0, None):
            pytest.fail(f'{script} {" ".join(args)}: {e}')
        return e.code


def metric(output: str, name: str) -> float:
    """The last value of metric ``name`` printed by an mmengine runner."""
    values = re.findall(re.escape(name) + r':\s*(-?[\d.]+|nan)', output)
    if not values:
        pytest.fail(f'no {name} in the tool output:\n{output[-4000:]}')
    return float(values[-1])
