"""Reference parameter counts and the authors' numerical fixture."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmrevbifpn.models import MBConvNeck, RevBiFPN, RevBiFPNClsHead
from mmrevbifpn.utils.reference_model import build_classifier_parts

from .conftest import REPO, shared_path

# shared/spec/reference-numbers.md, section 1
PARAMS = {
    's0': (1308750, 247578, 1862868, 3419196),
    's1': (2040258, 399466, 2672576, 5112300),
    's2': (4772252, 948788, 4855488, 10576528),
    's3': (10574744, 1592406, 7407034, 19574184),
    's4': (30742248, 3712104, 14232984, 48687336),
    's5': (52779582, 6438098, 22781296, 81998976),
    's6': (98676316, 10030270, 33601386, 142307972),
}


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('arch', sorted(PARAMS))
def test_parameter_counts(arch):
    with torch.device('meta'):
        model = build_classifier_parts(arch)
    backbone, neck, head, full = PARAMS[arch]
    assert count(model.backbone) == backbone
    assert count(model.neck) == neck
    assert count(model.head) == head
    assert count(model) == full


@pytest.mark.parametrize('arch', sorted(PARAMS))
def test_state_dict_layout_matches_reference_keys(arch):
    from mmrevbifpn.utils import convert_key
    path = shared_path('spec', 'reference_keys', f'revbifpn_{arch}.txt')
    ref = {}
    for line in open(path):
        key, shape = line.rstrip('\n').split('\t')
        ref[convert_key(key)] = tuple(eval(shape))
    with torch.device('meta'):
        ours = {k: tuple(v.shape) for k, v in build_classifier_parts(arch).state_dict().items()}
    assert ours == ref


@pytest.fixture(scope='module')
def converted(tmp_path_factory, reference_s0):
    dst = tmp_path_factory.mktemp('ckpt') / 'revbifpn_s0_in1k.pth'
    tool = osp.join(REPO, 'tools', 'model_converters', 'revbifpn_to_mmrevbifpn.py')
    out = subprocess.run([sys.executable, tool, shared_path('fixtures', 'reference_s0.pt'),
                          str(dst)], capture_output=True, text=True, check=True)
    assert 'RevBiFPN-S0' in out.stdout
    return torch.load(dst, map_location='cpu', weights_only=True)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_converted_fixture_reproduces_reference_outputs(converted, reference_s0):
    sd = {k: v.float() if v.is_floating_point() else v
          for k, v in converted['state_dict'].items()}
    model = build_classifier_parts('s0')
    missing, unexpected = model.load_state_dict(sd, strict=True)
    assert not missing and not unexpected
    model.eval()
    x = reference_s0['input'].float()
    with torch.no_grad():
        feats = model.backbone(x)
        neck = model.neck(feats)
        logits = model.head(neck)
    for a, b in zip(feats, reference_s0['features']):
        assert rel_err(a, b) <= 1e-5
    for a, b in zip(neck, reference_s0['neck_features']):
        assert rel_err(a, b) <= 1e-5
    assert rel_err(logits, reference_s0['logits']) <= 1e-4
    assert converted['meta']['arch'] == 's0'


def test_converter_refuses_to_overwrite(tmp_path):
    dst = tmp_path / 'exists.pth'
    dst.write_bytes(b'precious')
    tool = osp.join(REPO, 'tools', 'model_converters', 'revbifpn_to_mmrevbifpn.py')
    out = subprocess.run([sys.executable, tool, shared_path('fixtures', 'reference_s0.pt'),
                          str(dst)], capture_output=True, text=True)
    assert out.returncode != 0 and 'refusing to overwrite' in out.stderr
    assert dst.read_bytes() == b'precious'


def test_converter_names_wrong_variant(tmp_path):
    tool = osp.join(REPO, 'tools', 'model_converters', 'revbifpn_to_mmrevbifpn.py')
    out = subprocess.run([sys.executable, tool, shared_path('fixtures', 'reference_s0.pt'),
                          str(tmp_path / 'x.pth'), '--arch', 's2'],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert 'shape mismatch rev_stack.1.rev_transform_0.f.xform_0_1' in out.stderr
    assert not (tmp_path / 'x.pth').exists()


def test_converter_rejects_foreign_keys(tmp_path):
    src = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1), 'fc.bias': torch.zeros(1)}, src)
    tool = osp.join(REPO, 'tools', 'model_converters', 'revbifpn_to_mmrevbifpn.py')
    out = subprocess.run([sys.executable, tool, str(src), str(tmp_path / 'x.pth')],
                         capture_output=True, text=True)
    assert out.returncode != 0 and 'conv1.weight' in out.stderr
