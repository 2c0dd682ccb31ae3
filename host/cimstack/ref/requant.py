"""The integer requantizer shared by every macro family (docs/macros.md)."""

from __future__ import annotations

import numpy as np


def requantize(acc: np.ndarray, multiplier: np.ndarray, bias: np.ndarray, shift: int,
               lo: int, hi: int) -> np.ndarray:
    """``clamp((acc*M + B + r) >> shift, lo, hi)`` per channel (last axis), int64.

    ``r = 2^(shift-1)`` (round half up) when ``shift > 0``; ``>>`` floors.
    """
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    y = np.asarray(acc, np.int64) * np.asarray(multiplier, np.int64)
    y += np.asarray(bias, np.int64) + rounding
    np.right_shift(y, shift, out=y)
    return np.clip(y, lo, hi, out=y)
