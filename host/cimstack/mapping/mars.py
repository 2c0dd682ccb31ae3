"""MARS multi-macro mapping of dcim layers: tiles over cores and macros, input fetches
with and without reuse, and where the network's kept weights live (docs/macros.md,
"MARS multi-macro mapping").

The hardware (:class:`~cimstack.config.DcimSpec`): ``cores`` cores, each with
``macros`` macros of ``rows x cols`` bits and a weight SRAM of ``weight_sram_kib`` KiB
(None: room for every layer).

- Spread: a layer's column tiles (``cols // w_bits`` output channels each) are dealt
  over the cores, column tile c to core ``c % cores``
  (:func:`~cimstack.mapping.tiling.core_column_tiles`); a core holds every row tile of
  its column tiles and runs them on its macros in rounds, adding the row tiles' partial
  sums itself. A core computes whole output channels: no partial sum crosses cores.
- Input reuse: a core fetches the layer's input once and broadcasts it to its macros,
  so the input is fetched once per core used; without that reuse every column tile
  fetches it on its own.
- Weights: the kept blocks' weights (``w_bits`` bits per row of a kept block) are stored
  on the core that runs their column tile. When the network's tiles all fit the macros
  at once (resident) they are written once and nothing moves per image; otherwise every
  layer's weights are written into its macros once per batch of images, from the
  cores' weight SRAM when the layer has room there, else streamed from DRAM. Room is
  given in layer order: a layer stays in SRAM when its weights fit the free space of
  every core it uses (first come, first kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..config import DcimSpec
from .tiling import core_column_tiles, group_starts, kept_blocks

PLACEMENTS = ("macros", "sram", "dram")   # where a layer's weights come from per batch


@dataclass(frozen=True)
class LayerMap:
    """One dcim layer on the cores: tiles and kept weight bits per core used, and where
    its weights come from (``placement``, one of :data:`PLACEMENTS`; "" before
    :func:`network_map` places it)."""

    layer: str
    row_tiles: int
    col_tiles: int
    core_tiles: tuple[int, ...]          # tiles of every core used
    core_weight_bits: tuple[int, ...]    # kept weight bits stored on every core used
    macros: int                          # macros per core (DcimSpec.macros)
    placement: str = ""

    @property
    def cores_used(self) -> int:
        return len(self.core_tiles)

    @property
    def macros_used(self) -> int:
        """Macros busy in the layer's first round, over all cores."""
        return sum(min(t, self.macros) for t in self.core_tiles)

    @property
    def input_fetches(self) -> int:
        """Times the layer's input is fetched with reuse: once per core used."""
        return self.cores_used

    @property
    def input_fetches_without_reuse(self) -> int:
        """Times the layer's input is fetched without reuse: once per column tile."""
        return self.col_tiles

    @property
    def weight_bits(self) -> int:
        return sum(self.core_weight_bits)

    @property
    def core_weight_bytes(self) -> tuple[int, ...]:
        return tuple(-(-b // 8) for b in self.core_weight_bits)


def spread(name: str, w_mat: np.ndarray, w_bits: int, spec: DcimSpec) -> LayerMap:
    """The K x N matrix ``w_mat`` spread over ``spec``'s cores (unplaced)."""
    k, n = w_mat.shape
    kept = kept_blocks(w_mat, spec.rows_on)                                  # [G, N]
    sizes = np.diff(np.append(group_starts(k, spec.rows_on), k))
    channel_bits = (kept * sizes[:, None]).sum(axis=0) * w_bits              # [N]
    row_tiles = -(-k // spec.rows)
    per_tile = spec.cols // w_bits
    col_tiles = -(-n // per_tile)
    tile_bits = np.add.reduceat(channel_bits, np.arange(0, n, per_tile))    # [CT]
    cores = core_column_tiles(col_tiles, spec.cores)
    return LayerMap(name, row_tiles, col_tiles,
                    core_tiles=tuple(row_tiles * len(c) for c in cores),
                    core_weight_bits=tuple(int(tile_bits[c].sum()) for c in cores),
                    macros=spec.macros)


def place(maps: list[LayerMap], spec: DcimSpec, resident: bool) -> list[LayerMap]:
    """``maps`` (a network's dcim layers in order) with their placement: all "macros"
    when ``resident``, else "sram" for the layers that fit the cores' free SRAM in
    layer order and "dram" for the rest."""
    if resident:
        return [replace(m, placement="macros") for m in maps]
    room = math.inf if spec.weight_sram_kib is None else spec.weight_sram_kib * 1024
    free = [room] * spec.cores                       # bytes left on every core
    placed = []
    for m in maps:
        fits = all(need <= free[j] for j, need in enumerate(m.core_weight_bytes))
        if fits:
            for j, need in enumerate(m.core_weight_bytes):
                free[j] -= need
        placed.append(replace(m, placement="sram" if fits else "dram"))
    return placed


def network_map(bundle, resident: bool) -> dict[str, LayerMap]:
    """Every dcim layer of ``bundle`` by name, spread over ``bundle.dcim``'s cores and
    placed (``resident``: the network's tiles fit the macros at once, decided by
    :func:`cimstack.cost.network.network_cost`)."""
    layers = [layer for layer in bundle.macro_layers if layer.macro == "dcim"]
    maps = [spread(layer.name, layer.matrix(), layer.w_bits, bundle.dcim) for layer in layers]
    return {m.layer: m for m in place(maps, bundle.dcim, resident)}
