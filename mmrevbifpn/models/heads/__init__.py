from .revbifpn_head import RevBiFPNClsHead

__all__ = ['RevBiFPNClsHead']
