"""Network executor: runs a bundle layer by layer on a pluggable macro engine.

The bundle is a DAG of nodes in an order where each comes after what it reads; the
executor keeps each tensor until its last reader has run. Convolutions are lowered to
matrix products (im2col, row order c*kh*kw + ky*kw + kx, dilated windows for a dilated
conv), each macro layer's K x N matrix product goes to the *engine*, and pooling,
residual adds, concatenation and flattening happen on the host, as the board's ARM core
does. A macro takes unsigned bits: signed codes get their offset added first (and the
padding of a conv is the offset, the code of 0), the requantizer's bias holds the
correction (docs/macros.md, "Graph nodes and tensor formats"). The default engine is the
NumPy reference; the overlay drivers supply their own (same lowering, same pooling), so
reference, emulation and board differ only in where the macro layers run. (The reference
computes a conv layer of a family that declares ``reference_conv`` straight from its
activations, skipping the lowering: the same integers, tested, and faster.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..bundle import (INPUT, AddLayer, AvgPoolLayer, Bundle, ConcatLayer, MacroLayer,
                      PoolLayer)
from ..errors import ConfigError
from ..families import get_family
from . import requant_fast
from .lowering import lower_conv
from .requant import code_type, shift_round

Engine = Callable[[MacroLayer, np.ndarray, Bundle], np.ndarray]


def reference_engine(layer: MacroLayer, x_mat: np.ndarray, bundle: Bundle) -> np.ndarray:
    """The layer's macro + requantizer in NumPy: [V, K] unsigned -> [V, N] int64, by the
    reference of the layer's macro family (:mod:`cimstack.families`).

    acim noise is keyed by the row of ``x_mat`` (image-major, pixel-minor) as sample."""
    return get_family(layer.macro).reference(layer, x_mat, bundle)


@dataclass
class LayerStats:
    """Per-image figures of one layer (macro layers only)."""

    name: str
    op: str
    macro: str
    k: int
    n: int
    vectors: int               # matrix-vector products per image (output pixels)
    tiles: int
    cycles: int
    dense_cycles: int
    macro_activations: int     # tile evaluations per image
    blocks: int
    pruned_blocks: int

    @property
    def skipped_cycles(self) -> int:
        return self.dense_cycles - self.cycles

    def to_dict(self) -> dict:
        return {**asdict(self), "skipped_cycles": self.skipped_cycles}


@dataclass
class NetworkResult:
    """Outputs of a run: logits, optional per-layer activations, statistics."""

    logits: np.ndarray
    bundle: Bundle = field(repr=False)
    activations: dict[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def stats(self) -> list[LayerStats]:
        """The bundle's :func:`layer_stats`, computed at first use: they do not depend on
        the data, and the block counts of a large network cost a tenth of a run."""
        return layer_stats(self.bundle)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def cycles_per_image(self) -> int:
        return sum(s.cycles for s in self.stats)


def quantize_input(bundle: Bundle, images: np.ndarray) -> np.ndarray:
    """Float images -> input codes (uint8, or int8 for a signed input), round half to
    even (as torch.round), in float32 (:class:`~cimstack.bundle.InputSpec`)."""
    images = np.asarray(images, np.float32)
    spec = bundle.input
    if images.shape[1:] != tuple(spec.shape):
        raise ConfigError(f"images have shape {images.shape[1:]} per sample; the bundle "
                          f"expects {tuple(spec.shape)}")
    if spec.offset:
        images = images - np.float32(spec.offset)
    if spec.bipolar:
        return (images >= 0).astype(np.uint8)
    lo, hi = spec.format.codes
    codes = np.clip(np.round(images / np.float32(spec.scale)), lo + spec.narrow, hi)
    return codes.astype(np.int8 if lo < 0 else np.uint8)


def integer_predictions(bundle: Bundle, images: np.ndarray) -> np.ndarray:
    """Class predictions of the integer reference on float images."""
    return run_network(bundle, quantize_input(bundle, images)).predictions


def integer_accuracy(bundle: Bundle, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the integer reference on float images with their labels."""
    return float(np.mean(integer_predictions(bundle, images) == labels))


def maxpool(x: np.ndarray, layer: PoolLayer) -> np.ndarray:
    win = sliding_window_view(x, (layer.kernel, layer.kernel), axis=(2, 3))
    return win[:, :, ::layer.stride, ::layer.stride].max(axis=(-2, -1))


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over [B, C, ...] of ``ndim`` axes."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def host_requant(acc: np.ndarray, layer, multiplier_b: np.ndarray | None = None,
                 b: np.ndarray | None = None) -> np.ndarray:
    """A host node's requantizer on [B, C, ...] accumulators:
    ``clamp(round((acc*M + b*M_b + B) / 2^shift), lo, hi)`` per channel C, int64, with
    the node's rounding (``b*M_b``: a residual add's second operand): fused in one
    compiled pass with numba (:mod:`.requant_fast`), else :func:`host_requant_numpy`
    (the definition; the same integers, a test)."""
    rq = layer.requant
    if requant_fast.AVAILABLE and acc.ndim >= 2 and (b is None or b.shape == acc.shape):
        return requant_fast.host_requantize(acc, rq.multiplier, rq.bias, rq.shift,
                                            layer.rounding, rq.lo, rq.hi, b, multiplier_b)
    return host_requant_numpy(acc, layer, multiplier_b, b)


def host_requant_numpy(acc: np.ndarray, layer, multiplier_b: np.ndarray | None = None,
                       b: np.ndarray | None = None) -> np.ndarray:
    """:func:`host_requant` in NumPy, pass by pass."""
    rq, nd = layer.requant, acc.ndim
    y = acc.astype(np.int64) * _per_channel(rq.multiplier, nd)
    if b is not None:
        y += b.astype(np.int64) * _per_channel(multiplier_b, nd)
    y += _per_channel(rq.bias, nd)
    y = shift_round(y, rq.shift, layer.rounding)
    return np.clip(y, rq.lo, rq.hi, out=y)


def avgpool(x: np.ndarray, layer: AvgPoolLayer) -> np.ndarray:
    """Integer window sums, then the layer's requantizer (the division is in M)."""
    win = sliding_window_view(x.astype(np.int64), layer.kernel, axis=(2, 3))
    return host_requant(win[:, :, ::layer.stride[0], ::layer.stride[1]].sum(axis=(-2, -1)),
                        layer)


def residual_add(a: np.ndarray, b: np.ndarray, layer: AddLayer) -> np.ndarray:
    """``clamp(round((a*M + b*M_b + B) / 2^shift))`` per channel with the node's
    rounding (exact int64, headroom checked on load)."""
    return host_requant(a, layer, layer.multiplier_b, b)


def _smallest(y: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Codes in the narrowest of uint8 / int8 that holds [lo, hi] (8x less traffic)."""
    return y.astype(code_type(lo, hi), copy=False)


def run_macro(layer: MacroLayer, x: np.ndarray, bundle: Bundle, engine: Engine,
              offset: int = 0) -> np.ndarray:
    """A macro layer on codes ``x`` whose format adds ``offset`` (signed codes) to make
    the macro's unsigned inputs. The reference engine runs a conv layer of a family with
    a ``reference_conv`` straight from the activations (no lowering to macro vectors)."""
    batch = x.shape[0]
    u = x.astype(np.int16) + offset if offset else x
    family = get_family(layer.macro)
    if layer.op == "conv2d" and engine is reference_engine and family.reference_conv:
        y = family.reference_conv(layer, u, offset, bundle)
    else:
        x_mat = lower_conv(u, layer, offset) if layer.op == "conv2d" else u.reshape(batch, -1)
        y = engine(layer, x_mat, bundle)
    y = _smallest(y, layer.requant.lo, layer.requant.hi)
    if layer.op == "conv2d":
        _, ho, wo = layer.out_shape
        return y.reshape(batch, ho, wo, -1).transpose(0, 3, 1, 2)
    return y


def run_layer(layer, xs: list[np.ndarray], bundle: Bundle, engine: Engine,
              offset: int = 0) -> np.ndarray:
    """One node on a batch of its input tensors ``xs`` (NCHW or [B, K])."""
    if isinstance(layer, MacroLayer):
        return run_macro(layer, xs[0], bundle, engine, offset)
    if isinstance(layer, PoolLayer):
        return maxpool(xs[0], layer)
    if isinstance(layer, AvgPoolLayer):
        return _smallest(avgpool(xs[0], layer), layer.requant.lo, layer.requant.hi)
    if isinstance(layer, AddLayer):
        return _smallest(residual_add(xs[0], xs[1], layer), layer.requant.lo,
                         layer.requant.hi)
    if isinstance(layer, ConcatLayer):
        return np.concatenate(xs, axis=1)
    return xs[0].reshape(xs[0].shape[0], -1)          # flatten


def layer_stats(bundle: Bundle) -> list[LayerStats]:
    """Cycle and block statistics of every macro layer (independent of the data), by
    the cycle model of the layer's macro family."""
    stats = []
    for layer in bundle.macro_layers:
        cost = get_family(layer.macro).cycles(layer, bundle)
        vectors = layer.vectors
        stats.append(LayerStats(
            name=layer.name, op=layer.op, macro=layer.macro, k=layer.k, n=layer.channels, vectors=vectors,
            tiles=cost.tiles, cycles=vectors * cost.cycles,
            dense_cycles=vectors * cost.dense_cycles,
            macro_activations=vectors * cost.tiles, blocks=cost.blocks,
            pruned_blocks=cost.pruned_blocks))
    return stats


def run_network(bundle: Bundle, x_int: np.ndarray, engine: Engine = reference_engine,
                keep_activations: bool = False) -> NetworkResult:
    """Run ``bundle`` on integer inputs [B, *input.shape]; returns logits and stats."""
    x = np.asarray(x_int)
    if x.ndim != len(bundle.input.shape) + 1 or tuple(x.shape[1:]) != tuple(bundle.input.shape):
        raise ConfigError(f"inputs have shape {x.shape}; the bundle expects "
                          f"[batch, {', '.join(map(str, bundle.input.shape))}]")
    if not np.issubdtype(x.dtype, np.integer):
        raise ConfigError(f"inputs must be integers (dtype {x.dtype}); quantize float images "
                          "with cimstack.ref.network.quantize_input first")
    formats = bundle.formats()
    last_read = {src: i for i, layer in enumerate(bundle.layers) for src in layer.inputs}
    values, acts = {INPUT: x}, {}
    for i, layer in enumerate(bundle.layers):
        offset = formats[layer.inputs[0]].offset
        x = run_layer(layer, [values[src] for src in layer.inputs], bundle, engine, offset)
        values[layer.name] = x
        for src in layer.inputs:
            if last_read[src] == i:
                values.pop(src, None)     # no later node reads it (None: read twice)
        if keep_activations:
            acts[layer.name] = x
    return NetworkResult(logits=x.reshape(x.shape[0], -1), bundle=bundle,
                         activations=acts)
