"""The requantizers fused into one compiled pass each (numba), for the reference's hot
path: ``clamp(round((acc*M + b*M_b + B) / 2^s), lo, hi)`` per channel, reading the
accumulator as int64 (an exact float product is integer-valued, so the conversion is
exact) and writing int64 or the layer's narrow code type, on one thread (a parallel pass
competed with BLAS's threads between the matrix products: 4-9x slower measured in a
ResNet18 run). The same integers as
:func:`cimstack.ref.requant.requantize` and :func:`cimstack.ref.network.host_requant`
(tests); their NumPy forms are the definition and the fallback without numba.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:          # pragma: no cover - numba not installed
    njit = None

AVAILABLE = njit is not None
ROUNDING = {"half_up": 0, "half_even": 1, "floor": 2}      # codes of shift_round's modes


if AVAILABLE:
    @njit(inline="always")
    def _round_shift(y, shift, mode):                        # pragma: no cover - compiled
        """``round(y / 2^shift)`` as :func:`cimstack.ref.requant.shift_round`."""
        if shift == 0:
            return y
        if mode == 0:
            return (y + (np.int64(1) << (shift - 1))) >> shift
        q = y >> shift
        if mode == 1:
            rest = y - (q << shift)
            half = np.int64(1) << (shift - 1)
            if rest > half or (rest == half and q & 1 == 1):
                q += 1
        return q

    @njit(cache=True, nogil=True)
    def _macro_rows(acc, multiplier, bias, shift, lo, hi, out):  # pragma: no cover
        for v in range(acc.shape[0]):
            for n in range(acc.shape[1]):
                y = np.int64(acc[v, n]) * multiplier[n] + bias[n]
                out[v, n] = min(max(_round_shift(y, shift, 0), lo), hi)

    @njit(cache=True, nogil=True)
    def _host_planes(a, b, multiplier, multiplier_b, bias, shift, mode, lo, hi,
                     out):                                   # pragma: no cover - compiled
        for i in range(a.shape[0]):
            for c in range(a.shape[1]):
                for p in range(a.shape[2]):
                    y = np.int64(a[i, c, p]) * multiplier[c] + bias[c]
                    if b.shape[0]:
                        y += np.int64(b[i, c, p]) * multiplier_b[c]
                    out[i, c, p] = min(max(_round_shift(y, shift, mode), lo), hi)


def _per_channel(values, n: int) -> np.ndarray:
    """``values`` (one per channel, or one for all) as n contiguous int64."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, np.int64).reshape(-1),
                                                (n,)))


def requantize_half_up(acc: np.ndarray, multiplier: np.ndarray, bias: np.ndarray,
                       shift: int, lo: int, hi: int, dtype: type = np.int64) -> np.ndarray:
    """The macros' requantizer (``half_up``) of a 2-D [V, N] accumulator, channels on
    the last axis, in one pass; as ``dtype`` (int64, or one that holds [lo, hi]). Needs
    numba (:data:`AVAILABLE`)."""
    out = np.empty(acc.shape, dtype)
    n = acc.shape[1]
    _macro_rows(np.ascontiguousarray(acc), _per_channel(multiplier, n),
                _per_channel(bias, n), np.int64(shift), np.int64(lo), np.int64(hi), out)
    return out


def host_requantize(a: np.ndarray, multiplier: np.ndarray, bias: np.ndarray, shift: int,
                    rounding: str, lo: int, hi: int, b: np.ndarray | None = None,
                    multiplier_b: np.ndarray | None = None) -> np.ndarray:
    """A host node's requantizer on [B, C, ...] (channels on axis 1), with an optional
    second operand ``b`` of the same shape (a residual add), in one pass; int64 of
    ``a``'s shape. Needs numba (:data:`AVAILABLE`)."""
    shape = a.shape
    planes = (shape[0], shape[1], -1)
    a3 = np.ascontiguousarray(a).reshape(planes)
    b3 = (np.ascontiguousarray(b).reshape(planes) if b is not None
          else np.zeros((0, 0, 0), a3.dtype))
    c = shape[1]
    mb = _per_channel(multiplier_b, c) if b is not None else np.zeros(0, np.int64)
    out = np.empty(a3.shape, np.int64)
    _host_planes(a3, b3, _per_channel(multiplier, c), mb, _per_channel(bias, c),
                 np.int64(shift), np.int64(ROUNDING[rounding]), np.int64(lo), np.int64(hi),
                 out)
    return out.reshape(shape)
