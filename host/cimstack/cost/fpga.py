"""The FPGA overlay's throughput for a bundle whose macro families have FPGA kernels
(dcim, acim): kernel cycles per layer at the board's clock (compute bound) beside the
bytes the AXI DMA moves through the HP port (DMA bound).

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

from itertools import product

import numpy as np

from ..config import BoardSpec
from ..errors import ConfigError
from ..families import get_family
from ..hw.streams import input_words, output_words, words_for
from ..hw.tiles import kernel_row_tiles, tile_layer
from ..overlay_shape import KERNELS, STREAM_BYTES, overlay_shape
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
    if not isinstance(board, BoardSpec):
        board = overlay_shape(board or "pynq-z2").board
    clock = board.clocks.fclk0_mhz * 1e6
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
    port = board.memory.hp_width_bits // 8 * clock
    compute_ips, dma_ips = clock / cycles, port / dma_bytes
    return {"board": board.name, "clock_mhz": clock * 1e-6, "batch": batch,
            "hp_port_bytes_per_s": port, "layers": rows, "cycles_per_image": cycles,
            "images_per_s": compute_ips, "dma_bytes_per_image": dma_bytes,
            "dma_bound_images_per_s": dma_ips,
            "bound_images_per_s": min(compute_ips, dma_ips),
            "bottleneck": "compute" if compute_ips <= dma_ips else "dma"}
