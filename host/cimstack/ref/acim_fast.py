"""The analog reference's ADC-per-input-bit back end, fused and compiled with numba.

:func:`per_bit_codes` computes the same integers as the NumPy back end of
:mod:`cimstack.ref.acim` (tests/test_acim_per_bit.py) in one pass over the bit-plane
dot products: for each output it draws the noise integer of every input bit (the
generator of :mod:`.prng`, uint64 arithmetic wrapping as in C), converts, shift-adds
the centred codes and applies the back end's offset and clip, so none of the
[x_bits, V, N] intermediates (states, noise, numerators, codes) is ever stored. The kernels are
single-threaded on purpose: the bit-plane product before them runs on all cores in
BLAS, whose worker threads keep spinning after it returns, and a numba thread pool
started next to them on a two-core machine made the whole call several times slower.
Optional: without numba the reference runs the NumPy path.
"""

from __future__ import annotations

import numpy as np

from . import prng

try:
    from numba import njit
except ImportError:          # pragma: no cover - numba not installed
    njit = None

AVAILABLE = njit is not None

_U = np.uint64
_GOLDEN = _U(prng.GOLDEN)
_MIX1 = _U(prng.MIX1)
_MIX2 = _U(prng.MIX2)


if AVAILABLE:
    @njit(cache=True, nogil=True)
    def _irwin_hall_sum(z):                           # pragma: no cover - compiled
        # prng.normal_m without the final 2 * sum - 372: mix64 of the state z, then the
        # twelve 5-bit fields summed with the same SWAR steps (six 10-bit lanes, one
        # multiply that adds them into bits 50..59).
        z = (z ^ (z >> _U(30))) * _MIX1
        z = (z ^ (z >> _U(27))) * _MIX2
        z = z ^ (z >> _U(31))
        lanes = (z & prng.FIELDS_EVEN) + ((z >> _U(5)) & prng.FIELDS_EVEN)
        return np.int32(((lanes * prng.LANE_SUM) >> _U(50)) & _U(0x3FF))

    @njit(cache=True, nogil=True)
    def _bit_planes(x, planes):                       # pragma: no cover - compiled
        x_bits, v, k = planes.shape
        for i in range(v):
            for b in range(x_bits):
                for c in range(k):
                    planes[b, i, c] = (x[i, c] >> b) & 1

    @njit(cache=True, nogil=True)
    def _per_bit_codes(dots, a, k0, s, d1, unit, k2, d2, h, top, row_states, col_states,
                       out):                          # pragma: no cover - compiled
        x_bits, v, n = dots.shape
        acc = np.empty(n)             # S = sum_b 2^b (c_b - h) of one input vector
        m = np.zeros(n)               # the noise integers of one input bit (0 if s = 0)
        for i in range(v):
            acc[:] = 0.0
            for b in range(x_bits):
                if s != 0.0:
                    z = row_states[i] + _U(b) * _GOLDEN       # conversion b of sample i
                    for j in range(n):
                        m[j] = 2.0 * _irwin_hall_sum(z + col_states[j]) - prng.M_OFFSET
                for j in range(n):
                    c = np.floor((a[j] * dots[b, i, j] + k0 + s * m[j]) / d1)
                    acc[j] += (min(max(c, 0.0), top) - h) * (1 << b)
            for j in range(n):
                code = np.floor((acc[j] * unit + k2[j]) / d2)
                out[i, j] = np.int64(min(max(code, 0.0), top))


def bit_planes(x: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Fill ``planes`` float32 [x_bits, V, K] with the input bits ``(x >> b) & 1`` of
    x [V, K]; returns it."""
    _bit_planes(x, planes)
    return planes


def per_bit_codes(dots: np.ndarray, scale, row_states: np.ndarray, col_states: np.ndarray,
                  out: np.ndarray) -> np.ndarray:
    """Codes of the ADC-per-input-bit mode into ``out`` int64 [V, N] (returned).

    ``dots`` float32 [x_bits, V, N]: the bit-plane dot products (exact integers);
    ``scale``: the float64 constants of :func:`cimstack.ref.acim.per_bit_scale`;
    ``row_states``, ``col_states``: :func:`.prng.grid_states` of the V samples and N
    channels at conversion 0 (ignored when ``scale.s`` is 0)."""
    _per_bit_codes(dots, scale.a, scale.k0, scale.s, scale.d1, scale.unit, scale.k2,
                   scale.d2, scale.h, scale.top, row_states, col_states, out)
    return out
