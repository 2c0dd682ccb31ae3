"""Driver of the snn kernel (spiking event core): an HLS IP bound by VLNV, fed by an
AXI DMA. The same code runs on the PYNQ-Z2 and on the emulated device; the layer
logic (:class:`SnnKernelRunner`) also runs straight on a C-simulation kernel.

Per spiking layer the driver makes a slice of output neurons resident (weights +
membranes must fit the kernel's 512 x 256-bit array; a conv layer runs as groups of
output channels, as many as fit with all their membranes, each a conv of its own:
:func:`conv_group`), then:

1. load weights (mode 0): the slice's weights, int16, 4 per word, once for all samples;
2. run (mode 4, ``n_steps`` = T, ``n_samples`` = S): the event packets (marker,
   addresses, pad) of S samples' T timesteps back to back in one MM2S transfer; the
   kernel sets the membranes to ``v_init`` before each sample and answers one spike
   packet per timestep, TLAST only on the last beat, so one S2MM transfer with
   simple-mode DMA. A call takes as many whole samples as keep its input within the
   DMA's largest transfer (``DmaDecl.max_transfer`` of the overlay's snn slot) and its
   worst-case answer within ``OUT_BUDGET_BYTES`` (:func:`plan_samples`); a sample
   larger than that runs alone, cut into calls of consecutive timesteps
   (:func:`plan_runs`: the first call sets the membranes, the others continue them);
   the answer's markers must name every timestep of the call, in order;
3. the last layer's membranes, for its tie-break: its RUN calls set ``v_out``, so that
   each sample's spike packets are followed by a packet of its final membranes (a
   sample cut by timesteps reads them with mode 3 after its last call).

Mode 1 (clear) and mode 2 (one timestep per call) are the kernel's too, for a host that
streams timestep by timestep.

An OR-pooling layer in front of a spiking layer is done by the kernel on the incoming
addresses (``pool`` register). Layers run one after another over all timesteps; with
no feedback this gives the layer-first-per-timestep result exactly.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..errors import HardwareError
from ..events.wire import events_to_beats, frames_to_beats, unpack_events
from ..overlay_shape import SNN, STREAM_BYTES, overlay_shape
from ..ref.snn import (LayerStats, SnnNet, SnnResult, check_input, fanout_map, pool_or,
                       pool_or_events, weight_slices)
from .kernel import DmaTransactor, KernelIP, StageTimes

ARRAY_BITS = SNN.capacity["ROWS"] * SNN.capacity["COLS"]
MODES = SNN.modes
# The largest S2MM buffer one RUN call's worst-case answer (every neuron spiking every
# timestep) may take: the calls take fewer samples rather than a larger buffer (CMA on
# the board, emulated DDR here).
OUT_BUDGET_BYTES = 16 << 20


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


def _consecutive(sizes: list[int], per_call: int, budget: int) -> list[tuple[int, int]]:
    """(first, count) of runs of consecutive items of ``sizes``: as many per run as keep
    it within ``per_call`` items and ``budget`` in total (an item above the budget
    alone)."""
    runs, first, used = [], 0, 0            # used: the size of the run being filled
    for i, size in enumerate(sizes):
        if i > first and (i - first == per_call or used + size > budget):
            runs.append((first, i - first))
            first, used = i, 0
        used += size
    if sizes:
        runs.append((first, len(sizes) - first))
    return runs


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
    return _consecutive(packet_beats, per_call, max_beats)


def plan_samples(sample_beats: list[int], out_beats: int, max_beats: int,
                 max_out_beats: int, max_samples: int) -> list[tuple[int, int]]:
    """(first sample, samples) of RUN calls over whole samples whose input packets take
    ``sample_beats`` beats each and whose answers take at most ``out_beats``: consecutive
    samples, as many per call as keep its input within ``max_beats``, its answer within
    ``max_out_beats`` and its samples within ``max_samples`` (and the kernel's
    ``MAX_SAMPLES``); a sample that alone exceeds a bound is a call of its own (the
    caller cuts it by timesteps, :func:`plan_runs`). The samples are spread evenly over
    as many calls as the bounds need (16 samples at 5 a call: 4, 4, 4, 4, not 5, 5, 5,
    1), so that a call's parts on the emulator's kernel copies are even."""
    per_call = max(1, min(SNN.capacity["MAX_SAMPLES"], max_samples,
                          max_out_beats // max(1, out_beats)))
    calls = _consecutive(sample_beats, per_call, max_beats)
    even = -(-len(sample_beats) // max(1, len(calls)))
    return _consecutive(sample_beats, min(per_call, even), max_beats)


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
    the largest DMA transfer, by default the overlay's snn DMA's; ``out_budget``: bytes
    of the largest answer buffer (``OUT_BUDGET_BYTES``)."""

    def __init__(self, transact, times: StageTimes | None = None,
                 max_transfer: int | None = None, out_budget: int = OUT_BUDGET_BYTES):
        self.transact = transact
        self.times = times or getattr(transact, "times", None) or StageTimes()
        self.max_transfer = max_transfer or overlay_shape().slot("snn").dma.max_transfer
        self.out_budget = out_budget

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
    def _answer(res: np.ndarray, last: np.ndarray, first: int, n: int, samples: int,
                v_out: bool, what: str):
        """The packets of a RUN answer as (packet, word) arrays, checked: TLAST on its
        last beat only, ``samples`` runs of one packet per timestep first .. first + n - 1
        in order, each followed by its membrane packet (marked n) with ``v_out``."""
        if not len(res) or not last[-1] or last[:-1].any():
            raise HardwareError(f"{what}: the answer has TLAST on beats "
                                f"{np.flatnonzero(last).tolist()} of {len(res)}; expected "
                                "on its last beat only")
        marks, packet, words = unpack_events(res)
        want = np.tile(np.r_[np.arange(first, first + n), [n] * v_out], samples)
        wrong = marks[:want.size] != want[:marks.size]
        if marks.size != want.size or wrong.any():
            i = int(np.flatnonzero(wrong)[0]) if wrong.any() else min(marks.size, want.size)
            got = int(marks[i]) if i < marks.size else "missing"
            raise HardwareError(f"{what}: the answer holds {marks.size} packets; packet {i} "
                                f"is marked {got}, expected {want[i] if i < want.size else 'none'}")
        return packet, words

    def _run_slice(self, layer, args: dict, lo: int, cnt: int, sample_words: list,
                   out: np.ndarray, v: np.ndarray | None, found: list) -> None:
        """The samples' timesteps through the loaded slice ``lo`` .. ``lo + cnt`` of
        ``layer`` (registers ``args``): spikes into ``out`` [B, T, n_out] and, as (frame,
        neuron) arrays in frame order, onto ``found``; with ``v`` each sample's final
        membranes (from its membrane packet, ``v_out``; a sample cut by timesteps: read
        after its last call)."""
        t_steps = out.shape[1]
        first = lo - args["n_lo"]                # the part's first neuron in the layer
        cap = (cnt + 2) // 2                     # beats of one timestep's spike packet, at most
        v_out = v is not None
        per_sample = (t_steps + v_out) * cap     # answer beats of a sample, at most
        max_beats = self.max_transfer // STREAM_BYTES
        max_out = max(1, self.out_budget // STREAM_BYTES)
        beats = [int(b.size) for b, _ in sample_words]
        for s0, n_s in plan_samples(beats, per_sample, max_beats, max_out, len(beats)):
            whole = n_s > 1 or (beats[s0] <= max_beats and per_sample <= max_out)
            if whole:
                calls = [(0, t_steps, n_s, v_out,
                          np.concatenate([sample_words[s][0] for s in range(s0, s0 + n_s)]))]
            else:                                # one sample too large: cut by timesteps
                words, packet_beats = sample_words[s0]
                starts = np.concatenate([[0], np.cumsum(packet_beats)])
                runs = plan_runs(packet_beats.tolist(), cap, min(max_beats, max_out))
                calls = [(t0, n, 1 if i == 0 else 0, False, words[starts[t0]:starts[t0 + n]])
                         for i, (t0, n) in enumerate(runs)]
            for t0, n, samples, with_v, words in calls:
                what = (f"{layer.name} samples {s0}..{s0 + n_s - 1} timesteps "
                        f"{t0}..{t0 + n - 1}")
                runs_of = max(1, samples)
                res, last = self._call({**args, "n_steps": n, "n_samples": samples,
                                        "v_out": int(with_v)}, "run", words,
                                       runs_of * (n + with_v) * cap, what)
                t1 = time.perf_counter()
                packet, words_out = self._answer(res, last, t0, n, runs_of, with_v, what)
                sample, step = np.divmod(packet, n + with_v)
                spike = step < n
                frame = (s0 + sample[spike]) * t_steps + t0 + step[spike]
                neuron = words_out[spike] + first
                out.reshape(-1)[frame * out.shape[2] + neuron] = True   # one flat index:
                found.append((frame, neuron))                # three cost 3x as long
                if with_v:
                    fields = words_out[~spike]
                    if fields.size != runs_of * cnt:
                        raise HardwareError(f"{what}: the membrane packets hold {fields.size} "
                                            f"values; expected {cnt} for each of {runs_of} "
                                            "samples")
                    sign = 1 << (layer.v_bits - 1)
                    v[s0:s0 + n_s, lo:lo + cnt] = ((fields ^ sign) - sign).reshape(n_s, cnt)
                self.times.add("unpack", time.perf_counter() - t1)
                self.times.items += n * runs_of
            if v_out and not whole:              # a cut sample: its membranes are read
                res, _ = self._call(args, "read_membranes", out_cap=(cnt + 1) // 2,
                                    what=f"reading membranes of {layer.name}")
                v[s0, lo:lo + cnt] = unpack_membranes(res, cnt)

    def run_layer(self, layer, src_shape: tuple, pool: int, frames: np.ndarray,
                  read_v: bool = True, events: tuple | None = None):
        """The samples through one spiking layer: bool [B, T, n_src] (and, if known, its
        events as (frame, address) arrays in frame order, frame = sample * T + t) ->
        (bool [B, T, n_out], final membranes int32 [B, n_out] or None without
        ``read_v``, the output's events alike)."""
        b, t_steps = frames.shape[:2]
        out = np.zeros((b, t_steps, layer.n_neurons), bool)
        v = np.zeros((b, layer.n_neurons), np.int32) if read_v else None
        t0 = time.perf_counter()
        if events is None:
            beats, packet_beats = frames_to_beats(frames.reshape(b * t_steps, -1), t_steps)
        else:
            beats, packet_beats = events_to_beats(*events, b * t_steps, steps=t_steps)
        starts = np.concatenate([[0], np.cumsum(packet_beats)])[::t_steps]
        sample_words = [(beats[starts[s]:starts[s + 1]],
                         packet_beats[s * t_steps:(s + 1) * t_steps]) for s in range(b)]
        self.times.add("pack", time.perf_counter() - t0)
        found: list = []
        for lo, cnt in plan_slices(layer):
            part, first = group_of(layer, lo)        # a conv's channel group, or the layer
            args = layer_args(part, src_shape, pool, lo - first, cnt)
            self._call(args, "load_weights", pack_weights(part, lo - first, cnt),
                       what=f"loading weights of {layer.name}")
            self._run_slice(layer, args, lo, cnt, sample_words, out, v, found)
        # the slices' events by frame: each slice's are in frame order and its neurons
        # follow the last slice's, so a stable sort (a merge of sorted runs) keeps every
        # frame's neurons ascending
        frame = np.concatenate([f for f, _ in found]) if found else np.zeros(0, np.int64)
        neuron = np.concatenate([a for _, a in found]) if found else np.zeros(0, np.int64)
        order = np.argsort(frame, kind="stable")
        return out, v, (frame[order], neuron[order])

    def run(self, net: SnnNet, frames: np.ndarray, keep_spikes: bool = True) -> SnnResult:
        """The whole network, layer by layer over all samples, every spiking layer on
        the kernel."""
        x = check_input(net, frames)
        b, t = x.shape[:2]
        stats, spikes, v_last = [], {}, None
        cur = x.reshape(b, t, -1)
        src = tuple(net.input_shape)
        pool, events = 1, None
        final = net.spiking_layers[-1]           # its membranes break ties
        for layer in net.layers:
            if layer.op == "pool":
                pool *= layer.kernel
                continue
            if layer.op == "fc" and len(layer.in_shape) == 3 and pool == 1:
                src = tuple(layer.in_shape)
            st = LayerStats(layer.name, layer.op, steps=b * t)
            in_events = events
            out, v_last, events = self.run_layer(layer, src, pool, cur, layer is final, events)
            # statistics of what the layer integrated (after the kernel's pooling)
            if pool == 1:
                flat = cur.reshape(b, t, -1)
            elif in_events is not None:
                flat = pool_or_events(*in_events, src, pool, b * t).reshape(b, t, -1)
            else:
                flat = pool_or(cur.reshape(b, t, *src), pool).reshape(b, t, -1)
            st.events_in = int(np.count_nonzero(flat))
            st.active_steps = int(np.count_nonzero(flat.any(axis=2)))
            st.sops = int((np.count_nonzero(flat.reshape(b * t, -1), axis=0)
                           * fanout_map(layer).reshape(-1)).sum())
            st.slices_in = weight_slices(layer, flat.reshape(b * t, -1))
            st.events_out = int(np.count_nonzero(out))
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
