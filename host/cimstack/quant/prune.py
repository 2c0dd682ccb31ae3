"""CIM-structured block pruning balanced per output channel and row tile (MARS family,
docs/macros.md).

A layer's weight is viewed as ``W2 = weight.reshape(N, -1)`` ([N, K]; row index
``k = c*kh*kw + ky*kw + kx`` for convolutions). A block is ``rows_on`` consecutive rows
of one output channel: block ``(g, n)`` holds ``W2[n, g*rows_on:(g+1)*rows_on]`` (the
last group may be shorter). A row tile is the ``rows // rows_on`` groups one macro holds
(``DcimSpec.rows``; the last tile may hold fewer). Blocks are scored by their L2 norm and
pruned per output channel and row tile, so that every channel keeps the same number of
blocks in every row tile: a tile's cycle count is set by its busiest channel
(``mapping/tiling.py``), so only this balance turns the sparsity into the same cycle
saving. Balancing per channel over the whole layer alone leaves the busiest channel of a
16-group tile with about 12 of 16 blocks at 50% sparsity (0.69x to 0.83x of the dense
cycles instead of 0.5x on the VGG16 and ResNet18 layers with K >= 576, docs/cost.md).

In a row tile of ``T`` groups every channel loses ``min(T - 1, floor(sparsity * T + 1/2))``
blocks (``mapping.tiling.blocks_pruned_per_tile``): at least one block per channel and
tile survives, so a layer with one group (e.g. a 3x3 conv on one input channel, K = 9) is
not pruned. For a layer that fits one row tile this is the balance per channel over the
whole layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..mapping.tiling import DEFAULT_ROWS, balanced_block_keep, blocks_pruned_per_tile


def num_groups(k: int, rows_on: int) -> int:
    return -(-k // rows_on)


def blocks_pruned_per_channel(k: int, rows_on: int, sparsity: float,
                              rows: int = DEFAULT_ROWS) -> int:
    """Blocks every channel loses in the whole layer."""
    return sum(blocks_pruned_per_tile(k, rows_on, sparsity, rows))


def block_norms(weight: torch.Tensor, rows_on: int) -> torch.Tensor:
    """L2 norm of every block, shape [N, G]."""
    w2 = weight.detach().reshape(weight.shape[0], -1).double()
    n, k = w2.shape
    g = num_groups(k, rows_on)
    padded = torch.zeros(n, g * rows_on, dtype=torch.float64)
    padded[:, :k] = w2
    return padded.reshape(n, g, rows_on).pow(2).sum(-1).sqrt()


def block_mask(weight: torch.Tensor, rows_on: int, sparsity: float,
               rows: int = DEFAULT_ROWS) -> torch.Tensor:
    """0/1 mask with ``weight``'s shape, balanced per output channel and row tile of
    ``rows`` rows: in each tile every channel drops its weakest blocks (ties: the lower
    group first; :func:`~cimstack.mapping.tiling.balanced_block_keep`)."""
    k = weight[0].numel()
    w2 = weight.detach().reshape(weight.shape[0], -1).double().cpu().numpy()
    keep = torch.from_numpy(balanced_block_keep(w2, rows_on, sparsity, rows).astype(np.float64))
    rows_mask = keep.repeat_interleave(rows_on, dim=1)[:, :k]
    return rows_mask.reshape(weight.shape).to(weight.dtype)


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

    def __init__(self, layers: dict[str, nn.Module], rows_on: int, sparsity: float,
                 rows: int = DEFAULT_ROWS):
        self.layers = layers
        self.rows_on = rows_on
        self.target = sparsity
        self.masks = {name: block_mask(m.weight, rows_on, sparsity, rows)
                      for name, m in layers.items()}
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
