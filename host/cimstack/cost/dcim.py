"""MARS-family cost of one dcim layer, from its block structure and cycle count.

Only kept blocks are stored and computed (pruned blocks cost no cycle and no array
energy). Per image, with ``vectors`` input vectors and the kept blocks (group g,
channel n) of ``rows_g`` rows:

    cell cycles  = vectors * x_bits * w_bits * sum over kept blocks of rows_g
    column reads = vectors * x_bits * w_bits * kept blocks         (psum_bits bits each)
    E = cell cycles * e_cell + column reads * psum_bits * e_read + moved bits * e_move

``psum_bits`` is the column ADC's resolution, or the bits of ``rows_on`` for an exact
read-out. Cycles are the tiling model's (:func:`cimstack.mapping.tiling.layer_cost`),
plus the weight reload when the network does not stay resident: one row of every macro
written per cycle.
"""

from __future__ import annotations

import numpy as np

from ..config import DcimSpec
from ..mapping.tiling import group_starts, kept_blocks
from .constants import DcimConstants
from .operands import operand_bits


def psum_read_bits(spec: DcimSpec) -> int:
    """Bits of one column read: the ADC's ``psum_bits``, or enough for ``rows_on``."""
    return spec.psum_bits if spec.psum_bits is not None else spec.rows_on.bit_length()


def dcim_layer(layer, stats, spec: DcimSpec, c: DcimConstants, reload: bool,
               batch: int) -> dict:
    """Per-image cost of one dcim layer (``stats``: its :class:`~cimstack.ref.network.
    LayerStats`); ``reload``: its kept weights are rewritten once per ``batch`` images."""
    w_mat = layer.matrix()
    kept = kept_blocks(w_mat, spec.rows_on)                               # [G, N]
    sizes = np.diff(np.append(group_starts(layer.k, spec.rows_on), layer.k))
    kept_rows = int((kept * sizes[:, None]).sum())
    per_vector = stats.vectors * layer.x_bits * layer.w_bits
    reads = per_vector * int(kept.sum())
    moved = operand_bits(layer, stats.vectors, kept_rows * layer.w_bits if reload else 0, batch)
    load = -(-moved["weight_bits"] // (spec.cols * spec.macros))
    cycles = stats.cycles + load
    return {**moved, "cycles": cycles, "compute_cycles": stats.cycles, "load_cycles": load,
            "latency_s": cycles / (c.clock_mhz * 1e6), "column_reads": reads,
            "ops_performed": 2 * kept_rows * stats.vectors,
            "energy_array_pj": per_vector * kept_rows * c.e_cell_fj * 1e-3,
            "energy_readout_pj": reads * psum_read_bits(spec) * c.e_read_fj * 1e-3,
            "energy_move_pj": moved["moved_bits"] * c.e_move_fj_per_bit * 1e-3,
            "area_mm2": min(stats.tiles, spec.macros) * c.macro_area_mm2}
