from .reconstruction_check_hook import ReconstructionCheckHook
from .rng_state_hook import RNGStateHook

__all__ = ['RNGStateHook', 'ReconstructionCheckHook']
