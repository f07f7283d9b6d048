"""MAC and parameter counts in the paper's convention (Table 1), counted on the meta
device so that no activation is computed (the whole file runs in seconds)."""
import pytest
import torch
from torch import nn

from mmrevbifpn.utils.flops import count_model, count_revbifpn

# (full, backbone+neck, backbone) MACs, thop 0.0.31 convention, variant resolution
PAPER_MACS = {
    's0': (308_039_716, 261_556_040, 218_592_830),
    's1': (616_781_508, 518_942_828, 431_869_282),
    's2': (1_370_329_000, 1_138_518_512, 937_130_076),
    's3': (3_330_873_312, 2_834_901_614, 2_420_703_960),
    's4': (10_632_222_080, 9_215_966_736, 8_029_499_112),
    's5': (21_848_995_912, 18_873_414_592, 16_415_636_270),
    's6': (38_084_434_748, 33_434_383_194, 29_639_613_596),
}
PARAMS = {'s0': 3_419_196, 's1': 5_112_300, 's2': 10_576_528, 's3': 19_574_184,
          's4': 48_687_336, 's5': 81_998_976, 's6': 142_307_972}
# pure conv + linear MACs (full model), reference-numbers.md, in units of 1e9
PURE_MACS = {'s0': 0.269, 's1': 0.551, 's2': 1.269, 's3': 3.123, 's4': 10.168,
             's5': 21.103, 's6': 37.004}


@pytest.mark.parametrize('arch', sorted(PAPER_MACS))
def test_table1_macs_exact(arch):
    full = count_revbifpn(arch, 'full')
    assert full.total('paper') == PAPER_MACS[arch][0]
    assert full.params[''] == PARAMS[arch]
    assert round(full.total('macs') / 1e9, 3) == PURE_MACS[arch]
    # parts attributed in the same forward add up
    assert sum(full.total('paper', [s]) for s in ('backbone', 'neck', 'head')) \
        == full.total('paper')
    assert full.total('paper', ['backbone', 'neck']) == PAPER_MACS[arch][1]
    assert full.total('paper', ['backbone']) == PAPER_MACS[arch][2]


@pytest.mark.parametrize('arch', ['s0', 's3'])
def test_parts_built_alone(arch):
    """The backbone and backbone+neck models on their own give the same counts."""
    assert count_revbifpn(arch, 'backbone+neck').total('paper') == PAPER_MACS[arch][1]
    assert count_revbifpn(arch, 'backbone').total('paper') == PAPER_MACS[arch][2]


def test_convention_terms_on_tiny_model():
    """Each counted term on hand-checkable layers, on real (CPU) tensors."""

    class Tiny(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)  # 8x8 out
            self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            x = torch.nn.functional.hardswish(self.bn(self.dw(self.conv(x))))
            x = torch.nn.functional.interpolate(x, scale_factor=2, mode='bilinear')
            x = x + torch.nn.functional.interpolate(x, scale_factor=1, mode='nearest')
            return self.fc(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))

    res = count_model(Tiny(), (1, 3, 8, 8))
    conv = 4 * 64 * 27
    dw = 4 * 64 * 9
    kinds = res.by_kind('paper')
    assert kinds['conv'] == conv + 4 * 64 + dw   # +1 per output of the biased conv
    assert kinds['norm'] == 2 * 4 * 64
    assert kinds['upsample'] == 11 * 4 * 256     # nearest counts nothing
    assert kinds['linear'] == 40
    assert res.total('macs') == conv + dw + 40
    assert res.params[''] == sum(p.numel() for p in Tiny().parameters())


def test_resolution_and_depth_scaling():
    """Counts at other shapes/depths: MACs grow with pixels and with d."""
    a = count_revbifpn('s0', 'backbone', shape=(224, 224))
    b = count_revbifpn('s0', 'backbone', shape=(448, 448))
    assert 3.9 < b.total('macs') / a.total('macs') <= 4.0
    d2 = count_revbifpn('s0', 'backbone', depth=2).total('paper')
    d4 = count_revbifpn('s0', 'backbone', depth=4).total('paper')
    d6 = count_revbifpn('s0', 'backbone', depth=6).total('paper')
    assert d2 == PAPER_MACS['s0'][2]
    assert d6 - d4 == d4 - d2 > 0  # every extra 4-stream make-layer costs the same


def test_count_from_mmpretrain_config():
    """CONFIG path of get_flops: the MMPretrain classifier config counts exactly."""
    pytest.importorskip('mmpretrain')
    from mmengine.config import Config

    from mmrevbifpn.utils.flops import count_config
    cfg = Config(dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmrevbifpn'], allow_failed_imports=False),
        model=dict(type='ImageClassifier', backbone=dict(type='RevBiFPN', arch='s0'),
                   neck=dict(type='MBConvNeck', arch='s0'),
                   head=dict(type='RevBiFPNClsHead', num_classes=1000, arch='s0',
                             loss=dict(type='CrossEntropyLoss')))))
    res = count_config(cfg, (224, 224), device='meta')
    assert res.total('paper') == PAPER_MACS['s0'][0]
    assert res.total('paper', ['backbone', 'neck']) == PAPER_MACS['s0'][1]
    assert res.params[''] == PARAMS['s0']
