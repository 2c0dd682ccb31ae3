"""Register-level model of the Xilinx AXI DMA 7.1 in simple (direct register) mode.

Facts from PG021, as the unmodified ``pynq.lib.dma`` driver uses them:

====== ====== ========================================================================
MM2S   S2MM   register
====== ====== ========================================================================
0x00   0x30   DMACR: bit0 RS (run/stop), bit2 Reset (soft reset of the *whole* core,
              self clearing), bit12 IOC_IrqEn, bit14 Err_IrqEn; reset value 0x00010000
0x04   0x34   DMASR: bit0 Halted, bit1 Idle, bit4 DMAIntErr, bit5 DMASlvErr,
              bit6 DMADecErr, bit12 IOC_Irq, bit14 Err_Irq (the Irq bits are write 1 to
              clear); reset value 0x00000001
0x18   0x48   SA / DA: buffer address (0x1C / 0x4C hold the upper 32 bits, unused with
              32-bit addressing)
0x28   0x58   LENGTH: bytes; writing it starts the transfer. S2MM LENGTH reads back the
              bytes actually received once the transfer is complete.
====== ====== ========================================================================

- RS=1 clears Halted; Idle stays 0 until the first transfer completes (pynq tracks this
  with ``_first_transfer``). Writing LENGTH while halted has no effect.
- The LENGTH field is ``c_sg_length_width`` bits wide: at most 2^width - 1 bytes.
- Without the data realignment engine (DRE) the address must be aligned to the
  memory-map data width. A zero length, a misaligned address, or a length wider than
  the field is a DMA internal error here (on the board the last two give silently
  wrong transfers; the model prefers a visible error).
- An error sets the error bit and Err_Irq, clears RS and halts the channel; only a
  soft reset clears it.
- MM2S ends when every byte has been read and handed to the stream (the last beat
  carries TLAST). The stream FIFO has a bounded depth, so a transfer longer than the
  consumer takes never completes (Idle stays 0).
  Polling a channel that can make no more progress raises
  (``EmuDevice.read_registers``); each channel says why with ``stall_reason()``.
- S2MM ends at the beat carrying TLAST. A packet longer than the buffer is a DMA
  internal error.
"""

from __future__ import annotations

import numpy as np

from .axis import EMPTY_LAST, EMPTY_WORDS, AxisFifo
from .memory import DdrModel, MemoryFault

# DMACR bits
RS, RESET, IOC_IRQ_EN, ERR_IRQ_EN = 0x1, 0x4, 0x1000, 0x4000
DMACR_RESET_VALUE = 0x00010000
# DMASR bits
HALTED, IDLE, SG_INCLD = 0x1, 0x2, 0x8
DMA_INT_ERR, DMA_SLV_ERR, DMA_DEC_ERR = 0x10, 0x20, 0x40
IOC_IRQ, DLY_IRQ, ERR_IRQ = 0x1000, 0x2000, 0x4000
ERROR_BITS = 0x770
DMASR_RESET_VALUE = HALTED

# register offsets inside one channel's block
DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
MM2S_BASE, S2MM_BASE = 0x00, 0x30


class DmaChannel:
    """State shared by both directions: control, status, address, length."""

    direction = "?"

    def __init__(self, dma: "AxiDmaModel", fifo: AxisFifo):
        self.dma = dma
        self.fifo = fifo
        self.peer = None           # the HLS IP model at the other end of the stream
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        self.dmacr = DMACR_RESET_VALUE
        self.dmasr = DMASR_RESET_VALUE
        self.addr = 0
        self.addr_msb = 0
        self.length = 0
        self.busy = False          # a transfer has been started and is not complete
        self.fault = ""            # why the last error happened (for diagnostics)
        self.note = ""             # last ignored write, for diagnostics
        self.fifo.clear()

    @property
    def label(self) -> str:
        return f"{self.dma.name} {self.direction}"

    @property
    def running(self) -> bool:
        return not self.dmasr & HALTED

    def _error(self, bit: int, why: str) -> None:
        self.dmasr = (self.dmasr | bit | ERR_IRQ | HALTED) & ~IDLE
        self.dmacr &= ~RS
        self.busy = False
        self.fault = why

    def _complete(self) -> None:
        self.busy = False
        self.dmasr |= IDLE | IOC_IRQ

    # ------------------------------------------------------- register access
    def read(self, off: int) -> int:
        if off == DMACR:
            return self.dmacr
        if off == DMASR:
            return self.dmasr
        if off == ADDR:
            return self.addr
        if off == ADDR_MSB:
            return self.addr_msb
        if off == LENGTH:
            return self.length
        return 0

    def write(self, off: int, value: int) -> None:
        if off == DMACR:
            self._write_dmacr(value)
        elif off == DMASR:
            self.dmasr &= ~(value & (IOC_IRQ | DLY_IRQ | ERR_IRQ))
        elif off == ADDR:
            self.addr = value
        elif off == ADDR_MSB:
            self.addr_msb = value
        elif off == LENGTH:
            self._write_length(value)

    def _write_dmacr(self, value: int) -> None:
        if value & RESET:
            self.dma.soft_reset()
            return
        self.dmacr = value & ~RESET
        if value & RS:
            if self.dmasr & ERROR_BITS:
                self.dmacr &= ~RS
                self.note = ("RS written while the channel is in error; only a soft "
                             "reset (DMACR.Reset) clears DMA errors")
            elif self.dmasr & HALTED:
                self.dmasr &= ~(HALTED | IDLE)
        elif not self.dmasr & HALTED:
            # stop: outstanding work is abandoned, the channel halts
            self.busy = False
            self._abandon()
            self.dmasr |= HALTED

    def _write_length(self, value: int) -> None:
        if not self.running:
            self.note = (f"LENGTH={value} written while the channel is halted: no effect "
                         "(start the channel first)")
            return
        if self.busy:
            self._error(DMA_INT_ERR, f"LENGTH={value} written while a transfer of "
                                     f"{self.length} bytes is still in progress")
            return
        width = self.dma.length_width
        self.length = value
        if value == 0:
            self._error(DMA_INT_ERR, "transfer length 0")
            return
        if value >> width:
            self._error(DMA_INT_ERR, (
                f"length {value} exceeds the {width}-bit LENGTH field (max "
                f"{(1 << width) - 1} bytes); split the transfer"))
            return
        if self.addr % self.dma.mm_bytes and not self.dre:
            self._error(DMA_INT_ERR, (
                f"address 0x{self.addr:08X} is not aligned to the "
                f"{self.dma.mm_bytes}-byte memory-map width and the core has no DRE; "
                f"allocate the buffer with pynq.allocate and start at a multiple of "
                f"{self.dma.mm_bytes} bytes"))
            return
        try:
            self.dma.ddr.locate(self.addr, value)
        except MemoryFault as exc:
            bit = DMA_DEC_ERR if exc.kind == "decode" else DMA_SLV_ERR
            self._error(bit, str(exc))
            return
        self.fault = ""
        self.note = ""
        self.dmasr &= ~IDLE
        self.busy = True
        self._begin(value)

    # subclasses
    dre = False

    def _begin(self, nbytes: int) -> None:
        raise NotImplementedError

    def _abandon(self) -> None:
        raise NotImplementedError

    def step(self) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        return ""

    def stall_reason(self) -> str:
        """Why DMASR cannot change until the host writes a register, in words."""
        if self.dmasr & ERROR_BITS:
            return (f"{self.label} is halted by an error ({self.fault}); only a soft reset "
                    "(DMACR.Reset, cimstack.hw.dma_io.reset_dma) clears it")
        if self.dmasr & HALTED:
            note = f" ({self.note})" if self.note else ""
            return f"{self.label} is halted: start it (channel.start()){note}"
        if self.busy:
            return f"{self.label} can make no progress: {self._busy_stall()}"
        if self.dmasr & IDLE:
            return f"{self.label} is idle: its last transfer completed and no new one began"
        return (f"{self.label} has no transfer in progress: nothing was written to LENGTH "
                "since the channel started; call transfer() before wait()")

    def _busy_stall(self) -> str:
        raise NotImplementedError


class Mm2sChannel(DmaChannel):
    """Memory -> stream. It fills its stream FIFO from DDR as space frees up."""

    direction = "MM2S"

    def reset(self) -> None:
        self._next = 0        # next byte address to read
        self._left = 0        # bytes not yet handed to the stream
        super().reset()

    @property
    def dre(self) -> bool:
        return self.dma.mm2s_dre

    def _begin(self, nbytes: int) -> None:
        self._next = self.addr
        self._left = nbytes

    def _abandon(self) -> None:
        self._left = 0

    def pending_beats(self) -> int:
        """Beats still waiting to leave memory."""
        return -(-self._left // self.dma.stream_bytes) if self.busy else 0

    def supply(self, n: int, until_last: bool = False):
        """Read up to ``n`` beats from DDR for a consumer pulling through the FIFO."""
        if not self.busy or n <= 0:
            return EMPTY_WORDS, EMPTY_LAST
        b = self.dma.stream_bytes
        nbytes = min(self._left, n * b)
        raw = self.dma.ddr.read(self._next, nbytes)
        beats = -(-nbytes // b)
        if b == 8 and nbytes % 8 == 0:      # whole 64-bit beats: the bytes are the words
            padded = raw
        else:
            padded = np.zeros(beats * 8, np.uint8).reshape(beats, 8)
            full = np.zeros(beats * b, np.uint8)
            full[:nbytes] = raw
            padded[:, :b] = full.reshape(beats, b)
        words = padded.reshape(-1).view("<u8").astype(np.uint64, copy=False)
        self._next += nbytes
        self._left -= nbytes
        last = np.zeros(beats, bool)
        if self._left == 0:
            last[-1] = True       # TLAST on the final beat of the transfer
        return words, last

    def step(self) -> bool:
        if not self.busy:
            return False
        progress = False
        if self._left and self.fifo.free:
            words, last = self.supply(self.fifo.free)
            self.fifo.push(words, last)
            progress = True
        if self._left == 0:
            self._complete()
            progress = True
        return progress

    def _busy_stall(self) -> str:
        total = -(-self.length // self.dma.stream_bytes)
        taken = total - self.pending_beats() - len(self.fifo)
        why = (self.peer.input_stall(taken) if self.peer is not None
               else "no kernel is connected to its stream")
        return f"the kernel consumed {taken} of {total} words; {why}"

    def describe(self) -> str:
        if self.busy:
            return (f"{self.label}: {self._left} of {self.length} bytes not yet accepted by "
                    f"the stream (FIFO holds {len(self.fifo)}/{self.fifo.depth} beats)")
        return ""


class S2mmChannel(DmaChannel):
    """Stream -> memory. It drains its stream FIFO into DDR until TLAST."""

    direction = "S2MM"

    def reset(self) -> None:
        self._next = 0
        self._received = 0
        super().reset()

    @property
    def dre(self) -> bool:
        return self.dma.s2mm_dre

    def _begin(self, nbytes: int) -> None:
        self._next = self.addr
        self._received = 0

    def _abandon(self) -> None:
        pass

    def step(self) -> bool:
        if not self.busy:
            return False
        b = self.dma.stream_bytes
        room = self.length - self._received
        cap = room // b
        if cap == 0:
            if self.fifo.available():
                self._error(DMA_INT_ERR, (
                    f"the stream packet is longer than the {self.length}-byte S2MM buffer "
                    "(no TLAST by its end): give LENGTH the size the kernel sends"))
                return True
            return False
        words, last = self.fifo.pop(cap, until_last=True)
        if not len(words):
            return False
        data = words.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :b].reshape(-1)
        self.dma.ddr.write(self._next, data)
        self._next += data.size
        self._received += data.size
        if last[-1]:
            self.length = self._received      # LENGTH reads back bytes received
            self._complete()
        return True

    def _busy_stall(self) -> str:
        b = self.dma.stream_bytes
        why = (self.peer.output_stall() if self.peer is not None
               else "no kernel feeds its stream")
        return (f"received {self._received // b} of up to {self.length // b} words and no "
                f"TLAST; {why}")

    def describe(self) -> str:
        if self.busy:
            return (f"{self.label}: received {self._received} of up to {self.length} bytes, "
                    "no TLAST yet")
        return ""


class AxiDmaModel:
    """One AXI DMA core: an MM2S and an S2MM channel behind one AXI-Lite slave."""

    def __init__(self, name: str, parameters: dict, ddr: DdrModel, fifo_depth: int):
        def p(key: str, default: int) -> int:
            value = parameters.get(key, default)
            return int(value) if value not in (None, "") else default

        self.name = name
        self.ddr = ddr
        if p("c_include_sg", 0):
            raise ValueError(f"{name}: the emulated AXI DMA models simple mode only "
                             "(c_include_sg = 0)")
        self.length_width = p("c_sg_length_width", 14)
        self.mm_bytes = p("c_m_axi_mm2s_data_width", 32) // 8
        self.stream_bytes = p("c_m_axis_mm2s_tdata_width", 32) // 8
        s2mm_stream = p("c_s_axis_s2mm_tdata_width", 32) // 8
        if self.stream_bytes != s2mm_stream or self.stream_bytes > 8:
            raise ValueError(f"{name}: stream widths {8 * self.stream_bytes}/{8 * s2mm_stream}"
                             " bits not modelled (equal widths up to 64 bits are)")
        self.mm2s_dre = bool(p("c_include_mm2s_dre", 0))
        self.s2mm_dre = bool(p("c_include_s2mm_dre", 0))
        self.mm2s = Mm2sChannel(self, AxisFifo(fifo_depth, f"{name}.M_AXIS_MM2S"))
        self.s2mm = S2mmChannel(self, AxisFifo(fifo_depth, f"{name}.S_AXIS_S2MM"))
        self.mm2s.fifo.source = self.mm2s     # a waiting consumer pulls through
        self.has_mm2s = bool(p("c_include_mm2s", 1))
        self.has_s2mm = bool(p("c_include_s2mm", 1))

    def soft_reset(self) -> None:
        """DMACR.Reset on either channel resets the whole core (PG021)."""
        self.mm2s.reset()
        self.s2mm.reset()

    def _channel(self, off: int) -> tuple[DmaChannel, int]:
        return (self.mm2s, off - MM2S_BASE) if off < S2MM_BASE else (self.s2mm, off - S2MM_BASE)

    def read(self, off: int) -> int:
        ch, rel = self._channel(off)
        return ch.read(rel)

    def write(self, off: int, value: int) -> None:
        ch, rel = self._channel(off)
        ch.write(rel, value)

    def step(self) -> bool:
        progress = self.mm2s.step()
        progress |= self.s2mm.step()
        return progress

    status_offsets = (MM2S_BASE + DMASR, S2MM_BASE + DMASR)

    def stall_reason(self, off: int) -> str:
        """Why the DMASR at ``off`` cannot change until the host writes a register."""
        return self._channel(off)[0].stall_reason()

    def diagnose(self, off: int | None = None) -> str:
        """Why a channel is in error or not idle, in words."""
        chans = [self.mm2s, self.s2mm] if off is None else [self._channel(off)[0]]
        parts = []
        for ch in chans:
            if ch.fault:
                parts.append(f"{ch.label} error: {ch.fault}")
            elif ch.describe():
                parts.append(ch.describe())
            if ch.note:
                parts.append(f"{ch.label}: {ch.note}")
        return "; ".join(parts)
