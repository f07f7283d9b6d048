"""RevBiFPN backbone (Chiley et al. 2022, arXiv 2206.14098)."""
import copy
import math
import numbers
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ...registry import MODELS
from ...reversible import (RevBlock, RevSilo, ReversibleModule,
                           SpaceToDepthStem, StreamBlocks, is_stochastic,
                           reversible_forward)
from ..cp import checkpoint_once_norm
from ..layers import MBConv, UpsampledMBConv

NUM_STREAMS = 4
STEM_BLOCK = 4
# Per-stream settings shared by all published variants (spec section 4.2).
_STREAM_SETTINGS = dict(
    kernel_sizes=(3, 5, 5, 3),
    kernel_pads=(0, 0, 0, 2),
    expand_ratios=(1, 1, 2, 2),
    se_ratios=(0.25, 0.25, 0.125, 0.0),
)


def _arch(channels, depth, drop_path_rate):
    return dict(channels=channels, depth=depth, drop_path_rate=drop_path_rate,
                **_STREAM_SETTINGS)


@MODELS.register_module()
class RevBiFPN(BaseModule):
    """RevBiFPN: the fully reversible bidirectional feature pyramid network.

    A SpaceToDepth stem, then ``3 + depth`` make-layers of two reversible residual
    blocks per stream and one RevSilo (the first three grow the pyramid from 1 to 4
    streams). Every operation is invertible, so in training the backbone stores only
    its output pyramid and recomputes everything else by inversion in the backward
    pass: activation memory does not grow with depth. (The recompute also reuses the
    forward's BatchNorm batch statistics, kept within 1 % of the pyramid.)

    Args:
        arch (str | dict): ``'s0'`` ... ``'s6'`` or a dict with the keys of
            :attr:`arch_settings` entries: ``channels`` (4 widths, multiples of 16 for
            stream 0 and even), ``depth`` (extra 4-stream make-layers, >= 0),
            ``kernel_sizes``, ``kernel_pads``, ``expand_ratios``, ``se_ratios``
            (4 values each) and ``drop_path_rate``.
        in_channels (int): image channels. Default: 3.
        out_indices (Sequence[int]): pyramid levels to return (0 = stride 4).
        frozen_stages (int): -1 freezes nothing; ``k >= 1`` freezes make-layers
            ``1..k`` (stage 0 is the parameter-free stem).
        norm_eval (bool): keep BatchNorm layers in eval mode during training.
        drop_path_rate (float, optional): maximum stochastic-depth rate, reached in
            the last make-layer; defaults to the arch's.
        reversible (bool): back-propagate by inversion (default). False runs plain
            autograd with the same weights, for comparison and debugging.
        with_cp (bool): with ``reversible=False``, checkpoint each make-layer
            (``torch.utils.checkpoint``), the usual memory-saving alternative.
        recompute_updates_norm (bool): let BatchNorm update its running statistics
            again during reversible recomputation, as the authors' code does (two
            updates per step; the recompute then computes its batch statistics
            again instead of reusing the forward's). Default False: one update per
            step, identical to plain autograd.
        norm_cfg (dict): normalisation layers. Default: BN with eps 1e-3,
            momentum 0.1.
        init_cfg (dict | list[dict], optional): initialisation config; ``None``
            gives the reference initialisation (Kaiming-normal fan-out convs, unit BN).

    Example:
        >>> import torch
        >>> from mmrevbifpn.models import RevBiFPN
        >>> model = RevBiFPN(arch='s0').eval()
        >>> feats = model(torch.rand(1, 3, 224, 224))
        >>> [tuple(f.shape) for f in feats]
        [(1, 48, 56, 56), (1, 64, 28, 28), (1, 80, 14, 14), (1, 160, 7, 7)]
    """
    arch_settings: Dict[str, dict] = {
        's0': _arch((48, 64, 80, 160), 2, 0.0),
        's1': _arch((64, 80, 96, 208), 2, 0.0),
        's2': _arch((96, 128, 160, 320), 2, 0.0),
        's3': _arch((128, 160, 208, 416), 3, 0.05),
        's4': _arch((192, 256, 320, 640), 4, 0.1),
        's5': _arch((256, 336, 416, 848), 4, 0.1),
        's6': _arch((320, 416, 528, 1056), 5, 0.3),
    }
    size_divisor = STEM_BLOCK * 2**(NUM_STREAMS - 1)

    def __init__(self,
                 arch: Union[str, dict] = 's0',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: Optional[float] = None,
                 reversible: bool = True,
                 with_cp: bool = False,
                 recompute_updates_norm: bool = False,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = self._parse_arch(arch)
        if drop_path_rate is None:
            drop_path_rate = self.arch['drop_path_rate']
        if not (_is_number(drop_path_rate) and 0.0 <= drop_path_rate < 1.0):
            raise ValueError(f'drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}')
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        if self.arch['channels'][0] < STEM_BLOCK**2 * in_channels:
            raise ValueError(
                f"arch channels[0]={self.arch['channels'][0]} is too small for "
                f'in_channels={in_channels}: the stem stacks channels[0]/{STEM_BLOCK**2} '
                'copies of the image channels, which must include every image channel '
                f'to be invertible; use channels[0] >= {STEM_BLOCK**2 * in_channels}.')
        self.in_channels = in_channels
        self.channels = tuple(self.arch['channels'])
        self.num_layers = NUM_STREAMS - 1 + self.arch['depth']
        self.out_indices = self._check_out_indices(out_indices)
        if not (isinstance(frozen_stages, int)
                and -1 <= frozen_stages <= self.num_layers):
            raise ValueError(
                f'frozen_stages must be an int in [-1, {self.num_layers}] (-1: none, '
                f'0: stem, k: stem and make-layers 1..k), got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.reversible = reversible
        self.with_cp = with_cp
        self.recompute_updates_norm = recompute_updates_norm
        self.drop_path_rate = drop_path_rate

        self.stem = SpaceToDepthStem(in_channels, self.channels[0] // STEM_BLOCK**2,
                                     STEM_BLOCK)
        self.layers = nn.ModuleList(
            self._make_layer(b, drop_path_rate * b / self.num_layers, norm_cfg)
            for b in range(1, self.num_layers + 1))
        self._freeze_stages()

    # ------------------------------------------------------------------ config
    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise ValueError(f'Unknown RevBiFPN arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_settings)} or pass a dict.')
            return copy.deepcopy(cls.arch_settings[key])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or dict, got {type(arch).__name__}')
        required = set(cls.arch_settings['s0'])
        missing, unknown = required - set(arch), set(arch) - required
        if missing or unknown:
            raise ValueError(
                'Custom RevBiFPN arch dict must have exactly the keys '
                f'{sorted(required)}; missing {sorted(missing)}, unknown '
                f'{sorted(unknown)}. Start from a preset, e.g. '
                "dict(RevBiFPN.arch_settings['s0'], depth=8).")
        arch = copy.deepcopy(dict(arch))
        for key in ('channels', 'kernel_sizes', 'kernel_pads', 'expand_ratios',
                    'se_ratios'):
            if not isinstance(arch[key], (list, tuple)) or len(arch[key]) != NUM_STREAMS:
                raise ValueError(f'arch[{key!r}] needs {NUM_STREAMS} values (one per '
                                 f'stream), got {arch[key]!r}')
        ch = arch['channels']
        if not all(isinstance(c, int) and c > 0 and c % 2 == 0 for c in ch):
            raise ValueError(f'arch channels must be positive even ints, got {ch!r}')
        if ch[0] % STEM_BLOCK**2:
            raise ValueError(
                f'arch channels[0] must be a multiple of {STEM_BLOCK**2} (the stem '
                f'stacks channels[0]/{STEM_BLOCK**2} image channels and applies '
                f'SpaceToDepth({STEM_BLOCK})), got {ch[0]}')
        if not (isinstance(arch['depth'], int) and arch['depth'] >= 0):
            raise ValueError(f"arch depth must be an int >= 0, got {arch['depth']!r}")
        for k, p in zip(arch['kernel_sizes'], arch['kernel_pads']):
            if not (isinstance(k, int) and isinstance(p, int) and k > 0 and p >= 0
                    and (k + p) % 2 == 1 and (3 + p) % 2 == 1):
                raise ValueError(
                    'arch kernel_sizes must be positive odd ints and kernel_pads even '
                    f"ints >= 0, got {arch['kernel_sizes']!r} / {arch['kernel_pads']!r}")
        ratios = arch['expand_ratios']
        for e in ratios:
            if not (_is_number(e) and math.isfinite(e) and e > 0):
                raise ValueError(f'arch expand_ratios must be finite numbers > 0, got {ratios!r}')
        # every MBConv needs a hidden width int(in_channels * ratio) >= 1: RevBlock
        # halves (ch[s]/2, ratio[s]), down (ch[i], ratio[i]), up i -> j (ch[i], ratio[j])
        widths = [(ch[s] // 2, ratios[s]) for s in range(NUM_STREAMS)] + [
            (ch[i], ratios[j]) for i in range(NUM_STREAMS) for j in range(i)]
        for c, e in widths:
            if int(c * e) < 1:
                raise ValueError(
                    f'arch expand_ratios {ratios!r} too small for channels {ch!r}: an '
                    f'MBConv with {c} input channels and expand ratio {e} would have '
                    f'int({c} * {e}) = 0 hidden channels')
        for r in arch['se_ratios']:
            if not (_is_number(r) and 0 <= r <= 1):
                raise ValueError(f"arch se_ratios must be numbers in [0, 1], got {arch['se_ratios']!r}")
        dpr = arch['drop_path_rate']
        if not (_is_number(dpr) and 0.0 <= dpr < 1.0):
            raise ValueError(f'arch drop_path_rate must be a number in [0, 1), got {dpr!r}')
        return arch

    @staticmethod
    def _check_out_indices(out_indices: Sequence[int]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        if not out_indices or not all(
                isinstance(i, int) and 0 <= i < NUM_STREAMS for i in out_indices):
            raise ValueError(f'out_indices must be non-empty ints in [0, {NUM_STREAMS - 1}] '
                             f'(0 = stride 4 ... 3 = stride 32), got {out_indices!r}')
        return out_indices

    # ------------------------------------------------------------------- build
    def _make_layer(self, b: int, p_sd: float, norm_cfg) -> nn.Module:
        """Make-layer ``b``: two StreamBlocks then a RevSilo."""
        a = self.arch
        n_in = min(b, NUM_STREAMS)
        n_out = min(b + 1, NUM_STREAMS)
        ch = self.channels

        def rev_block(s: int) -> RevBlock:
            c = ch[s]
            kw = dict(kernel_size=a['kernel_sizes'][s] + a['kernel_pads'][s],
                      expand_ratio=a['expand_ratios'][s], se_ratio=a['se_ratios'][s],
                      drop_path_rate=p_sd, norm_cfg=norm_cfg)
            return RevBlock(MBConv(c - c // 2, c // 2, **kw),
                            MBConv(c // 2, c - c // 2, **kw))

        down, up = {}, {}
        for i in range(n_in):
            for j in range(i + 1, n_out):
                stride = 2**(j - i)
                down[(i, j)] = MBConv(
                    ch[i], ch[j], kernel_size=2 * stride - 1 + a['kernel_pads'][i],
                    expand_ratio=a['expand_ratios'][i], se_ratio=a['se_ratios'][i],
                    stride=stride, drop_path_rate=0.0 if j >= n_in else p_sd,
                    norm_cfg=norm_cfg)
        for i in range(n_out - 1, 0, -1):
            for j in range(i - 1, -1, -1):
                up[(i, j)] = UpsampledMBConv(
                    ch[i], ch[j], kernel_size=3 + a['kernel_pads'][i],
                    expand_ratio=a['expand_ratios'][j], se_ratio=a['se_ratios'][j],
                    drop_path_rate=p_sd, norm_cfg=norm_cfg,
                    scale_factor=2**(i - j))
        layer = nn.Module()
        layer.blocks = nn.ModuleList(
            StreamBlocks([rev_block(s) for s in range(n_in)]) for _ in range(2))
        layer.silo = RevSilo(down, up, n_in, n_out)
        return layer

    @property
    def ops(self) -> List[ReversibleModule]:
        """The reversible op sequence: stem, then per make-layer 2 StreamBlocks + silo."""
        ops: List[ReversibleModule] = [self.stem]
        for layer in self.layers:
            ops.extend([*layer.blocks, layer.silo])
        return ops

    # ----------------------------------------------------------------- forward
    def check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError('RevBiFPN expects an N x C x H x W tensor, got '
                             f'{tuple(x.shape) if isinstance(x, Tensor) else type(x)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'RevBiFPN was built with in_channels={self.in_channels} but the input '
                f'has {x.shape[1]} channels; convert the images or set in_channels.')
        h, w = x.shape[-2:]
        d = self.size_divisor
        if h % d or w % d or not h or not w:
            raise ValueError(
                f'RevBiFPN needs H and W to be positive multiples of {d}, got {h}x{w}. '
                f'Pad or resize the input (e.g. to {max(-(-h // d), 1) * d}x'
                f'{max(-(-w // d), 1) * d}); in MMDetection set pad_size_divisor={d} '
                'in the data preprocessor.')
        if not x.is_floating_point():
            raise ValueError(f'RevBiFPN expects a floating-point input, got {x.dtype}; '
                             'normalise the images first (the data preprocessor does).')
        param = next(self.parameters(), None)
        if param is not None and x.device != param.device:
            raise ValueError(f'the input is on {x.device} but RevBiFPN is on {param.device}')
        if param is not None and x.dtype != param.dtype and (
                x.dtype == torch.float64  # autocast does not cast float64
                or not torch.is_autocast_enabled(x.device.type)):
            raise ValueError(f'the input is {x.dtype} but RevBiFPN is {param.dtype}; cast '
                             'one to the other (or run under torch.autocast)')
        if x.shape[0] * (h // d) * (w // d) == 1 and any(
                isinstance(m, _BatchNorm) and m.training for m in self.modules()):
            raise ValueError(
                f'a single {h}x{w} image gives training-mode BatchNorm one value per '
                f'channel at stride {d}: use a batch of 2 or more, larger images, '
                'norm_eval=True or eval mode.')

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        self.check_input(x)
        if self.reversible:
            outs = reversible_forward(self.ops, [x], self.recompute_updates_norm)
        elif self.with_cp and torch.is_grad_enabled() and self.training:
            outs = [x]
            for op_group in self._checkpoint_groups():
                outs = checkpoint_once_norm(_run_ops, op_group, *outs, modules=op_group)
                outs = list(outs)
        else:
            outs = _run_ops(self.ops, x)
        return tuple(outs[i] for i in self.out_indices)

    def _checkpoint_groups(self) -> List[List[ReversibleModule]]:
        ops = self.ops
        return [ops[:4]] + [ops[k:k + 3] for k in range(4, len(ops), 3)]

    def inverse(self, feats: Sequence[Tensor]) -> Tensor:
        """Reconstruct the input image from the full output pyramid (all 4 levels).

        The model must be in the mode of the forward that produced ``feats``. A
        training-mode forward with stochastic depth drew random masks that only the
        backward pass replays, so it cannot be inverted here: use ``eval()`` outputs
        or ``drop_path_rate=0``.
        """
        if len(feats) != NUM_STREAMS:
            raise ValueError(f'inverse needs all {NUM_STREAMS} pyramid levels '
                             '(build with out_indices=(0, 1, 2, 3))')
        if any(is_stochastic(layer) for layer in self.layers):
            raise ValueError(
                'RevBiFPN.inverse cannot replay the stochastic-depth masks of a '
                'training-mode forward; invert outputs of model.eval(), or build '
                'with drop_path_rate=0.')
        xs = list(feats)
        with torch.no_grad():
            for op in reversed(self.ops):
                xs = op.inverse(xs)
        return xs[0]

    # ------------------------------------------------------------ train / init
    def _freeze_stages(self) -> None:
        for layer in self.layers[:max(self.frozen_stages, 0)]:
            layer.eval()
            for p in layer.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'RevBiFPN':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def init_weights(self) -> None:
        if self.init_cfg is not None:
            super().init_weights()
            return
        reference_init(self)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def reference_init(module: nn.Module) -> None:
    """The authors' initialisation: Kaiming-normal (fan-out) convs, zero conv bias,
    unit/zero BatchNorm; Linear layers keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


def _run_ops(ops, *xs):
    xs = list(xs)
    for op in ops:
        xs = op(xs)
    return tuple(xs)
