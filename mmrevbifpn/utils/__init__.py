from .checkpoint_conversion import (ConversionError, convert_key,
                                    convert_state_dict, unwrap_state_dict)
from .memory import SavedTensorMeter, backbone_saved_bytes, tensor_bytes

__all__ = ['ConversionError', 'SavedTensorMeter', 'backbone_saved_bytes',
           'convert_key', 'convert_state_dict', 'tensor_bytes', 'unwrap_state_dict']
