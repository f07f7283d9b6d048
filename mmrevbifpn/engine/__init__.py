"""MMEngine integration: the opt-in reconstruction (drift) check."""
from .hooks import ReconstructionCheckHook
from .reconstruction import ReconstructionError, reconstruct_input, reconstruction_error

__all__ = ['ReconstructionCheckHook', 'ReconstructionError', 'reconstruct_input',
           'reconstruction_error']
