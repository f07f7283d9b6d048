"""Neck and classification-head widths of the published variants (spec section 4.1).

Widths scale as ``int(m * base) // 16 * 16`` with exact width multipliers ``m``.
"""
from fractions import Fraction
from typing import Dict

WIDTH_MULTIPLIERS = {
    's0': Fraction(1), 's1': Fraction(4, 3), 's2': Fraction(2), 's3': Fraction(8, 3),
    's4': Fraction(4), 's5': Fraction(16, 3), 's6': Fraction(20, 3)
}
NECK_BASE = (48, 64, 128, 320)
FC_BASE = 1280


def _scale(m: Fraction, base: int) -> int:
    return int(float(m) * base) // 16 * 16


VARIANTS: Dict[str, dict] = {
    name: dict(
        neck_channels=tuple(_scale(m, c) for c in NECK_BASE),
        fc_channels=_scale(m, FC_BASE),
    )
    for name, m in WIDTH_MULTIPLIERS.items()
}
# Recipe values of paper Tables 6 and 7 that the head and data pipeline need.
for _name, _res, _drop in [('s0', 224, 0.25), ('s1', 256, 0.25), ('s2', 256, 0.3),
                           ('s3', 288, 0.3), ('s4', 320, 0.4), ('s5', 352, 0.4),
                           ('s6', 352, 0.6)]:
    VARIANTS[_name].update(resolution=_res, dropout=_drop)


def variant(name: str) -> dict:
    key = name.lower() if isinstance(name, str) else name
    if key not in VARIANTS:
        raise ValueError(f'Unknown RevBiFPN variant {name!r}; choose one of {sorted(VARIANTS)}')
    return dict(VARIANTS[key])
