"""Driver of the dcim kernel: an HLS IP bound by VLNV, fed by an AXI DMA.

The same code runs on the PYNQ-Z2 and on the emulated device. Registers come from
``overlay_shape.DCIM``, stream word formats from ``hw.streams``. A layer takes three
kernel calls:

- load weights (mode 0): the layer's K x N matrix goes into on-chip memory and stays
  there for every batch that follows (weight-stationary);
- load requantizer (mode 1): 2N words of (B_n, M_n);
- compute (mode 2): a batch of input vectors in, requantized outputs out. Batches are
  as large as ``max_vectors``, so register traffic is per layer and batch, not per image.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..bundle import Bundle, MacroLayer
from ..config import DcimSpec
from ..errors import ConfigError, HardwareError
from ..overlay_shape import DCIM
from . import streams
from .kernel import DmaTransactor, KernelIP, StageTimes


class DcimIP(KernelIP):
    """The dcim HLS kernel's AXI-Lite control interface."""

    decl = DCIM
    bindto = [DCIM.vlnv]


class DcimRunner:
    """Runs the macro layers of a bundle on one dcim kernel.

    ``engine`` has the signature of the network executor's engines, so
    ``run_network(bundle, x, engine=runner.engine)`` runs the whole network with every
    macro layer on the kernel and lowering / pooling on the host.
    """

    def __init__(self, ip: DcimIP, dma, timeout_s: float = 10.0, max_vectors: int = 1 << 14):
        self.transact = DmaTransactor(ip, dma, timeout_s)
        self.max_vectors = max_vectors
        self._resident = None        # digest of the weights + requantizer in the kernel now

    @property
    def times(self) -> StageTimes:
        return self.transact.times

    @staticmethod
    def layer_args(layer: MacroLayer, spec: DcimSpec, n_out: int) -> dict:
        """Register values of ``layer`` (a slice of ``n_out`` channels of it)."""
        return dict(k_rows=layer.k, n_out=n_out, w_bits=layer.w_bits, x_bits=layer.x_bits,
                    rows_on=spec.rows_on, psum_bits=0 if spec.psum_exact else spec.psum_bits,
                    psum_mode=0 if spec.psum_mode == "saturate" else 1,
                    shift=layer.requant.shift, out_lo=layer.requant.lo, out_hi=layer.requant.hi)

    def load(self, layer: MacroLayer, args: dict, cols: slice) -> None:
        """Make ``layer[:, cols]`` resident (weights, then requantizer) unless it is."""
        t0 = time.perf_counter()
        w_words = streams.pack_weights(layer.matrix()[:, cols])
        rq = layer.requant
        r_words = streams.pack_requant(rq.multiplier[cols], rq.bias[cols])
        key = hashlib.blake2b(w_words.tobytes() + r_words.tobytes() +
                              repr(sorted(args.items())).encode()).digest()
        self.times.add("pack", time.perf_counter() - t0)
        if self._resident == key:
            return
        self._resident = None
        modes = DCIM.modes
        self.transact({**args, "mode": modes["load_weights"], "n_vec": 0}, w_words, 0,
                      f"loading weights of {layer.name}")
        self.transact({**args, "mode": modes["load_requant"], "n_vec": 0}, r_words, 0,
                      f"loading the requantizer of {layer.name}")
        self._resident = key

    def compute(self, layer: MacroLayer, args: dict, x_mat: np.ndarray) -> np.ndarray:
        """One batch through the resident slice: [V, K] -> [V, n_out] int32."""
        n, v = args["n_out"], len(x_mat)
        t0 = time.perf_counter()
        words = streams.pack_inputs(x_mat)
        self.times.add("pack", time.perf_counter() - t0)
        expect = streams.output_words(n, v)
        try:
            res = self.transact({**args, "mode": DCIM.modes["compute"], "n_vec": v}, words,
                                expect, f"computing {layer.name}")
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
        """Network-executor engine: [V, K] inputs -> [V, N] requantized outputs."""
        cap = DCIM.capacity
        if layer.k > cap["MAX_K"]:
            raise ConfigError(
                f"layer {layer.name} has K = {layer.k} inputs per output; the dcim kernel "
                f"holds at most MAX_K = {cap['MAX_K']} (split the layer's input channels)")
        out = np.empty((x_mat.shape[0], layer.channels), np.int64)
        for c0 in range(0, layer.channels, cap["MAX_N"]):
            cols = slice(c0, min(layer.channels, c0 + cap["MAX_N"]))
            args = self.layer_args(layer, bundle.dcim, cols.stop - cols.start)
            self.load(layer, args, cols)
            for v0 in range(0, x_mat.shape[0], self.max_vectors):
                out[v0:v0 + self.max_vectors, cols] = self.compute(
                    layer, args, x_mat[v0:v0 + self.max_vectors])
        return out
