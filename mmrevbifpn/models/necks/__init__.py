from .mbconv_neck import MBConvNeck

__all__ = ['MBConvNeck']
