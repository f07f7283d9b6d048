"""The network built on the reversible core: MBConv blocks, backbone, neck, head."""
from .backbones import RevBiFPN
from .heads import RevBiFPNClsHead
from .layers import MBConv
from .necks import MBConvNeck
from .variants import VARIANTS, variant

__all__ = ['MBConv', 'MBConvNeck', 'RevBiFPN', 'RevBiFPNClsHead', 'VARIANTS', 'variant']
