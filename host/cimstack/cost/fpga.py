"""The FPGA overlay's throughput for a bundle whose macro families have FPGA kernels
(dcim, acim): kernel cycles per layer at the board's clock (compute bound) beside the
bytes the AXI DMA moves through the HP port (DMA bound).

Cycle model (from the loop structure of hls/dcim/dcim_top.cpp, hls/acim/acim_top.cpp
and hls/include/cimstack/streams.h): one cycle per iteration of an II = 1 pipelined
innermost loop, ``loop_entry_cycles`` per entry into one, and for acim
``divider_cycles`` per ADC conversion. The driver (:mod:`cimstack.hw.macros`) runs a
layer in slices of at most ``MAX_N`` channels; per slice it loads weights and
requantizer (and ABN) once per batch, then streams the batch's input vectors, the same
inputs again for every slice. A dcim layer with K > ``MAX_K`` runs as row tiles
(:mod:`cimstack.hw.tiles`), each costed as a layer of its own rows (K below is the
tile's), every slice of every tile loaded once per batch; the host's int64 sum of the
partial sums is not counted. Per input vector (K inputs, n channels in the slice, E
the loop entry cost, W = ceil(K/64), G the row groups, D the divider):

- read the vector: ``(8 + E) * ceil(K/8)`` (one byte per cycle, the byte loop entered
  once per word); write: ``ceil(n/2) + E``;
- dcim, exact partial sums: ``W + n * (W + E)`` (no block skipping in this path);
- dcim, column ADC: ``W + sum over groups [x_bits * chunks + n + kept blocks * w_bits *
  (chunks + x_bits)]`` (pruned blocks skipped);
- acim: ``n * (K + E + D)`` per conversion pass, ``x_bits`` passes in the per-bit mode;
- loads, per slice and batch: weights ``(8 + E) * ceil(K*n/8)``, requantizer ``2n + E``;
  dcim also clears the planes ``n * (W + E)`` and rebuilds the block table ``n * (W +
  G)``; acim loads the ABN ``n + E`` and prepares its channels ``n``.
"""

from __future__ import annotations

from itertools import product

from ..config import BoardSpec
from ..errors import ConfigError
from ..families import get_family
from ..hw.streams import input_words, output_words, words_for
from ..hw.tiles import kernel_row_tiles, tile_layer
from ..mapping.tiling import kept_blocks
from ..overlay_shape import KERNELS, STREAM_BYTES, overlay_shape
from .constants import FpgaTiming, check_count


def _dcim_vector(layer, n: int, w_mat, spec, t: FpgaTiming) -> int:
    words = -(-layer.k // 64)
    if spec.psum_exact:
        return words + n * (words + t.loop_entry_cycles)
    kept = kept_blocks(w_mat, spec.rows_on).sum(axis=1)                  # per group
    cycles = words
    for g, kept_g in enumerate(kept):
        chunks = -(-min(spec.rows_on, layer.k - g * spec.rows_on) // 64)
        cycles += layer.x_bits * chunks + n + int(kept_g) * layer.w_bits * (chunks
                                                                           + layer.x_bits)
    return cycles


def dcim_slice_cycles(layer, bundle, c0: int, n: int, t: FpgaTiming) -> tuple[int, int, int]:
    """dcim channels c0 .. c0+n-1: (cycles per input vector, cycles of the loads, extra
    weight-stream words beside weights and requantizer: none)."""
    e = t.loop_entry_cycles
    words = -(-layer.k // 64)
    prep = n * (words + -(-layer.k // bundle.dcim.rows_on))
    return (_io_cycles(layer, n, t) + _dcim_vector(layer, n, layer.matrix()[:, c0:c0 + n],
                                                    bundle.dcim, t),
            _load_cycles(layer, n, t) + n * (words + e) + prep, 0)


def acim_slice_cycles(layer, bundle, c0: int, n: int, t: FpgaTiming) -> tuple[int, int, int]:
    """acim channels c0 .. c0+n-1: (cycles per input vector, cycles of the loads, the n
    ABN words)."""
    e = t.loop_entry_cycles
    passes = layer.x_bits if bundle.acim.adc_per_input_bit else 1
    abn, prep = n + e, n                        # ABN words at II = 1; the PREP loop
    return (_io_cycles(layer, n, t) + n * passes * (layer.k + e + t.divider_cycles),
            _load_cycles(layer, n, t) + abn + prep, n)


def _io_cycles(layer, n: int, t: FpgaTiming) -> int:
    """Reading one input vector and writing its n outputs."""
    return (8 + t.loop_entry_cycles) * words_for(layer.k) + -(-n // 2) + t.loop_entry_cycles


def _load_cycles(layer, n: int, t: FpgaTiming) -> int:
    """Loading the weights and the requantizer of n channels."""
    e = t.loop_entry_cycles
    return (8 + e) * words_for(layer.k * n) + 2 * n + e


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
