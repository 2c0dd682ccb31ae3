"""The FPGA overlay's throughput for a bundle whose macro families have FPGA kernels
(dcim, acim): kernel cycles per layer at the board's clock (compute bound) beside the
bytes the AXI DMA moves through the HP port (DMA bound). The same for a spiking
network on the snn kernel from the event counts of a run: :func:`snn_fpga_cost`.

Cycle model (from the loop structure of hls/dcim/dcim_top.cpp, hls/acim/acim_top.cpp
and hls/include/cimstack/streams.h): one cycle per iteration of an II = 1 pipelined
innermost loop and ``loop_entry_cycles`` per entry into one. The driver
(:mod:`cimstack.hw.macros`) runs a layer in slices of at most ``MAX_N`` channels; per
slice it loads weights and requantizer (and ABN) once per batch, then streams the
batch's input vectors, the same inputs again for every slice. A dcim layer with
K > ``MAX_K`` runs as row tiles (:mod:`cimstack.hw.tiles`), each costed as a layer of
its own rows (K below is the tile's), every slice of every tile loaded once per
batch; the host's int64 sum of the partial sums is not counted. Per input vector (K
inputs, n channels in the slice, E the loop entry cost):

- dcim (``LANES`` = 16 weight bit columns per cycle, every input bit in parallel; a
  channel has ``cpc`` = w_bits columns, 2 for binary weights; ``L = ceil(n * cpc /
  16)`` lane groups, ``W = ceil(K/64)`` 64-row words, input words ``I = ceil(K/8)``,
  output words ``O = ceil(n/2)``):

  - exact partial sums: reading vector v+1, computing v (``L * W`` steps) and writing
    v-1 share one pipelined loop per vector: ``max(I, L * W, O) + E``; per call (slice
    and batch) the loop's fill and drain, ``I + O + 2E``;
  - column ADC, one after the other and one input bit per step: read ``I + E``, clear
    the accumulators ``ceil(n / 16) + E``, per row group g (``s_g`` words, ``k_g`` lane
    groups with a non-zero weight bit in the group; the others are skipped) ``k_g *
    x_bits * s_g + E`` and for binary weights the reference column ``s_g + E``, write
    ``O + E``; per slice and batch the block table ``sum over groups (L * s_g + E)``;
  - loads, per slice and batch: weights one word per cycle ``ceil(K*n/8) + E``, the
    write-out of the last full band of 8 rows ``L + E`` and of a last band of K mod 8
    rows ``L + E``, the lane table ``L + E``, requantizer ``2n + E``;
- acim: read the vector ``ceil(K/8) + E`` (one word per cycle); per pass ``K + E``
  (one weight row into all 128 channel lanes per cycle) and ``n + E`` (one SAR
  conversion per cycle), ``x_bits`` passes in the per-bit mode plus its back end
  ``n + E``; write ``ceil(n/2) + E``; loads, per slice and batch: weights
  ``K * ceil(n/8) + E`` (one weight-row word per cycle), requantizer ``2n + E``, ABN
  ``n + E``.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import numpy as np

from ..config import BoardSpec
from ..errors import ConfigError
from ..families import get_family
from ..hw.resources import estimate
from ..hw.streams import input_words, output_words, words_for
from ..hw.tiles import kernel_row_tiles, tile_layer
from ..overlay_shape import KERNELS, SNN, STREAM_BYTES, OverlayShape, overlay_shape
from .constants import FpgaTiming, check_count

LANES = 16                      # weight bit columns per compute step (hls/dcim/dcim_top.h)

def dcim_columns(w_mat: np.ndarray, w_bits: int) -> np.ndarray:
    """Bool [K, n * cpc]: the dcim kernel's weight bit columns, channel-major (bit j of
    channel c is column c * cpc + j): the low w_bits bits, or for binary weights (w > 0)
    and (w != 0)."""
    w = np.asarray(w_mat, np.int64)
    if w_bits == 1:
        cols = np.stack([w > 0, w != 0], axis=2)
    else:
        cols = (w[:, :, None] >> np.arange(w_bits)) & 1
    return cols.reshape(w.shape[0], -1).astype(bool)


def dcim_kept_lane_groups(w_mat: np.ndarray, w_bits: int, rows_on: int) -> np.ndarray:
    """Int [G]: per row group of ``rows_on`` rows, the lane groups (``LANES`` columns)
    with a non-zero weight bit, the ones the kernel does not skip behind a column ADC."""
    cols = dcim_columns(w_mat, w_bits)
    k, c = cols.shape
    lanes = np.zeros((k, -(-c // LANES) * LANES), bool)
    lanes[:, :c] = cols
    nonzero = lanes.reshape(k, -1, LANES).any(axis=2)                     # [K, L]
    return (np.add.reduceat(nonzero, np.arange(0, k, rows_on), axis=0) > 0).sum(axis=1)


def _row_groups(k: int, rows_on: int) -> list[int]:
    """Words of 64 rows each row group of ``rows_on`` rows touches."""
    return [(min(k, lo + rows_on) - 1) // 64 - lo // 64 + 1 for lo in range(0, k, rows_on)]


def dcim_slice_cycles(layer, bundle, c0: int, n: int, t: FpgaTiming) -> tuple[int, int, int]:
    """dcim channels c0 .. c0+n-1: (cycles per input vector, cycles of the loads per
    batch, extra weight-stream words beside weights and requantizer: none)."""
    e, k, spec = t.loop_entry_cycles, layer.k, bundle.dcim
    cpc = 2 if layer.w_bits == 1 else layer.w_bits
    lanes, words = -(-n * cpc // LANES), -(-k // 64)
    i_words, o_words = words_for(k), -(-n // 2)
    loads = (words_for(k * n) + e + (2 + (k % 8 != 0)) * (lanes + e)  # + table, last bands
             + 2 * n + e)
    if spec.psum_exact:
        return max(i_words, lanes * words, o_words) + e, loads + i_words + o_words + 2 * e, 0
    spans = _row_groups(k, spec.rows_on)
    kept = dcim_kept_lane_groups(layer.matrix()[:, c0:c0 + n], layer.w_bits, spec.rows_on)
    groups = sum(int(kg) * layer.x_bits * s + e + (s + e if layer.w_bits == 1 else 0)
                 for kg, s in zip(kept, spans))
    vector = i_words + e + -(-n // LANES) + e + groups + o_words + e
    return vector, loads + sum(lanes * s + e for s in spans), 0


def acim_slice_cycles(layer, bundle, c0: int, n: int, t: FpgaTiming) -> tuple[int, int, int]:
    """acim channels c0 .. c0+n-1: (cycles per input vector, cycles of the loads, the n
    ABN words). Per vector: read its words, then per pass one row of all n channels per
    cycle and one conversion per cycle, the per-bit back end, the write."""
    e = t.loop_entry_cycles
    per_bit = bundle.acim.adc_per_input_bit
    passes = layer.x_bits if per_bit else 1
    vector = (words_for(layer.k) + e + passes * (layer.k + e + n + e)
              + (n + e if per_bit else 0) + -(-n // 2) + e)
    loads = layer.k * -(-n // 8) + e + 2 * n + e + n + e   # weight rows, requantizer, ABN
    return vector, loads, n


def board_shape(board: BoardSpec | str | None) -> OverlayShape:
    """The overlay on ``board``: a :class:`~cimstack.config.BoardSpec`, a board name or
    board.toml path (default pynq-z2)."""
    if isinstance(board, BoardSpec):
        return replace(overlay_shape(), board=board)
    return overlay_shape(board or "pynq-z2")


def _clock_and_port(board: BoardSpec) -> tuple[float, float]:
    """(kernel clock in Hz, HP port bytes per second) of ``board``."""
    clock = board.clocks.fclk0_mhz * 1e6
    return clock, board.memory.hp_width_bits // 8 * clock


def without_kernel(bundle) -> list[str]:
    """The macro families of ``bundle``'s layers that have no FPGA kernel (for those the
    overlay's throughput cannot be estimated), in layer order."""
    names = dict.fromkeys(layer.macro for layer in bundle.macro_layers)
    return [name for name in names if get_family(name).fpga_slice is None]


def fpga_cost(bundle, board: BoardSpec | str | None = None, *, batch: int = 1,
              timing: FpgaTiming | None = None) -> dict:
    """Per-layer kernel cycles and DMA bytes of one image of ``bundle`` on the overlay
    of ``board`` (a :class:`~cimstack.config.BoardSpec` or a board name, default
    pynq-z2); weights are loaded once per ``batch`` images. Images/s: the compute bound,
    the DMA bound (bytes per image over the HP port's width x clock), and their min.
    A :class:`ConfigError` when a layer's family has no kernel (:func:`without_kernel`)."""
    check_count("batch", batch, "images per weight reload")
    missing = without_kernel(bundle)
    if missing:
        raise ConfigError(f"bundle {bundle.name}: macro family {', '.join(missing)} has no "
                          "FPGA kernel, so the overlay's throughput cannot be estimated")
    t = timing or FpgaTiming()
    board = board_shape(board).board
    clock, port = _clock_and_port(board)
    rows = []
    for layer in bundle.macro_layers:
        family = get_family(layer.macro)
        decl = KERNELS[family.kernel]
        cap, vectors = decl.capacity, layer.vectors
        tiles = kernel_row_tiles(decl, layer, bundle)
        parts = [layer] if len(tiles) == 1 else [tile_layer(layer, a, b) for a, b in tiles]
        cycles = load = bytes_in = bytes_out = bytes_w = 0
        for part, c0 in product(parts, range(0, layer.channels, cap["MAX_N"])):
            n = min(cap["MAX_N"], layer.channels - c0)
            per_vector, loads, extra_words = family.fpga_slice(part, bundle, c0, n, t)
            cycles += vectors * per_vector
            load += loads
            bytes_in += input_words(part.k, vectors) * STREAM_BYTES
            bytes_out += output_words(n, vectors) * STREAM_BYTES
            bytes_w += (words_for(part.k * n) + 2 * n + extra_words) * STREAM_BYTES
        total = cycles + -(-load // batch)
        rows.append({"layer": layer.name, "macro": layer.macro, "row_tiles": len(tiles),
                     "slices": -(-layer.channels // cap["MAX_N"]), "vectors": vectors,
                     "cycles": total, "compute_cycles": cycles, "load_cycles": -(-load // batch),
                     "seconds": total / clock, "bytes_in": bytes_in, "bytes_out": bytes_out,
                     "bytes_weights": -(-bytes_w // batch)})
    cycles = sum(r["cycles"] for r in rows)
    dma_bytes = sum(r["bytes_in"] + r["bytes_out"] + r["bytes_weights"] for r in rows)
    compute_ips, dma_ips = clock / cycles, port / dma_bytes
    return {"board": board.name, "clock_mhz": clock * 1e-6, "batch": batch,
            "hp_port_bytes_per_s": port, "layers": rows, "cycles_per_image": cycles,
            "images_per_s": compute_ips, "dma_bytes_per_image": dma_bytes,
            "dma_bound_images_per_s": dma_ips,
            "bound_images_per_s": min(compute_ips, dma_ips),
            "bottleneck": "compute" if compute_ips <= dma_ips else "dma"}


# ------------------------------------------------------------------ snn kernel

def snn_layer_fpga(layer, stats, samples: int, src_events: int, t: FpgaTiming,
                   last: bool = True) -> dict:
    """Kernel cycles and DMA bytes of one spiking ``layer`` over a run (``stats``: its
    :class:`~cimstack.ref.snn.LayerStats`; ``src_events``: the spikes streamed to it,
    before the kernel's OR pooling; ``last``: the network's last spiking layer, whose
    membranes come back). Formula: :func:`snn_fpga_cost`."""
    # here, not at the top: hw.snn imports pynq, and cimstack imports this module
    from ..hw.snn import OUT_BUDGET_BYTES, group_of, plan_samples, plan_slices

    e, steps = t.loop_entry_cycles, stats.steps
    cap = SNN.capacity
    slices = plan_slices(layer)
    counts = [cnt for _, cnt in slices]
    # RUN calls of each slice: the driver's plan (hw.snn.plan_samples) for answers of
    # the worst case, without the DMA's input bound (the run's packets are not known)
    t_steps = max(1, steps // max(1, samples))
    calls = [len(plan_samples([0] * samples, (t_steps + last) * ((cnt + 2) // 2), 1,
                              OUT_BUDGET_BYTES // STREAM_BYTES, samples)) for cnt in counts]
    per_call = sum((1 + n) * (cap["MAX_SLOTS"] + e) for n in calls)   # slot tags cleared
    if layer.op == "conv":
        k = layer.weight.shape[2]
        plane = int(np.prod(layer.out_shape[1:]))
        groups = [group_of(layer, lo) for lo, _ in slices]       # each slice's weights
        w_counts = [g.n_weights for g, _ in groups]
        lanes = [(lo - first + cnt - 1) // plane - (lo - first) // plane + 1
                 for (lo, cnt), (_, first) in zip(slices, groups)]   # channels touched
        taps = -(-k // layer.stride)              # most kernel rows an event reaches
        per_event = sum(c * taps * (taps + e) if c < taps else taps * taps * (c + e)
                        for c in lanes)           # the loop order the kernel takes
        in_c = layer.in_shape[0]
        # a slot for every input channel: each channel's weights read into it once a
        # call (at its first event), else none (read from the array per lane)
        fills = [min(stats.slices_in, in_c * n)
                 if min(cap["SLICE_WORDS"] // (c * k * k), cap["MAX_SLOTS"]) >= in_c else 0
                 for c, n in zip(lanes, calls)]
        fill_cycles = sum(n * (c * (k * k + e) + e) for n, c in zip(fills, lanes))
    else:
        w_counts = [layer.n_inputs * cnt for cnt in counts]
        per_event = layer.n_neurons + len(slices) * e
        fill_cycles = 0
    w_words = sum(-(-w // 4) for w in w_counts)                  # int16, 4 per word
    v_beats = sum((cnt + 2) // 2 for cnt in counts) if last else 0   # membrane packets
    beats_in = steps + src_events // 2                           # marker + events + pad
    per_sample = layer.n_neurons + len(slices) * e               # membranes to v_init
    if last:
        per_sample += layer.n_neurons + len(slices) * (1 + e)    # membrane packets
    per_step = len(slices) * (-(-layer.n_inputs // 64) + 3 * e) + 2 * layer.n_neurons
    cycles = (w_words * (4 + e) + per_call + samples * per_sample
              + steps * per_step + len(slices) * 2 * beats_in + stats.events_in * per_event
              + fill_cycles)
    return {"layer": layer.name, "op": layer.op, "slices": len(slices),
            "events_in": stats.events_in, "cycles": cycles,
            "bytes_in": len(slices) * beats_in * STREAM_BYTES,
            "bytes_out": (len(slices) * steps + stats.events_out // 2) * STREAM_BYTES,
            "bytes_weights": w_words * STREAM_BYTES,
            "bytes_membranes": samples * v_beats * STREAM_BYTES}


def snn_resources(shape: OverlayShape) -> dict:
    """Estimated LUT / FF / BRAM36 / DSP of the snn kernel and its DMA on ``shape``
    (:func:`cimstack.hw.resources.estimate`) and the board's budget."""
    slot = shape.slot("snn")
    parts = [p for p in estimate(shape).parts if p.name in (slot.ip_name, slot.dma.name)]
    used = {key: sum(getattr(p, key) for p in parts) for key in ("lut", "ff", "bram36", "dsp")}
    budget = shape.board.resources
    return {"parts": [p.name for p in parts], **used,
            "budget": {key: getattr(budget, key) for key in used}}


def snn_fpga_cost(net, result, samples: int, board: BoardSpec | str | None = None,
                  timing: FpgaTiming | None = None) -> dict:
    """Kernel cycles and DMA bytes of the spiking ``net`` on the snn kernel of
    ``board``'s overlay for the event counts of a run (``result``: the
    :class:`~cimstack.ref.snn.SnnResult` of ``samples`` samples, or anything with its
    per-layer ``stats``, such as an :class:`~cimstack.cost.snn.EventRun`), driven as
    :mod:`cimstack.hw.snn` does: per layer and slice of resident neurons, load the
    slice's weights once, then run all samples' timesteps in one call (mode 4 with
    ``n_samples``: the membranes set to v_init before each sample; the last layer's
    calls send each sample's membranes back, ``v_out``). Per layer over the run (E loop
    entry, S sample-timesteps, B samples, slices of ``n_s`` neurons, N neurons, n_in
    inputs after pooling, W_s int16 weight words of slice s):

    - per slice: ``W_s * (4 + E)`` (each word's 4 weights, one pipelined loop per word)
      and ``(1 + R_s) * (MAX_SLOTS + E)`` (the slice buffer's tags, cleared by each call:
      one load and R_s runs, as many as the samples' worst-case answers need within the
      driver's budget; the DMA's input limit can cut more);
    - per sample and slice: ``n_s + E`` membranes to v_init; the last layer also
      ``n_s + 1 + E`` for its membrane packet;
    - per timestep and slice: ``ceil(n_in/64) + E`` (seen bits) and ``n_s + E`` twice
      (accumulator clear, neuron update), and one cycle per 32-bit word read (marker,
      events, pad; ``S + floor(events/2)`` beats over the run);
    - per integrated event: fc ``n_s + E`` per slice; conv per slice one weight row of
      its ``c_s`` output channels (the channels the slice touches: its channel group,
      :func:`cimstack.hw.snn.conv_group`) per reached kernel position, the lane loop
      entered once per position: ``r * r * (c_s + E)`` with ``r = ceil(k / stride)``;
      with fewer lanes than r (a slice of one or two channels) the kernel loops over
      lanes and rows and pipelines the columns: ``c_s * r * (r + E)``
      (at the borders, and for some positions when stride > 1, fewer positions are
      reached: there an upper bound);
    - when every input channel has a slot of the slice buffer (``c_s * k * k`` words
      each, at most MAX_SLOTS), a channel's weights are read into its slot at its first
      event in a call: ``c_s * (k * k + E) + E`` per input channel and run call (at
      most ``slices_in``, the channel-timesteps with events; exact when every channel
      has an event in every call); otherwise the lanes read the array directly, at no
      extra cycle.

    DMA bytes: the event packets once per slice, the output spike packets, the weights
    once per slice and the last layer's membrane packets. Images/s: compute bound
    (B * clock over the cycles), DMA bound (B * port bytes/s over the bytes) and their
    min; the driver's per-call set-up is not counted. The events streamed to the first
    layer are the integrated ones (with an OR pool in front, a lower bound)."""
    check_count("samples", samples, "samples in the run")
    t = timing or FpgaTiming()
    shape = board_shape(board)
    clock, port = _clock_and_port(shape.board)
    layers, stats = net.spiking_layers, result.stats
    if len(stats) != len(layers):
        raise ConfigError(f"{len(stats)} layer statistics for the {len(layers)} spiking "
                          f"layers of {net.name}: give the result of a run of this network")
    rows = []
    for i, (layer, st) in enumerate(zip(layers, stats)):
        src = stats[i - 1].events_out if i else st.events_in
        row = snn_layer_fpga(layer, st, samples, src, t, last=i == len(layers) - 1)
        rows.append({**row, "seconds": row["cycles"] / clock})
    cycles = sum(r["cycles"] for r in rows)
    dma_bytes = sum(r["bytes_in"] + r["bytes_out"] + r["bytes_weights"] + r["bytes_membranes"]
                    for r in rows)
    compute_ips, dma_ips = samples * clock / cycles, samples * port / dma_bytes
    return {"board": shape.board.name, "clock_mhz": clock * 1e-6, "samples": samples,
            "hp_port_bytes_per_s": port, "layers": rows, "cycles": cycles,
            "cycles_per_image": cycles / samples, "images_per_s": compute_ips,
            "dma_bytes": dma_bytes, "dma_bytes_per_image": dma_bytes / samples,
            "dma_bound_images_per_s": dma_ips, "bound_images_per_s": min(compute_ips, dma_ips),
            "bottleneck": "compute" if compute_ips <= dma_ips else "dma",
            "resources": snn_resources(shape)}
