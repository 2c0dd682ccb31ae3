"""Mapping spiking layers onto the event core's array: dataflow, capacity, cost.

Each spiking layer runs on one ``rows x cols`` array (FlexSpIM: 512 x 256 bits) that
holds its resident operand:

- weight-stationary (``ws``): all ``n_weights * w_bits`` weight bits stay in the
  array; the membranes (``n_neurons * v_bits``) pass through it;
- output-stationary (``os``): all membrane bits stay; the weights are streamed, the
  slice of ``fanout`` weights of an input event's address, once per timestep and slice
  (events arrive in address order: a conv layer's events of one input channel share
  the slice ``w[:, c]``; :func:`~cimstack.ref.snn.weight_slices`).

Policy ``auto`` keeps the smaller operand resident (FlexSpIM); ``ws`` / ``os`` force it.
A mapping fits when the resident bits plus the stream buffer (:func:`buffer_bits`: one
row for the membranes streamed weight-stationary, one weight slice in whole rows
output-stationary) fit the array; otherwise :class:`SnnMappingError` names the layer
and the missing bits.

Cost model (per layer, from the event counts of a run, :class:`~cimstack.ref.snn.LayerStats`):

- traffic, ws: ``n_weights * w_bits`` once per sample, plus ``2 * n_neurons * v_bits``
  (read in and write back) for every timestep with input events (every timestep when
  the layer leaks);
- traffic, os: ``slices_in * fanout * w_bits``;
- cycles: ``ceil(sops / (cols // v_bits))`` compute (cols / v_bits synaptic operations
  per cycle, FlexSpIM) + ``ceil(traffic / cols)`` row transfers + one membrane pass
  ``ceil(n_neurons * v_bits / cols)`` per active timestep (leak, fire, reset).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import ConfigError


class SnnMappingError(ConfigError):
    """A layer does not fit the event core's array in the requested dataflow."""


@dataclass(frozen=True)
class LayerMapping:
    name: str
    dataflow: str               # "ws" | "os"
    policy: str                 # what was asked: auto / ws / os
    weight_bits: int            # n_weights * w_bits
    membrane_bits: int          # n_neurons * v_bits
    resident_bits: int
    array_bits: int

    @property
    def utilization(self) -> float:
        return self.resident_bits / self.array_bits

    def to_dict(self) -> dict:
        d = asdict(self)
        d["utilization"] = self.utilization
        return d


def buffer_bits(layer, flow: str, cols: int) -> int:
    """Array bits that hold the streamed operand: weight-stationary one row of
    membranes; output-stationary one weight slice (``fanout * w_bits``, reused by the
    timestep's events of its channel), in whole rows."""
    if flow == "ws":
        return cols
    return max(1, -(-layer.fanout * layer.w_bits // cols)) * cols


def _check_fit(layer, flow: str, need: int, array: int, cols: int) -> None:
    buf = buffer_bits(layer, flow, cols)
    if need + buf > array:
        what = "weights" if flow == "ws" else "membranes"
        kind = "weight-stationary" if flow == "ws" else "output-stationary"
        raise SnnMappingError(
            f"layer {layer.name} does not fit the array {kind}: {need} bits of resident "
            f"{what} + {buf} bits of stream buffer = {need + buf} bits, the array holds "
            f"{array} bits: {need + buf - array} bits missing")


def map_layer(layer, spec, policy: str | None = None) -> LayerMapping:
    """Dataflow of one spiking layer under ``policy`` (default: the layer's own, then
    the spec's)."""
    policy = policy or (layer.dataflow if layer.dataflow != "auto" else spec.dataflow)
    wb = layer.n_weights * layer.w_bits
    vb = layer.n_neurons * layer.v_bits
    array = spec.rows * spec.cols
    flow = policy if policy in ("ws", "os") else ("ws" if wb <= vb else "os")
    need = wb if flow == "ws" else vb
    _check_fit(layer, flow, need, array, spec.cols)
    return LayerMapping(layer.name, flow, policy, wb, vb, need, array)


def map_network(net, policy: str | None = None) -> list[LayerMapping]:
    """One :class:`LayerMapping` per spiking layer (raises on the first that does not fit)."""
    return [map_layer(l, net.spec, policy) for l in net.layers if l.spiking]


def layer_cost(layer, mapping: LayerMapping, stats, spec, samples: int) -> dict:
    """Traffic (bits) and cycles of one layer from its run statistics."""
    per_step = layer.n_neurons * layer.v_bits
    active = stats.steps if layer.leak_shift else stats.active_steps
    if mapping.dataflow == "ws":
        weight_bits = layer.n_weights * layer.w_bits * samples
        membrane_bits = 2 * per_step * active
    else:
        weight_bits = stats.slices_in * layer.fanout * layer.w_bits
        membrane_bits = 0
    traffic = weight_bits + membrane_bits
    sop_per_cycle = max(1, spec.cols // layer.v_bits)
    compute = -(-stats.sops // sop_per_cycle)
    moves = -(-traffic // spec.cols)
    update = active * -(-per_step // spec.cols)
    cycles = compute + moves + update
    return {"layer": layer.name, "dataflow": mapping.dataflow, "policy": mapping.policy,
            "resident_bits": mapping.resident_bits, "weight_traffic_bits": weight_bits,
            "membrane_traffic_bits": membrane_bits, "traffic_bits": traffic,
            "sops": stats.sops, "events_in": stats.events_in, "events_out": stats.events_out,
            "cycles": cycles, "compute_cycles": compute, "move_cycles": moves,
            "update_cycles": update}


def network_cost(net, result, samples: int, policy: str | None = None) -> dict:
    """Per-layer and total cost of a run (``result``: :class:`~cimstack.ref.snn.SnnResult`)."""
    maps = {m.name: m for m in map_network(net, policy)}
    layers = [l for l in net.layers if l.spiking]
    rows = [layer_cost(l, maps[l.name], st, net.spec, samples)
            for l, st in zip(layers, result.stats)]
    cycles = sum(r["cycles"] for r in rows)
    seconds = cycles / (net.spec.clock_mhz * 1e6)
    events = result.input_events
    return {"layers": rows, "cycles": cycles, "traffic_bits": sum(r["traffic_bits"] for r in rows),
            "sops": sum(r["sops"] for r in rows), "model_seconds": seconds,
            "model_events_per_s": events / seconds if seconds else 0.0,
            "model_sops_per_s": sum(r["sops"] for r in rows) / seconds if seconds else 0.0}
