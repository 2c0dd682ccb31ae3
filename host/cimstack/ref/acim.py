"""NumPy reference of the analog charge-domain CIM macro (IMAGINE family).

The fixed-point definition (docs/macros.md, "Analog CIM macro (acim)"), with
``h = 2^(adc_bits-1)``, ``F = 19`` internal fraction bits, ``FS = N_norm *
(2^x_bits - 1) * 2^(w_bits-1)``, per-channel integer gain ``g`` (G = g / 2^gf),
offset ``o`` (beta = o / 2^of LSB), ``sigma_q = round(256 sigma)`` and the Irwin-Hall
integer ``m`` (n = m / 64, :mod:`.prng`):

    num  = h * g * 2^(F-gf) * dot + FS * (h * 2^F + o * 2^(F-of) + 32 * sigma_q * m + 2^(F-1))
    code = clip(floor(num / (FS * 2^F)), 0, 2^adc_bits - 1)

which is exactly ``clip(round_half_up(h * (G * dot / FS + 1) + beta + sigma_q/256 * m/64))``:
the only rounding is the ADC's. All intermediates fit int64 (|num| < 2^60).

ADC-per-input-bit mode: input bit b converts ``dot_b = sum_k bit_b(x_k) w_k`` alone,
with ``FS_1 = N_norm * 2^(w_bits-1)``, no offset and its own noise draw (conversion
index b), giving ``c_b``; the digital back end shift-adds ``S = sum_b 2^b (c_b - h)``
and applies the offset once:

    code = clip(floor((S * 2^F + (2^x_bits - 1) * (h * 2^F + o * 2^(F-of) + 2^(F-1)))
                      / ((2^x_bits - 1) * 2^F)), 0, 2^adc_bits - 1)

so that without quantization and noise both modes give the same code.

The per-bit mode is evaluated in float64, exactly: every numerator above is an integer
below 2^52 (``|h g 2^(F-gf) dot_b| < 2^7 * 2^27 * 1152 * 2^7 < 2^52``, the other terms
below 2^44), so float64 holds it exactly, its division by the (exact) denominator is
correctly rounded, and a quotient ``q + r/D`` with ``0 < r < D`` cannot round up to
``q + 1`` while ``|num| < 2^53``: ``floor`` of the float quotient is the integer floor
division. The bit-plane dot products come exact from one float32 product (sums of
binary planes times weights stay below 2^24). With numba the conversions, noise draws
and shift-add run fused in :mod:`.acim_fast`; without it the same arithmetic runs in
NumPy (:func:`per_bit_codes_numpy`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..config import AcimLayerParams, AcimSpec, check_abn, check_range
from ..errors import ConfigError
from . import acim_fast, dcim, prng

FRAC = 19                     # internal fraction bits (units of 2^-19 ADC LSB)
SIGMA_FRAC_BITS = 8           # sigma_q = round(sigma * 2^8)
NOISE_SHIFT = FRAC - SIGMA_FRAC_BITS - prng.NORMAL_FRAC_BITS   # 5: sigma_q*m in 2^-19 LSB
F32_EXACT = 1 << 24           # float32 adds integers up to 2^24 exactly
_CHUNK = 1 << 15              # outputs per post-processing chunk (keeps temporaries in cache)


def check_operands(x: np.ndarray, w: np.ndarray, w_bits: int, x_bits: int,
                   spec: AcimSpec) -> None:
    """The dcim operand checks, plus K within the analog array's rows."""
    dcim.check_operands(x, w, w_bits, x_bits)
    if w.shape[0] > spec.rows:
        raise ConfigError(f"the layer activates {w.shape[0]} rows but the analog array has "
                          f"rows = {spec.rows}; split K over several arrays or reduce it")


_SCRATCH: dict = {}


def _scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """A reused work array: large temporaries allocated afresh on every call cost more in
    page faults than the per-bit mode's arithmetic (measured: 18x vs 9.6x the float
    product). Contents are undefined; callers overwrite all of it. One caller at a time:
    the reference is not meant to be called from several threads at once."""
    size = math.prod(shape)
    buf = _SCRATCH.get(name)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = _SCRATCH[name] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def exact_matmul(x: np.ndarray, w: np.ndarray, x_max: int, w_max: int) -> np.ndarray:
    """Exact integer ``x @ w`` (int64) through float32 BLAS: K is cut into chunks whose
    partial sums stay below 2^24 (bounded by chunk * x_max * w_max)."""
    k = x.shape[1]
    per = max(1, F32_EXACT // max(1, x_max * w_max))
    if per >= k:
        # one expression: the float32 copies are freed before the int64 result is made,
        # so the allocator reuses their pages instead of faulting in fresh ones (2-3x
        # faster at 512 x 1152 x 256)
        return (x.astype(np.float32) @ w.astype(np.float32)).astype(np.int64)
    xf = x.astype(np.float32, copy=False)
    wf = w.astype(np.float32, copy=False)
    out = np.zeros((x.shape[0], w.shape[1]), np.int64)
    for lo in range(0, k, per):                          # <= 3 chunks for 1152 x 8b x 8b
        out += (xf[:, lo:lo + per] @ wf[lo:lo + per]).astype(np.int64)
    return out


def _noise(spec: AcimSpec, layer: int, samples: np.ndarray, channels: np.ndarray,
           conversion: int) -> np.ndarray:
    return prng.normal_m_grid(spec.seed, layer, samples, channels, conversion)


def _check_keys(spec: AcimSpec, v: int, n: int, layer: int, sample_base: int,
                chan_base: int) -> None:
    check_range("layer", layer, 0, 65535)
    check_range("sample_base", sample_base, 0, prng.MAX_SAMPLE)
    check_range("chan_base", chan_base, 0, prng.MAX_CHANNEL)
    if sample_base + v - 1 > prng.MAX_SAMPLE:
        raise ConfigError(f"sample indices reach {sample_base + v - 1}, past the noise "
                          f"counter's {prng.MAX_SAMPLE}; start a new run (sample_base 0)")
    if chan_base + n - 1 > prng.MAX_CHANNEL:
        raise ConfigError(f"channel indices reach {chan_base + n - 1}, past {prng.MAX_CHANNEL}")


def adc_codes(dot: np.ndarray, fs: int, gain: np.ndarray, offset: np.ndarray,
              spec: AcimSpec, m: np.ndarray | None) -> np.ndarray:
    """The charge-mode ADC on exact dot products [V, N] (int64 codes); ``m`` the noise
    integers (or None for sigma 0)."""
    h = 1 << (spec.adc_bits - 1)
    top = (1 << spec.adc_bits) - 1
    a = h * np.asarray(gain, np.int64) << (FRAC - spec.gain_frac_bits)         # [N]
    c = fs * ((h << FRAC) + (np.asarray(offset, np.int64) << (FRAC - spec.offset_frac_bits))
              + (1 << (FRAC - 1)))                                            # [N]
    num = dot * a
    num += c
    if m is not None and spec.sigma_q:
        num += m * (fs * spec.sigma_q << NOISE_SHIFT)
    num //= fs << FRAC
    return np.clip(num, 0, top, out=num)


class PerBitScale(NamedTuple):
    """The ADC-per-input-bit mode's fixed-point constants as exact float64 values."""

    a: np.ndarray     # [N] h * g * 2^(F-gf): weight of the dot product dot_b
    k0: float         # FS_1 * (h * 2^F + 2^(F-1)): mid-scale plus the rounding half
    s: float          # FS_1 * sigma_q * 2^NOISE_SHIFT: weight of the noise integer m (0: none)
    d1: float         # FS_1 * 2^F: one conversion's denominator
    unit: float       # 2^F
    k2: np.ndarray    # [N] (2^x_bits - 1) * (h * 2^F + o * 2^(F-of) + 2^(F-1))
    d2: float         # (2^x_bits - 1) * 2^F: the back end's denominator
    h: float          # 2^(adc_bits-1): a conversion's mid-scale code
    top: float        # 2^adc_bits - 1


def per_bit_scale(spec: AcimSpec, fs1: int, x_bits: int, gain: np.ndarray,
                  offset: np.ndarray) -> PerBitScale:
    """The per-bit mode's constants for ``FS_1 = fs1``: a conversion is
    ``c_b = clip(floor((a * dot_b + k0 + s * m_b) / d1), 0, top)``, the back end
    ``clip(floor((S * unit + k2) / d2), 0, top)`` with ``S = sum_b 2^b (c_b - h)``."""
    h = 1 << (spec.adc_bits - 1)
    xm = (1 << x_bits) - 1
    a = h * np.asarray(gain, np.int64) << (FRAC - spec.gain_frac_bits)
    k2 = xm * ((h << FRAC) + (np.asarray(offset, np.int64) << (FRAC - spec.offset_frac_bits))
               + (1 << (FRAC - 1)))
    return PerBitScale(a=a.astype(np.float64),
                       k0=float(fs1 * ((h << FRAC) + (1 << (FRAC - 1)))),
                       s=float(fs1 * spec.sigma_q << NOISE_SHIFT), d1=float(fs1 << FRAC),
                       unit=float(1 << FRAC), k2=k2.astype(np.float64), d2=float(xm << FRAC),
                       h=float(h), top=float((1 << spec.adc_bits) - 1))


def per_bit_codes_numpy(dots: np.ndarray, p: PerBitScale, spec: AcimSpec, layer: int,
                        samples: np.ndarray, channels: np.ndarray,
                        out: np.ndarray) -> np.ndarray:
    """The per-bit back end in NumPy: codes into ``out`` int64 [V, N] (returned) from the
    bit-plane dot products ``dots`` [x_bits, V, N]; the same integers as
    :func:`.acim_fast.per_bit_codes`, one input bit at a time."""
    acc = np.zeros(out.shape)                        # S = sum_b 2^b (c_b - h)
    for b in range(len(dots)):
        num = dots[b] * p.a
        num += p.k0
        if p.s:
            num += p.s * _noise(spec, layer, samples, channels, b)
        num /= p.d1
        c = np.clip(np.floor(num, out=num), 0.0, p.top, out=num)
        c -= p.h
        c *= 1 << b
        acc += c
    acc *= p.unit
    acc += p.k2
    acc /= p.d2
    out[...] = np.clip(np.floor(acc, out=acc), 0.0, p.top, out=acc)
    return out


ENGINES = ("auto", "numpy", "numba")


def _use_numba(engine: str) -> bool:
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}: choose one of {ENGINES}")
    if engine == "numba" and not acim_fast.AVAILABLE:
        raise ConfigError("engine 'numba' needs numba (pip install numba)")
    return engine != "numpy" and acim_fast.AVAILABLE


def _per_bit_codes(x: np.ndarray, w: np.ndarray, x_bits: int, scale: PerBitScale,
                   spec: AcimSpec, layer: int, samples: np.ndarray, channels: np.ndarray,
                   fast: bool) -> np.ndarray:
    """The ADC-per-input-bit mode: bit planes, one exact float32 product for all of them,
    then the conversions and shift-add (numba when ``fast``, else NumPy)."""
    (v, k), n = x.shape, w.shape[1]
    out = np.empty((v, n), np.int64)
    rows = max(1, _CHUNK // max(1, n))
    # binary planes times |w| <= 2^(w_bits-1): every partial sum is below K * 128 < 2^24,
    # so one float32 product gives all x_bits dot products exactly
    wf = _scratch("weights", w.shape, np.float32)
    np.copyto(wf, w)
    for lo in range(0, v, rows):
        xs = x[lo:lo + rows]
        cnt = len(xs)
        planes = _scratch("planes", (x_bits, cnt, k), np.float32)           # [B, v, K]
        if fast:
            acim_fast.bit_planes(xs, planes)
        else:
            for b in range(x_bits):
                np.bitwise_and(np.right_shift(xs, b), 1, out=planes[b], casting="unsafe")
        dots = np.matmul(planes.reshape(x_bits * cnt, k), wf,
                         out=_scratch("dots", (x_bits * cnt, n), np.float32))
        dots = dots.reshape(x_bits, cnt, n)
        if fast:
            states = prng.grid_states(spec.seed, layer, samples[lo:lo + cnt], channels)
            acim_fast.per_bit_codes(dots, scale, *states, out[lo:lo + cnt])
        else:
            per_bit_codes_numpy(dots, scale, spec, layer, samples[lo:lo + cnt], channels,
                                out[lo:lo + cnt])
    return out


def acim_codes(x: np.ndarray, w: np.ndarray, w_bits: int, x_bits: int, spec: AcimSpec,
               gain: np.ndarray, offset: np.ndarray, layer: int = 0, sample_base: int = 0,
               chan_base: int = 0, engine: str = "auto") -> np.ndarray:
    """ADC codes int64 [V, N] of the analog macro for inputs x [V, K] and weights w [K, N].

    ``sample_base``: run index of x's first row (noise key); ``chan_base``: global index
    of w's first column; ``layer``: the layer's noise key. ``engine`` runs the per-bit
    mode's conversions in ``numba`` (fused, :mod:`.acim_fast`) or ``numpy``; ``auto``
    takes numba when it is installed. Both give the same integers.
    """
    fast = _use_numba(engine)
    x, w = np.asarray(x), np.asarray(w)
    check_operands(x, w, w_bits, x_bits, spec)
    v, k = x.shape
    n = w.shape[1]
    check_abn(spec, gain, offset, n)
    _check_keys(spec, v, n, layer, sample_base, chan_base)
    norm = spec.norm_rows(k)
    w_max = 1 << (w_bits - 1)
    channels = np.arange(chan_base, chan_base + n)
    if spec.adc_per_input_bit:
        scale = per_bit_scale(spec, norm * w_max, x_bits, gain, offset)
        return _per_bit_codes(x, w, x_bits, scale, spec, layer,
                              np.arange(sample_base, sample_base + v), channels, fast)
    fs = norm * ((1 << x_bits) - 1) * w_max
    out = np.empty((v, n), np.int64)
    rows = max(1, _CHUNK // max(1, n))
    for lo in range(0, v, rows * 8):
        xs = x[lo:lo + rows * 8]
        dot = exact_matmul(xs, w, (1 << x_bits) - 1, w_max)
        for s in range(0, len(xs), rows):
            d = dot[s:s + rows]
            m = _noise(spec, layer, np.arange(sample_base + lo + s,
                                              sample_base + lo + s + len(d)),
                       channels, 0) if spec.sigma_q else None
            out[lo + s:lo + s + len(d)] = adc_codes(d, fs, gain, offset, spec, m)
    return out


def ideal_code(dot: np.ndarray, norm_rows: int, w_bits: int, x_bits: int, spec: AcimSpec,
               gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The float formula before rounding and clipping (no noise):
    ``h * (G * dot / FS + 1) + beta`` (float64), for tests and studies."""
    h = 2.0 ** (spec.adc_bits - 1)
    fs = norm_rows * ((1 << x_bits) - 1) * 2.0 ** (w_bits - 1)
    g = np.asarray(gain, np.float64) / 2.0 ** spec.gain_frac_bits
    beta = np.asarray(offset, np.float64) / 2.0 ** spec.offset_frac_bits
    return h * (g * np.asarray(dot, np.float64) / fs + 1.0) + beta


def decode(codes: np.ndarray, norm_rows: int, w_bits: int, x_bits: int, spec: AcimSpec,
           gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Dot-product estimate from codes (inverse of :func:`ideal_code` at code centres)."""
    h = 2.0 ** (spec.adc_bits - 1)
    fs = norm_rows * ((1 << x_bits) - 1) * 2.0 ** (w_bits - 1)
    g = np.asarray(gain, np.float64) / 2.0 ** spec.gain_frac_bits
    beta = np.asarray(offset, np.float64) / 2.0 ** spec.offset_frac_bits
    return (np.asarray(codes, np.float64) - beta - h) / h / g * fs


def unit_gain(spec: AcimSpec, n: int, value: float = 1.0) -> np.ndarray:
    """Gains equal to ``value`` (rounded to the format) for n channels, int64."""
    g = int(round(value * 2 ** spec.gain_frac_bits))
    lo, hi = spec.gain_range
    if not lo <= g <= hi:
        raise ConfigError(f"gain {value} is outside the gain format "
                          f"[{lo / 2**spec.gain_frac_bits:g}, {hi / 2**spec.gain_frac_bits:g}]")
    return np.full(n, g, np.int64)


def acim_layer(x: np.ndarray, w: np.ndarray, w_bits: int, x_bits: int, spec: AcimSpec,
               params: AcimLayerParams, requant=None, sample_base: int = 0,
               chan_base: int = 0) -> np.ndarray:
    """The whole analog layer on a lowered input [V, K]: codes, then the requantizer
    (``requant`` a :class:`~cimstack.bundle.Requant` or None for raw codes). int64 [V, N]."""
    codes = acim_codes(x, w, w_bits, x_bits, spec, params.gain, params.offset,
                       layer=params.layer, sample_base=sample_base, chan_base=chan_base)
    if requant is None:
        return codes
    from .requant import requantize
    return requantize(codes, requant.multiplier, requant.bias, requant.shift, requant.lo,
                      requant.hi)


def kernel_registers(spec: AcimSpec, k: int, n: int, w_bits: int, x_bits: int,
                     layer: int = 0, chan_base: int = 0, sample_base: int = 0,
                     n_vec: int = 0) -> dict:
    """The acim kernel's compute registers (overlay_shape.ACIM) for this spec and layer
    slice; add ``shift``, ``out_lo``, ``out_hi`` from the requantizer."""
    return dict(k_rows=k, n_out=n, n_vec=n_vec, w_bits=w_bits, x_bits=x_bits,
                rows=spec.rows, segments=spec.segments, swing=int(spec.swing == "adaptive"),
                adc_bits=spec.adc_bits, per_bit=int(spec.adc_per_input_bit),
                gain_frac=spec.gain_frac_bits, offset_frac=spec.offset_frac_bits,
                sigma_q=spec.sigma_q, seed=spec.seed, layer=layer, chan_base=chan_base,
                sample_base=sample_base)
