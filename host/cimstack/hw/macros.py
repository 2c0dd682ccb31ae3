"""Drivers of the matrix-macro kernels (dcim, acim): HLS IPs bound by VLNV, fed by an
AXI DMA. The same code runs on the PYNQ-Z2 and on the emulated device. Registers come
from ``overlay_shape``, stream word formats from ``hw.streams``.

A layer is made resident once (weight-stationary: weights, requantizer, and for acim the
ABN gains/offsets stay in on-chip memory for every batch that follows), then batches of
input vectors stream through (compute mode). Batches are as large as ``max_vectors``,
so register traffic is per layer and batch, not per image. A layer larger than the
kernel runs in column slices of ``MAX_N`` channels and (dcim) row tiles of at most
``MAX_K`` rows (:mod:`cimstack.hw.tiles`); every slice or tile that is not resident is
loaded, and :class:`StageTimes` counts those weight loads.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..bundle import Bundle, MacroLayer
from ..errors import HardwareError
from ..overlay_shape import ACIM, DCIM, STREAM_BYTES, KernelDecl
from ..ref.acim import kernel_registers
from ..ref.requant import requantize
from . import streams
from .kernel import DmaTransactor, KernelIP, StageTimes
from .tiles import kernel_row_tiles, tile_layer


class DcimIP(KernelIP):
    """The dcim HLS kernel's AXI-Lite control interface."""

    decl = DCIM
    bindto = [DCIM.vlnv]


class AcimIP(KernelIP):
    """The acim HLS kernel's AXI-Lite control interface."""

    decl = ACIM
    bindto = [ACIM.vlnv]


class MacroRunner:
    """Runs the macro layers of one family on its kernel.

    ``engine`` has the signature of the network executor's engines, so
    ``run_network(bundle, x, engine=runner.engine)`` runs the network with these layers
    on the kernel and lowering / pooling on the host.
    """

    decl: KernelDecl

    def __init__(self, ip: KernelIP, dma, timeout_s: float = 10.0, max_vectors: int = 1 << 14):
        self.transact = DmaTransactor(ip, dma, timeout_s)
        self.max_vectors = max_vectors
        self._resident = None        # digest of what the kernel holds now

    @property
    def times(self) -> StageTimes:
        return self.transact.times

    def layer_args(self, layer: MacroLayer, bundle: Bundle, cols: slice) -> dict:
        """Register values of the channel slice ``cols`` of ``layer``."""
        raise NotImplementedError

    def load_streams(self, layer: MacroLayer, cols: slice) -> list[tuple[str, np.ndarray]]:
        """(mode, words) transfers that make the slice resident; dcim: weights and the
        requantizer."""
        rq = layer.requant
        return [("load_weights", streams.pack_weights(layer.matrix()[:, cols])),
                ("load_requant", streams.pack_requant(rq.multiplier[cols], rq.bias[cols]))]

    def load(self, layer: MacroLayer, args: dict, cols: slice) -> None:
        """Make ``layer[:, cols]`` resident unless it already is."""
        t0 = time.perf_counter()
        loads = self.load_streams(layer, cols)
        digest = hashlib.blake2b(repr(sorted(args.items())).encode())
        for _, words in loads:
            digest.update(words.tobytes())
        key = digest.digest()
        self.times.add("pack", time.perf_counter() - t0)
        if self._resident == key:
            return
        self._resident = None
        for mode, words in loads:
            self.transact({**args, "mode": self.decl.modes[mode], "n_vec": 0}, words, 0,
                          f"{mode.replace('_', ' ')} of {layer.name}")
        self._resident = key
        self.times.count_load(sum(words.size for _, words in loads) * STREAM_BYTES)

    def compute(self, layer: MacroLayer, args: dict, x_mat: np.ndarray) -> np.ndarray:
        """One batch through the resident slice: [V, K] -> [V, n_out] int32."""
        n, v = args["n_out"], len(x_mat)
        t0 = time.perf_counter()
        words = streams.pack_inputs(x_mat)
        self.times.add("pack", time.perf_counter() - t0)
        expect = streams.output_words(n, v)
        try:
            res = self.transact({**args, "mode": self.decl.modes["compute"], "n_vec": v},
                                words, expect, f"computing {layer.name}")
        except HardwareError:
            self._resident = None     # the DMA was reset; reload before the next call
            raise
        if res.size != expect:
            raise HardwareError(f"computing {layer.name}: the kernel sent {res.size} words, "
                                f"expected {expect}")
        t0 = time.perf_counter()
        out = streams.unpack_outputs(res, n, v)
        self.times.add("unpack", time.perf_counter() - t0)
        self.times.items += v
        return out

    def engine(self, layer: MacroLayer, x_mat: np.ndarray, bundle: Bundle) -> np.ndarray:
        """Network-executor engine: [V, K] inputs -> [V, N] requantized outputs. A layer
        split into row tiles: each tile's raw partial sums from the kernel, added in
        int64 here, then the layer's requantizer."""
        tiles = kernel_row_tiles(self.decl, layer, bundle)
        if len(tiles) == 1:
            return self.slices(layer, x_mat, bundle)
        acc = np.zeros((x_mat.shape[0], layer.channels), np.int64)
        for start, stop in tiles:
            acc += self.slices(tile_layer(layer, start, stop), x_mat[:, start:stop], bundle)
        rq = layer.requant
        return requantize(acc, rq.multiplier, rq.bias, rq.shift, rq.lo, rq.hi)

    def slices(self, layer: MacroLayer, x_mat: np.ndarray, bundle: Bundle) -> np.ndarray:
        """``layer`` (K within MAX_K) in column slices of MAX_N channels and batches of
        ``max_vectors``: [V, K] -> [V, N] as the kernel's requantizer leaves them."""
        cap = self.decl.capacity
        out = np.empty((x_mat.shape[0], layer.channels), np.int64)
        for c0 in range(0, layer.channels, cap["MAX_N"]):
            cols = slice(c0, min(layer.channels, c0 + cap["MAX_N"]))
            args = self.layer_args(layer, bundle, cols)
            self.load(layer, args, cols)
            for v0 in range(0, x_mat.shape[0], self.max_vectors):
                out[v0:v0 + self.max_vectors, cols] = self.compute(
                    layer, self.batch_args(args, v0), x_mat[v0:v0 + self.max_vectors])
        return out

    def batch_args(self, args: dict, first_vector: int) -> dict:
        """Registers that change from batch to batch (acim: the noise sample index)."""
        return args


class DcimRunner(MacroRunner):
    """The digital bit-serial macro (docs/macros.md)."""

    decl = DCIM

    def layer_args(self, layer: MacroLayer, bundle: Bundle, cols: slice) -> dict:
        spec = bundle.dcim
        return dict(k_rows=layer.k, n_out=cols.stop - cols.start, w_bits=layer.w_bits,
                    x_bits=layer.x_bits, rows_on=spec.rows_on,
                    psum_bits=0 if spec.psum_exact else spec.psum_bits,
                    psum_mode=0 if spec.psum_mode == "saturate" else 1,
                    shift=layer.requant.shift, out_lo=layer.requant.lo, out_hi=layer.requant.hi)


class AcimRunner(MacroRunner):
    """The analog charge-domain macro; noise keyed by (seed, layer, sample, channel), so
    splitting channels (``chan_base``) and batches (``sample_base``) changes nothing."""

    decl = ACIM

    def layer_args(self, layer: MacroLayer, bundle: Bundle, cols: slice) -> dict:
        regs = kernel_registers(bundle.acim_for(layer), layer.k, cols.stop - cols.start,
                                layer.w_bits, layer.x_bits, layer=layer.analog.layer,
                                chan_base=cols.start)
        return {**regs, "shift": layer.requant.shift, "out_lo": layer.requant.lo,
                "out_hi": layer.requant.hi}

    def load_streams(self, layer: MacroLayer, cols: slice) -> list[tuple[str, np.ndarray]]:
        abn = streams.pack_abn(layer.analog.gain[cols], layer.analog.offset[cols])
        return [*super().load_streams(layer, cols), ("load_abn", abn)]

    def batch_args(self, args: dict, first_vector: int) -> dict:
        return {**args, "sample_base": first_vector}
