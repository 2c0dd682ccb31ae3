"""Driver of the snn kernel (spiking event core): an HLS IP bound by VLNV, fed by an
AXI DMA. The same code runs on the PYNQ-Z2 and on the emulated device; the layer
logic (:class:`SnnKernelRunner`) also runs straight on a C-simulation kernel.

Per spiking layer and sample the driver makes a slice of output neurons resident
(weights + membranes must fit the kernel's 512 x 256-bit array; a conv layer runs as
groups of output channels, as many as fit with all their membranes, each a conv of its
own: :func:`conv_group`), then:

1. load weights (mode 0): the slice's weights, int16, 4 per word;
2. clear (mode 1): membranes to ``v_init`` (0 unless the layer says otherwise);
3. run (mode 4, ``n_steps`` = T): every timestep's input event packet (marker,
   addresses, pad) back to back in one MM2S transfer; the kernel answers one spike
   packet per timestep, TLAST only on the last beat, so one S2MM transfer with
   simple-mode DMA. A run is cut into several calls only where its input words or
   its output cap would exceed the DMA's largest transfer (``DmaDecl.max_transfer``
   of the overlay's snn slot) or ``MAX_STEPS`` (:func:`plan_runs`); the answer's
   markers must name every timestep of the call, in order;
4. read membranes (mode 3) for the last layer's tie-break.

Mode 2 (one timestep per call) is the same kernel loop with ``n_steps`` = 1.

An OR-pooling layer in front of a spiking layer is done by the kernel on the incoming
addresses (``pool`` register). Layers run one after another over all timesteps; with
no feedback this gives the layer-first-per-timestep result exactly.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..errors import HardwareError
from ..events.wire import frames_to_beats, unpack_events
from ..overlay_shape import SNN, STREAM_BYTES, overlay_shape
from ..ref.snn import (LayerStats, SnnNet, SnnResult, check_input, fanout_map,
                       weight_slices)
from .kernel import DmaTransactor, KernelIP, StageTimes

ARRAY_BITS = SNN.capacity["ROWS"] * SNN.capacity["COLS"]
MODES = SNN.modes


def conv_group(layer) -> int:
    """Output channels of a conv layer the kernel holds at once: the most whose weights
    and membranes (all of their output positions) fit the array together and whose
    neurons fit ``MAX_COUNT``, so that each group is one slice; 1 when not even one
    channel's do (its positions are then cut into slices). A group is a conv of its own: the weights of its channels, loaded with
    its slice, and per event the kernel enters only its channels' loops (a slice of the
    whole layer would enter every channel's loop for a part of the positions)."""
    out_c = int(layer.weight.shape[0])
    per_channel = layer.n_weights // out_c * layer.w_bits
    positions = int(np.prod(layer.out_shape[1:]))
    plane = positions * layer.v_bits
    if per_channel + layer.v_bits > ARRAY_BITS:
        from ..mapping.snn import SnnMappingError
        raise SnnMappingError(
            f"layer {layer.name}: one output channel's {per_channel} weight bits leave no "
            f"room for one {layer.v_bits}-bit membrane in the kernel's {ARRAY_BITS}-bit "
            f"array: {per_channel + layer.v_bits - ARRAY_BITS} bits missing")
    fit = min(ARRAY_BITS // (per_channel + plane), SNN.capacity["MAX_COUNT"] // positions)
    return max(1, min(out_c, fit))


def group_of(layer, n_lo: int):
    """The conv layer's channel group holding neuron ``n_lo`` as a layer of its own (the
    group's weights and output channels), and the group's first neuron; the layer
    itself and 0 for an fc layer or a conv held whole (:func:`conv_group`)."""
    if layer.op != "conv":
        return layer, 0
    g, out_c = conv_group(layer), int(layer.weight.shape[0])
    if g == out_c:
        return layer, 0
    plane = int(np.prod(layer.out_shape[1:]))
    c_lo = n_lo // plane // g * g
    count = min(g, out_c - c_lo)
    return (replace(layer, weight=layer.weight[c_lo:c_lo + count],
                    out_shape=(count, *layer.out_shape[1:])), c_lo * plane)


def plan_slices(layer) -> list[tuple[int, int]]:
    """(n_lo, n_count) slices of the layer's output neurons that fit the kernel, within
    one channel group each (:func:`conv_group`)."""
    cap = SNN.capacity
    n = layer.n_neurons
    if layer.op == "conv":
        g, out_c = conv_group(layer), int(layer.weight.shape[0])
        if g < out_c:                            # each group's slices, shifted to it
            plane = int(np.prod(layer.out_shape[1:]))
            slices = []
            for c_lo in range(0, out_c, g):
                group, first = group_of(layer, c_lo * plane)
                slices += [(first + lo, cnt) for lo, cnt in plan_slices(group)]
            return slices
        per = (ARRAY_BITS - layer.n_weights * layer.w_bits) // layer.v_bits
    else:
        need = layer.n_inputs * layer.w_bits + layer.v_bits
        per = ARRAY_BITS // need
        if per < 1:
            from ..mapping.snn import SnnMappingError
            raise SnnMappingError(
                f"layer {layer.name}: one neuron needs {need} bits ({layer.n_inputs} weights "
                f"of {layer.w_bits} bits + its membrane); the kernel's array holds "
                f"{ARRAY_BITS} bits: {need - ARRAY_BITS} bits missing")
    inputs = layer.n_inputs
    if inputs > cap["MAX_IN"]:               # the kernel would skip the layer's timesteps
        from ..mapping.snn import SnnMappingError
        raise SnnMappingError(
            f"layer {layer.name}: {inputs} input neurons exceed the snn kernel's MAX_IN = "
            f"{cap['MAX_IN']}; downsample or pool the input before this layer")
    per = min(per, cap["MAX_COUNT"])
    return [(lo, min(per, n - lo)) for lo in range(0, n, per)]


def plan_runs(packet_beats: list[int], out_beats: int, max_beats: int) -> list[tuple[int, int]]:
    """(first timestep, timesteps) of the RUN calls over timesteps whose input packets
    have ``packet_beats`` beats: consecutive timesteps, as many per call as keep its
    input and its output cap (``out_beats`` per timestep) within ``max_beats`` and the
    kernel's ``MAX_STEPS``."""
    per_call = min(SNN.capacity["MAX_STEPS"], max_beats // out_beats)
    if per_call < 1 or max(packet_beats, default=0) > max_beats:
        from ..mapping.snn import SnnMappingError
        raise SnnMappingError(
            f"one timestep needs {max(max(packet_beats, default=0), out_beats)} beats in or "
            f"out, more than the snn DMA's largest transfer of {max_beats} beats; "
            "downsample the input or slice the layer smaller")
    runs, first, used = [], 0, 0            # used: input beats of the call being filled
    for t, beats in enumerate(packet_beats):
        if t - first == per_call or used + beats > max_beats:
            runs.append((first, t - first))
            first, used = t, 0
        used += beats
    if packet_beats:
        runs.append((first, len(packet_beats) - first))
    return runs


def layer_args(layer, src_shape: tuple, pool: int, n_lo: int, n_count: int) -> dict:
    c, h, w = layer.in_shape if layer.op == "conv" else _fc_in(layer)
    k = layer.weight.shape[2] if layer.op == "conv" else 1
    return dict(op=0 if layer.op == "conv" else 1, src_h=src_shape[1], src_w=src_shape[2],
                pool=pool, in_c=c, in_h=h, in_w=w, out_c=layer.weight.shape[0], ksize=k,
                padding=layer.padding if layer.op == "conv" else 0,
                stride=layer.stride if layer.op == "conv" else 1, n_lo=n_lo,
                n_count=n_count, w_bits=layer.w_bits, v_bits=layer.v_bits, theta=layer.theta,
                leak_shift=layer.leak_shift, reset_mode=layer.reset_code,
                overflow=0 if layer.overflow == "saturate" else 1,
                fire_mode=int(layer.fire == "gt"), leak_order=int(layer.leak_order == "before"),
                v_init=layer.v_init)


def _fc_in(layer) -> tuple:
    s = tuple(layer.in_shape)
    return s if len(s) == 3 else (int(np.prod(s)), 1, 1)


def pack_weights(layer, n_lo: int, n_count: int) -> np.ndarray:
    """The slice's weights as int16, 4 per 64-bit word (conv: N*C*k*k in torch order;
    fc: K x n_count, k-major)."""
    if layer.op == "conv":
        vals = layer.weight.reshape(-1)
    else:
        vals = layer.weight[n_lo:n_lo + n_count].T.reshape(-1)
    vals = np.ascontiguousarray(vals, dtype="<i2")
    padded = np.zeros(-(-vals.size // 4) * 4, "<i2")
    padded[:vals.size] = vals
    return padded.view("<u8").astype(np.uint64)


def unpack_membranes(words: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(words, dtype="<u8").view("<i4")[:n].astype(np.int32)


class CsimTransactor:
    """Kernel calls straight on a :class:`~cimstack.emu.csim.CsimKernel`."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __call__(self, args: dict, words: np.ndarray, out_cap: int, what: str):
        last = np.zeros(words.size, bool)
        if words.size:
            last[-1] = True
        used, out, out_last = self.kernel.run(args, words, last)
        if used != words.size:
            raise HardwareError(f"{what}: the kernel consumed {used} of {words.size} words "
                                "(registers out of range?)")
        return out, out_last


class SnnIP(KernelIP):
    """The snn HLS kernel's AXI-Lite control (ap_ctrl_hs), bound by VLNV when this
    module is imported before the overlay is opened."""

    decl = SNN
    bindto = [SNN.vlnv]


class SnnKernelRunner:
    """Runs an :class:`~cimstack.ref.snn.SnnNet` on the snn kernel through ``transact``
    (a :class:`DmaTransactor` or :class:`CsimTransactor`). ``max_transfer``: bytes of
    the largest DMA transfer, by default the overlay's snn DMA's."""

    def __init__(self, transact, times: StageTimes | None = None,
                 max_transfer: int | None = None):
        self.transact = transact
        self.times = times or getattr(transact, "times", None) or StageTimes()
        self.max_transfer = max_transfer or overlay_shape().slot("snn").dma.max_transfer

    def _call(self, args: dict, mode: str, words=None, out_cap: int = 0, what: str = ""):
        """One kernel call; returns (words, TLAST flags). A transactor that returns the
        words of one S2MM transfer alone (ended by TLAST) gets TLAST on the last word."""
        words = np.zeros(0, np.uint64) if words is None else words
        res = self.transact({**args, "mode": MODES[mode], "n_words": int(words.size)},
                            words, out_cap, what)
        if mode == "load_weights":
            self.times.count_load(words.size * STREAM_BYTES)
        if isinstance(res, tuple):
            return res
        last = np.zeros(len(res), bool)
        if len(res):
            last[-1] = True
        return res, last

    @staticmethod
    def _answer(res: np.ndarray, last: np.ndarray, first: int, n: int, what: str):
        """The spikes of a RUN answer as (timestep, address) arrays, checked: TLAST on
        its last beat only, one packet per timestep first .. first + n - 1, in order."""
        if not len(res) or not last[-1] or last[:-1].any():
            raise HardwareError(f"{what}: the answer has TLAST on beats "
                                f"{np.flatnonzero(last).tolist()} of {len(res)}; expected "
                                "on its last beat only")
        marks, t_of, addrs = unpack_events(res)
        want = np.arange(first, first + n)
        if marks.size != n or (marks != want).any():
            i = int(np.flatnonzero(marks[:n] != want[:marks.size])[0]) \
                if (marks[:n] != want[:marks.size]).any() else min(marks.size, n)
            got = int(marks[i]) if i < marks.size else "missing"
            raise HardwareError(f"{what}: the answer holds {marks.size} packets; packet {i} "
                                f"is marked {got}, expected timestep {first + i}")
        return t_of, addrs

    def run_layer(self, layer, src_shape: tuple, pool: int, frames: np.ndarray):
        """One sample through one spiking layer: bool [T, n_src] -> (bool [T, n_out],
        final membranes int32 [n_out])."""
        t_steps = frames.shape[0]
        out = np.zeros((t_steps, layer.n_neurons), bool)
        v = np.zeros(layer.n_neurons, np.int32)
        t0 = time.perf_counter()
        beats, packet_beats = frames_to_beats(frames)
        starts = np.concatenate([[0], np.cumsum(packet_beats)])
        self.times.add("pack", time.perf_counter() - t0)
        for lo, cnt in plan_slices(layer):
            part, first = group_of(layer, lo)        # a conv's channel group, or the layer
            args = layer_args(part, src_shape, pool, lo - first, cnt)
            self._call(args, "load_weights", pack_weights(part, lo - first, cnt),
                       what=f"loading weights of {layer.name}")
            self._call(args, "clear", what=f"clearing {layer.name}")
            cap = (cnt + 2) // 2                 # beats of one timestep's spike packet, at most
            runs = plan_runs(packet_beats.tolist(), cap, self.max_transfer // STREAM_BYTES)
            for first_step, n in runs:
                words = beats[starts[first_step]:starts[first_step + n]]
                what = f"{layer.name} timesteps {first_step}..{first_step + n - 1}"
                res, last = self._call({**args, "n_steps": n}, "run", words, n * cap, what)
                t1 = time.perf_counter()
                t_of, addrs = self._answer(res, last, first_step, n, what)
                out[t_of, addrs + first] = True
                self.times.add("unpack", time.perf_counter() - t1)
                self.times.items += n
            res, _ = self._call(args, "read_membranes", out_cap=(cnt + 1) // 2,
                                what=f"reading membranes of {layer.name}")
            v[lo:lo + cnt] = unpack_membranes(res, cnt)
        return out, v

    def run(self, net: SnnNet, frames: np.ndarray, keep_spikes: bool = True) -> SnnResult:
        """The whole network, sample by sample, every spiking layer on the kernel."""
        x = check_input(net, frames)
        b, t = x.shape[:2]
        stats, spikes, v_last = [], {}, None
        cur = x.reshape(b, t, -1)
        src = tuple(net.input_shape)
        pool = 1
        for layer in net.layers:
            if layer.op == "pool":
                pool *= layer.kernel
                continue
            if layer.op == "fc" and len(layer.in_shape) == 3 and pool == 1:
                src = tuple(layer.in_shape)
            st = LayerStats(layer.name, layer.op, steps=b * t)
            out = np.zeros((b, t, layer.n_neurons), bool)
            v_last = np.zeros((b, layer.n_neurons), np.int32)
            for s in range(b):
                out[s], v_last[s] = self.run_layer(layer, src, pool, cur[s])
            # statistics of what the layer integrated (after the kernel's pooling)
            pooled = cur.reshape(b, t, *src)
            if pool > 1:
                from ..ref.snn import pool_or
                pooled = pool_or(pooled, pool)
            flat = pooled.reshape(b, t, -1)
            st.events_in = int(flat.sum())
            st.active_steps = int((flat.sum(2) > 0).sum())
            st.sops = int((flat.reshape(b * t, -1).sum(0) * fanout_map(layer).reshape(-1)).sum())
            st.slices_in = weight_slices(layer, flat.reshape(b * t, -1))
            st.events_out = int(out.sum())
            stats.append(st)
            if keep_spikes:
                spikes[layer.name] = out.reshape(b, t, *layer.out_shape)
            cur, src, pool = out, tuple(layer.out_shape) if len(layer.out_shape) == 3 else \
                (layer.n_neurons, 1, 1), 1
        counts = cur.sum(axis=1).astype(np.int64)
        return SnnResult(counts, v_last, stats, spikes)


def csim_runner() -> SnnKernelRunner:
    """A runner on a fresh C-simulation kernel (no pynq, no DMA)."""
    from ..emu.csim import CsimKernel
    return SnnKernelRunner(CsimTransactor(CsimKernel("snn")))


def overlay_runner(overlay, ip_name: str = "snn_0", dma_name_: str = "snn_dma",
                   timeout_s: float = 10.0) -> SnnKernelRunner:
    """A runner on the snn slot of a ``pynq.Overlay`` (board or emulation)."""
    ip, dma = getattr(overlay, ip_name), getattr(overlay, dma_name_)
    if not isinstance(ip, KernelIP):          # opened before this driver was imported
        ip = SnnIP(overlay.ip_dict[ip_name])
    return SnnKernelRunner(DmaTransactor(ip, dma, timeout_s))
