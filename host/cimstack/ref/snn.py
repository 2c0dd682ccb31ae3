"""Integer reference of the spiking event core (FlexSpIM family).

Semantics (docs/macros.md, "Spiking event core (snn)"): a network of spiking conv and
fully connected layers with integrate-and-fire neurons and OR-pooling between them,
run layer-first in every timestep. Per spiking layer and timestep:

1. ``I = sum of the weights of this timestep's input spikes`` (exact integer; the
   set of input spikes, so a repeated address counts once);
2. ``u = v + I``, saturated (clamp) or wrapped to the signed ``v_bits`` range;
3. leak (``leak_shift > 0``): ``u -= u >> leak_shift`` (arithmetic shift);
4. fire where ``u >= theta``; reset ``u -= theta`` (subtract) or ``u = 0`` (zero).

These are the defaults; the neuron options of :class:`SnnLayer` (the ones NIR
importers need, :mod:`cimstack.importer.nir_import`) change them per layer: ``fire``
``"gt"`` fires at ``u > theta``; ``leak_order`` ``"before"`` leaks the old membrane
before the input is added (``u = v - (v >> leak_shift) + I``, then the range);
``reset`` ``"step"`` returns every membrane to 0 after every timestep (memoryless,
NIR's Threshold); ``v_init`` is the membrane value at the first timestep.

The membrane update is order independent, so the weight-stationary and the
output-stationary dataflow (:func:`run_dataflow`) give the same spikes; they differ in
operand traffic and cycles (:mod:`cimstack.mapping.snn`). :func:`run_snn` is the fast
vectorized form used everywhere else: since no layer feeds back, it computes a layer's
input currents for all timesteps at once (one BLAS product, exact in floating point
below 2^24, else float64) and then steps the membranes through time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..bundle import check_chain, check_name
from ..config import SnnSpec, check_range
from ..errors import ConfigError
from ..overlay_shape import SNN

MAX_STRIDE = SNN.capacity["MAX_STRIDE"]      # the event core's largest conv stride
MAX_PAD = SNN.capacity["MAX_PAD"]            # and zero padding
OPS = ("conv", "fc", "pool")
# the neuron's string options and their values; the first is the default
NEURON_CHOICES = {"reset": ("subtract", "zero", "step"), "fire": ("ge", "gt"),
                  "leak_order": ("after", "before")}


def conv_out(size: int, k: int, padding: int, stride: int) -> int:
    """Output height (width) of a conv over ``size`` input rows (columns)."""
    return (size + 2 * padding - k) // stride + 1


def v_range(v_bits: int) -> tuple[int, int]:
    return -(1 << (v_bits - 1)), (1 << (v_bits - 1)) - 1


def w_range(w_bits: int) -> tuple[int, int]:
    return (-1, 1) if w_bits == 1 else (-(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1)


@dataclass
class SnnLayer:
    """One layer: ``conv`` (square kernel, zero padding, stride ``stride`` in both
    directions: output ``(H + 2 * padding - k) // stride + 1``), ``fc`` (input flattened
    in C, H, W order) or ``pool`` (OR over k x k windows, stride k, floor)."""

    name: str
    op: str
    in_shape: tuple
    out_shape: tuple
    weight: np.ndarray | None = None
    padding: int = 0
    stride: int = 1              # conv only (1..MAX_STRIDE); pool strides by its kernel
    kernel: int = 2
    theta: int = 1
    w_bits: int = 8
    v_bits: int = 16
    leak_shift: int = 0
    reset: str = "subtract"
    overflow: str = "saturate"
    dataflow: str = "auto"
    fire: str = "ge"             # "ge": spike at u >= theta; "gt": at u > theta (snnTorch, Norse)
    leak_order: str = "after"    # "after": leak v + I; "before": leak v, then add I (NIR LIF)
    v_init: int = 0              # membrane value at the first timestep (signed, v_bits)

    @property
    def spiking(self) -> bool:
        return self.op != "pool"

    @property
    def reset_code(self) -> int:
        """``reset`` as a number (the kernel's reset_mode register): 0 subtract, 1 zero,
        2 every timestep."""
        return NEURON_CHOICES["reset"].index(self.reset)

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_weights(self) -> int:
        return 0 if self.weight is None else int(self.weight.size)

    @property
    def fanout(self) -> int:
        """Weights fetched per input event (the weight slice of its address): conv
        N*k*k whatever the stride, fc N."""
        if self.op == "conv":
            n, _, k, _ = self.weight.shape
            return n * k * k
        return int(self.weight.shape[0]) if self.op == "fc" else 0

    def validate(self) -> None:
        where = f"layer {self.name}"
        if self.op not in OPS:
            raise ConfigError(f"{where}: op {self.op!r} unknown; use one of {OPS}")
        if self.op != "fc" and len(self.in_shape) != 3:
            raise ConfigError(f"{where}: {self.op} needs a (C, H, W) input, got "
                              f"{tuple(self.in_shape)}")
        if self.op == "pool":
            check_range(f"{where}.kernel", self.kernel, 1, 64)
            c, h, w = self.in_shape
            exp = (c, h // self.kernel, w // self.kernel)
            if tuple(self.out_shape) != exp:
                raise ConfigError(f"{where}: pool {self.kernel} of {self.in_shape} gives {exp}")
            return
        if self.v_bits == 1:
            raise ConfigError(f"{where}.v_bits = 1: a 1-bit signed membrane spans [-1, 0], so "
                              "no threshold theta >= 1 can ever fire; use v_bits 2..16")
        for name, lo, hi in (("w_bits", 1, 16), ("v_bits", 2, 16), ("leak_shift", 0, 15),
                             ("padding", 0, MAX_PAD), ("stride", 1, MAX_STRIDE),
                             ("theta", 1, None)):
            check_range(f"{where}.{name}", getattr(self, name), lo, hi)
        vlo, vhi = v_range(self.v_bits)
        if not 1 <= self.theta <= vhi:
            raise ConfigError(f"{where}.theta = {self.theta} must be in [1, {vhi}] (the "
                              f"positive range of v_bits = {self.v_bits})")
        for name, allowed in NEURON_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{where}.{name} = {getattr(self, name)!r}: use one of "
                                  f"{', '.join(allowed)}")
        check_range(f"{where}.v_init", self.v_init, vlo, vhi)
        if self.overflow not in ("saturate", "wrap"):
            raise ConfigError(f"{where}.overflow = {self.overflow!r}: use 'saturate' or 'wrap'")
        if self.dataflow not in ("auto", "ws", "os"):
            raise ConfigError(f"{where}.dataflow = {self.dataflow!r}: use auto, ws or os")
        w = self.weight
        if not isinstance(w, np.ndarray) or w.dtype.kind != "i" \
                or w.ndim != (4 if self.op == "conv" else 2):
            raise ConfigError(f"{where}.weight must be an integer array of "
                              f"{4 if self.op == 'conv' else 2} dimensions")
        lo, hi = w_range(self.w_bits)
        if w.size and (w.min() < lo or w.max() > hi):
            raise ConfigError(f"{where}.weight holds values outside [{lo}, {hi}] "
                              f"(w_bits = {self.w_bits})")
        if self.w_bits == 1 and np.any(w == 0):
            raise ConfigError(f"{where}.weight: binary weights are -1 or +1, not 0")
        if self.op == "conv":
            c, h, wd = self.in_shape
            n, wc, k, k2 = w.shape
            if min(h, wd) + 2 * self.padding < k:
                raise ConfigError(f"{where}: kernel {k} is larger than the input "
                                  f"{self.in_shape} padded by {self.padding}")
            exp = (n, conv_out(h, k, self.padding, self.stride),
                   conv_out(wd, k, self.padding, self.stride))
            if wc != c or k != k2 or tuple(self.out_shape) != exp:
                raise ConfigError(f"{where}: weight {w.shape} on input {self.in_shape} with "
                                  f"stride {self.stride} gives {exp}, not "
                                  f"{tuple(self.out_shape)}")
        else:
            if w.ndim != 2 or w.shape[1] != self.n_inputs or tuple(self.out_shape) != (w.shape[0],):
                raise ConfigError(f"{where}: fc weight {w.shape} does not fit input "
                                  f"{self.in_shape} / output {self.out_shape}")
        if self.fanout and self.n_inputs and max(self.fanout, w[0].size) * (1 << 15) >= 1 << 31:
            raise ConfigError(f"{where}: too many inputs per neuron for int32 accumulation")


@dataclass
class SnnNet:
    """A spiking network for the event core: integer weights and neuron settings."""

    name: str
    input_shape: tuple                 # (C, H, W) of the input events
    layers: list
    spec: SnnSpec = field(default_factory=SnnSpec)
    meta: dict = field(default_factory=dict)

    @property
    def spiking_layers(self) -> list:
        return [l for l in self.layers if l.spiking]

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_neurons

    def validate(self) -> None:
        check_name("network name", self.name, ConfigError)
        if not isinstance(self.meta, dict):
            raise ConfigError(f"network {self.name}: meta must be a dict (JSON object)")
        if "n_steps" in self.meta:       # read by the commands to bin the test events
            check_range(f"network {self.name} meta.n_steps", self.meta["n_steps"], 1, 4096)
        if not self.layers or not self.layers[-1].spiking:
            raise ConfigError(f"network {self.name}: the last layer must be conv or fc")
        check_chain(self.layers, self.input_shape, ConfigError)


# --------------------------------------------------------------------- primitives

def overflow(u: np.ndarray, v_bits: int, mode: str) -> np.ndarray:
    lo, hi = v_range(v_bits)
    if mode == "saturate":
        return np.clip(u, lo, hi)
    span = 1 << v_bits
    return ((u - lo) % span) + lo


def neuron_update(v: np.ndarray, current: np.ndarray, layer: SnnLayer):
    """One timestep of integrate-and-fire: returns (new membranes, spikes)."""
    u = v.astype(np.int64)
    if layer.leak_shift and layer.leak_order == "before":
        u = u - (u >> layer.leak_shift)
    u = overflow(u + current, layer.v_bits, layer.overflow)
    if layer.leak_shift and layer.leak_order == "after":
        u = u - (u >> layer.leak_shift)
    s = u > layer.theta if layer.fire == "gt" else u >= layer.theta
    if layer.reset == "subtract":
        u = np.where(s, u - layer.theta, u)
    elif layer.reset == "zero":
        u = np.where(s, 0, u)
    else:
        u = np.zeros_like(u)
    return u.astype(np.int32), s


def initial_membranes(shape, layer: SnnLayer) -> np.ndarray:
    """Membranes at the first timestep: ``v_init`` everywhere."""
    return np.full(shape, layer.v_init, np.int32)


def pool_or(spikes: np.ndarray, k: int) -> np.ndarray:
    """OR pooling over the last two axes (k x k, stride k, floor crop): the k rows of a
    window ORed as whole rows, then each run of k columns (k = 2, 4, 8: one k-byte word
    tested against zero), about 2.5x faster than k * k strided ORs on large maps."""
    h, w = spikes.shape[-2] // k, spikes.shape[-1] // k
    lead = spikes.shape[:-2]
    x = np.ascontiguousarray(spikes[..., :h * k, :w * k], dtype=bool)
    x = x.reshape(*lead, h, k, w * k)
    rows = x[..., 0, :].copy()
    for dy in range(1, k):
        rows |= x[..., dy, :]
    if k in (2, 4, 8):
        return rows.view(f"<u{k}") != 0
    return rows.reshape(*lead, h, w, k).any(axis=-1)


def pool_or_events(frame: np.ndarray, neuron: np.ndarray, shape: tuple, k: int,
                   n_frames: int) -> np.ndarray:
    """:func:`pool_or` of sparse spikes: events (frame, flat neuron of a ``shape`` =
    (C, H, W) map) -> bool [n_frames, C * (H // k) * (W // k)], without the dense maps
    (a scatter of the events instead of k * k passes over every neuron)."""
    c, h, w = shape
    ho, wo = h // k, w // k
    ch, rest = np.divmod(np.asarray(neuron, np.int64), h * w)
    y, x = np.divmod(rest, w)
    y, x = y // k, x // k
    keep = (y < ho) & (x < wo)                   # floor crop, as pool_or
    out = np.zeros((n_frames, c * ho * wo), bool)
    flat = np.asarray(frame, np.int64) * (c * ho * wo) + (ch * ho + y) * wo + x
    out.reshape(-1)[flat[keep]] = True
    return out


def _exact_dtype(layer: SnnLayer):
    per_out = layer.weight[0].size
    return np.float32 if per_out * (1 << (layer.w_bits - 1)) < (1 << 24) else np.float64


def synaptic_input(layer: SnnLayer, spikes: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Input currents int64 ``[F, *out_shape]`` of binary maps ``[F, *in_shape]``."""
    f = spikes.shape[0]
    dt = _exact_dtype(layer)
    w = layer.weight.astype(dt)
    out = np.empty((f, *layer.out_shape), np.int64)
    if layer.op == "fc":
        for a in range(0, f, 4096):
            x = spikes[a:a + 4096].reshape(-1, layer.n_inputs).astype(dt)
            out[a:a + 4096] = np.rint(x @ w.T).astype(np.int64)
        return out
    n, c, k, _ = layer.weight.shape
    p, s = layer.padding, layer.stride
    wm = w.reshape(n, -1).T                                   # [C*k*k, N]
    ho, wo = layer.out_shape[1:]
    for a in range(0, f, chunk):
        x = spikes[a:a + chunk].astype(dt)
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
        win = win[:, :, ::s, ::s]                                      # the strided windows
        win = win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)   # [F*Ho*Wo, C*k*k]
        y = (win @ wm).reshape(-1, ho, wo, n).transpose(0, 3, 1, 2)
        out[a:a + chunk] = np.rint(y).astype(np.int64)
    return out


def fanout_map(layer: SnnLayer) -> np.ndarray:
    """Synaptic operations caused by one input event at each input position: conv,
    the outputs ``yo = (y + padding - dy) / stride`` that are whole and in range."""
    if layer.op == "fc":
        return np.full(layer.in_shape, layer.weight.shape[0], np.int64)
    n, c, k, _ = layer.weight.shape
    _, h, w = layer.in_shape
    ho, wo = layer.out_shape[1:]
    p, s = layer.padding, layer.stride

    def valid(size, osize):
        i = np.arange(size)[:, None] + p - np.arange(k)[None, :]
        return ((i >= 0) & (i % s == 0) & (i // s < osize)).sum(1)

    m = valid(h, ho)[:, None] * valid(w, wo)[None, :] * n
    return np.broadcast_to(m, (c, h, w)).astype(np.int64)


def weight_slices(layer: SnnLayer, spikes: np.ndarray) -> int:
    """Weight slices an output-stationary layer fetches for binary maps ``[F, ...]``
    (F frames = sample x timestep, each flattening to the layer's inputs).

    Events arrive in ascending address order, channel-major (docs/macros.md, "Events
    on the wire"), so a frame's events of one input channel are consecutive and all
    use the same slice ``w[:, c]`` (N*k*k weights): conv fetches it once per frame and
    channel with events. fc: every address has its own column ``w[:, a]``, one fetch
    per event.
    """
    flat = np.asarray(spikes).reshape(len(spikes), -1)
    if layer.op == "conv":
        return int(flat.reshape(len(flat), layer.in_shape[0], -1).any(axis=2).sum())
    return int(np.count_nonzero(flat))


# ----------------------------------------------------------------------- networks

@dataclass
class LayerStats:
    """Event counts of one layer over a run (summed over the batch)."""

    name: str
    op: str
    events_in: int = 0          # distinct input spikes integrated
    events_out: int = 0         # output spikes
    sops: int = 0               # synaptic operations (weight additions)
    active_steps: int = 0       # (sample, timestep) pairs with at least one input event
    steps: int = 0              # (sample, timestep) pairs
    slices_in: int = 0          # weight slices fetched output-stationary (weight_slices)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SnnResult:
    counts: np.ndarray           # [B, n_classes] output spike counts
    v_final: np.ndarray          # [B, n_classes] final membranes of the last layer
    stats: list                  # LayerStats per spiking layer
    spikes: dict = field(default_factory=dict)   # name -> bool [B, T, *out_shape]

    @property
    def predictions(self) -> np.ndarray:
        return predict(self.counts, self.v_final)

    @property
    def input_events(self) -> int:
        return self.stats[0].events_in if self.stats else 0

    @property
    def sops(self) -> int:
        return sum(s.sops for s in self.stats)


def predict(counts: np.ndarray, v_final: np.ndarray) -> np.ndarray:
    """Class = most output spikes; ties go to the higher final membrane, then to the
    lower index."""
    score = counts.astype(np.int64) * (1 << 17) + (v_final.astype(np.int64) + (1 << 16))
    return np.argmax(score, axis=1)


def check_input(net: SnnNet, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 5 or tuple(frames.shape[2:]) != tuple(net.input_shape):
        raise ConfigError(f"input frames must be [B, T, {', '.join(map(str, net.input_shape))}]"
                          f" (binary), got shape {frames.shape}")
    return frames.astype(bool, copy=False)


ENGINES = ("auto", "numpy", "events")


def _engine(engine: str) -> str:
    """The engine ``run_snn`` uses: ``numpy`` or ``events``."""
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}: choose one of {ENGINES}")
    if engine == "numpy":
        return engine
    from . import snn_fast
    if snn_fast.AVAILABLE:
        return "events"
    if engine == "events":
        raise ConfigError("engine 'events' needs numba (pip install numba)")
    return "numpy"


def _run_events(net: SnnNet, x: np.ndarray, keep_spikes: bool) -> SnnResult:
    """:func:`run_snn` on the event-driven engine (:mod:`cimstack.ref.snn_fast`)."""
    from .snn_fast import STAT_FIELDS, run_events
    counts, v_final, totals, kept = run_events(net, x, keep_spikes)
    b, t = x.shape[:2]
    stats = [LayerStats(layer.name, layer.op, steps=b * t,
                        **{k: int(v) for k, v in zip(STAT_FIELDS, row)})
             for layer, row in zip(net.spiking_layers, totals)]
    spikes = {}
    if keep_spikes:                     # pool layers: OR-pooling of what they receive
        for layer in net.layers:
            x = kept[layer.name] if layer.spiking else pool_or(x, layer.kernel)
            spikes[layer.name] = x
    return SnnResult(counts, v_final, stats, spikes)


def run_snn(net: SnnNet, frames: np.ndarray, keep_spikes: bool = False,
            engine: str = "auto") -> SnnResult:
    """Run ``net`` on binary input frames ``[B, T, C, H, W]`` (integer exact).

    ``engine``: ``numpy`` computes each layer's currents as one dense BLAS product;
    ``events`` event by event (numba, work proportional to the synaptic operations);
    ``auto`` takes ``events`` when numba is installed. Both give the same integers.
    """
    use = _engine(engine)
    x = check_input(net, frames)
    if use == "events":
        return _run_events(net, x, keep_spikes)
    b, t = x.shape[:2]
    stats, spikes = [], {}
    v = None
    for layer in net.layers:
        if layer.op == "pool":
            x = pool_or(x, layer.kernel)
            if keep_spikes:
                spikes[layer.name] = x
            continue
        st = LayerStats(layer.name, layer.op, steps=b * t)
        flat = x.reshape(b, t, -1)
        per_step = flat.sum(axis=2)
        st.events_in = int(per_step.sum())
        st.active_steps = int((per_step > 0).sum())
        st.sops = int((x.reshape(b * t, -1).sum(0) * fanout_map(layer).reshape(-1)).sum())
        st.slices_in = weight_slices(layer, x.reshape(b * t, -1))
        cur = synaptic_input(layer, x.reshape(b * t, *layer.in_shape)).reshape(b, t, -1)
        v = initial_membranes((b, layer.n_neurons), layer)
        out = np.empty((b, t, layer.n_neurons), bool)
        for step in range(t):
            v, out[:, step] = neuron_update(v, cur[:, step], layer)
        st.events_out = int(out.sum())
        stats.append(st)
        x = out.reshape(b, t, *layer.out_shape)
        if keep_spikes:
            spikes[layer.name] = x
    counts = x.reshape(b, t, -1).sum(axis=1).astype(np.int64)
    return SnnResult(counts, v.copy(), stats, spikes)


# --------------------------------------------------- explicit dataflow simulation

@dataclass
class Traffic:
    """Operand bits moved between the array and memory, counted by the simulation."""

    weight_bits: int = 0         # weights written into the array (resident or streamed)
    membrane_bits: int = 0       # membranes written into or read out of the array

    @property
    def total(self) -> int:
        return self.weight_bits + self.membrane_bits


def _event_targets(layer: SnnLayer, addr: int):
    """(flat output neurons, weights) reached by one input event at flat ``addr``."""
    if layer.op == "fc":
        return np.arange(layer.weight.shape[0]), layer.weight[:, addr].astype(np.int64)
    n, c, k, _ = layer.weight.shape
    _, h, w = layer.in_shape
    ho, wo = layer.out_shape[1:]
    ci, rem = divmod(addr, h * w)
    y, xx = divmod(rem, w)
    dy, dx = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    ys, xs, s = y + layer.padding - dy, xx + layer.padding - dx, layer.stride
    ok = (ys >= 0) & (ys % s == 0) & (xs >= 0) & (xs % s == 0)
    yo, xo = ys // s, xs // s
    ok &= (yo < ho) & (xo < wo)
    yo, xo, dy, dx = yo[ok], xo[ok], dy[ok], dx[ok]
    nn = np.arange(n)[:, None]
    targets = (nn * ho + yo[None]) * wo + xo[None]
    weights = layer.weight[:, ci][:, dy, dx]
    return targets.reshape(-1), weights.reshape(-1).astype(np.int64)


def run_dataflow(net: SnnNet, frames: np.ndarray, dataflows: dict | None = None,
                 tile_neurons: int | None = None):
    """Event-by-event simulation of one array per layer in the chosen dataflows.

    ``dataflows`` maps layer names to ``"ws"`` / ``"os"`` (default: the mapping
    policy). Weight-stationary: the layer's weights are written into the array once;
    in every timestep with input events (or leak) the membranes pass through the
    array tile by tile (``tile_neurons`` at a time: read in, integrate that
    timestep's events, update, write back). Output-stationary: the membranes stay in
    the array; the weight slice of an input event's address (``fanout`` weights) is
    streamed into the array when the event's slice differs from the one held (events
    in address order: conv events of one channel share a slice, fc events each have
    their own; :func:`weight_slices`). Returns ``(SnnResult, {layer: Traffic})``.
    """
    from ..mapping.snn import map_network
    x = check_input(net, frames)
    b, t = x.shape[:2]
    flows = {m.name: m.dataflow for m in map_network(net)}
    flows.update(dataflows or {})
    traffic, stats, spikes = {}, [], {}
    v = None
    for layer in net.layers:
        if layer.op == "pool":
            x = pool_or(x, layer.kernel)
            continue
        flow = flows[layer.name]
        tr = traffic[layer.name] = Traffic()
        plane = int(np.prod(layer.in_shape[1:]))           # addresses per input channel
        st = LayerStats(layer.name, layer.op, steps=b * t)
        nn = layer.n_neurons
        tile = tile_neurons or nn
        out = np.zeros((b, t, nn), bool)
        v_all = np.zeros((b, nn), np.int32)
        if flow == "ws":
            tr.weight_bits += layer.n_weights * layer.w_bits * b     # loaded per sample run
        for s in range(b):
            v = initial_membranes(nn, layer)
            for step in range(t):
                addrs = np.flatnonzero(x[s, step].reshape(-1))
                st.events_in += addrs.size
                active = addrs.size > 0 or layer.leak_shift > 0
                st.active_steps += addrs.size > 0
                contrib = [_event_targets(layer, int(a)) for a in addrs]
                st.sops += sum(len(c[0]) for c in contrib)
                st.slices_in += weight_slices(layer, x[s, step][None])
                if flow == "os":
                    held = None                        # slice in the stream buffer
                    for a in addrs:                    # ascending: the wire order
                        slice_id = a // plane if layer.op == "conv" else a
                        if slice_id != held:
                            tr.weight_bits += layer.fanout * layer.w_bits
                            held = slice_id
                    acc = np.zeros(nn, np.int64)
                    for tg, wt in contrib:                       # membranes resident
                        np.add.at(acc, tg, wt)
                    v, out[s, step] = neuron_update(v, acc, layer)
                else:
                    new_v = v.copy()
                    for lo in range(0, nn, tile):                # weights resident
                        hi = min(nn, lo + tile)
                        if active:
                            tr.membrane_bits += 2 * (hi - lo) * layer.v_bits
                        acc = np.zeros(hi - lo, np.int64)
                        for tg, wt in contrib:
                            m = (tg >= lo) & (tg < hi)
                            np.add.at(acc, tg[m] - lo, wt[m])
                        new_v[lo:hi], out[s, step, lo:hi] = neuron_update(v[lo:hi], acc, layer)
                    v = new_v
            v_all[s] = v
        st.events_out = int(out.sum())
        stats.append(st)
        x = out.reshape(b, t, *layer.out_shape)
        spikes[layer.name] = x
        v = v_all
    counts = x.reshape(b, t, -1).sum(axis=1).astype(np.int64)
    return SnnResult(counts, v.copy(), stats, spikes), traffic
