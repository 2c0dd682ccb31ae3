"""Layers larger than a matrix kernel (docs/macros.md, "Layers larger than the kernel").

The drivers (:mod:`cimstack.hw.macros`) split N over column slices of at most ``MAX_N``
channels and, for dcim, K over row tiles of at most ``MAX_K`` rows. A row tile starts
and ends on a row-group boundary (a multiple of ``rows_on``): the column ADC and the
pruned-block skip act per group of ``rows_on`` rows and groups add exactly
(:func:`cimstack.ref.dcim.macro_matmul_bitserial`), so the tiles' partial sums add up
to the whole layer's accumulator, ADC effects included. Each tile runs on the kernel
as a linear layer with the identity requantizer (the kernel returns its raw int32
partial sums); the host adds them in int64 and applies the layer's requantizer.
Pure NumPy: the drivers and the FPGA cost model share it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..bundle import Bundle, MacroLayer, Requant, weight_range
from ..config import DcimSpec
from ..errors import ConfigError
from ..overlay_shape import KernelDecl

INT32_LO, INT32_HI = -(2**31), 2**31 - 1


def row_tiles(k: int, rows_on: int, max_k: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` covering ``0 .. k-1`` in order: one range when
    ``k <= max_k``, else ranges of the largest multiple of ``rows_on`` rows that is at
    most ``max_k`` (the last one holds the rest), so no row group is split."""
    if k <= max_k:
        return [(0, k)]
    if rows_on > max_k:
        raise ConfigError(f"a layer with K = {k} rows needs row tiles of whole row groups, "
                          f"but a group of rows_on = {rows_on} rows exceeds the kernel's "
                          f"MAX_K = {max_k}; set the dcim rows_on to at most {max_k}")
    step = max_k // rows_on * rows_on
    return [(a, min(k, a + step)) for a in range(0, k, step)]


def dcim_row_tiles(k: int, spec: DcimSpec, max_k: int) -> list[tuple[int, int]]:
    """:func:`row_tiles` of a dcim layer. With exact partial sums every split is exact
    (the kernel reads whole 64-row words, no ADC), so groups larger than the kernel
    are split too; tiles still follow ``rows_on`` whenever a group fits."""
    split_anywhere = spec.psum_exact and spec.rows_on > max_k
    return row_tiles(k, 1 if split_anywhere else spec.rows_on, max_k)


def kernel_row_tiles(decl: KernelDecl, layer: MacroLayer,
                     bundle: Bundle) -> list[tuple[int, int]]:
    """The row tiles ``layer`` runs in on kernel ``decl``: :func:`dcim_row_tiles` when the
    kernel splits K (dcim), else the whole K, which must fit ``MAX_K`` (acim: charge
    sharing over more rows than the analog array has is not defined)."""
    if not decl.splits_k:
        decl.check_k(layer.name, layer.k)
        return [(0, layer.k)]
    return dcim_row_tiles(layer.k, bundle.dcim, decl.capacity["MAX_K"])


def identity_requant(channels: int) -> Requant:
    """``clamp(acc * 1 + 0, int32)``: the kernel returns its accumulator unchanged."""
    return Requant(np.ones(channels, np.int64), np.zeros(channels, np.int64), 0,
                   INT32_LO, INT32_HI)


def check_partial_sums(layer: MacroLayer, rows: int) -> None:
    """ConfigError unless every partial sum of ``rows`` rows of ``layer`` fits the
    kernel's int32 accumulator and output word: ``|psum| <= rows * (2^x_bits - 1) *
    max|w|`` (the column ADC only lowers the read values)."""
    w_lo, w_hi = weight_range(layer.w_bits)
    peak = rows * ((1 << layer.x_bits) - 1) * max(-w_lo, w_hi)
    if peak > INT32_HI:
        raise ConfigError(f"layer {layer.name}: a row tile of {rows} rows can reach a partial "
                          f"sum of {peak}, beyond the kernel's int32 output; lower the "
                          "kernel's MAX_K or the layer's bit widths")


def tile_layer(layer: MacroLayer, start: int, stop: int) -> MacroLayer:
    """Rows ``start .. stop-1`` of ``layer``'s K x N matrix as a linear layer with the
    identity requantizer, so the kernel returns its raw partial sums."""
    check_partial_sums(layer, stop - start)
    w = np.ascontiguousarray(layer.matrix()[start:stop].T)           # [N, rows] int8
    return replace(layer, name=f"{layer.name} rows {start}..{stop - 1}", op="linear",
                   weight=w, requant=identity_requant(layer.channels),
                   in_shape=(stop - start,), out_shape=(layer.channels,), stride=1,
                   padding=0, groups=1, dilation=1)
