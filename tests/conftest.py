import os
import os.path as osp
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('MMREVBIFPN_SHARED', osp.join(osp.dirname(REPO), 'shared'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def shared_path(*parts):
    return osp.join(SHARED, *parts)


@pytest.fixture(scope='session')
def reference_s0():
    path = shared_path('fixtures', 'reference_s0.pt')
    if not osp.exists(path):
        pytest.fail(f'numerical fixture missing: {path} (set MMREVBIFPN_SHARED)')
    return torch.load(path, map_location='cpu', weights_only=True)
