"""IMAGINE-family cost: one evaluation of the charge-domain macro, the macro's
efficiency and density over precision, and the per-layer cost of an acim layer.

One evaluation drives ``active_rows`` word lines for ``x_bits`` input cycles; every
cycle charges ``active_rows x active_cols`` bit cells (``active_cols = channels x
w_bits``); the ADCs then convert each channel once (or after every input bit in the
``adc_per_input_bit`` mode), a SAR conversion costing ``adc_bits`` bit decisions:

    E = x_bits * active_rows * active_cols * e_cell + conversions * adc_bits * e_sar_step
    t = t_eval + x_bits * t_input

Operations: one multiply and one add per weight and evaluation, ``2 * active_rows *
channels``. A layer's utilization is the fraction of the array's peak MAC rate (all
``rows`` x ``cols // w_bits`` weights, one input bit per cycle) its compute cycles use.
"""

from __future__ import annotations

from ..config import AcimSpec, check_range
from .constants import AcimConstants
from .operands import operand_bits


def evaluation(active_rows: int, channels: int, w_bits: int, x_bits: int, adc_bits: int,
               per_bit: bool, c: AcimConstants) -> dict:
    """Operations, conversions, energy (pJ) and latency (s) of one evaluation."""
    cells = active_rows * channels * w_bits
    conversions = channels * (x_bits if per_bit else 1)
    array_pj = x_bits * cells * c.e_cell_fj * 1e-3
    readout_pj = conversions * adc_bits * c.e_sar_step_fj * 1e-3
    return {"ops": 2 * active_rows * channels, "conversions": conversions,
            "energy_array_pj": array_pj, "energy_readout_pj": readout_pj,
            "energy_pj": array_pj + readout_pj,
            "latency_s": (c.t_eval_ns + x_bits * c.t_input_ns) * 1e-9}


def full_array(bits: int, spec: AcimSpec, c: AcimConstants) -> dict:
    """One evaluation of the whole array at ``bits``-bit precision (x_bits = w_bits =
    adc_bits = bits): all rows, ``cols // bits`` channels, one conversion per channel."""
    check_range("bits", bits, 1, 8)
    return evaluation(spec.rows, spec.cols // bits, bits, bits, bits, False, c)


def acim_macro_curve(bits=range(1, 9), constants: AcimConstants | None = None,
                     spec: AcimSpec | None = None) -> list[dict]:
    """The macro's peak efficiency (POPS/W) and density (TOPS/mm^2) at each precision in
    ``bits`` (x_bits = w_bits = adc_bits), whole array active; 1 op = 1 multiply or 1
    add (2 per MAC)."""
    c, spec = constants or AcimConstants(), spec or AcimSpec()
    rows = []
    for r in bits:
        ev = full_array(r, spec, c)
        rows.append({"bits": r, "pops_per_w": ev["ops"] / ev["energy_pj"] * 1e-3,
                     "tops_per_mm2": ev["ops"] / ev["latency_s"] / c.macro_area_mm2 * 1e-12,
                     "energy_pj": ev["energy_pj"], "latency_s": ev["latency_s"],
                     "ops": ev["ops"]})
    return rows


def acim_layer(layer, stats, spec: AcimSpec, c: AcimConstants, reload: bool,
               batch: int) -> dict:
    """Per-image cost of one acim layer (``stats``: its :class:`~cimstack.ref.network.
    LayerStats`); ``reload``: the network's weights do not stay resident, so this layer's
    weights are written into the array once per ``batch`` images."""
    ch_per_tile = spec.cols // layer.w_bits
    row = {"energy_array_pj": 0.0, "energy_readout_pj": 0.0, "conversions": 0,
           "latency_s": 0.0}
    for r0 in range(0, layer.k, spec.rows):
        for c0 in range(0, layer.channels, ch_per_tile):
            ev = evaluation(min(spec.rows, layer.k - r0), min(ch_per_tile, layer.channels - c0),
                            layer.w_bits, layer.x_bits, spec.adc_bits, spec.adc_per_input_bit, c)
            for key in row:
                row[key] += stats.vectors * ev[key]
    moved = operand_bits(layer, stats.vectors,
                         layer.k * layer.channels * layer.w_bits if reload else 0, batch)
    load_rows = -(-moved["weight_bits"] // spec.cols)
    peak = stats.cycles * spec.rows * ch_per_tile          # MAC-input-bits the array could do
    row.update(moved, cycles=stats.cycles + load_rows, compute_cycles=stats.cycles,
               utilization=layer.k * layer.channels * stats.vectors * layer.x_bits / peak,
               load_cycles=load_rows, ops_performed=2 * layer.k * layer.channels * stats.vectors,
               area_mm2=c.macro_area_mm2, energy_move_pj=moved["moved_bits"]
               * c.e_move_fj_per_bit * 1e-3)
    row["latency_s"] += load_rows * c.t_input_ns * 1e-9
    return row
