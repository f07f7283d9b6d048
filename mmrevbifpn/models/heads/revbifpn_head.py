"""The RevBiFPN classification head (paper Fig. 13, spec section 6)."""
from typing import Optional, Sequence

from torch import Tensor, nn

from ...registry import MODELS
from ..layers import ConvNormAct, MBConv
from ..cp import checkpointed
from ..variants import variant

try:
    from mmpretrain.models.heads import ClsHead
except ImportError:  # the head is usable without mmpretrain, minus loss/predict
    from mmengine.model import BaseModule as ClsHead

    _HAS_MMPRETRAIN = False
else:
    _HAS_MMPRETRAIN = True


@MODELS.register_module()
class RevBiFPNClsHead(ClsHead):
    """Fuse the pyramid from high to low resolution, then 1x1 conv, pool, dropout, fc.

    ``out = n_0``; for each level ``h``: ``out = n_{h+1} + PH_h(out)`` with ``PH_h`` a
    stride-2 MBConv; then ``final_conv`` (1x1, BN, Hardswish) to ``fc_channels``,
    global average pooling, dropout and a linear classifier.

    Args:
        num_classes (int): number of classes.
        in_channels (Sequence[int], optional): neck widths per level.
        fc_channels (int, optional): width of the 1x1 conv before pooling.
        arch (str, optional): fill ``in_channels``, ``fc_channels`` and ``dropout``
            from a published variant.
        dropout (float, optional): dropout before ``fc``. Default: the arch's, else 0.
        kernel_size (int): depthwise kernel of the fusion blocks. Default: 5.
        expand_ratios / se_ratios (Sequence[float]): per fusion block.
        with_cp (bool): checkpoint the fusion blocks and ``final_conv`` so the head
            stores almost nothing for backward. Default: True.
        norm_cfg (dict, optional): normalisation config.
        **kwargs: ``loss``, ``topk``, ``cal_acc``, ``init_cfg`` of mmpretrain's
            ``ClsHead``.

    Example:
        >>> head = RevBiFPNClsHead(num_classes=1000, arch='s0')
        >>> feats = [torch.rand(1, c, s, s) for c, s in zip((48, 64, 128, 320), (56, 28, 14, 7))]
        >>> head(feats).shape
        torch.Size([1, 1000])
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Optional[Sequence[int]] = None,
                 fc_channels: Optional[int] = None,
                 arch: Optional[str] = None,
                 dropout: Optional[float] = None,
                 kernel_size: int = 5,
                 expand_ratios: Sequence[float] = (1, 2, 2),
                 se_ratios: Sequence[float] = (0.25, 0.25, 0.125),
                 with_cp: bool = True,
                 norm_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if not _HAS_MMPRETRAIN:
            kwargs = dict(init_cfg=kwargs.get('init_cfg'))
        super().__init__(**kwargs)
        if arch is not None:
            v = variant(arch)
            in_channels = in_channels or v['neck_channels']
            fc_channels = fc_channels or v['fc_channels']
            dropout = v['dropout'] if dropout is None else dropout
        if in_channels is None or fc_channels is None:
            raise ValueError('RevBiFPNClsHead needs in_channels and fc_channels, or arch')
        if len(in_channels) - 1 != len(expand_ratios) or len(expand_ratios) != len(se_ratios):
            raise ValueError('RevBiFPNClsHead needs len(in_channels) - 1 expand_ratios '
                             'and se_ratios (one per fusion block)')
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        self.num_classes = num_classes
        self.in_channels = tuple(in_channels)
        self.with_cp = with_cp
        self.pyramid_heads = nn.ModuleList(
            MBConv(in_channels[h], in_channels[h + 1], kernel_size, expand_ratios[h],
                   se_ratios[h], stride=2, norm_cfg=norm_cfg)
            for h in range(len(in_channels) - 1))
        self.final_conv = ConvNormAct(in_channels[-1], fc_channels, 1, norm_cfg=norm_cfg)
        self.dropout = nn.Dropout(dropout or 0.0)
        self.fc = nn.Linear(fc_channels, num_classes)

    def pre_logits(self, feats: Sequence[Tensor]) -> Tensor:
        if len(feats) != len(self.in_channels):
            raise ValueError(f'RevBiFPNClsHead expects {len(self.in_channels)} levels, '
                             f'got {len(feats)}')
        cp = self.with_cp and self.training
        out = feats[0]
        for block, feat in zip(self.pyramid_heads, feats[1:]):
            out = feat + checkpointed(block, out, cp)
        out = checkpointed(self.final_conv, out, cp)
        return out.mean((2, 3))

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        return self.fc(self.dropout(self.pre_logits(feats)))
