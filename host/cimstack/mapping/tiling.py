"""Tiling of a K x N layer matrix onto dcim macros, and the cycle model.

Semantics (docs/macros.md): row group g holds rows g*rows_on .. (g+1)*rows_on-1; a
block is (group, output channel); a tile is ``rows`` rows by ``cols // w_bits``
channels; column tile c runs on core ``c % cores`` (:func:`core_column_tiles`), each
core runs its tiles on its ``macros`` macros in rounds, the cores in parallel; a tile
costs ``x_bits * max over its channels of the kept blocks`` cycles per input vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import AcimSpec, DcimSpec
from ..errors import ConfigError

DEFAULT_ROWS = DcimSpec().rows


def group_starts(k: int, rows_on: int) -> np.ndarray:
    """First row of every row group of a K-row matrix."""
    return np.arange(0, k, rows_on)


def kept_blocks(w_mat: np.ndarray, rows_on: int) -> np.ndarray:
    """Boolean [G, N]: True where block (g, n) has a non-zero weight (is stored)."""
    nz = (np.asarray(w_mat) != 0).astype(np.int64)
    return np.add.reduceat(nz, group_starts(nz.shape[0], rows_on), axis=0) > 0


def kept_weights(layer, rows_on: int) -> np.ndarray:
    """Boolean of an ungrouped macro layer's weight shape: True for the weights of its
    stored blocks (:func:`kept_blocks` of its K x N matrix), False in the all-zero ones."""
    kept = np.repeat(kept_blocks(layer.matrix(), rows_on), rows_on, axis=0)[:layer.k]
    return kept.T.reshape(layer.weight.shape)


def row_tile_spans(k: int, rows_on: int, rows: int = DEFAULT_ROWS) -> list[tuple[int, int]]:
    """(first group, number of groups) of every row tile of a K-row layer on macros of
    ``rows`` rows (the macro's tiles, not the FPGA kernel's of hw/tiles.py)."""
    per_tile = DcimSpec(rows=rows, rows_on=rows_on).rows // rows_on    # checks the pair
    groups = -(-k // rows_on)
    return [(g0, min(per_tile, groups - g0)) for g0 in range(0, groups, per_tile)]


def blocks_pruned_per_tile(k: int, rows_on: int, sparsity: float,
                           rows: int = DEFAULT_ROWS) -> list[int]:
    """Blocks every channel loses in each row tile of T groups when pruning balanced
    per channel and row tile (quant/prune.py): ``min(T - 1, floor(sparsity * T + 1/2))``,
    so at least one block per channel and tile survives."""
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"block sparsity {sparsity} is out of range: allowed [0, 1)")
    return [min(t - 1, int(np.floor(sparsity * t + 0.5)))
            for _, t in row_tile_spans(k, rows_on, rows)]


def balanced_block_keep(w2: np.ndarray, rows_on: int, sparsity: float,
                        rows: int = DEFAULT_ROWS) -> np.ndarray:
    """Boolean [N, G]: the blocks of ``w2`` ([N, K], row k of channel n) kept when, in
    every row tile, every channel drops its :func:`blocks_pruned_per_tile` blocks of
    smallest L2 norm (ties: the lower group first). The one pruning rule of
    ``quant/prune.py`` (training) and ``study/sensitivity.py`` (integer weights)."""
    w2 = np.asarray(w2, dtype=np.float64)
    n, k = w2.shape
    groups = -(-k // rows_on)
    padded = np.zeros((n, groups * rows_on))
    padded[:, :k] = w2
    norms = np.sqrt((padded.reshape(n, groups, rows_on) ** 2).sum(axis=-1))
    keep = np.ones((n, groups), dtype=bool)
    drops = blocks_pruned_per_tile(k, rows_on, sparsity, rows)
    for (g0, width), drop in zip(row_tile_spans(k, rows_on, rows), drops):
        if drop:
            weakest = np.argsort(norms[:, g0:g0 + width], axis=1, kind="stable")[:, :drop]
            np.put_along_axis(keep[:, g0:g0 + width], weakest, False, axis=1)
    return keep


@dataclass(frozen=True)
class LayerCost:
    """Per input vector figures of one layer on the dcim macros."""

    row_tiles: int
    col_tiles: int
    cycles: int              # with block skipping
    dense_cycles: int        # same layer with nothing pruned
    blocks: int
    pruned_blocks: int

    @property
    def tiles(self) -> int:
        return self.row_tiles * self.col_tiles


def core_column_tiles(col_tiles: int, cores: int) -> list[np.ndarray]:
    """Column tiles of every core that gets one: tile c runs on core ``c % cores``."""
    return [np.arange(j, col_tiles, cores) for j in range(min(cores, col_tiles))]


def _round_cycles(tile_cycles: np.ndarray, spec: DcimSpec) -> int:
    """Each core's tiles ([row tile, column tile] row-major) run ``macros`` at a time, a
    round lasting its longest tile; the cores run in parallel, the layer lasts as long
    as its busiest core."""
    busiest = 0
    for cols in core_column_tiles(tile_cycles.shape[1], spec.cores):
        flat = tile_cycles[:, cols].reshape(-1)
        flat = np.concatenate([flat, np.zeros((-flat.size) % spec.macros, flat.dtype)])
        busiest = max(busiest, int(flat.reshape(-1, spec.macros).max(axis=1).sum()))
    return busiest


def layer_cost(w_mat: np.ndarray, w_bits: int, x_bits: int, spec: DcimSpec) -> LayerCost:
    """Tiles, cycles and block counts of the K x N matrix ``w_mat`` on ``spec``."""
    k, n = w_mat.shape
    kept = kept_blocks(w_mat, spec.rows_on)                        # [G, N]
    groups_per_tile = spec.rows // spec.rows_on
    ch_per_tile = spec.cols // w_bits
    g_starts = np.arange(0, kept.shape[0], groups_per_tile)
    c_starts = np.arange(0, n, ch_per_tile)
    kept_per_tile = np.add.reduceat(kept.astype(np.int64), g_starts, axis=0)   # [RT, N]
    tile_kept = np.maximum.reduceat(kept_per_tile, c_starts, axis=1)          # [RT, CT]
    groups_in_tile = np.diff(np.append(g_starts, kept.shape[0]))               # [RT]
    dense = np.broadcast_to(groups_in_tile[:, None], tile_kept.shape)
    return LayerCost(
        row_tiles=len(g_starts), col_tiles=len(c_starts),
        cycles=x_bits * _round_cycles(tile_kept, spec),
        dense_cycles=x_bits * _round_cycles(dense, spec),
        blocks=int(kept.size), pruned_blocks=int(kept.size - kept.sum()))


def acim_cost(k: int, n: int, w_bits: int, x_bits: int, spec: AcimSpec) -> LayerCost:
    """The analog macro: all active rows at once, inputs bit-serial (x_bits cycles per
    tile, one conversion per channel at the end, or per input bit in that mode); one
    macro, so tiles run one after another. No block skipping."""
    col_tiles = -(-n // (spec.cols // w_bits))
    row_tiles = -(-k // spec.rows)
    cycles = x_bits * row_tiles * col_tiles
    return LayerCost(row_tiles=row_tiles, col_tiles=col_tiles, cycles=cycles,
                     dense_cycles=cycles, blocks=0, pruned_blocks=0)
