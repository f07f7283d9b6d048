"""mmrevbifpn: RevBiFPN for MMDetection, MMPretrain and MMSegmentation.

Importing the package registers ``RevBiFPN``, ``MBConvNeck`` and ``RevBiFPNClsHead``;
in a config use ``custom_imports=dict(imports=['mmrevbifpn'], allow_failed_imports=False)``.
"""
from . import engine  # noqa: F401  (registers ReconstructionCheckHook)
from .models import MBConvNeck, RevBiFPN, RevBiFPNClsHead
from .version import __version__

__all__ = ['MBConvNeck', 'RevBiFPN', 'RevBiFPNClsHead', '__version__']
