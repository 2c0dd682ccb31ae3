"""The integer requantizer shared by every macro family (docs/macros.md)."""

from __future__ import annotations

import numpy as np

from ..bundle import INT64_MAX, Requant, requant_peak
from . import requant_fast


def shift_round(y: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """``round(y / 2^shift)`` of int64 ``y`` (in place where it can), exact: ``half_up``
    (``(y + 2^(shift-1)) >> shift``, the macros' requantizer), ``half_even`` (as
    ``numpy.round`` and ``torch.round``) or ``floor`` (``y >> shift``)."""
    if shift == 0:
        return y
    if rounding == "half_up":
        y += 1 << (shift - 1)
        return np.right_shift(y, shift, out=y)
    q = np.right_shift(y, shift)
    if rounding == "half_even":
        rest = y - np.left_shift(q, shift)            # 0 <= rest < 2^shift
        half = 1 << (shift - 1)
        q += (rest > half) | ((rest == half) & (q & 1 == 1))
    return q


def code_type(lo: int, hi: int) -> type:
    """The narrowest of uint8 / int8 / int64 that holds codes in [lo, hi] (a layer's
    outputs: 8x less traffic than int64)."""
    if 0 <= lo and hi <= 255:
        return np.uint8
    if -128 <= lo and hi <= 127:
        return np.int8
    return np.int64


def requantize(acc: np.ndarray, multiplier: np.ndarray, bias: np.ndarray, shift: int,
               lo: int, hi: int, rounding: str = "half_up",
               dtype: type = np.int64) -> np.ndarray:
    """``clamp(round((acc*M + B) / 2^shift), lo, hi)`` per channel (last axis), as
    ``dtype`` (int64, or a type that holds [lo, hi]: :func:`code_type`).

    The macros round half up (``+2^(shift-1)``, then ``>>``, which floors); the host
    nodes (average pools, residual adds) round as their ``rounding`` says
    (:func:`shift_round`; docs/macros.md). ``acc`` may be an integer-valued float
    array (an exact float product, :func:`cimstack.ref.dcim.macro_matmul`). A 2-D
    ``half_up`` requantization runs fused in one compiled pass when numba is there
    (:mod:`.requant_fast`, the same integers); :func:`requantize_numpy` is its
    definition.
    """
    if rounding == "half_up" and np.ndim(acc) == 2 and requant_fast.AVAILABLE:
        return requant_fast.requantize_half_up(acc, multiplier, bias, shift, lo, hi, dtype)
    return requantize_numpy(acc, multiplier, bias, shift, lo, hi, rounding).astype(
        dtype, copy=False)


def requantize_numpy(acc: np.ndarray, multiplier: np.ndarray, bias: np.ndarray, shift: int,
                     lo: int, hi: int, rounding: str = "half_up") -> np.ndarray:
    """:func:`requantize` in NumPy, pass by pass."""
    y = np.asarray(acc, np.int64) * np.asarray(multiplier, np.int64)
    y += np.asarray(bias, np.int64)
    y = shift_round(y, shift, rounding)
    return np.clip(y, lo, hi, out=y)


# ----------------------------------------------------------------- building one
# The exporters (Brevitas: cimstack.quant.export, QONNX: cimstack.importer) turn a real
# per-channel affine map ``acc*real_m + real_b`` into a requantizer with these.

LOGIT_BITS = 24                # the logits' requantizer: largest |logit| about 2^24


def choose_shift(real_m: np.ndarray, real_b: np.ndarray, acc_max: int) -> int:
    """Largest shift ``s`` in [0, 62] for which the integer requantizer is safe:
    ``max|M| < 2^31``, ``max|B| < 2^62`` and :func:`cimstack.bundle.requant_peak` within
    int64 for ``|acc| <= acc_max``."""
    m_abs = float(np.max(np.abs(real_m))) if real_m.size else 0.0
    b_abs = float(np.max(np.abs(real_b))) if real_b.size else 0.0
    for s in range(62, -1, -1):
        m_int = round(m_abs * 2.0**s)
        b_int = round(b_abs * 2.0**s)
        if m_int >= 2**31 or b_int >= 2**62:
            continue
        if requant_peak(acc_max, m_int, b_int, s) <= INT64_MAX:   # also checked at load
            return s
    raise ValueError(f"no shift makes the requantizer safe (max|M| {m_abs}, max|B| {b_abs})")


def make_requant(real_m: np.ndarray, real_b: np.ndarray, acc_max: int, lo: int,
                 hi: int, shift: int | None = None) -> Requant:
    """Integer requantizer approximating ``acc*real_m + real_b``: ``M = round(real_m *
    2^s)``, ``B = round(real_b * 2^s)`` with ``s`` from :func:`choose_shift` (or
    ``shift`` when given)."""
    real_m = np.asarray(real_m, np.float64)
    real_b = np.asarray(real_b, np.float64)
    s = choose_shift(real_m, real_b, acc_max) if shift is None else shift
    mult = np.array([round(v * 2.0**s) for v in real_m], dtype=np.int64)
    bias = np.array([round(v * 2.0**s) for v in real_b], dtype=np.int64)
    return Requant(multiplier=mult, bias=bias, shift=int(s), lo=int(lo), hi=int(hi))


def logit_scale(peak_m: np.ndarray, real_b: np.ndarray) -> float:
    """Output scale of the logits: the largest possible |logit| (``peak_m[n]`` bounds
    ``|acc*real scale|`` of channel ``n``, ``real_b`` its real bias) becomes about
    ``2^LOGIT_BITS``, well inside int32; 1.0 when every logit is 0."""
    bound = float(np.max(np.abs(peak_m) + np.abs(real_b)))
    return bound / 2.0**LOGIT_BITS if bound > 0 else 1.0
