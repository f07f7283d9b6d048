from .revbifpn import RevBiFPN

__all__ = ['RevBiFPN']
