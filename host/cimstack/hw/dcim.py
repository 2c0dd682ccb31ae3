"""Driver of the dcim kernel: an HLS IP bound by VLNV, fed by an AXI DMA.

The same code runs on the PYNQ-Z2 and on the emulated device. The register protocol
(ap_ctrl_hs and the layer registers) comes from ``overlay_shape.DCIM``; the stream
word formats from ``hw.streams``. One kernel call is one of three transactions:

- load weights: the layer's K x N matrix goes into on-chip memory (weight-stationary);
- load requantizer: 2N words of (B_n, M_n);
- compute: a batch of input vectors in, requantized outputs out.

Each transaction follows the order that works on the board (PYNQ #845): arm the
receive channel, send, start the IP, then wait on every channel with a time limit,
so a stalled transfer becomes a :class:`DmaTimeout` instead of an endless spin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from pynq import DefaultIP, allocate

from ..bundle import Bundle, MacroLayer
from ..config import DcimSpec
from ..errors import ConfigError, DmaTimeout, HardwareError
from ..overlay_shape import AP_DONE, AP_IDLE, AP_START, CTRL, DCIM
from . import streams
from .dma_io import dma_name, reset_dma, wait_idle

# pack: host packing into DMA buffers; dma_in: arming both channels and the registers;
# compute: AP_START until MM2S drained and AP_DONE; dma_out: S2MM completion and read
# back; unpack: words to integers.
STAGES = ("pack", "dma_in", "compute", "dma_out", "unpack")


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over calls (FINN-style breakdown)."""

    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    calls: int = 0
    vectors: int = 0

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] += dt

    def to_dict(self) -> dict:
        return {"seconds": dict(self.seconds), "calls": self.calls, "vectors": self.vectors,
                "total_s": sum(self.seconds.values())}


class DcimIP(DefaultIP):
    """The dcim HLS kernel's AXI-Lite control interface (ap_ctrl_hs)."""

    bindto = [DCIM.vlnv]

    def set_args(self, **values: int) -> None:
        """Write layer registers by name (signed values are stored two's complement)."""
        for name, value in values.items():
            self.write(DCIM.reg(name).offset, int(value) & 0xFFFFFFFF)

    def start_kernel(self) -> None:
        """Pulse AP_START (ap_ctrl_hs)."""
        self.write(CTRL, AP_START)

    def wait_done(self, timeout_s: float, what: str) -> None:
        """Poll AP_DONE/AP_IDLE with a deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            ctrl = self.read(CTRL)
            if ctrl & (AP_DONE | AP_IDLE) and not ctrl & AP_START:
                return
            if time.monotonic() > deadline:
                raise DmaTimeout(
                    f"dcim kernel did not finish {what} within {timeout_s} s (CTRL=0x{ctrl:02x}):"
                    " its input stream holds fewer words than the registers ask for, or its "
                    "output is not being drained")
            time.sleep(0)


class DcimRunner:
    """Runs macro layers of a bundle on one dcim kernel slot of an overlay.

    ``engine`` has the signature the network executor expects, so
    ``run_network(bundle, x, engine=runner.engine)`` runs the whole network with every
    macro layer on the kernel and lowering/pooling on the host.
    """

    def __init__(self, ip: DcimIP, dma, timeout_s: float = 10.0,
                 max_vectors: int = 1 << 14):
        self.ip, self.dma, self.timeout_s = ip, dma, timeout_s
        self.max_vectors = max_vectors
        self.times = StageTimes()
        self._loaded = None          # (layer name, column slice) resident in the kernel

    # -- one transaction ---------------------------------------------------------------

    def _transact(self, args: dict, words: np.ndarray, out_words: int, what: str) -> np.ndarray:
        t0 = time.perf_counter()
        inbuf = allocate(shape=(max(1, words.size),), dtype=np.uint64, cacheable=True)
        inbuf[: words.size] = words
        outbuf = allocate(shape=(max(1, out_words),), dtype=np.uint64, cacheable=True) \
            if out_words else None
        t1 = time.perf_counter()
        self.times.add("pack", t1 - t0)
        try:
            if outbuf is not None:
                self.dma.recvchannel.transfer(outbuf, nbytes=out_words * 8)
            self.dma.sendchannel.transfer(inbuf, nbytes=words.size * 8)
            self.ip.set_args(**args)
            t2 = time.perf_counter()
            self.ip.start_kernel()         # the kernel drains MM2S while it computes
            wait_idle(self.dma.sendchannel, self.timeout_s, f"{self._name}.sendchannel (MM2S)")
            self.ip.wait_done(self.timeout_s, what)
            t4 = time.perf_counter()
            result = None
            if outbuf is not None:
                got = wait_idle(self.dma.recvchannel, self.timeout_s,
                                f"{self._name}.recvchannel (S2MM)")     # invalidates outbuf
                if got != out_words * 8:
                    raise HardwareError(f"{what}: S2MM received {got} bytes, expected "
                                        f"{out_words * 8}")
                result = np.array(outbuf[:out_words])
            t5 = time.perf_counter()
        except (DmaTimeout, HardwareError):
            reset_dma(self.dma)
            self._loaded = None
            raise
        finally:
            inbuf.freebuffer()
            if outbuf is not None:
                outbuf.freebuffer()
        self.times.add("dma_in", t2 - t1)
        self.times.add("compute", t4 - t2)
        self.times.add("dma_out", t5 - t4)
        self.times.calls += 1
        return result

    @property
    def _name(self) -> str:
        return dma_name(self.dma)

    # -- layers ------------------------------------------------------------------------

    @staticmethod
    def layer_args(layer: MacroLayer, spec: DcimSpec, cols: slice) -> dict:
        n = len(range(*cols.indices(layer.channels)))
        return dict(k_rows=layer.k, n_out=n, w_bits=layer.w_bits, x_bits=layer.x_bits,
                    rows_on=spec.rows_on, psum_bits=0 if spec.psum_exact else spec.psum_bits,
                    psum_mode=0 if spec.psum_mode == "saturate" else 1,
                    shift=layer.requant.shift, out_lo=layer.requant.lo, out_hi=layer.requant.hi)

    def load(self, layer: MacroLayer, spec: DcimSpec, cols: slice) -> dict:
        """Make ``layer[:, cols]`` resident (weights + requantizer); returns its args."""
        args = self.layer_args(layer, spec, cols)
        key = (id(layer), cols.start, cols.stop, id(spec))
        if self._loaded == key:
            return args
        t0 = time.perf_counter()
        w_words = streams.pack_weights(layer.matrix()[:, cols])
        rq = layer.requant
        r_words = streams.pack_requant(rq.multiplier[cols], rq.bias[cols])
        self.times.add("pack", time.perf_counter() - t0)
        modes = DCIM.modes
        self._transact({**args, "mode": modes["load_weights"], "n_vec": 0}, w_words, 0,
                       f"loading weights of {layer.name}")
        self._transact({**args, "mode": modes["load_requant"], "n_vec": 0}, r_words, 0,
                       f"loading the requantizer of {layer.name}")
        self._loaded = key
        return args

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
            args = self.load(layer, bundle.dcim, cols)
            n = args["n_out"]
            for v0 in range(0, x_mat.shape[0], self.max_vectors):
                chunk = x_mat[v0:v0 + self.max_vectors]
                t0 = time.perf_counter()
                words = streams.pack_inputs(chunk)
                self.times.add("pack", time.perf_counter() - t0)
                res = self._transact({**args, "mode": DCIM.modes["compute"],
                                      "n_vec": len(chunk)}, words,
                                     streams.output_words(n, len(chunk)),
                                     f"computing {layer.name}")
                t0 = time.perf_counter()
                out[v0:v0 + len(chunk), cols] = streams.unpack_outputs(res, n, len(chunk))
                self.times.add("unpack", time.perf_counter() - t0)
                self.times.vectors += len(chunk)
        return out
