"""The classification model in this project's layout, for checking checkpoints."""
from typing import Dict, Tuple

import torch
from torch import nn

from ..models import MBConvNeck, RevBiFPN, RevBiFPNClsHead


def build_classifier_parts(arch: str, num_classes: int = 1000) -> nn.Module:
    """``backbone``/``neck``/``head`` of a published variant, as one module whose
    ``state_dict`` keys equal those of the MMPretrain classifier config."""
    model = nn.Module()
    model.backbone = RevBiFPN(arch)
    model.neck = MBConvNeck(arch=arch)
    model.head = RevBiFPNClsHead(num_classes, arch=arch)
    return model


def expected_shapes(arch: str, num_classes: int = 1000) -> Dict[str, Tuple[int, ...]]:
    with torch.device('meta'):
        model = build_classifier_parts(arch, num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
