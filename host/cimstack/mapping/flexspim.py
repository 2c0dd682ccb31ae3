"""FlexSpIM at scale: a spiking network on M macros that share one capacity budget,
with a DRAM tier for what does not fit, under per-layer dataflow policies.

The single-array model (:mod:`.snn`) gives every layer its own array. Here the
network's layers share ``macros * rows * cols`` bits. Each spiking layer chooses a
dataflow (``ws``: weights stationary, membranes streamed; ``os``: membranes
stationary, weight slices streamed) and a place for its stationary operand: in the
macros (resident) or in DRAM (spilled). There is no other memory: every bit that moves
into or out of a macro moves from or to DRAM. Per layer, over a run (its
``LayerStats``; an *active* timestep has input events, every
timestep is active when the layer leaks):

| dataflow, place | stationary operand | streamed operand |
|---|---|---|
| ws, resident | weights loaded once per run | reached membranes in and out per timestep |
| ws, spilled  | weights loaded per active timestep | the same |
| os, resident | membranes cleared in place: 0 | weight slices (``slices_in * fanout * w_bits``) |
| os, spilled  | reached membranes in and out per timestep | the same |

*Reached* membranes (:func:`reached_neurons`): the membranes of the array rows (``cols
// v_bits`` neurons per row, in the layer's flat output order) that hold a target of
at least one of the timestep's events; a row no event reaches keeps its value and
cannot start to fire (integrate-and-fire without leak; the model ignores a neuron left
above threshold by a subtract reset, as :mod:`.snn` does), so it is not moved. A leaky
layer moves all its membranes every timestep. Without reach counts (``reached=None``)
every membrane moves in every active timestep, as in the single-array model.

A resident layer takes its stationary bits plus its stream buffer
(:func:`~cimstack.mapping.snn.buffer_bits`) in whole rows. Spilled layers compute, one
at a time, in a working region kept free for them: the largest stream buffer of the
network plus one row (a tile of the stationary operand), reserved whatever the
placement. A layer is resident or spilled as a whole.

Policies choose the dataflow per layer:

- ``hs-min`` (FlexSpIM's): keep the smaller operand stationary;
- ``ws`` / ``os``: weight-stationary only / output-stationary only;
- ``min-traffic`` (ours): both dataflows open to every layer.

Under every policy the placement is the one with the least DRAM traffic within the
budget (an exact knapsack over rows), so the policies differ only in the dataflows they
allow and ``min-traffic`` moves at most what any other moves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import SnnSpec, check_range
from ..errors import ConfigError
from .snn import buffer_bits

POLICIES = ("hs-min", "ws", "os", "min-traffic")


@dataclass(frozen=True)
class LayerPlan:
    """One spiking layer on the shared macros."""

    name: str
    dataflow: str               # "ws" | "os"
    resident: bool              # stationary operand in the macros (else in DRAM)
    stationary_bits: int        # bits of the stationary operand
    rows: int                   # rows taken in the macros (0 when spilled)
    dram_bits: int              # DRAM <-> macro bits over the run

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NetworkPlan:
    policy: str
    macros: int
    budget_rows: int            # rows for resident layers (working region taken off)
    working_rows: int
    layers: tuple

    @property
    def dram_bits(self) -> int:
        return sum(l.dram_bits for l in self.layers)

    @property
    def resident_bits(self) -> int:
        """Stationary operand bits held in the macros (the paper's metric)."""
        return sum(l.stationary_bits for l in self.layers if l.resident)

    @property
    def rows_used(self) -> int:
        return sum(l.rows for l in self.layers)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "macros": self.macros, "budget_rows": self.budget_rows,
                "working_rows": self.working_rows, "rows_used": self.rows_used,
                "resident_bits": self.resident_bits, "dram_bits": self.dram_bits,
                "layers": [l.to_dict() for l in self.layers]}


def reached_neurons(layer, spikes: np.ndarray, cols: int) -> int:
    """Membranes in the array rows reached by the events of binary input maps
    ``[F, *in_shape]``, summed over the F frames (module docstring)."""
    f = len(spikes)
    if layer.leak_shift:
        return f * layer.n_neurons
    x = np.asarray(spikes, bool).reshape(f, *layer.in_shape)
    if layer.op == "fc":
        hit = np.broadcast_to(x.reshape(f, -1).any(axis=1)[:, None], (f, layer.n_neurons))
    else:
        k, p, s = layer.weight.shape[-1], layer.padding, layer.stride
        anywhere = np.pad(x.any(axis=1), ((0, 0), (p, p), (p, p)))
        win = np.lib.stride_tricks.sliding_window_view(anywhere, (k, k), axis=(1, 2))
        at = win[:, ::s, ::s].any(axis=(3, 4))                 # [F, Ho, Wo]
        hit = np.broadcast_to(at[:, None], (f, *layer.out_shape)).reshape(f, -1)
    slots = max(1, cols // layer.v_bits)
    rows = -(-layer.n_neurons // slots)
    padded = np.zeros((f, rows * slots), bool)
    padded[:, :layer.n_neurons] = hit
    per_row = np.minimum(slots, layer.n_neurons - slots * np.arange(rows))
    return int((padded.reshape(f, rows, slots).any(axis=2) * per_row).sum())


def reach_counts(net, frames: np.ndarray, result) -> list[int]:
    """:func:`reached_neurons` of every spiking layer of a run (``result``: the
    ``SnnResult`` of ``run_snn(net, frames, keep_spikes=True)``)."""
    b, t = np.asarray(frames).shape[:2]
    x, out = frames, []
    for layer in net.layers:
        if layer.spiking:
            out.append(reached_neurons(layer, np.asarray(x).reshape(b * t, -1), net.spec.cols))
        x = result.spikes[layer.name]
    return out


def layer_options(layer, stats, spec: SnnSpec, reached: int | None = None) -> dict:
    """``{(dataflow, resident): (stationary bits, rows, DRAM bits)}`` of one layer (the
    table of the module docstring)."""
    active = stats.steps if layer.leak_shift else stats.active_steps
    weights = layer.n_weights * layer.w_bits
    membranes = layer.n_neurons * layer.v_bits
    moved = layer.n_neurons * active if reached is None else reached
    pass_membranes = 2 * moved * layer.v_bits
    slices = stats.slices_in * layer.fanout * layer.w_bits
    out = {}
    for flow, stationary in (("ws", weights), ("os", membranes)):
        rows = -(-(stationary + buffer_bits(layer, flow, spec.cols)) // spec.cols)
        if flow == "ws":
            out[flow, True] = (stationary, rows, weights + pass_membranes)
            out[flow, False] = (stationary, 0, weights * active + pass_membranes)
        else:
            out[flow, True] = (stationary, rows, slices)
            out[flow, False] = (stationary, 0, pass_membranes + slices)
    return out


def allowed_flows(layer, policy: str) -> tuple:
    if policy == "hs-min":
        smaller = layer.n_weights * layer.w_bits <= layer.n_neurons * layer.v_bits
        return ("ws",) if smaller else ("os",)
    return ("ws", "os") if policy == "min-traffic" else (policy,)


def working_rows(layers, spec: SnnSpec) -> int:
    """Rows kept free for the spilled layers: the largest stream buffer plus one row."""
    return max(buffer_bits(l, f, spec.cols) for l in layers for f in ("ws", "os")) \
        // spec.cols + 1


def plan_network(net, stats, macros: int, policy: str,
                 reached: list | None = None) -> NetworkPlan:
    """Dataflow and place of every spiking layer of ``net`` on ``macros`` macros of
    ``net.spec`` under ``policy``, with the least DRAM traffic over the run ``stats``
    come from (``LayerStats``, one per spiking layer; ``reached``: its
    :func:`reach_counts`, or None for whole membrane passes)."""
    if policy not in POLICIES:
        raise ConfigError(f"policy {policy!r}: use one of {', '.join(POLICIES)}")
    check_range("macros", macros, 1, 4096)
    layers = net.spiking_layers
    if len(stats) != len(layers):
        raise ConfigError(f"{len(stats)} layer statistics for {len(layers)} spiking layers")
    spec = net.spec
    work = working_rows(layers, spec)
    budget = macros * spec.rows - work
    if budget < 0:
        raise ConfigError(f"{macros} macro(s) of {spec.rows} rows cannot hold the working "
                          f"region of {work} rows (largest stream buffer + one row)")
    choices = []
    reached = reached or [None] * len(layers)
    for layer, st, reach in zip(layers, stats, reached):
        opts = layer_options(layer, st, spec, reach)
        choices.append([(key, *opts[key]) for key in opts
                        if key[0] in allowed_flows(layer, policy)])
    # knapsack over rows: cost[r] = least DRAM bits of the layers so far in r rows
    cost = np.zeros(budget + 1)
    picks = []                    # per layer: the option taken at each r
    for opts in choices:
        new = np.full((len(opts), budget + 1), np.inf)
        for i, (_, _, rows, dram) in enumerate(opts):
            if rows <= budget:
                new[i, rows:] = cost[:budget + 1 - rows] + dram
        picks.append(new.argmin(axis=0))
        cost = new.min(axis=0)
    picked, r = [], budget
    for opts, pick in zip(reversed(choices), reversed(picks)):
        option = opts[pick[r]]
        picked.append(option)
        r -= option[2]
    plans = tuple(LayerPlan(l.name, key[0], key[1], bits, rows, dram)
                  for l, (key, bits, rows, dram) in zip(layers, reversed(picked)))
    return NetworkPlan(policy, macros, budget, work, plans)
