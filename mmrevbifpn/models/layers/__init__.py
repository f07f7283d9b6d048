from .mbconv import (ConvNormAct, DropPath, MBConv, SqueezeExcite,
                     UpsampledMBConv, build_norm)

__all__ = ['ConvNormAct', 'DropPath', 'MBConv', 'SqueezeExcite',
           'UpsampledMBConv', 'build_norm']
