"""What every cimstack kernel driver shares: ap_ctrl_hs control, one DMA transaction,
and per-stage timing. Board and emulation run the same code.

A kernel call is one transaction, in the order that works on the board (PYNQ #845):
arm the receive channel, send, write the registers, start the IP, then wait on every
channel and on AP_DONE with a time limit, so a stalled transfer becomes a
:class:`~cimstack.errors.DmaTimeout` and the DMA is reset, instead of an endless spin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from pynq import DefaultIP, allocate

from ..errors import DmaTimeout, HardwareError
from ..overlay_shape import AP_DONE, AP_IDLE, AP_START, CTRL, KernelDecl
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
    items: int = 0          # input vectors (dcim, acim) or timesteps (snn)
    weight_loads: int = 0   # times weights were made resident (a layer, slice or tile)
    weight_load_bytes: int = 0   # bytes those loads streamed (weights, requantizer, ABN)

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] += dt

    def count_load(self, n_bytes: int) -> None:
        """One weight load of ``n_bytes`` bytes (its time is in the stages)."""
        self.weight_loads += 1
        self.weight_load_bytes += int(n_bytes)

    def to_dict(self) -> dict:
        return {"seconds": dict(self.seconds), "calls": self.calls, "items": self.items,
                "weight_loads": self.weight_loads,
                "weight_load_bytes": self.weight_load_bytes,
                "total_s": sum(self.seconds.values())}


class KernelIP(DefaultIP):
    """AXI-Lite control of an HLS kernel (ap_ctrl_hs). Subclasses set ``decl`` (the
    kernel's declaration in ``overlay_shape``) and ``bindto = [decl.vlnv]``."""

    decl: KernelDecl

    def set_args(self, **values: int) -> None:
        """Write argument registers by name (signed values stored two's complement).

        A register this driver last set to the same value is not written again: the
        AXI-Lite argument registers keep their values from call to call (a kernel call
        changes a few of its 20-odd registers). :meth:`forget_args` writes them all at
        the next call, after anything that may have reset the IP.
        """
        written = self.__dict__.setdefault("_written", {})
        for name, value in values.items():
            word = int(value) & 0xFFFFFFFF
            if written.get(name) != word:
                self.write(self.decl.reg(name).offset, word)
                written[name] = word

    def forget_args(self) -> None:
        """Forget the register values :meth:`set_args` wrote (all are written next)."""
        self.__dict__.pop("_written", None)

    def start_kernel(self) -> None:
        """Pulse AP_START."""
        self.write(CTRL, AP_START)

    def wait_done(self, timeout_s: float, what: str) -> None:
        """Poll AP_DONE / AP_IDLE with a deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            ctrl = self.read(CTRL)
            if ctrl & (AP_DONE | AP_IDLE) and not ctrl & AP_START:
                return
            if time.monotonic() > deadline:
                raise DmaTimeout(
                    f"{self.decl.name} kernel did not finish {what} within {timeout_s} s "
                    f"(CTRL=0x{ctrl:02x}): its input stream holds fewer words than the "
                    "registers ask for, or its output is not being drained")
            time.sleep(0)


class DmaTransactor:
    """Kernel calls through pynq's DMA driver, with DMA buffers kept and reused."""

    def __init__(self, ip: KernelIP, dma, timeout_s: float = 10.0,
                 times: StageTimes | None = None):
        self.ip, self.dma, self.timeout_s = ip, dma, timeout_s
        self.times = times or StageTimes()
        self._bufs: dict = {}

    def _buf(self, key: str, words: int):
        buf = self._bufs.get(key)
        if buf is None or buf.shape[0] < words:
            if buf is not None:
                buf.freebuffer()
            buf = allocate(shape=(max(64, 2 * words),), dtype=np.uint64, cacheable=True)
            self._bufs[key] = buf
        return buf

    def close(self) -> None:
        """Free the DMA buffers."""
        for buf in self._bufs.values():
            buf.freebuffer()
        self._bufs.clear()

    def __call__(self, args: dict, words: np.ndarray, out_cap: int, what: str) -> np.ndarray:
        """Send ``words`` with registers ``args``; return what the kernel sent back
        (at most ``out_cap`` words, ended by TLAST)."""
        name = dma_name(self.dma)
        t0 = time.perf_counter()
        inbuf = self._buf("in", words.size) if words.size else None
        if inbuf is not None:
            inbuf[:words.size] = words
        outbuf = self._buf("out", out_cap) if out_cap else None
        t1 = time.perf_counter()
        self.times.add("pack", t1 - t0)
        try:
            # the buffers are views of the call's words: pynq flushes (send) and
            # invalidates (receive) the transferred array, so only these words, not
            # the whole kept buffer, go through the cache
            if outbuf is not None:
                self.dma.recvchannel.transfer(outbuf[:out_cap])
            if inbuf is not None:
                self.dma.sendchannel.transfer(inbuf[:words.size])
            self.ip.set_args(**args)
            t2 = time.perf_counter()
            self.ip.start_kernel()            # the kernel drains MM2S while it computes
            if inbuf is not None:
                wait_idle(self.dma.sendchannel, self.timeout_s, f"{name}.sendchannel (MM2S)")
            self.ip.wait_done(self.timeout_s, what)
            t3 = time.perf_counter()
            out = np.zeros(0, np.uint64)
            if outbuf is not None:
                got = wait_idle(self.dma.recvchannel, self.timeout_s,
                                f"{name}.recvchannel (S2MM)")      # invalidates outbuf
                if got % 8 or got > out_cap * 8:
                    raise HardwareError(f"{what}: S2MM received {got} bytes; expected whole "
                                        f"64-bit words, at most {out_cap * 8} bytes")
                out = np.array(outbuf[:got // 8])
            t4 = time.perf_counter()
        except (DmaTimeout, HardwareError):
            reset_dma(self.dma)
            self.ip.forget_args()
            raise
        self.times.add("dma_in", t2 - t1)
        self.times.add("compute", t3 - t2)
        self.times.add("dma_out", t4 - t3)
        self.times.calls += 1
        return out
