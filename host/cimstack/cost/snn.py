"""FlexSpIM-family cost of a spiking run: energy per layer on top of the traffic and
cycles of :func:`cimstack.mapping.snn.network_cost`, and the traffic each layer would
have moved weight-stationary.

Per layer, at the core's clock f (``SnnSpec.clock_mhz``) and with ``slots = cols //
v_bits`` neuron slots per cycle:

    E_sop  = e_bit(f) * w_bits * v_bits                 (bit-normalized, FlexSpIM)
    idle   = cycles * slots - sops                      (slot-cycles with no SOP)
    E      = E_sop * (sops + idle_fraction * idle) + move_ops_per_bit * e_bit(f) * traffic
"""

from __future__ import annotations

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


def snn_cost(net, result, samples: int, policy: str | None = None,
             constants: SnnConstants | None = None) -> dict:
    """Cost of a run (``result``: :class:`~cimstack.ref.snn.SnnResult` of ``samples``
    samples) under ``policy``: :func:`cimstack.mapping.snn.network_cost` with per layer
    ``energy_pj``, ``ws_traffic_bits`` and ``traffic_saving`` (1 - traffic / ws traffic)
    added, and the totals (also under ``totals``)."""
    check_count("samples", samples, "samples in the run")
    c = constants or SnnConstants()
    spec = net.spec
    base = network_cost(net, result, samples, policy)
    e_bit = c.e_bit_fj(spec.clock_mhz)
    rows = []
    for layer, st, row in zip(net.spiking_layers, result.stats, base["layers"]):
        e_sop = e_bit * layer.w_bits * layer.v_bits * 1e-3
        slots = max(1, spec.cols // layer.v_bits)
        idle = max(0, row["cycles"] * slots - row["sops"])
        ws = ws_traffic(layer, st, spec, samples)
        parts = {"energy_sop_pj": row["sops"] * e_sop,
                 "energy_idle_pj": idle * c.idle_fraction * e_sop,
                 "energy_traffic_pj": row["traffic_bits"] * c.move_ops_per_bit * e_bit * 1e-3}
        rows.append({**row, **parts, "energy_pj": sum(parts.values()),
                     "energy_ungated_pj": sum(parts.values()) + idle * (1 - c.idle_fraction)
                     * e_sop, "idle_slots": idle, "ws_traffic_bits": ws,
                     "traffic_saving": 1 - row["traffic_bits"] / ws if ws else 0.0,
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
        "traffic_saving": 1 - base["traffic_bits"] / ws_total if ws_total else 0.0,
        "idle_saving": 1 - energy / sum(r["energy_ungated_pj"] for r in rows)
        if energy else 0.0,
    }
    return {**base, "layers": rows, "totals": totals}
