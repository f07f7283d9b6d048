"""Registries: models are registered in MMEngine's root ``MODELS``, which the
MMDetection, MMPretrain and MMSegmentation registries fall back to."""
from mmengine.registry import MODELS

__all__ = ['MODELS']
