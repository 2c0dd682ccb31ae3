"""The requantizers fused into one compiled pass each (numba), for the reference's hot
path: ``clamp(round((acc*M + b*M_b + B) / 2^s), lo, hi)`` per channel, reading the
accumulator as int64 (an exact float product is integer-valued, so the conversion is
exact; a float32 one through int32, checked) and writing int64 or the layer's narrow code
type. The macro requantizer runs on the chunk of rows its caller gives (the dcim
reference's chunks already run on every core); a host node's requantizer with at least
:data:`SPLIT_ELEMENTS` values runs its rows on every core
(:func:`cimstack.threads.map_on_cores`). The same
integers as :func:`cimstack.ref.requant.requantize` and
:func:`cimstack.ref.network.host_requant` (tests); their NumPy forms are the definition
and the fallback without numba.
"""

from __future__ import annotations

import numpy as np

from ..threads import map_on_cores, usable_cores

try:
    from numba import njit
except ImportError:          # pragma: no cover - numba not installed
    njit = None

AVAILABLE = njit is not None
ROUNDING = {"half_up": 0, "half_even": 1, "floor": 2}      # codes of shift_round's modes
SPLIT_ELEMENTS = 1 << 18     # a host requantizer with this many values runs on every core


if AVAILABLE:
    @njit(inline="always")
    def _round_shift(y, shift, mode):                        # pragma: no cover - compiled
        """``round(y / 2^shift)`` as :func:`cimstack.ref.requant.shift_round`."""
        if shift == 0:
            return y
        if mode == 0:
            return (y + (np.int64(1) << (shift - 1))) >> shift
        q = y >> shift
        if mode == 1:              # up past the half, or at it when q is odd: no branch
            rest = y - (q << shift)
            half = np.int64(1) << (shift - 1)
            q += np.int64((rest > half) | ((rest == half) & (q & 1 == 1)))
        return q

    @njit(cache=True, nogil=True)
    def _macro_rows(acc, multiplier, bias, shift, lo, hi, out):  # pragma: no cover
        for v in range(acc.shape[0]):
            for n in range(acc.shape[1]):
                y = np.int64(acc[v, n]) * multiplier[n] + bias[n]
                out[v, n] = min(max(_round_shift(y, shift, 0), lo), hi)

    @njit(cache=True, nogil=True)
    def _macro_rows_f32(acc, multiplier, bias, shift, lo, hi,
                        out):                                # pragma: no cover - compiled
        # float32 products read through int32 (a vector conversion; int64's is scalar on
        # AVX2: 1.5x the time here); False when a value is outside int32 (out is junk)
        fits = True
        for v in range(acc.shape[0]):
            acc_row, out_row = acc[v], out[v]
            for n in range(acc.shape[1]):
                x = acc_row[n]
                fits &= (x >= -2147483648.0) & (x < 2147483648.0)
                y = np.int64(np.int32(x)) * multiplier[n] + bias[n]
                out_row[n] = min(max(_round_shift(y, shift, 0), lo), hi)
        return fits

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

    @njit(cache=True, nogil=True)
    def _host_rows(a, b, multiplier, multiplier_b, bias, shift, mode, lo, hi,
                   out):                                     # pragma: no cover - compiled
        # [pixels, C] rows, channels innermost; always two operands (b * 0 without a
        # second one): a branch on it in the loop cost 2-8x here
        for i in range(a.shape[0]):
            a_row, b_row, out_row = a[i], b[i], out[i]
            for c in range(a.shape[1]):
                y = (np.int64(a_row[c]) * multiplier[c] + np.int64(b_row[c]) * multiplier_b[c]
                     + bias[c])
                out_row[c] = min(max(_round_shift(y, shift, mode), lo), hi)


def _per_channel(values, n: int) -> np.ndarray:
    """``values`` (one per channel, or one for all) as n contiguous int64 (``values``
    itself when it already is: no copy per call)."""
    values = np.asarray(values, np.int64).reshape(-1)
    if values.shape == (n,) and values.flags.c_contiguous:
        return values
    return np.ascontiguousarray(np.broadcast_to(values, (n,)))


def requantize_half_up(acc: np.ndarray, multiplier: np.ndarray, bias: np.ndarray,
                       shift: int, lo: int, hi: int, dtype: type = np.int64) -> np.ndarray:
    """The macros' requantizer (``half_up``) of a 2-D [V, N] accumulator, channels on
    the last axis, in one pass; as ``dtype`` (int64, or one that holds [lo, hi]). Needs
    numba (:data:`AVAILABLE`)."""
    out = np.empty(acc.shape, dtype)
    n = acc.shape[1]
    args = (np.ascontiguousarray(acc), _per_channel(multiplier, n), _per_channel(bias, n),
            np.int64(shift), np.int64(lo), np.int64(hi), out)
    if acc.dtype != np.float32 or not _macro_rows_f32(*args):
        _macro_rows(*args)
    return out


def _row_parts(rows: int, row_size: int) -> list[slice]:
    """Rows split into one part per core when there are at least :data:`SPLIT_ELEMENTS`
    values (less is not worth a thread), else one part."""
    cores = usable_cores()
    if rows * row_size < SPLIT_ELEMENTS or rows < 2 or cores == 1:
        return [slice(0, rows)]
    bounds = [rows * i // cores for i in range(cores + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _channels_last(x: np.ndarray) -> tuple[int, ...] | None:
    """The axis order that puts ``x``'s channels (axis 1) last when that order is its
    memory order (a macro layer's NCHW output is NHWC underneath), else None."""
    order = (0, *range(2, x.ndim), 1)
    return order if x.ndim > 2 and x.transpose(order).flags.c_contiguous else None


def host_requantize(a: np.ndarray, multiplier: np.ndarray, bias: np.ndarray, shift: int,
                    rounding: str, lo: int, hi: int, b: np.ndarray | None = None,
                    multiplier_b: np.ndarray | None = None) -> np.ndarray:
    """A host node's requantizer on [B, C, ...] (channels on axis 1), with an optional
    second operand ``b`` of the same shape (a residual add), in one pass; int64 of
    ``a``'s shape. Operands whose channels are last in memory are read in place and the
    result keeps that layout; others are read as [B, C, rest] planes. Needs numba
    (:data:`AVAILABLE`)."""
    shape, c = a.shape, a.shape[1]
    order = _channels_last(a)
    if order is not None and (b is None or _channels_last(b) == order):
        # [pixels, C] views; without a second operand the kernel adds a * 0
        kernel, a2 = _host_rows, a.transpose(order).reshape(-1, c)
        b2 = a2 if b is None else b.transpose(order).reshape(-1, c)
        mb = _per_channel(0 if b is None else multiplier_b, c)
    else:
        order, kernel = None, _host_planes
        a2 = np.ascontiguousarray(a).reshape(shape[0], c, -1)         # [B, C, rest]
        b2 = (np.zeros((0, 0, 0), a2.dtype) if b is None
              else np.ascontiguousarray(b).reshape(a2.shape))
        mb = np.zeros(0, np.int64) if b is None else _per_channel(multiplier_b, c)
    out = np.empty(a2.shape, np.int64)
    params = (_per_channel(multiplier, c), mb, _per_channel(bias, c), np.int64(shift),
              np.int64(ROUNDING[rounding]), np.int64(lo), np.int64(hi))
    map_on_cores(lambda rows: kernel(a2[rows], b2[rows], *params, out[rows]),
                 _row_parts(a2.shape[0], a2[0].size if len(a2) else 0), blas=False)
    if order is None:
        return out.reshape(shape)
    return out.reshape([shape[i] for i in order]).transpose(np.argsort(order))
