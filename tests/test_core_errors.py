"""Bad input gets a ValueError that names the problem and the fix."""
import pytest
import torch

from mmrevbifpn.models import MBConvNeck, RevBiFPN


@pytest.fixture(scope='module')
def s0():
    return RevBiFPN('s0').eval()


@pytest.mark.parametrize('shape', [(1, 3, 200, 224), (1, 3, 224, 232), (1, 3, 16, 32)])
def test_size_not_multiple_of_32(s0, shape):
    with pytest.raises(ValueError, match='multiples of 32') as e:
        s0(torch.zeros(shape))
    assert 'pad_size_divisor=32' in str(e.value)


def test_wrong_channel_count(s0):
    with pytest.raises(ValueError, match='in_channels=3 but the input has 1 channels'):
        s0(torch.zeros(1, 1, 64, 64))


def test_not_4d(s0):
    with pytest.raises(ValueError, match='N x C x H x W'):
        s0(torch.zeros(3, 64, 64))


def test_unknown_arch_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        RevBiFPN('s9')
    msg = str(e.value)
    assert "'s9'" in msg and all(f"'s{i}'" in msg for i in range(7))


def test_incomplete_custom_arch():
    arch = dict(RevBiFPN.arch_settings['s0'])
    del arch['se_ratios']
    with pytest.raises(ValueError, match=r"missing \['se_ratios'\]"):
        RevBiFPN(arch)
    with pytest.raises(ValueError, match=r"unknown \['widths'\]"):
        RevBiFPN(dict(RevBiFPN.arch_settings['s0'], widths=(1, 2)))


@pytest.mark.parametrize('key,value,match', [
    ('channels', (40, 64, 80, 160), 'multiple of 16'),
    ('channels', (48, 64, 80), '4 values'),
    ('depth', -1, 'depth'),
    ('kernel_sizes', (3, 4, 5, 3), 'odd'),
])
def test_invalid_custom_arch_values(key, value, match):
    with pytest.raises(ValueError, match=match):
        RevBiFPN(dict(RevBiFPN.arch_settings['s0'], **{key: value}))


@pytest.mark.parametrize('out_indices', [(0, 4), (-1, ), ()])
def test_out_indices_out_of_range(out_indices):
    with pytest.raises(ValueError, match='out_indices'):
        RevBiFPN('s0', out_indices=out_indices)


@pytest.mark.parametrize('frozen', [-2, 6, 100])
def test_frozen_stages_out_of_range(frozen):
    with pytest.raises(ValueError, match=r'frozen_stages must be an int in \[-1, 5\]'):
        RevBiFPN('s0', frozen_stages=frozen)


def test_neck_rejects_wrong_widths():
    neck = MBConvNeck(arch='s0')
    feats = [torch.zeros(1, c, 8, 8) for c in (48, 64, 80, 161)]
    with pytest.raises(ValueError, match='level 3 expects 160 channels'):
        neck(feats)
