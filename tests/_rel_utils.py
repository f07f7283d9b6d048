"""Subprocess helpers of the reliability tests: runs that must not hang."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
from typing import Dict, List, Optional

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd: List[str], timeout: int, env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None) -> str:
    """Run ``cmd`` in its own process group; on timeout kill the whole group (torchrun
    workers included, which ``_toolbox_helpers.run_tool`` would leave behind) and fail
    the test as a hang. Returns stdout+stderr; fails the test on a non-zero exit."""
    full_env = dict(os.environ)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env['PYTHONPATH'] = REPO + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=cwd or REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f'{" ".join(cmd)} hung (killed after {timeout} s):\n{out[-4000:]}')
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(cmd)} exited with {proc.returncode}:\n{out[-6000:]}')
    return out


def torchrun(script: str, *args: str, nproc: int = 2, timeout: int = 300,
             env: Optional[Dict[str, str]] = None) -> str:
    return run([sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
                f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
                f'--master_port={free_port()}', script, *args], timeout, env)


def load_checkpoint(path) -> dict:
    """A checkpoint of tools/train.py, read as tools/test.py does (weights_only)."""
    from mmrevbifpn.utils.compat import allow_mmengine_checkpoints
    allow_mmengine_checkpoints()
    return torch.load(path, map_location='cpu', weights_only=True)


DDP_ERRORS = ('mark a variable ready only once', 'marked ready',
              'Expected to have finished reduction', 'were not used in producing loss')


def assert_no_ddp_errors(output: str) -> None:
    for text in DDP_ERRORS:
        assert text not in output, f'DDP reported {text!r}:\n{output[-3000:]}'


@pytest.fixture(scope='module')
def one_thread():
    """Run the module's in-process computations on one thread (restored after):
    shared CPUs make multi-threaded kernels slow, and one thread keeps float
    reductions in the same order as in the single-threaded subprocesses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
