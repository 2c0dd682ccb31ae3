"""Network executor: runs a bundle layer by layer on a pluggable macro engine.

Convolutions are lowered to matrix products (im2col, row order c*kh*kw + ky*kw + kx),
each macro layer's K x N matrix product goes to the *engine*, and pooling and
flattening happen on the host, as the board's ARM core does. The default engine is the
NumPy reference; the overlay drivers supply their own (same lowering, same pooling), so
reference, emulation and board differ only in where the macro layers run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..bundle import Bundle, MacroLayer, PoolLayer
from ..errors import ConfigError
from ..families import get_family

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
    stats: list[LayerStats]
    activations: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def cycles_per_image(self) -> int:
        return sum(s.cycles for s in self.stats)


def quantize_input(bundle: Bundle, images: np.ndarray) -> np.ndarray:
    """Float images -> unsigned input integers, round half to even (as torch.round)."""
    images = np.asarray(images, np.float32)
    shape = tuple(bundle.input.shape)
    if images.shape[1:] != shape:
        raise ConfigError(f"images have shape {images.shape[1:]} per sample; the bundle "
                          f"expects {shape}")
    top = (1 << bundle.input.bits) - 1
    return np.clip(np.round(images / np.float32(bundle.input.scale)), 0, top).astype(np.uint8)


def integer_predictions(bundle: Bundle, images: np.ndarray) -> np.ndarray:
    """Class predictions of the integer reference on float images."""
    return run_network(bundle, quantize_input(bundle, images)).predictions


def integer_accuracy(bundle: Bundle, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the integer reference on float images with their labels."""
    return float(np.mean(integer_predictions(bundle, images) == labels))


def lower_conv(x: np.ndarray, layer: MacroLayer) -> np.ndarray:
    """NCHW activations -> [B*Ho*Wo, C*kh*kw] input vectors (zero padding)."""
    kh, kw = layer.weight.shape[2:]
    p = layer.padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::layer.stride, ::layer.stride]
    b, c, ho, wo = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, c * kh * kw)


def maxpool(x: np.ndarray, layer: PoolLayer) -> np.ndarray:
    win = sliding_window_view(x, (layer.kernel, layer.kernel), axis=(2, 3))
    return win[:, :, ::layer.stride, ::layer.stride].max(axis=(-2, -1))


def run_layer(layer, x: np.ndarray, bundle: Bundle, engine: Engine) -> np.ndarray:
    """One layer on a batch of activations (NCHW or [B, K])."""
    if isinstance(layer, PoolLayer):
        return maxpool(x, layer)
    if not isinstance(layer, MacroLayer):            # flatten
        return x.reshape(x.shape[0], -1)
    batch = x.shape[0]
    x_mat = lower_conv(x, layer) if layer.op == "conv2d" else x.reshape(batch, -1)
    y = engine(layer, x_mat, bundle)
    if 0 <= layer.requant.lo and layer.requant.hi <= 255:
        y = y.astype(np.uint8)           # activations of the next layer: 8x less traffic
    if layer.op == "conv2d":
        _, ho, wo = layer.out_shape
        return y.reshape(batch, ho, wo, -1).transpose(0, 3, 1, 2)
    return y


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
    acts = {}
    for layer in bundle.layers:
        x = run_layer(layer, x, bundle, engine)
        if keep_activations:
            acts[layer.name] = x
    return NetworkResult(logits=x.reshape(x.shape[0], -1), stats=layer_stats(bundle),
                         activations=acts)
