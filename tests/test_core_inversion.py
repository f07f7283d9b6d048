"""Every reversible op reconstructs its inputs from its outputs."""
import pytest
import torch

from mmrevbifpn.models import RevBiFPN
from mmrevbifpn.models.layers import MBConv, UpsampledMBConv
from mmrevbifpn.reversible import (RevBlock, RevSilo, SpaceToDepthStem, StreamBlocks,
                                   depth_to_space, space_to_depth)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_space_to_depth_channel_order():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    y = space_to_depth(x, 4)
    assert y.shape == (2, 48, 2, 2)
    for bh in range(4):
        for bw in range(4):
            for c in range(3):
                torch.testing.assert_close(y[:, (bh * 4 + bw) * 3 + c], x[:, c, bh::4, bw::4])
    # not pixel_unshuffle's order
    assert not torch.equal(y, torch.nn.functional.pixel_unshuffle(x, 4))
    assert torch.equal(depth_to_space(y, 4), x)


@pytest.mark.parametrize('stacked,expected', [(3, [0, 1, 2]), (4, [0, 1, 2, 0]),
                                              (8, [0, 1, 2, 0, 1, 2, 0, 1])])
def test_stem_stacks_rgb_cyclically_and_inverts(stacked, expected):
    stem = SpaceToDepthStem(3, stacked, 4)
    x = torch.randn(2, 3, 32, 32)
    (y, ) = stem([x])
    assert y.shape == (2, 16 * stacked, 8, 8)
    stacked_img = depth_to_space(y, 4)
    assert torch.equal(stacked_img, x[:, expected])
    assert torch.equal(stem.inverse([y])[0], x)


def _mb(cin, cout, **kw):
    return MBConv(cin, cout, kernel_size=3, expand_ratio=2, se_ratio=0.25, **kw)


@pytest.mark.parametrize('train', [True, False])
def test_revblock_inverse(train):
    torch.manual_seed(0)
    blk = RevBlock(_mb(12, 12), _mb(12, 12)).train(train)
    x = torch.randn(2, 24, 16, 16)
    with torch.no_grad():
        y = blk([x])
        assert rel_err(blk.inverse(y)[0], x) <= 1e-5
        assert rel_err(y[0], x) > 1e-2  # it did something


def _silo(m, n):
    ch = [16, 24, 32, 48]
    down = {(i, j): _mb(ch[i], ch[j], stride=2**(j - i)) for i in range(m)
            for j in range(i + 1, n)}
    up = {(i, j): UpsampledMBConv(ch[i], ch[j], kernel_size=3, scale_factor=2**(i - j))
          for i in range(n) for j in range(i)}
    return RevSilo(down, up, m, n), ch


@pytest.mark.parametrize('m,n', [(1, 2), (2, 3), (3, 4), (4, 4)])
def test_silo_inverse(m, n):
    torch.manual_seed(0)
    silo, ch = _silo(m, n)
    silo.train()  # batch statistics: reconstruction must not depend on running stats
    xs = [torch.randn(2, ch[i], 32 >> i, 32 >> i) for i in range(m)]
    with torch.no_grad():
        ys = silo(xs)
        assert len(ys) == n
        assert [y.shape[1] for y in ys] == ch[:n]
        rec = silo.inverse(ys)
    assert len(rec) == m
    for a, b in zip(rec, xs):
        assert rel_err(a, b) <= 1e-5


def test_stream_blocks_inverse():
    torch.manual_seed(0)
    sb = StreamBlocks([RevBlock(_mb(8, 8), _mb(8, 8)), RevBlock(_mb(12, 12), _mb(12, 12))])
    xs = [torch.randn(1, 16, 16, 16), torch.randn(1, 24, 8, 8)]
    with torch.no_grad():
        rec = sb.inverse(sb(xs))
    for a, b in zip(rec, xs):
        assert rel_err(a, b) <= 1e-5


# Train mode normalises with batch statistics, which amplifies rounding errors as
# they accumulate through all ops (the authors' code: ~1.6e-5 for S0 at 224).
@pytest.mark.parametrize('arch,train,tol', [('s0', False, 1e-5), ('s0', True, 1e-4),
                                            ('s3', False, 1e-5)])
def test_backbone_reconstructs_stem_input(arch, train, tol):
    torch.manual_seed(0)
    model = RevBiFPN(arch, drop_path_rate=0.0 if train else None)
    model.init_weights()
    model.train(train)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        feats = model(x)
        rec = model.inverse(feats)
    assert rec.shape == x.shape
    assert rel_err(rec, x) <= tol


def test_inverse_refuses_unreplayable_stochastic_depth():
    model = RevBiFPN('s3').train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model(x)
    with pytest.raises(ValueError, match='stochastic-depth'):
        model.inverse(feats)
