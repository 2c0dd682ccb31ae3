"""The integer side of the QONNX import: how a macro layer's requantizer absorbs its
input's offset (signed and bipolar codes), and a bipolar quantizer as exact integer
thresholds (docs/macros.md, "Graph nodes and tensor formats"; docs/models.md)."""

from __future__ import annotations

import math

import numpy as np

from ..bundle import MacroLayer, Requant, TensorFormat

def value_bound(fmt: TensorFormat) -> int:
    """Largest |value| of a code of ``fmt`` (bipolar values are -1 and +1)."""
    lo, hi = fmt.codes
    return 1 if fmt.bipolar else max(abs(lo), abs(hi))


def value_map(fmt: TensorFormat) -> tuple[int, int]:
    """(a, o): a macro input code's value is ``a*u - o`` with ``u`` the unsigned bits
    the macro reads (``u = code + fmt.offset``)."""
    if fmt.bipolar:
        return 2, 1
    return 1, fmt.offset


def to_ints(real: np.ndarray, shift: int) -> np.ndarray:
    return np.array([round(v * 2.0**shift) for v in np.asarray(real, np.float64)], np.int64)


def sign_requant(m: np.ndarray, c: np.ndarray, relu: bool) -> Requant:
    """The bipolar quantizer ``code = 1 if acc*m + c >= 0 else 0`` per channel as exact
    integer thresholds: ``clamp((acc*M + B + 1) >> 0, 0, 1)`` with ``M = sign(m)`` and
    ``B`` the threshold (``acc >= ceil(-c/m)`` for ``m > 0``, ``acc <= floor(-c/m)`` for
    ``m < 0``); after a Relu every value is >= 0 (code 1)."""
    mult, bias = np.zeros(len(m), np.int64), np.zeros(len(m), np.int64)
    for n, (mn, cn) in enumerate(zip(np.asarray(m, np.float64), np.asarray(c, np.float64))):
        if relu:
            continue
        if mn > 0:
            mult[n], bias[n] = 1, -math.ceil(-cn / mn)
        elif mn < 0:
            mult[n], bias[n] = -1, math.floor(-cn / mn)
        else:
            bias[n] = 0 if cn >= 0 else -1
    return Requant(mult, bias + 1, 0, 0, 1)


def folded_affine(layer: MacroLayer, fmt: TensorFormat, m: np.ndarray,
                   c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(m', c')`` with ``acc_u*m' + c' = acc*m + c`` for the macro's unsigned-input
    accumulator ``acc_u`` (:func:`value_map`; the real-valued form of
    :func:`fold_offset`, for the analog macro, which has no integer requantizer)."""
    a, o = value_map(fmt)
    colsum = layer.matrix().astype(np.int64).sum(axis=0)
    return a * m, c - o * colsum * m


def fold_offset(layer: MacroLayer, fmt: TensorFormat) -> None:
    """The macro reads unsigned ``u`` whose value is ``a*u - o`` (:func:`value_map`):
    ``acc = a*acc_u - o*colsum`` folds exactly into the requantizer, ``M' = a*M`` and
    ``B' = B - M*o*colsum`` (docs/macros.md, "Graph nodes and tensor formats")."""
    a, o = value_map(fmt)
    if (a, o) == (1, 0):
        return
    rq = layer.requant
    colsum = layer.matrix().astype(np.int64).sum(axis=0)
    rq.bias = rq.bias - rq.multiplier * o * colsum
    rq.multiplier = rq.multiplier * a
    if np.abs(rq.multiplier).max() >= 2**31 or np.abs(rq.bias).max() >= 2**62:
        raise ValueError("folding the input's offset makes M or B too large")
