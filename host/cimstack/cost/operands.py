"""Operand bits a macro layer moves on and off its array, per image (both matrix macro
families use this one rule):

- inputs: the layer's input (its ``in_shape`` values of ``x_bits``) is read from the
  activation buffer once; a convolution's overlapping windows are formed in the
  macros' input registers (a line buffer) and broadcast to every column tile;
- outputs: ``vectors * N`` requantized values, each as wide as its clamp range needs;
- weights: when the network's weights cannot all stay resident, each layer's stored
  weight bits are written into the array once per batch of images.
"""

from __future__ import annotations

import numpy as np


def output_bits(layer) -> int:
    """Width of the layer's requantized outputs: the bits that hold ``hi - lo``."""
    return max(1, int(layer.requant.hi - layer.requant.lo).bit_length())


def per_batch(bits: int, batch: int) -> int:
    """Per-image share of ``bits`` moved once per ``batch`` images (rounded up)."""
    return -(-bits // batch)


def operand_bits(layer, vectors: int, reload_bits: int, batch: int) -> dict:
    """Input, output and weight bits moved per image (``vectors`` input vectors per
    image); ``reload_bits`` are the layer's stored weight bits when it is reloaded every
    ``batch`` images (else 0)."""
    in_bits = int(np.prod(layer.in_shape)) * layer.x_bits
    out_bits = vectors * layer.channels * output_bits(layer)
    weight_bits = per_batch(reload_bits, batch)
    return {"in_bits": in_bits, "out_bits": out_bits, "weight_bits": weight_bits,
            "moved_bits": in_bits + out_bits + weight_bits}
