"""Per-level MBConv transforms after the RevBiFPN backbone (spec section 5)."""
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from ...registry import MODELS
from ..layers import MBConv
from ..cp import checkpointed
from ..variants import variant


@MODELS.register_module()
class MBConvNeck(BaseModule):
    """One independent MBConv per pyramid level, mapping backbone widths to neck widths.

    Args:
        in_channels (Sequence[int], optional): backbone widths per level.
        out_channels (Sequence[int], optional): neck widths per level.
        arch (str, optional): fill both from a published variant (``'s0'`` ...).
        kernel_size (int): depthwise kernel. Default: 5.
        expand_ratios (Sequence[float]): per level. Default: (1, 2, 2, 2).
        se_ratios (Sequence[float]): per level. Default: (0.25, 0.25, 0.125, 0.125).
        with_cp (bool): gradient-checkpoint each transform (BatchNorm statistics are
            updated once per step). Default: True.
        norm_cfg (dict, optional): normalisation config.
        init_cfg (dict, optional): initialisation config.

    Example:
        >>> neck = MBConvNeck(arch='s0')
        >>> feats = [torch.rand(1, c, s, s) for c, s in zip((48, 64, 80, 160), (56, 28, 14, 7))]
        >>> [tuple(o.shape[:2]) for o in neck(feats)]
        [(1, 48), (1, 64), (1, 128), (1, 320)]
    """

    def __init__(self,
                 in_channels: Optional[Sequence[int]] = None,
                 out_channels: Optional[Sequence[int]] = None,
                 arch: Optional[str] = None,
                 kernel_size: int = 5,
                 expand_ratios: Sequence[float] = (1, 2, 2, 2),
                 se_ratios: Sequence[float] = (0.25, 0.25, 0.125, 0.125),
                 with_cp: bool = True,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch is not None:
            from ..backbones import RevBiFPN
            in_channels = in_channels or RevBiFPN._parse_arch(arch)['channels']
            out_channels = out_channels or variant(arch)['neck_channels']
        if in_channels is None or out_channels is None:
            raise ValueError('MBConvNeck needs in_channels and out_channels, or arch')
        if not (len(in_channels) == len(out_channels) == len(expand_ratios)
                == len(se_ratios)):
            raise ValueError('MBConvNeck: in_channels, out_channels, expand_ratios and '
                             'se_ratios need one value per level, got '
                             f'{list(in_channels)}, {list(out_channels)}, '
                             f'{list(expand_ratios)}, {list(se_ratios)}')
        self.in_channels = tuple(in_channels)
        self.out_channels = tuple(out_channels)
        self.with_cp = with_cp
        self.transforms = nn.ModuleList(
            MBConv(ci, co, kernel_size, e, r, norm_cfg=norm_cfg)
            for ci, co, e, r in zip(in_channels, out_channels, expand_ratios, se_ratios))

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.transforms):
            raise ValueError(f'MBConvNeck has {len(self.transforms)} levels but got '
                             f'{len(inputs)} inputs; build the backbone with '
                             f'out_indices covering all levels')
        for level, (x, c) in enumerate(zip(inputs, self.in_channels)):
            if x.shape[1] != c:
                raise ValueError(f'MBConvNeck level {level} expects {c} channels, got '
                                 f'{x.shape[1]}; set in_channels to the backbone widths')
        return tuple(
            checkpointed(t, x, self.with_cp and self.training)
            for t, x in zip(self.transforms, inputs))
