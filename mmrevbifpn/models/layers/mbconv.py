"""MBConv and its parts (the learnable transforms of RevBiFPN, its neck and head)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormCfg = dict
DEFAULT_NORM_CFG: NormCfg = dict(type='BN', eps=1e-3, momentum=0.1)


def build_norm(norm_cfg: Optional[NormCfg], channels: int) -> nn.Module:
    """Build a normalisation layer from an OpenMMLab ``norm_cfg``.

    Uses mmcv's registry when mmcv is installed (so ``SyncBN``, ``GN``, ... work);
    plain PyTorch ``BN``/``SyncBN`` otherwise, keeping the reversible core usable
    without OpenMMLab.
    """
    cfg = dict(norm_cfg or DEFAULT_NORM_CFG)
    try:
        from mmcv.cnn import build_norm_layer
    except ImportError:
        layer_type = cfg.pop('type')
        cfg.pop('requires_grad', None)
        layers = {'BN': nn.BatchNorm2d, 'BN2d': nn.BatchNorm2d,
                  'SyncBN': nn.SyncBatchNorm}
        if layer_type not in layers:
            raise ValueError(f'norm type {layer_type!r} needs mmcv; without it use '
                             f'one of {sorted(layers)}')
        return layers[layer_type](channels, **cfg)
    return build_norm_layer(cfg, channels)[1]


class ConvNormAct(nn.Module):
    """Bias-free conv, norm, optional Hardswish (``conv``, ``norm``, ``act``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, groups: int = 1, act: bool = True,
                 norm_cfg: Optional[NormCfg] = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=(kernel_size - 1) // 2, groups=groups,
                              bias=False)
        self.norm = build_norm(norm_cfg, out_channels)
        self.act = nn.Hardswish() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Channel gate: mean over H, W -> 1x1 ``reduce`` -> Hardswish -> 1x1 ``expand``
    -> Hardsigmoid, multiplied into the input."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = nn.Hardswish()
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class DropPath(nn.Module):
    """Stochastic depth, per sample: ``x * Bernoulli(1-p) / (1-p)`` in training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f'drop_prob must be in [0, 1), got {drop_prob}')
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class MBConv(nn.Module):
    """Inverted bottleneck without internal skip (RevBiFPN's transform).

    ``[expand 1x1] -> depthwise kxk (stride) -> [SE] -> project 1x1 (no act)
    -> [stochastic depth]``. The SE squeeze width is ``max(1, int(in_channels * se_ratio))``
    (from the block *input* width); ``se_ratio=0`` disables SE.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel (odd).
        expand_ratio: ``mid = int(in_channels * expand_ratio)``; 1 means no expansion.
        se_ratio: squeeze-excite ratio in ``(0, 1]``, or 0.
        stride: depthwise stride.
        drop_path_rate: stochastic-depth probability.
        norm_cfg: normalisation config.

    Example:
        >>> block = MBConv(48, 64, kernel_size=3, expand_ratio=1, se_ratio=0.25, stride=2)
        >>> block(torch.rand(2, 48, 32, 32)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 expand_ratio: float = 1.0, se_ratio: float = 0.0, stride: int = 1,
                 drop_path_rate: float = 0.0,
                 norm_cfg: Optional[NormCfg] = None) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        if not 0.0 <= se_ratio <= 1.0:
            raise ValueError(f'se_ratio must be in [0, 1], got {se_ratio}')
        mid = int(in_channels * expand_ratio)
        self.exp_conv = (ConvNormAct(in_channels, mid, 1, norm_cfg=norm_cfg)
                         if expand_ratio != 1 else None)
        self.dw_conv = ConvNormAct(mid, mid, kernel_size, stride, groups=mid,
                                   norm_cfg=norm_cfg)
        self.se = (SqueezeExcite(mid, max(1, int(in_channels * se_ratio)))
                   if se_ratio > 0 else None)
        self.project_conv = ConvNormAct(mid, out_channels, 1, act=False,
                                        norm_cfg=norm_cfg)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else None

    def forward(self, x: Tensor) -> Tensor:
        if self.exp_conv is not None:
            x = self.exp_conv(x)
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        x = self.project_conv(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        return x


class UpsampledMBConv(MBConv):
    """:class:`MBConv` followed by bilinear upsampling (``align_corners=False``)."""

    def __init__(self, *args, scale_factor: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale_factor = scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(super().forward(x), scale_factor=self.scale_factor,
                             mode='bilinear', align_corners=False)

    def extra_repr(self) -> str:
        return f'scale_factor={self.scale_factor}'
