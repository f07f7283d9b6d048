from .reconstruction_check_hook import ReconstructionCheckHook

__all__ = ['ReconstructionCheckHook']
