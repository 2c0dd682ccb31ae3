"""Convolutions lowered to matrix products (im2col): a conv layer's input vectors.

:func:`lower_conv` is the macros' lowering, every engine's input: row order
``c*kh*kw + ky*kw + kx`` of a K input vector, the order of the layer's weight matrix
(:meth:`cimstack.bundle.MacroLayer.matrix`) and of the dcim macro's row blocks.

:func:`lower_taps` is a faster lowering for the reference of an exact product, which
does not depend on the order of K (:func:`cimstack.ref.dcim.macro_conv`): row order
``(ky*kw + kx)*C + c``, so every kernel position copies the C contiguous codes of an
NHWC pixel into C contiguous values, written straight in the float type of the product
(compiled with numba; about 4x faster than ``lower_conv`` and its float conversion
together on ResNet18's layers), with the weight rows permuted to match
(:func:`tap_matrix`). Tests check it against ``lower_conv`` column for column.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:          # pragma: no cover - numba not installed
    njit = None

AVAILABLE = njit is not None


def lower_conv(x: np.ndarray, layer, pad_value: int = 0) -> np.ndarray:
    """NCHW activations -> [B*Ho*Wo, C*kh*kw] input vectors of a conv ``layer``
    (:class:`~cimstack.bundle.MacroLayer`), padding with ``pad_value``; a dilated kernel
    reads every ``dilation``-th pixel of a wider window.

    One strided copy per kernel position from the padded input in NHWC order (a
    macro layer's output already is NHWC underneath): the copies run over C contiguous
    values, not over kw (2-3x faster than copying a window view)."""
    kh, kw = layer.weight.shape[2:]
    d, p, s = layer.dilation, layer.padding, layer.stride
    nhwc = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (p, p), (p, p), (0, 0)),
                  constant_values=pad_value)
    b, hp, wp, c = nhwc.shape
    ho, wo = (hp - (kh - 1) * d - 1) // s + 1, (wp - (kw - 1) * d - 1) // s + 1
    out = np.empty((b, ho, wo, c, kh, kw), x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            out[..., ky, kx] = nhwc[:, ky * d:ky * d + (ho - 1) * s + 1:s,
                                    kx * d:kx * d + (wo - 1) * s + 1:s]
    return out.reshape(b * ho * wo, c * kh * kw)


if AVAILABLE:
    @njit(cache=True, nogil=True)
    def _lower(x, c, kh, kw, stride, dilation, pad, pad_value, ho, wo,
               out):                                          # pragma: no cover - compiled
        # x: NHWC codes as [B, H, W*C]; an undilated kernel row inside the image is one
        # run of kw*C contiguous codes, copied at once (half the time with C = 3)
        b, h, wc = x.shape
        w, span = wc // c, kw * c
        r = 0
        for n in range(b):
            for oy in range(ho):
                for ox in range(wo):
                    ix0 = ox * stride - pad
                    whole_rows = dilation == 1 and ix0 >= 0 and ix0 + kw <= w
                    col = 0
                    for ky in range(kh):
                        iy = oy * stride + ky * dilation - pad
                        if whole_rows and 0 <= iy < h:
                            dst, src = out[r, col:col + span], x[n, iy, ix0 * c:ix0 * c + span]
                            for i in range(span):
                                dst[i] = src[i]
                            col += span
                            continue
                        for kx in range(kw):
                            ix = ix0 + kx * dilation
                            dst = out[r, col:col + c]
                            if 0 <= iy < h and 0 <= ix < w:
                                src = x[n, iy, ix * c:ix * c + c]
                                for ci in range(c):
                                    dst[ci] = src[ci]
                            else:
                                dst[:] = pad_value
                            col += c
                    r += 1


def lower_taps(x: np.ndarray, layer, pad_value: int, dtype: type,
               out: np.ndarray | None = None) -> np.ndarray:
    """:func:`lower_conv` with the row order ``(ky*kw + kx)*C + c``, as ``dtype``
    [B*Ho*Wo, kh*kw*C], written into ``out`` when given (a C-contiguous array of that
    shape and type: a caller's buffer reused chunk by chunk). Needs numba
    (:data:`AVAILABLE`)."""
    b, c = x.shape[:2]
    kh, kw = layer.weight.shape[2:]
    _, ho, wo = layer.out_shape
    if out is None:
        out = np.empty((b * ho * wo, kh * kw * c), dtype)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    _lower(nhwc.reshape(b, nhwc.shape[1], -1), c, kh, kw, layer.stride, layer.dilation,
           layer.padding, pad_value, ho, wo, out)
    return out


def tap_matrix(matrix: np.ndarray, channels: int, taps: int, dtype: type) -> np.ndarray:
    """The K x N weight matrix in macro order (row ``c*taps + tap``) with its rows in
    :func:`lower_taps`' order (row ``tap*C + c``), as contiguous ``dtype``."""
    n = matrix.shape[1]
    return np.ascontiguousarray(matrix.reshape(channels, taps, n).transpose(1, 0, 2),
                                dtype).reshape(taps * channels, n)
