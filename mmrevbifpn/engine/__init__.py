"""MMEngine integration: the opt-in reconstruction (drift) check and exact resume."""
from .hooks import ReconstructionCheckHook, RNGStateHook
from .reconstruction import ReconstructionError, reconstruct_input, reconstruction_error

__all__ = ['RNGStateHook', 'ReconstructionCheckHook', 'ReconstructionError',
           'reconstruct_input', 'reconstruction_error']
