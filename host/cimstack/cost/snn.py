"""FlexSpIM-family cost of a spiking run: energy per layer on top of the traffic and
cycles of :func:`cimstack.mapping.snn.network_cost`, the traffic each layer would
have moved weight-stationary, and the at-scale study of the dataflow policies on
macros sharing one budget with a DRAM tier (:func:`policy_study`).

Per layer, at the core's clock f (``SnnSpec.clock_mhz``), with ``slots = cols //
v_bits`` neuron slots per cycle and ``e_col = e_bit(f) * w_bits`` (one column's share
of a SOP):

    E_sop    = e_bit(f) * w_bits * v_bits                 (bit-normalized, FlexSpIM)
    unused   = compute_cycles * cols - sops * v_bits      (columns without a SOP in the
                                                           compute cycles: in standby)
    E        = E_sop * sops + idle_fraction * e_col * unused
               + move_ops_per_bit * e_bit(f) * (traffic + update_cycles * cols)

The update pass (leak, fire, reset: ``update_cycles`` rows of membranes) touches every
bit of its rows once and is charged like moving them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mapping.snn import LayerMapping, SnnMappingError, layer_cost, map_layer, network_cost
from .constants import SnnConstants, check_count


def ws_traffic(layer, stats, spec, samples: int) -> int:
    """Traffic bits of ``layer`` had it run weight-stationary (fitting or not)."""
    wb, vb = layer.n_weights * layer.w_bits, layer.n_neurons * layer.v_bits
    ws = LayerMapping(layer.name, "ws", "ws", wb, vb, wb, spec.rows * spec.cols)
    return layer_cost(layer, ws, stats, spec, samples)["traffic_bits"]


def _fits_ws(layer, spec) -> bool:
    try:
        map_layer(layer, spec, "ws")
    except SnnMappingError:
        return False
    return True


def _ratio(bits: int, ws_bits: int) -> float:
    """``bits / ws_bits``; 1.0 when both are 0."""
    return bits / ws_bits if ws_bits else (1.0 if not bits else float("inf"))


def snn_cost(net, result, samples: int, policy: str | None = None,
             constants: SnnConstants | None = None) -> dict:
    """Cost of a run (``result``: :class:`~cimstack.ref.snn.SnnResult` of ``samples``
    samples) under ``policy``: :func:`cimstack.mapping.snn.network_cost` with per layer
    ``energy_pj`` (and its parts), ``ws_traffic_bits`` and ``traffic_vs_ws`` (traffic /
    weight-stationary-only traffic: below 1 moves less) added, and the totals (also
    under ``totals``)."""
    check_count("samples", samples, "samples in the run")
    c = constants or SnnConstants()
    spec = net.spec
    base = network_cost(net, result, samples, policy)
    e_bit = c.e_bit_fj(spec.clock_mhz)
    rows = []
    for layer, st, row in zip(net.spiking_layers, result.stats, base["layers"]):
        e_col = e_bit * layer.w_bits * 1e-3
        unused = row["compute_cycles"] * spec.cols - row["sops"] * layer.v_bits
        ws = ws_traffic(layer, st, spec, samples)
        moved = row["traffic_bits"] + row["update_cycles"] * spec.cols
        parts = {"energy_sop_pj": row["sops"] * e_col * layer.v_bits,
                 "energy_idle_pj": unused * c.idle_fraction * e_col,
                 "energy_traffic_pj": moved * c.move_ops_per_bit * e_bit * 1e-3}
        rows.append({**row, **parts, "energy_pj": sum(parts.values()),
                     "energy_ungated_pj": sum(parts.values()) + unused * (1 - c.idle_fraction)
                     * e_col, "unused_column_cycles": unused, "ws_traffic_bits": ws,
                     "traffic_vs_ws": _ratio(row["traffic_bits"], ws),
                     "ws_fits": _fits_ws(layer, spec)})
    energy = sum(r["energy_pj"] for r in rows)
    ws_total = sum(r["ws_traffic_bits"] for r in rows)
    seconds = base["model_seconds"]
    totals = {
        "sops": base["sops"], "cycles": base["cycles"], "latency_s": seconds / samples,
        "energy_pj": energy, "energy_pj_per_sample": energy / samples,
        "pj_per_sop": energy / base["sops"] if base["sops"] else 0.0,
        "gsop_per_s": base["sops"] / seconds * 1e-9 if seconds else 0.0,
        "peak_gsop_per_s": max(spec.cols // s.v_bits for s in net.spiking_layers)
        * spec.clock_mhz * 1e-3,
        "traffic_bits": base["traffic_bits"], "ws_traffic_bits": ws_total,
        "traffic_vs_ws": _ratio(base["traffic_bits"], ws_total),
        "idle_saving": 1 - energy / sum(r["energy_ungated_pj"] for r in rows)
        if energy else 0.0,
    }
    return {**base, "layers": rows, "totals": totals}


# ------------------------------------------------------------ at scale (shared macros)

def plan_energy(plan, net, stats, constants: SnnConstants | None = None) -> dict:
    """Energy (pJ) of a run under a :class:`~cimstack.mapping.flexspim.NetworkPlan`:
    the SOPs (``E_sop`` each, the same under every policy) and the DRAM tier (every bit
    between DRAM and the macros costs ``e_dram_fj_per_bit`` plus a move on the array,
    ``move_ops_per_bit * e_bit``)."""
    c = constants or SnnConstants()
    e_bit = c.e_bit_fj(net.spec.clock_mhz)
    sop = sum(st.sops * e_bit * l.w_bits * l.v_bits for l, st in
              zip(net.spiking_layers, stats)) * 1e-3
    dram = plan.dram_bits * (c.e_dram_fj_per_bit + c.move_ops_per_bit * e_bit) * 1e-3
    return {"energy_sop_pj": sop, "energy_dram_pj": dram, "energy_pj": sop + dram}


@dataclass(frozen=True)
class EventRun:
    """A run of a network on seeded random events at one input ``sparsity``: the spike
    statistics the dataflow policies are mapped over (:func:`policy_rows`)."""

    sparsity: float
    samples: int
    stats: list                 # LayerStats per spiking layer
    reached: list               # reach_counts per spiking layer
    input_events: int
    rates: dict                 # layer -> spikes per neuron and timestep


def event_run(net, sparsity: float, samples: int = 1, steps: int = 16,
              seed: int = 0) -> EventRun:
    """A ``run_snn`` of ``net`` on ``samples`` x ``steps`` frames of seeded random events
    at ``sparsity`` (:func:`cimstack.models.flexspim.random_events`)."""
    from ..mapping.flexspim import reach_counts
    from ..models.flexspim import random_events
    from ..ref.snn import run_snn
    check_count("samples", samples, "samples in the run")
    frames = random_events(net, samples, steps, sparsity, seed)
    result = run_snn(net, frames, keep_spikes=True)
    rates = {l.name: st.events_out / (st.steps * l.n_neurons)
             for l, st in zip(net.spiking_layers, result.stats)}
    return EventRun(sparsity, samples, result.stats, reach_counts(net, frames, result),
                    result.input_events, rates)


def policy_rows(net, run: EventRun, macros: int,
                constants: SnnConstants | None = None) -> list[dict]:
    """Every policy of :mod:`cimstack.mapping.flexspim` on ``macros`` macros over the
    event ``run``: one row each with the resident (stationary) bits, the DRAM bits and
    the energy per sample, each also relative to weight-stationary only on the same
    macros and input, and the plan (per layer: dataflow, place, bits)."""
    from ..mapping.flexspim import POLICIES, plan_network
    plans = {p: plan_network(net, run.stats, macros, p, run.reached) for p in POLICIES}
    energy = {p: plan_energy(plans[p], net, run.stats, constants) for p in POLICIES}
    ws, e_ws = plans["ws"], energy["ws"]["energy_pj"]
    out = []
    for p, plan in plans.items():
        e = energy[p]["energy_pj"]
        out.append({
            "sparsity": run.sparsity, "macros": macros, "policy": p,
            "flows": "".join((l.dataflow.upper() if l.resident else l.dataflow)[0]
                             for l in plan.layers),
            "resident_bits": plan.resident_bits,
            "resident_vs_ws": plan.resident_bits / ws.resident_bits - 1
            if ws.resident_bits else 0.0,
            "dram_bits_per_sample": plan.dram_bits / run.samples,
            "dram_vs_ws": _ratio(plan.dram_bits, ws.dram_bits),
            "energy_pj_per_sample": e / run.samples,
            "energy_vs_ws": e / e_ws - 1 if e_ws else 0.0,
            "input_events": run.input_events, "rates": run.rates,
            "plan": plan.to_dict()})
    return out


def policy_study(net, sparsities, macros, samples: int = 1, steps: int = 16,
                 seed: int = 0, constants: SnnConstants | None = None) -> list[dict]:
    """:func:`policy_rows` on every number of ``macros`` at every input ``sparsity``,
    each over an :func:`event_run` of ``net`` (``samples`` x ``steps`` frames, seeded)."""
    out = []
    for sparsity in sparsities:
        run = event_run(net, sparsity, samples, steps, seed)
        for m in macros:
            out += policy_rows(net, run, m, constants)
    return out
