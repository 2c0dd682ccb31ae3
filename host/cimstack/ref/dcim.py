"""NumPy reference of the digital bit-serial CIM macro (MARS family).

``macro_matmul_bitserial`` is the macro as docs/macros.md defines it: inputs applied
bit-serially LSB first, bit-parallel signed weights, ``rows_on`` rows per read, the
optional column ADC, shift-add, and pruned blocks skipped. ``macro_matmul`` returns
the same numbers, taking the plain integer product when the partial sums are exact
(the identity the property tests check).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..bundle import check_binary_blocks, weight_range
from ..config import DcimSpec, check_range
from ..errors import ConfigError
from ..mapping.tiling import kept_blocks
from ..threads import map_on_cores, usable_cores
from . import lowering

_CHUNK_ELEMENTS = 1 << 24      # bounds the float32 partial-sum tensor of one chunk
_FLOAT_CHUNK = 1 << 21         # input elements converted to float per product chunk
_LOWERED_BYTES = 1 << 20       # lowered conv inputs per chunk: in a core's L2 with its product


def check_operands(x: np.ndarray, w: np.ndarray, w_bits: int, x_bits: int,
                   rows_on: int | None = None) -> None:
    """Clear errors for shapes and values the macro cannot take; with ``rows_on`` (the
    dcim macro) also a binary 0 outside a whole pruned block, which the macro cannot
    store (:func:`~cimstack.bundle.check_binary_blocks`)."""
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ConfigError(f"inputs {x.shape} and weights {w.shape} do not chain: expected "
                          "x as [vectors, K] and w as [K, N]")
    _check_values(x, w, w_bits, x_bits, rows_on)


def _check_values(x: np.ndarray, w: np.ndarray, w_bits: int, x_bits: int,
                  rows_on: int | None) -> None:
    """The value checks of :func:`check_operands` (``x`` of any shape)."""
    check_range("w_bits", w_bits, 1, 8)
    check_range("x_bits", x_bits, 1, 8)
    if x.size and (x.min() < 0 or x.max() > (1 << x_bits) - 1):
        raise ConfigError(f"inputs span [{x.min()}, {x.max()}], outside the unsigned "
                          f"{x_bits}-bit range [0, {(1 << x_bits) - 1}]")
    lo, hi = weight_range(w_bits)
    if w.size and (w.min() < lo or w.max() > hi):
        raise ConfigError(f"weights span [{w.min()}, {w.max()}], outside the {w_bits}-bit "
                          f"range [{lo}, {hi}]")
    if w_bits == 1 and rows_on is not None:
        check_binary_blocks("dcim operand", w, rows_on, ConfigError)


def adc(v: np.ndarray, spec: DcimSpec) -> np.ndarray:
    """Column ADC applied to read-out popcounts ``v`` (0..rows_on)."""
    if spec.psum_exact:
        return v
    top = (1 << spec.psum_bits) - 1
    if spec.psum_mode == "saturate":
        return np.minimum(v, top)
    d = 0
    while (spec.rows_on >> d) > top:
        d += 1
    return np.floor(v / (1 << d)) * (1 << d)


def _weight_planes(w: np.ndarray, w_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit columns [w_bits, K, N] and their signed weights c_j."""
    if w_bits == 1:
        return (w > 0)[None].astype(np.float32), np.array([2.0], np.float32)
    bits = np.arange(w_bits)
    planes = (w.astype(np.int64)[None] & (1 << w_bits) - 1) >> bits[:, None, None] & 1
    coeff = (1 << bits).astype(np.float32)
    coeff[-1] = -coeff[-1]
    return planes.astype(np.float32), coeff


def macro_matmul_bitserial(x: np.ndarray, w: np.ndarray, w_bits: int, x_bits: int,
                           spec: DcimSpec) -> np.ndarray:
    """The dcim macro, cycle by cycle over input bits: int64 [V, N]."""
    x, w = np.asarray(x), np.asarray(w)
    check_operands(x, w, w_bits, x_bits, spec.rows_on)
    v_count, k = x.shape
    n = w.shape[1]
    r = spec.rows_on
    g = -(-k // r)
    kpad = g * r
    kept = kept_blocks(w, r).astype(np.float32)                       # [G, N]
    planes, coeff = _weight_planes(w, w_bits)                          # [J, K, N]
    j = planes.shape[0]
    wp = np.zeros((j, kpad, n), np.float32)
    wp[:, :k] = planes
    wp = wp.reshape(j, g, r, n).transpose(1, 2, 0, 3).reshape(g, r, j * n)
    out = np.zeros((v_count, n), np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, g * j * n))
    for start in range(0, v_count, chunk):
        xs = np.zeros((min(chunk, v_count - start), kpad), np.int64)
        xs[:, :k] = x[start:start + chunk]
        acc = np.zeros((xs.shape[0], n), np.float64)
        for b in range(x_bits):
            xb = ((xs >> b) & 1).astype(np.float32).reshape(-1, g, r).transpose(1, 0, 2)
            p = adc(np.matmul(xb, wp).reshape(g, -1, j, n), spec)       # [G, V, J, N]
            s = np.einsum("gvjn,j->gvn", p, coeff)
            if w_bits == 1:
                s -= adc(xb.sum(axis=2), spec)[:, :, None]              # reference column
            acc += (1 << b) * np.einsum("gvn,gn->vn", s, kept)
        out[start:start + chunk] = acc.astype(np.int64)
    return out


def macro_matmul(x: np.ndarray, w: np.ndarray, w_bits: int, x_bits: int,
                 spec: DcimSpec, as_float: bool = False) -> np.ndarray:
    """Macro result int64 [V, N]; with exact partial sums the integer product. With
    ``as_float`` an exact product comes as the integer-valued float32/float64 array
    BLAS gave (no int64 copy; the requantizer reads either)."""
    if not spec.psum_exact:
        return macro_matmul_bitserial(x, w, w_bits, x_bits, spec)
    x, w = np.asarray(x), np.asarray(w)
    check_operands(x, w, w_bits, x_bits, spec.rows_on)
    dtype = product_type(x.shape[1], w_bits, x_bits)
    wf = w.astype(dtype)
    product = np.empty((x.shape[0], w.shape[1]), dtype)
    rows = max(1, _FLOAT_CHUNK // max(1, x.shape[1]))   # converted in cache-sized chunks
    for start in range(0, x.shape[0], rows):
        np.matmul(x[start:start + rows].astype(dtype), wf, out=product[start:start + rows])
    return product if as_float else product.astype(np.int64)


def macro_conv(x: np.ndarray, layer, spec: DcimSpec, pad_value: int = 0,
               as_float: bool = False,
               then: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """:func:`macro_matmul` of a conv ``layer`` (:class:`~cimstack.bundle.MacroLayer`) on
    its NCHW unsigned codes ``x`` padded with ``pad_value``: [B*Ho*Wo, N], rows as
    :func:`~cimstack.ref.lowering.lower_conv` gives them; with ``then``, ``then`` of it
    (a function of rows, e.g. the layer's requantizer).

    With exact partial sums the product does not depend on the order of K, so the
    inputs are lowered tap-major straight into the product's float type
    (:func:`~cimstack.ref.lowering.lower_taps`, the weight rows permuted to match), a
    chunk of images at a time into one buffer of about :data:`_LOWERED_BYTES` that stays
    in the cache with its product, and ``then`` runs on each chunk's product while it is
    there; otherwise (or without numba) the macro's lowering and :func:`macro_matmul`."""
    w = layer.matrix()
    if not (spec.psum_exact and lowering.AVAILABLE):
        y = macro_matmul(lowering.lower_conv(x, layer, pad_value), w, layer.w_bits,
                         layer.x_bits, spec, as_float or then is not None)
        return then(y) if then is not None else y
    _check_values(x, w, layer.w_bits, layer.x_bits, spec.rows_on)
    b, c = x.shape[:2]
    kh, kw = layer.weight.shape[2:]
    _, ho, wo = layer.out_shape
    dtype = product_type(w.shape[0], layer.w_bits, layer.x_bits)
    w_taps = lowering.tap_matrix(w, c, kh * kw, dtype)
    rows = ho * wo                                       # output vectors per image
    cores = usable_cores()
    step = max(1, min(_LOWERED_BYTES // (rows * w.shape[0] * np.dtype(dtype).itemsize),
                      -(-b // cores)))                   # images per chunk
    chunks = [(start, min(b, start + step)) for start in range(0, b, step)]

    def run(spans: list[tuple[int, int]]) -> list[np.ndarray]:
        # buffers reused by every chunk (a fresh one per chunk faulted its pages in anew)
        lowered = np.empty((step * rows, w.shape[0]), dtype)
        product = np.empty((step * rows, w.shape[1]), dtype)
        pieces = []
        for start, stop in spans:
            m = (stop - start) * rows
            np.matmul(lowering.lower_taps(x[start:stop], layer, pad_value, dtype,
                                          lowered[:m]), w_taps, out=product[:m])
            pieces.append(then(product[:m]) if then is not None
                          else product[:m].copy() if as_float else product[:m].astype(np.int64))
        return pieces

    parts = min(cores, len(chunks))                     # consecutive chunks per core
    groups = [chunks[len(chunks) * i // parts:len(chunks) * (i + 1) // parts]
              for i in range(parts)]
    return np.concatenate([y for pieces in map_on_cores(run, groups) for y in pieces])


def product_type(k: int, w_bits: int, x_bits: int) -> type:
    """The float type that holds a K-long product exactly: every product and partial sum
    is an integer of at most K * x_max * w_max, so a float product is exact in any
    summation order when that bound fits the mantissa: float32 (twice BLAS's float64
    speed) below 2^24, else float64 (|acc| < 2^26, docs/macros.md)."""
    lo, hi = weight_range(w_bits)
    return np.float32 if k * ((1 << x_bits) - 1) * max(-lo, hi) < 1 << 24 else np.float64
