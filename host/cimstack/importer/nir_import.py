"""NIR graph -> integer spiking network (:class:`~cimstack.ref.snn.SnnNet`) for the
spiking event core.

NIR (the Neuromorphic Intermediate Representation, package ``nir``) is what snnTorch,
Norse, Sinabs, Rockpool and Lava export. The graph must be a chain from its Input to
its Output; the walk groups it into the core's layers:

    [Scale] (Conv2d | Linear | Affine) [Scale] (IF | LIF | Threshold)   a spiking layer
    SumPool2d / AvgPool2d / Flatten                                    between them

Integer semantics (docs/nir.md). A neuron's input current is ``g * (W x)``; the gain
``g`` is ``r`` (IF), ``r * dt / tau`` (LIF, Euler step ``dt``) or 1 (Threshold), times
the Scale nodes around the synapse. Per layer the weights are quantized symmetrically
to ``w_bits`` with one scale ``s = max|g W| / (2^(w_bits-1) - 1)``, ``W_int =
rint(g W / s)`` (round half to even), and ``s`` is folded into the threshold:
``theta = floor(v_thr / s)`` when firing at ``v > v_thr`` (NIR's rule, snnTorch's,
Norse's), ``ceil(v_thr / s)`` at ``v >= v_thr``; both are exact for integer membranes,
so the only rounding is the weights'. A LIF's decay ``beta = 1 - dt / tau`` becomes the
shift leak ``v -= v >> k``, exact when ``beta = 1 - 2^-k``; another ``beta`` is
refused, or with ``approx_leak`` takes the nearest ``k`` (the note states the error).
NIR's Euler step leaks the old membrane before the input arrives (``leak_order
"before"``) and resets to ``v_reset`` (it must be 0: ``reset "zero"``; snnTorch trains
with subtraction by default and its exporter does not record it: ``reset
"subtract"``). A Threshold node is a neuron without memory (``reset "step"``).

Pooling: a SumPool2d or AvgPool2d (stride = kernel, no padding) in front of a Linear
is folded into its weights exactly (every input of a window gets the window's weight,
divided by the window size for AvgPool). In front of a Conv2d the core can only OR
the spikes of a window; that is not a sum, so it is refused unless ``or_pool`` allows
it (then it is exact only while no window holds two spikes in one timestep).

Anything else stops the import with one :class:`~cimstack.errors.ConfigError` naming
the node, its type and the supported set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import SnnSpec
from ..errors import ConfigError
from ..overlay_shape import SNN
from ..ref.snn import MAX_STRIDE, SnnLayer, SnnNet, conv_out, v_range, w_range
from .nodes import model_file

SUPPORTED_NODES = ("Input", "Output", "Conv2d", "Linear", "Affine", "IF", "LIF", "SumPool2d",
                   "AvgPool2d", "Flatten", "Scale", "Threshold")
NEURONS = ("IF", "LIF", "Threshold")
MAX_KSIZE = SNN.capacity["MAX_KSIZE"]     # the snn kernel's largest conv kernel


@dataclass
class NirOptions:
    """How the graph becomes integers (the flags of ``cimstack snn import``)."""

    w_bits: int = 8                 # weight width (2..16)
    v_bits: int = 16                # membrane width (2..16)
    dt: float = 1e-4                # Euler step of the LIF nodes (snnTorch 1e-4, Norse 1e-3)
    fire: str = "gt"                # "gt": v > theta (NIR); "ge": v >= theta
    reset: str = "zero"             # "zero" (NIR's v_reset = 0) or "subtract"
    approx_leak: bool = False       # a LIF decay not 1 - 2^-k: nearest shift, else refuse
    or_pool: bool = False           # a pool in front of a Conv2d as the core's OR pooling
    n_steps: int = 16               # timesteps per sample when the bundle is run


@dataclass
class NirImport:
    net: SnnNet
    notes: list = field(default_factory=list)     # approximations made, one line each


def _fail(name: str, node, problem: str) -> ConfigError:
    return ConfigError(f"NIR node {name!r} ({type(node).__name__}): {problem}")


def read_graph(path: str | Path):
    """The :class:`nir.NIRGraph` in the file ``path`` (one clear error if it is not)."""
    import nir
    path = model_file(path, "a NIR graph (.nir), e.g. written by nir.write after "
                            "snntorch.export_to_nir or norse.to_nir")
    try:
        return nir.read(str(path), type_check=False)   # shapes: the walk computes them
    except Exception as exc:                 # h5py's OSError, nir's KeyError, ...
        raise ConfigError(f"{path} is not a NIR graph ({type(exc).__name__}: {exc}); write "
                          "one with nir.write") from None


def graph_chain(graph) -> list:
    """``[(name, node)]`` from the Input to the Output; the graph must be one chain."""
    nodes = graph.nodes
    succ = {k: [] for k in nodes}
    pred = {k: [] for k in nodes}
    for a, b in graph.edges:
        for end in (a, b):
            if end not in nodes:
                raise ConfigError(f"NIR graph: edge {a!r} -> {b!r} names no node {end!r}")
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, n in nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise ConfigError(f"NIR graph: {len(inputs)} Input nodes; the core takes one event "
                          "input")
    chain, name = [], inputs[0]
    while True:
        node = nodes[name]
        chain.append((name, node))
        if type(node).__name__ == "Output":
            break
        if len(succ[name]) != 1:
            raise _fail(name, node, f"{len(succ[name])} successors; only chains (each node "
                        "feeding the next) are supported: no branches, recurrence or "
                        "dangling ends")
        name = succ[name][0]
        if len(pred[name]) != 1 or name in dict(chain):
            raise _fail(name, nodes[name], f"{len(pred[name])} predecessors; only chains are "
                        "supported: no skip connections or recurrence")
    if len(chain) != len(nodes):
        lost = sorted(set(nodes) - set(dict(chain)))
        raise ConfigError(f"NIR graph: nodes {lost} are not on the path from the Input to "
                          "the Output; only chains are supported")
    return chain


def _pair(value, name: str, node, what: str) -> int:
    """One int from an int or a pair of equal ints (NIR writes both)."""
    v = np.atleast_1d(np.asarray(value)).astype(np.int64).reshape(-1)
    if v.size not in (1, 2) or v.min() != v.max():
        raise _fail(name, node, f"{what} {tuple(v.tolist())}: the core takes equal height "
                    "and width")
    return int(v[0])


def _uniform(value, name: str, node, what: str) -> float:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.size == 0 or np.any(np.isnan(v)):
        raise _fail(name, node, f"{what} is empty or not a number")
    if not np.all(v == v[0]):
        raise _fail(name, node, f"{what} differs between neurons ({v.min():g} .. {v.max():g});"
                    " the core has one value per layer")
    return float(v[0])


@dataclass
class _Synapse:
    op: str                       # conv / fc
    weight: np.ndarray            # float64 [N, C, k, k] or [N, K]
    in_shape: tuple
    out_shape: tuple
    padding: int
    nodes: list
    stride: int = 1


class _Walk:
    """The walk over the chain: the current feature shape, the synapse waiting for its
    neuron, the pools waiting for their synapse, the input scale waiting too."""

    def __init__(self, options: NirOptions):
        self.o = options
        self.shape: tuple = ()
        self.input_shape: tuple = ()
        self.batched = False
        self.flat_from: tuple | None = None    # (C, H, W) before a Flatten
        self.syn: _Synapse | None = None
        self.pool = None                       # [kernel, factor, names, source shape]
        self.in_scale = 1.0
        self.layers: list = []
        self.sources: dict = {}                # bundle layer -> NIR nodes
        self.scales: dict = {}
        self.notes: list = []

    # ------------------------------------------------------------------ the nodes
    def visit(self, name: str, node) -> None:
        kind = type(node).__name__
        handler = getattr(self, f"_{kind.lower()}", None)
        if kind not in SUPPORTED_NODES or handler is None:
            raise _fail(name, node, f"not supported; supported: {', '.join(SUPPORTED_NODES)}")
        if self.syn is not None and kind not in ("Scale", *NEURONS):
            raise _fail(name, node, f"follows the synapse {self.syn.nodes[-1]!r} before a "
                        "neuron; the core needs a neuron (IF, LIF, Threshold) right after each "
                        "Conv2d / Linear / Affine")
        handler(name, node)

    def _input(self, name, node):
        shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))
        if len(shape) == 4 and shape[0] == 1:          # a batch of one (Norse, nirtorch)
            shape, self.batched = shape[1:], True
        if len(shape) not in (1, 3) or min(shape, default=0) < 1:
            raise _fail(name, node, f"input shape {shape}: the core takes (C, H, W) event "
                        "maps or a flat (K,) input")
        self.shape = self.input_shape = shape

    def _output(self, name, node):
        if self.pool is not None:
            raise _fail(name, node, f"the pool {self.pool[2][-1]!r} before it has no synapse "
                        "after it; the last layer must be a spiking one")
        if not self.layers:
            raise _fail(name, node, "the graph has no spiking layer")

    def _flatten(self, name, node):
        first = 1 if self.batched else 0
        start, end = int(node.start_dim), int(node.end_dim)
        nd = len(self.shape) + first
        if (start % nd if start < 0 else start) != first or (end % nd if end < 0 else end) != nd - 1:
            raise _fail(name, node, f"start_dim {start}, end_dim {end}: only a flatten of all "
                        "feature dimensions is supported")
        if len(self.shape) == 3:
            self.flat_from = self.shape
        self.shape = (int(np.prod(self.shape)),)

    def _scale(self, name, node):
        s = np.asarray(node.scale, dtype=np.float64)
        if self.syn is not None:                       # on the currents: per output channel
            out = self.syn.out_shape
            full = np.broadcast_to(s, out) if s.size > 1 else np.full(out, float(s.reshape(-1)[0]))
            per = full.reshape(out[0], -1)
            if not np.all(per == per[:, :1]):
                raise _fail(name, node, "scales the currents of one channel differently; the "
                            "core takes one scale per output channel")
            w = self.syn.weight
            self.syn.weight = w * per[:, 0].reshape((-1,) + (1,) * (w.ndim - 1))
            self.syn.nodes.append(name)
        else:                                          # on the spikes: one factor
            self.in_scale *= _uniform(s, name, node, "scale (on spikes)")

    def _pool(self, name, node, factor_of_window):
        k = _pair(node.kernel_size, name, node, "kernel_size")
        if _pair(node.stride, name, node, "stride") != k or _pair(node.padding, name, node,
                                                                 "padding") != 0:
            raise _fail(name, node, "only pools with stride = kernel_size and no padding "
                        "are supported")
        if len(self.shape) != 3:
            raise _fail(name, node, f"input {self.shape}: a pool needs (C, H, W) spikes")
        c, h, w = self.shape
        if h // k < 1 or w // k < 1:
            raise _fail(name, node, f"kernel {k} is larger than the {h}x{w} map")
        if self.pool is None:
            self.pool = [1, 1.0, [], self.shape]
        self.pool[0] *= k
        self.pool[1] *= factor_of_window(k)
        self.pool[2].append(name)
        self.shape = (c, h // k, w // k)

    def _sumpool2d(self, name, node):
        self._pool(name, node, lambda k: 1.0)

    def _avgpool2d(self, name, node):
        self._pool(name, node, lambda k: 1.0 / (k * k))

    def _conv2d(self, name, node):
        w = np.asarray(node.weight, dtype=np.float64)
        if w.ndim != 4:
            raise _fail(name, node, f"weight of {w.ndim} dimensions; expected [N, C, k, k]")
        n, c, kh, kw = w.shape
        if int(node.groups) != 1:
            raise _fail(name, node, f"groups = {int(node.groups)}; the core's conv takes "
                        "groups = 1")
        if kh != kw:
            raise _fail(name, node, f"kernel {kh}x{kw}; the core takes square kernels")
        if not 1 <= kh <= MAX_KSIZE:
            raise _fail(name, node, f"kernel {kh}; the core takes 1..{MAX_KSIZE}")
        stride = _pair(node.stride, name, node, "stride")
        if not 1 <= stride <= MAX_STRIDE:
            raise _fail(name, node, f"stride {stride}; the core takes 1..{MAX_STRIDE}")
        if _pair(node.dilation, name, node, "dilation") != 1:
            raise _fail(name, node, "dilation > 1 is not supported")
        pad = node.padding
        if isinstance(pad, str):
            if pad not in ("valid", "same") or (pad == "same" and (kh % 2 == 0 or stride > 1)):
                raise _fail(name, node, f"padding {pad!r}: use 'valid', 'same' (odd kernel, "
                            "stride 1) or numbers")
            pad = 0 if pad == "valid" else (kh - 1) // 2
        pad = _pair(pad, name, node, "padding")
        self._check_bias(name, node)
        if self.pool is not None:
            self._or_pool(name, node)
        if len(self.shape) != 3 or self.shape[0] != c:
            raise _fail(name, node, f"weight {w.shape} does not take the input {self.shape}")
        _, h, wd = self.shape
        if min(h, wd) + 2 * pad < kh:
            raise _fail(name, node, f"kernel {kh} is larger than the padded {h}x{wd} input")
        out = (n, conv_out(h, kh, pad, stride), conv_out(wd, kh, pad, stride))
        self.syn = _Synapse("conv", w * self.in_scale, self.shape, out, pad, [name], stride)
        self.in_scale = 1.0
        self.shape = out

    def _or_pool(self, name, node):
        k, _, names, (c, h, w) = self.pool
        if not self.o.or_pool:
            raise _fail(name, node, f"follows the pool {names[-1]!r}: the core ORs the spikes "
                        "of a window, which is not their sum; pass --or-pool to accept that "
                        "(exact while no window holds two spikes in one timestep)")
        pl = SnnLayer(f"pool{len(self.layers) + 1}", "pool", (c, h, w),
                      (c, h // k, w // k), kernel=k)
        self.layers.append(pl)
        self.sources[pl.name] = list(names)
        self.notes.append(f"{', '.join(names)}: sum pooling imported as OR pooling "
                          f"({k}x{k}, --or-pool)")
        self.pool = None

    def _linear(self, name, node):
        self._dense(name, node, np.asarray(node.weight, dtype=np.float64))

    def _affine(self, name, node):
        self._check_bias(name, node)
        self._dense(name, node, np.asarray(node.weight, dtype=np.float64))

    def _dense(self, name, node, w):
        if w.ndim != 2:
            raise _fail(name, node, f"weight of {w.ndim} dimensions; expected [N, K]")
        if len(self.shape) != 1:
            raise _fail(name, node, f"input {self.shape} is not flat; put a Flatten before it")
        if w.shape[1] != self.shape[0]:
            raise _fail(name, node, f"weight {w.shape} does not take {self.shape[0]} inputs")
        in_shape = self.flat_from or self.shape
        if self.pool is not None:                      # fold the pool: exact
            k, factor, names, src = self.pool
            c, hp, wp = in_shape
            full = np.zeros((w.shape[0], *src))
            wr = w.reshape(w.shape[0], c, hp, wp) * factor
            full[:, :, :hp * k, :wp * k] = np.repeat(np.repeat(wr, k, axis=2), k, axis=3)
            w, in_shape = full.reshape(w.shape[0], -1), tuple(src)
            self.pool = None
            nodes = [*names, name]
        else:
            nodes = [name]
        self.syn = _Synapse("fc", w * self.in_scale, tuple(in_shape), (w.shape[0],), 0, nodes)
        self.in_scale = 1.0
        self.flat_from = None
        self.shape = (w.shape[0],)

    @staticmethod
    def _check_bias(name, node):
        b = np.asarray(node.bias, dtype=np.float64)
        if b.size and np.any(b != 0):
            raise _fail(name, node, "nonzero bias: the event core adds input only with "
                        "events (a bias is a current in every timestep); train without bias")

    # ---------------------------------------------------------------- the neurons
    def _neuron_common(self, name, node):
        if self.syn is None:
            raise _fail(name, node, "has no Conv2d / Linear / Affine before it; the core's "
                        "neurons integrate synaptic input")
        v_reset = getattr(node, "v_reset", None)
        if v_reset is not None and _uniform(v_reset, name, node, "v_reset") != 0:
            raise _fail(name, node, "v_reset is not 0; the core resets to 0 or subtracts "
                        "the threshold")

    def _if(self, name, node):
        self._neuron_common(name, node)
        gain = _uniform(node.r, name, node, "r")
        self._spiking(name, node, gain, _uniform(node.v_threshold, name, node, "v_threshold"),
                      leak=0, reset=self.o.reset)

    def _lif(self, name, node):
        self._neuron_common(name, node)
        if _uniform(node.v_leak, name, node, "v_leak") != 0:
            raise _fail(name, node, "v_leak is not 0; the core leaks towards 0")
        tau, r = _uniform(node.tau, name, node, "tau"), _uniform(node.r, name, node, "r")
        dt = self.o.dt
        if not tau > 0:
            raise _fail(name, node, f"tau = {tau:g}; expected > 0")
        if math.isinf(tau):            # beta = 1: snnTorch writes tau = r = inf (r = tau/dt)
            if not math.isinf(r):
                raise _fail(name, node, "tau = inf with a finite r: no input reaches the "
                            "membrane (r dt / tau = 0)")
            leak, gain = 0, 1.0
        else:
            leak, gain = self._leak_shift(name, node, 1.0 - dt / tau), r * dt / tau
        self._spiking(name, node, gain, _uniform(node.v_threshold, name, node, "v_threshold"),
                      leak=leak, reset=self.o.reset)

    def _threshold(self, name, node):
        if self.syn is None:
            raise _fail(name, node, "has no Conv2d / Linear / Affine before it")
        self._spiking(name, node, 1.0, _uniform(node.threshold, name, node, "threshold"),
                      leak=0, reset="step")

    def _leak_shift(self, name, node, beta: float) -> int:
        """k with beta = 1 - 2^-k (1..15); the nearest k with ``approx_leak``."""
        if not 0 < beta < 1:
            raise _fail(name, node, f"decay beta = 1 - dt/tau = {beta:g} (dt = {self.o.dt:g}); "
                        "the core leaks with 0 < beta < 1 (check --dt)")
        exact = -math.log2(1.0 - beta)
        k = min(15, max(1, round(exact)))
        approx = 1.0 - 2.0 ** -k
        if abs(exact - k) < 1e-4:          # exact up to the float32 of the exporters
            return k
        if not self.o.approx_leak:
            raise _fail(name, node, f"decay beta = {beta:.6g} is not 1 - 2^-k; pass "
                        f"--approx-leak to use beta = {approx:g} (k = {k}, error "
                        f"{approx - beta:+.3g}), or train with beta in 0.5, 0.75, 0.875, ...")
        self.notes.append(f"{name}: decay beta {beta:.6g} imported as 1 - 2^-{k} = {approx:g} "
                          f"(error {approx - beta:+.3g})")
        return k

    def _spiking(self, name, node, gain: float, v_thr: float, leak: int, reset: str):
        syn, o = self.syn, self.o
        if not v_thr > 0 or not math.isfinite(v_thr):
            raise _fail(name, node, f"threshold {v_thr:g}; the core fires at a positive "
                        "threshold")
        w = syn.weight * gain
        peak = float(np.abs(w).max()) if w.size else 0.0
        if not peak > 0 or not math.isfinite(peak):
            raise _fail(name, node, "its synapse has no nonzero finite weight")
        s = peak / w_range(o.w_bits)[1]
        w_int = np.rint(w / s).astype(np.int32)
        q = v_thr / s
        theta = math.floor(q) if o.fire == "gt" else math.ceil(q)
        vhi = v_range(o.v_bits)[1]
        if not 1 <= theta <= vhi:
            fix = "use fewer --w-bits" if theta > vhi else "use more --w-bits"
            raise _fail(name, node, f"threshold {v_thr:g} is {q:.4g} weight steps: outside "
                        f"1..{vhi} ({o.v_bits}-bit membrane); {fix} or more --v-bits")
        lname = f"{syn.op}{len(self.layers) + 1}"
        layer = SnnLayer(lname, syn.op, syn.in_shape, syn.out_shape, w_int, padding=syn.padding,
                         stride=syn.stride, theta=int(theta), w_bits=o.w_bits, v_bits=o.v_bits,
                         leak_shift=leak, reset=reset, fire=o.fire, leak_order="before")
        self.layers.append(layer)
        self.sources[lname] = [*syn.nodes, name]
        self.scales[lname] = {"weight_scale": s, "v_threshold": v_thr, "gain": gain}
        self.syn = None


def import_nir(source, options: NirOptions | None = None, name: str = "nir") -> NirImport:
    """The spiking network of a NIR graph (a ``nir.NIRGraph`` or a path to a .nir file)."""
    o = options or NirOptions()
    if not 2 <= o.w_bits <= 16 or not 2 <= o.v_bits <= 16:
        raise ConfigError(f"w_bits {o.w_bits}, v_bits {o.v_bits}: use 2..16")
    if o.fire not in ("gt", "ge") or o.reset not in ("zero", "subtract"):
        raise ConfigError(f"fire {o.fire!r} / reset {o.reset!r}: use gt or ge / zero or "
                          "subtract")
    if not (o.dt > 0 and math.isfinite(o.dt)):
        raise ConfigError(f"dt = {o.dt}: use a positive step in seconds")
    graph = read_graph(source) if isinstance(source, (str, Path)) else source
    walk = _Walk(o)
    for node_name, node in graph_chain(graph):
        walk.visit(node_name, node)
    spec = SnnSpec(w_bits=o.w_bits, v_bits=o.v_bits)
    meta = {"source": "nir", "n_steps": o.n_steps, "nir_nodes": walk.sources,
            "quantization": walk.scales, "notes": walk.notes,
            "options": {"dt": o.dt, "fire": o.fire, "reset": o.reset,
                        "approx_leak": o.approx_leak, "or_pool": o.or_pool}}
    net = SnnNet(name, walk.input_shape, walk.layers, spec, meta)
    net.validate()
    for layer in net.layers:
        layer.validate()
    return NirImport(net, walk.notes)
