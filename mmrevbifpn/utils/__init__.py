from .checkpoint_conversion import (ConversionError, convert_key,
                                    convert_state_dict, unwrap_state_dict)

__all__ = ['ConversionError', 'convert_key', 'convert_state_dict', 'unwrap_state_dict']
