"""CIM-structured, channel-balanced block pruning (MARS family, docs/macros.md).

A layer's weight is viewed as ``W2 = weight.reshape(N, -1)`` ([N, K]; row index
``k = c*kh*kw + ky*kw + kx`` for convolutions). A block is ``rows_on`` consecutive rows
of one output channel: block ``(g, n)`` holds ``W2[n, g*rows_on:(g+1)*rows_on]`` (the
last group may be shorter). Blocks are scored by their L2 norm and pruned per output
channel so that every channel of a layer keeps the same number of blocks: a tile's
cycle count is set by its busiest channel, so only balanced pruning saves cycles.

Per layer with ``G`` row groups the number of pruned blocks per channel is
``min(G - 1, floor(sparsity * G + 1/2))``: at least one block per channel survives,
so a layer with one group (e.g. a 3x3 conv on one input channel, K = 9) is not pruned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError


def num_groups(k: int, rows_on: int) -> int:
    return -(-k // rows_on)


def blocks_pruned_per_channel(k: int, rows_on: int, sparsity: float) -> int:
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"block sparsity {sparsity} is out of range: allowed [0, 1)")
    g = num_groups(k, rows_on)
    return min(g - 1, int(math.floor(sparsity * g + 0.5)))


def block_norms(weight: torch.Tensor, rows_on: int) -> torch.Tensor:
    """L2 norm of every block, shape [N, G]."""
    w2 = weight.detach().reshape(weight.shape[0], -1).double()
    n, k = w2.shape
    g = num_groups(k, rows_on)
    padded = torch.zeros(n, g * rows_on, dtype=torch.float64)
    padded[:, :k] = w2
    return padded.reshape(n, g, rows_on).pow(2).sum(-1).sqrt()


def block_mask(weight: torch.Tensor, rows_on: int, sparsity: float) -> torch.Tensor:
    """0/1 mask with ``weight``'s shape, balanced per output channel (ties: lower g kept)."""
    k = weight[0].numel()
    norms = block_norms(weight, rows_on)
    drop = blocks_pruned_per_channel(k, rows_on, sparsity)
    keep = torch.ones_like(norms)
    if drop:
        # stable sort: among equal norms the later group is dropped first
        order = torch.sort(norms, dim=1, stable=True).indices
        keep.scatter_(1, order[:, :drop], 0.0)
    rows = keep.repeat_interleave(rows_on, dim=1)[:, :k]
    return rows.reshape(weight.shape).to(weight.dtype)


@dataclass
class LayerSparsity:
    name: str
    blocks: int
    pruned: int
    per_channel_kept: list

    @property
    def sparsity(self) -> float:
        return self.pruned / self.blocks if self.blocks else 0.0

    @property
    def balanced(self) -> bool:
        return len(set(self.per_channel_kept)) <= 1


def measure_blocks(name: str, weight, rows_on: int) -> LayerSparsity:
    """Count all-zero blocks of a weight (torch tensor or numpy array, any int/float)."""
    w = np.asarray(weight.detach().cpu() if isinstance(weight, torch.Tensor) else weight)
    w2 = w.reshape(w.shape[0], -1)
    n, k = w2.shape
    g = num_groups(k, rows_on)
    nonzero = np.zeros((n, g), dtype=bool)
    for gi in range(g):
        nonzero[:, gi] = np.any(w2[:, gi * rows_on:(gi + 1) * rows_on] != 0, axis=1)
    kept = nonzero.sum(axis=1)
    return LayerSparsity(name, n * g, int(n * g - kept.sum()), [int(v) for v in kept])


class BlockPruner:
    """Holds the masks of named layers and keeps them applied.

    Call :meth:`apply` after every optimizer step (the training loop does), so the
    pruned weights are exactly zero in every forward pass and at export.
    """

    def __init__(self, layers: dict[str, nn.Module], rows_on: int, sparsity: float):
        self.layers = layers
        self.rows_on = rows_on
        self.target = sparsity
        self.masks = {name: block_mask(m.weight, rows_on, sparsity) for name, m in layers.items()}
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for name, m in self.layers.items():
            m.weight.mul_(self.masks[name])

    def report(self) -> dict[str, LayerSparsity]:
        return {name: measure_blocks(name, m.weight, self.rows_on)
                for name, m in self.layers.items()}

    def achieved(self) -> float:
        """Block sparsity over all blocks of all layers."""
        rep = self.report().values()
        total = sum(r.blocks for r in rep)
        return sum(r.pruned for r in rep) / total if total else 0.0
