"""Reversible machinery: couplings, RevBlock, RevSilo, the invertible stem and the
autograd Function that back-propagates by inversion. Pure PyTorch."""
from .base import GradSink, ReversibleModule
from .blocks import RevBlock, StreamBlocks
from .coupling import AdditiveCoupling
from .facts import ModuleFacts, module_facts
from .function import ReversibleFunction, reversible_forward, saved_bytes
from .norm_stats import BatchStats
from .replay import Replay
from .silo import RevSilo
from .state import AutocastState, RNGState, frozen_norm_stats, is_stochastic
from .stem import SpaceToDepthStem, depth_to_space, space_to_depth

__all__ = [
    'AdditiveCoupling', 'AutocastState', 'BatchStats', 'GradSink', 'ModuleFacts',
    'RNGState', 'Replay',
    'RevBlock', 'RevSilo', 'ReversibleFunction', 'ReversibleModule',
    'SpaceToDepthStem', 'StreamBlocks', 'depth_to_space', 'frozen_norm_stats',
    'is_stochastic', 'module_facts', 'reversible_forward', 'saved_bytes', 'space_to_depth'
]
