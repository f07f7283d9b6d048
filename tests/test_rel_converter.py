"""Checkpoint converter reliability: atomic write, no overwrite, --sha256, clear
messages for checkpoints of another variant (the overwrite refusal and --arch
mismatch of the tool are also covered by test_core_reference.py)."""
import hashlib
import importlib.util
import os
import os.path as osp

import pytest
import torch

from .conftest import REPO, shared_path

SRC = shared_path('fixtures', 'reference_s0.pt')


@pytest.fixture(scope='module')
def tool():
    path = osp.join(REPO, 'tools', 'model_converters', 'revbifpn_to_mmrevbifpn.py')
    spec = importlib.util.spec_from_file_location('revbifpn_to_mmrevbifpn', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def source_state():
    return torch.load(SRC, map_location='cpu', weights_only=True)['state_dict']


@pytest.fixture(scope='module')
def sha256():
    with open(SRC, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def convert(tool, src, dst, *args):
    """Run the converter in-process; returns the error message ('' on success)."""
    try:
        assert tool.main([str(src), str(dst), *args]) == 0
    except SystemExit as e:
        return str(e.code)
    return ''


def test_sha256_mismatch_refuses_before_writing(tool, tmp_path, sha256):
    dst = tmp_path / 'out.pth'
    wrong = ('0' if sha256[0] != '0' else '1') + sha256[1:]
    msg = convert(tool, SRC, dst, '--sha256', wrong)
    assert f'SHA-256 of {SRC} is {sha256}, expected {wrong}' in msg
    assert os.listdir(tmp_path) == []


def test_sha256_match_converts_and_leaves_only_the_result(tool, tmp_path, sha256):
    dst = tmp_path / 'out.pth'
    assert convert(tool, SRC, dst, '--sha256', sha256.upper()) == ''
    assert os.listdir(tmp_path) == ['out.pth']  # no temporary file left
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['arch'] == 's0' and len(ckpt['state_dict']) > 1000


def test_crash_while_writing_leaves_nothing(tool, tmp_path, monkeypatch):
    def broken_save(obj, f):
        f.write(b'half a checkpoint')
        raise OSError('disk full')
    monkeypatch.setattr(tool.torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        convert(tool, SRC, tmp_path / 'out.pth')
    assert os.listdir(tmp_path) == []


def test_destination_created_during_conversion_is_not_replaced(tool, tmp_path, monkeypatch):
    dst = tmp_path / 'out.pth'
    real_save = torch.save

    def save_then_race(obj, f):
        real_save(obj, f)
        dst.write_bytes(b'written by another job meanwhile')
    monkeypatch.setattr(tool.torch, 'save', save_then_race)
    msg = convert(tool, SRC, dst)
    assert 'already exists; refusing to overwrite' in msg
    assert dst.read_bytes() == b'written by another job meanwhile'
    assert os.listdir(tmp_path) == ['out.pth']


@pytest.mark.parametrize('change', ['reshape', 'drop'])
def test_damaged_or_other_variant_names_first_mismatching_keys(tool, tmp_path,
                                                               source_state, change):
    state = dict(source_state)
    key = 'rev_stack.4.rev_transform_1.g.xform_0_1.project_conv.conv.weight'
    if change == 'reshape':
        state[key] = torch.zeros(7, *state[key].shape[1:])
    else:
        del state[key]
    src = tmp_path / 'src.pth'
    torch.save(state, src)
    msg = convert(tool, src, tmp_path / 'out.pth')
    assert 'matches no RevBiFPN variant' in msg
    # the nearest variant comes first, with exactly the damaged key
    first = msg.splitlines()[1]
    assert first.startswith('  s0: 1 problems, first: ')
    if change == 'reshape':
        assert f'shape mismatch {key}: checkpoint [7, ' in first
    else:
        assert ('missing key (model expects backbone.layers.1.blocks.0.blocks.1.g.'
                'project_conv.conv.weight)') in first
    assert not (tmp_path / 'out.pth').exists()


def test_checkpoint_for_a_larger_variant_is_named(tool, tmp_path):
    msg = convert(tool, SRC, tmp_path / 'out.pth', '--arch', 's1')
    assert '(--arch s1)' in msg and 's1: ' in msg
    assert 'shape mismatch rev_stack.' in msg and 'vs model' in msg


def test_wrapped_dataparallel_checkpoint_converts(tool, tmp_path, source_state):
    src = tmp_path / 'src.pth'
    torch.save({'model': {f'module.{k}': v for k, v in source_state.items()}}, src)
    assert convert(tool, src, tmp_path / 'out.pth') == ''


def test_not_a_checkpoint(tool, tmp_path):
    src = tmp_path / 'notes.txt'
    src.write_text('not a checkpoint')
    assert 'cannot read' in convert(tool, src, tmp_path / 'out.pth')
    assert 'does not exist' in convert(tool, tmp_path / 'missing.pth', tmp_path / 'o.pth')
