"""MARS-family cost of one dcim layer, from its block structure, cycle count and its
place on the cores (:mod:`cimstack.mapping.mars`).

Only kept blocks are stored and computed (pruned blocks cost no cycle and no array
energy). Per image, with ``vectors`` input vectors and the kept blocks (group g,
channel n) of ``rows_g`` rows:

    cell cycles  = vectors * x_bits * w_bits * sum over kept blocks of rows_g
    column reads = vectors * x_bits * w_bits * kept blocks         (psum_bits bits each)
    E = cell cycles * e_cell + column reads * psum_bits * e_read + moved bits * e_move
    E_dram = DRAM bits * e_dram                                     (reported apart)

``psum_bits`` is the column ADC's resolution, or the bits of ``rows_on`` for an exact
read-out. Utilization: the MACs performed (kept rows x vectors) over the macros' peak
(``rows_on`` rows x ``cols // w_bits`` channels on every macro, one input bit per cycle)
during the layer's compute cycles. The input is moved once per core used (input reuse across a core's macros).
Cycles are the tiling model's (:func:`cimstack.mapping.tiling.layer_cost`), plus the
weight reload when the network does not stay resident (every core writes one row of
each of its macros per cycle, the cores in parallel), plus the wait for weights
streamed from DRAM where the stream takes longer than the layer's compute (the
ping-pong weight buffer overlaps the two).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DcimSpec
from ..mapping.mars import LayerMap
from ..mapping.tiling import group_starts, kept_blocks
from .constants import DcimConstants
from .operands import operand_bits, per_batch


def psum_read_bits(spec: DcimSpec) -> int:
    """Bits of one column read: the ADC's ``psum_bits``, or enough for ``rows_on``."""
    return spec.psum_bits if spec.psum_bits is not None else spec.rows_on.bit_length()


def dcim_layer(layer, stats, spec: DcimSpec, c: DcimConstants, reload: bool,
               batch: int, lmap: LayerMap) -> dict:
    """Per-image cost of one dcim layer (``stats``: its :class:`~cimstack.ref.network.
    LayerStats`, ``lmap``: its placed :class:`~cimstack.mapping.mars.LayerMap`);
    ``reload``: its kept weights are rewritten once per ``batch`` images."""
    w_mat = layer.matrix()
    kept = kept_blocks(w_mat, spec.rows_on)                               # [G, N]
    sizes = np.diff(np.append(group_starts(layer.k, spec.rows_on), layer.k))
    kept_rows = int((kept * sizes[:, None]).sum())
    per_vector = stats.vectors * layer.x_bits * layer.w_bits
    reads = per_vector * int(kept.sum())
    moved = operand_bits(layer, stats.vectors, kept_rows * layer.w_bits if reload else 0, batch)
    once = moved["in_bits"]                          # the input tensor, fetched once
    in_bits = once * lmap.input_fetches
    moved.update(in_bits=in_bits, moved_bits=moved["moved_bits"] - once + in_bits)
    load = max(-(-per_batch(bits, batch) // (spec.cols * spec.macros))
               for bits in lmap.core_weight_bits) if reload else 0
    dram_bits = moved["weight_bits"] if lmap.placement == "dram" else 0
    dram_cycles = math.ceil(dram_bits / c.dram_bits_per_cycle())
    stall = max(0, dram_cycles - stats.cycles)
    cycles = stats.cycles + load + stall
    # the macros' peak: rows_on rows x cols // w_bits channels, one input bit per cycle
    peak = stats.cycles * spec.total_macros * spec.rows_on * (spec.cols // layer.w_bits)
    return {**moved, "in_bits_without_reuse": once * lmap.input_fetches_without_reuse,
            "cycles": cycles, "compute_cycles": stats.cycles, "load_cycles": load,
            "dram_cycles": dram_cycles, "dram_stall_cycles": stall,
            "latency_s": cycles / (c.clock_mhz * 1e6), "column_reads": reads,
            "ops_performed": 2 * kept_rows * stats.vectors,
            "utilization": kept_rows * stats.vectors * layer.x_bits / peak if peak else 0.0,
            "energy_array_pj": per_vector * kept_rows * c.e_cell_fj * 1e-3,
            "energy_readout_pj": reads * psum_read_bits(spec) * c.e_read_fj * 1e-3,
            "energy_move_pj": moved["moved_bits"] * c.e_move_fj_per_bit * 1e-3,
            "dram_bits": dram_bits, "energy_dram_pj": dram_bits * c.e_dram_fj_per_bit * 1e-3,
            "cores_used": lmap.cores_used, "macros_used": lmap.macros_used,
            "weights_from": lmap.placement,
            "area_mm2": min(stats.tiles, spec.total_macros) * c.macro_area_mm2}
