"""Key mapping from the authors' RevBiFPN checkpoints to this project's layout.

Authors' layout (flat state dict, see ``shared/spec``): ``rev_stack.{k}`` is the stem
(k = 0), then for make-layer ``b`` two StreamBlocks at ``3b-2``, ``3b-1`` and the
RevSilo at ``3b``; the neck is ``rev_stack.recomp_op``; the classifier ``head``.

This project's layout (an MMPretrain ``ImageClassifier``):

* ``backbone.layers.{b-1}.blocks.{0|1}.blocks.{s}.{f|g}.*``
* ``backbone.layers.{b-1}.silo.down.{i}_{j}.*`` (down transform, stream i -> j)
* ``backbone.layers.{b-1}.silo.up.{i}_{j}.*`` (up transform, stream i -> j, i > j)
* ``neck.transforms.{s}.*``
* ``head.pyramid_heads.{h}.*``, ``head.final_conv.*``, ``head.fc.*``

Inside every MBConv only the squeeze-excite names change: ``se.se.1`` -> ``se.reduce``,
``se.se.3`` -> ``se.expand``.
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping, Tuple

_MBCONV_RENAMES = (('.se.se.1.', '.se.reduce.'), ('.se.se.3.', '.se.expand.'))
_STREAM_BLOCK = re.compile(r'^rev_stack\.(\d+)\.rev_transform_(\d+)\.([fg])\.xform_0_1\.(.+)$')
_SILO_DOWN = re.compile(r'^rev_stack\.(\d+)\.f\.xform_(\d+)_(\d+)\.(.+)$')
_SILO_UP = re.compile(r'^rev_stack\.(\d+)\.g\.xform_(\d+)_(\d+)\.0\.(.+)$')
_NECK = re.compile(r'^rev_stack\.recomp_op\.recomp_transform_(\d+)\.(.+)$')
_HEAD = re.compile(r'^head\.(.+)$')
NUM_STREAMS = 4


class ConversionError(ValueError):
    """A source key that has no place in this project's layout."""


def _rename_inner(rest: str) -> str:
    rest = '.' + rest
    for old, new in _MBCONV_RENAMES:
        rest = rest.replace(old, new)
    return rest[1:]


def convert_key(key: str) -> str:
    """Map one authors' key to this project's classifier key.

    Raises:
        ConversionError: the key is not part of the authors' RevBiFPN layout.
    """
    m = _STREAM_BLOCK.match(key)
    if m:
        k, s, fg, rest = int(m[1]), m[2], m[3], m[4]
        if k % 3 == 0:
            raise ConversionError(f'{key}: op {k} is a silo, not a StreamBlocks op')
        b, sub = (k + 2) // 3, (k - 1) % 3
        return f'backbone.layers.{b - 1}.blocks.{sub}.blocks.{s}.{fg}.{_rename_inner(rest)}'
    m = _SILO_UP.match(key)
    if m:
        k, a, c, rest = int(m[1]), int(m[2]), int(m[3]), m[4]
        if k % 3 or k == 0:
            raise ConversionError(f'{key}: op {k} is not a silo')
        b = k // 3
        n = min(b + 1, NUM_STREAMS)  # streams after this silo
        return f'backbone.layers.{b - 1}.silo.up.{n - 1 - a}_{n - 1 - c}.{_rename_inner(rest)}'
    m = _SILO_DOWN.match(key)
    if m:
        k, i, j, rest = int(m[1]), m[2], m[3], m[4]
        if k % 3 or k == 0:
            raise ConversionError(f'{key}: op {k} is not a silo')
        return f'backbone.layers.{k // 3 - 1}.silo.down.{i}_{j}.{_rename_inner(rest)}'
    m = _NECK.match(key)
    if m:
        return f'neck.transforms.{m[1]}.{_rename_inner(m[2])}'
    m = _HEAD.match(key)
    if m:
        return f'head.{_rename_inner(m[1])}'
    raise ConversionError(f'{key}: not a key of the authors\' RevBiFPN layout')


def unwrap_state_dict(checkpoint: Mapping) -> Mapping:
    """The flat state dict of an authors' checkpoint (bare, or under
    ``state_dict``/``model``), with any ``module.`` (DataParallel) prefix removed."""
    for wrapper in ('state_dict', 'model'):
        if wrapper in checkpoint and isinstance(checkpoint[wrapper], Mapping):
            checkpoint = checkpoint[wrapper]
            break
    if all(k.startswith('module.') for k in checkpoint):
        checkpoint = OrderedDict((k[len('module.'):], v) for k, v in checkpoint.items())
    return checkpoint


def convert_state_dict(state_dict: Mapping) -> Tuple['OrderedDict', Dict[str, str]]:
    """Convert every key; returns (converted state dict, {source key: new key}).

    Raises:
        ConversionError: listing every key that could not be mapped.
    """
    out, mapping, bad = OrderedDict(), {}, []
    for key, value in state_dict.items():
        try:
            new = convert_key(key)
        except ConversionError as e:
            bad.append(str(e))
            continue
        out[new] = value
        mapping[key] = new
    if bad:
        shown = '\n  '.join(bad[:10])
        more = f'\n  ... and {len(bad) - 10} more' if len(bad) > 10 else ''
        raise ConversionError(
            f'{len(bad)} of {len(state_dict)} keys are not RevBiFPN keys (is this an '
            f'authors\' RevBiFPN checkpoint?):\n  {shown}{more}')
    return out, mapping
