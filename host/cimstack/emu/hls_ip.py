"""Register-level model of a Vitis HLS kernel with ``ap_ctrl_hs`` on AXI-Lite and one
AXI4-Stream input and output, running a software kernel on the streamed words.

Control block (what Vitis HLS generates for ``s_axilite port=return``):

- 0x00 CTRL: bit0 AP_START (set by writing 1; writing 0 has no effect; cleared by the
  IP when it has read its inputs, i.e. at ap_ready, unless AUTO_RESTART), bit1 AP_DONE
  (clear on read), bit2 AP_IDLE, bit3 AP_READY (clear on read), bit7 AUTO_RESTART
  (read/write). Reset value 0x4 (idle).
- 0x04 GIER bit0: global interrupt enable.
- 0x08 IP_IER: bit0 ap_done, bit1 ap_ready interrupt enables.
- 0x0C IP_ISR: bit0 ap_done, bit1 ap_ready status; writing 1 to a bit toggles it.
- from 0x10, 8 bytes apart: 32-bit scalar arguments, read by the kernel at start.

A started kernel reads ``words_needed(args)`` beats from its input stream. Until they
have all arrived it stalls (busy, not done), exactly as the hardware blocks on an empty
stream; it resumes when the DMA delivers more. Its output leaves through a bounded
FIFO: the kernel is done only once the last output beat has been accepted.

The kernel object is any object with::

    words_needed(args: dict[str, int]) -> int
    run(args, in_words: np.ndarray[uint64], in_last: np.ndarray[bool])
        -> (n_consumed, out_words: np.ndarray[uint64], out_last: np.ndarray[bool])

``args`` maps register names to values (sign-extended for signed registers).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import HardwareError
from ..overlay_shape import (AP_AUTO_RESTART, AP_DONE, AP_IDLE, AP_READY, AP_START, CTRL,
                             GIER, IP_IER, IP_ISR)
from .axis import EMPTY_LAST, EMPTY_WORDS, AxisFifo

IDLE_STATE, WAIT_INPUT, OUTPUT, FAULT = "idle", "waiting for input", "sending output", "fault"


class HlsIpModel:
    """One HLS kernel instance; ``registers`` maps argument name -> (offset, signed)."""

    def __init__(self, name: str, registers: dict[str, tuple[int, bool]],
                 kernel_factory: Callable[[], object] | None,
                 in_fifo: AxisFifo | None, out_fifo: AxisFifo | None, vlnv: str = ""):
        self.name = name
        self.vlnv = vlnv
        self.arg_regs = dict(registers)
        self._by_offset = {off: name for name, (off, _) in self.arg_regs.items()}
        self.kernel_factory = kernel_factory
        self.kernel = None
        self.in_fifo = in_fifo
        self.out_fifo = out_fifo
        if out_fifo is not None:
            out_fifo.source = self          # S2MM pulls output through the FIFO
        self.runs = 0
        self.reset()

    def reset(self) -> None:
        self.start = self.done = self.ready = False
        self.auto_restart = False
        self.gier = self.ier = self.isr = 0
        self.args = {name: 0 for name in self.arg_regs}
        self.state = IDLE_STATE
        self.fault = ""
        self._latched: dict[str, int] = {}
        self._need = 0
        self._acc_w: list[np.ndarray] = []
        self._acc_l: list[np.ndarray] = []
        self._have = 0
        self._out_w = EMPTY_WORDS
        self._out_l = EMPTY_LAST
        self._idle_spin = False     # auto-restarted after a run that moved no data

    def new_pump(self) -> None:
        """Called by the device before each round of activity. A kernel that
        auto-restarts without moving any data would spin forever; it runs at most
        once per register access instead."""
        self._idle_spin = False

    @property
    def idle(self) -> bool:
        return self.state == IDLE_STATE

    # ------------------------------------------------------- register access
    def read(self, off: int) -> int:
        if off == CTRL:
            value = ((AP_START if self.start else 0) | (AP_DONE if self.done else 0)
                     | (AP_IDLE if self.idle else 0) | (AP_READY if self.ready else 0)
                     | (AP_AUTO_RESTART if self.auto_restart else 0))
            self.done = False           # clear on read
            self.ready = False
            return value
        if off == GIER:
            return self.gier
        if off == IP_IER:
            return self.ier
        if off == IP_ISR:
            return self.isr
        name = self._by_offset.get(off)
        if name is not None:
            return self.args[name] & 0xFFFFFFFF
        return 0

    def write_is_inert(self, off: int) -> bool:
        """A write at ``off`` that cannot start or move anything: an argument register
        (the kernel reads its arguments when it starts)."""
        return off in self._by_offset

    def write(self, off: int, value: int) -> None:
        if off == CTRL:
            self.auto_restart = bool(value & AP_AUTO_RESTART)
            if value & AP_START:
                self.start = True
        elif off == GIER:
            self.gier = value & 0x1
        elif off == IP_IER:
            self.ier = value & 0x3
        elif off == IP_ISR:
            self.isr ^= value & 0x3       # toggle on write
        else:
            name = self._by_offset.get(off)
            if name is not None:
                self.args[name] = value & 0xFFFFFFFF

    # ------------------------------------------------------------ behaviour
    def _signed_args(self) -> dict[str, int]:
        out = {}
        for name, raw in self.args.items():
            signed = self.arg_regs[name][1]
            out[name] = raw - (1 << 32) if signed and raw & 0x80000000 else raw
        return out

    def _kernel(self):
        if self.kernel is None:
            if self.kernel_factory is None:
                raise HardwareError(f"{self.name}: no kernel model is attached to this IP")
            self.kernel = self.kernel_factory()
        return self.kernel

    def _fail(self, why: str, exc: BaseException | None = None):
        self.state = FAULT
        self.fault = why
        raise HardwareError(f"{self.name}: {why}; the IP stays busy (never done) until "
                            "the overlay is downloaded again") from exc

    def _begin(self) -> None:
        self._latched = self._signed_args()
        try:
            need = int(self._kernel().words_needed(dict(self._latched)))
        except HardwareError:
            raise
        except Exception as exc:                      # kernel model bug or bad args
            self._fail(f"kernel.words_needed raised {type(exc).__name__}: {exc}", exc)
        if need < 0:
            self._fail(f"kernel.words_needed returned {need}")
        self._need = need
        self._acc_w, self._acc_l, self._have = [], [], 0
        self.state = WAIT_INPUT

    def _run(self) -> None:
        words = np.concatenate(self._acc_w) if self._acc_w else EMPTY_WORDS
        last = np.concatenate(self._acc_l) if self._acc_l else EMPTY_LAST
        self._acc_w, self._acc_l = [], []
        try:
            consumed, out_w, out_l = self._kernel().run(dict(self._latched), words, last)
        except Exception as exc:
            self._fail(f"kernel.run raised {type(exc).__name__}: {exc}", exc)
        consumed = int(consumed)
        if not 0 <= consumed <= len(words):
            self._fail(f"kernel.run reported {consumed} words consumed of {len(words)}")
        if consumed < len(words) and self.in_fifo is not None:
            self.in_fifo.unpop(words[consumed:], last[consumed:])
        out_w = np.asarray(out_w, dtype=np.uint64).reshape(-1)
        out_l = np.asarray(out_l, dtype=bool).reshape(-1)
        if out_w.shape != out_l.shape:
            self._fail(f"kernel.run returned {out_w.size} words but {out_l.size} TLAST flags")
        self._out_w, self._out_l = out_w, out_l
        self.runs += 1
        self._idle_spin = consumed == 0 and out_w.size == 0
        self.state = OUTPUT

    def _finish(self) -> None:
        self.state = IDLE_STATE
        self.done = self.ready = True
        self.isr |= self.ier & 0x3          # bit0 ap_done, bit1 ap_ready
        self.start = self.auto_restart

    def step(self) -> bool:
        """Advance as far as the streams allow; True if anything changed."""
        progress = False
        if self.state == IDLE_STATE and self.start and not self._idle_spin:
            self._begin()
            progress = True
        if self.state == WAIT_INPUT:
            want = self._need - self._have
            if want > 0 and self.in_fifo is not None:
                w, l = self.in_fifo.pop(want)
                if len(w):
                    self._acc_w.append(w)
                    self._acc_l.append(l)
                    self._have += len(w)
                    progress = True
            if self._have >= self._need:
                self._run()
                progress = True
        if self.state == OUTPUT:
            if len(self._out_w) and self.out_fifo is not None:
                n = self.out_fifo.push(self._out_w, self._out_l)
                if n:
                    self._out_w, self._out_l = self._out_w[n:], self._out_l[n:]
                    progress = True
            if not len(self._out_w):
                self._finish()
                progress = True
        return progress

    # pull-through for the S2MM side
    def pending_beats(self) -> int:
        return len(self._out_w) if self.state == OUTPUT else 0

    def supply(self, n: int, until_last: bool = False):
        if self.state != OUTPUT or n <= 0:
            return EMPTY_WORDS, EMPTY_LAST
        w, l = self._out_w[:n], self._out_l[:n]
        if until_last and l.any():
            k = int(np.argmax(l)) + 1
            w, l = w[:k], l[:k]
        self._out_w, self._out_l = self._out_w[len(w):], self._out_l[len(w):]
        return w, l

    # ------------------------------------------------- stall explanations
    # The device asks these when the host keeps polling a register whose value cannot
    # change until the host writes one (see EmuDevice.read_registers).
    status_offsets = (CTRL,)

    def _held_up(self) -> str:
        """What keeps a started IP from finishing, in words ('' if it is not started)."""
        if self.state == FAULT:
            return f"{self.name} stopped with a fault: {self.fault}"
        if self.state == WAIT_INPUT:
            return (f"{self.name} waits for input: it has {self._have} of {self._need} "
                    f"words, {self._need - self._have} missing (a send transfer shorter "
                    "than its registers ask for, or none)")
        if self.state == OUTPUT:
            return (f"{self.name} is blocked sending {len(self._out_w)} output words: arm "
                    "the receive channel (dma.recvchannel.transfer) before starting it")
        if self.start:
            return f"{self.name} auto-restarts but its runs move no data"
        return ""

    def stall_reason(self, off: int) -> str:
        """Why CTRL (at ``off``) cannot change until the host writes a register."""
        held_up = self._held_up()
        if held_up:
            return held_up
        if not self.runs:
            return f"{self.name} is idle and was never started: write AP_START to CTRL"
        return (f"{self.name} is idle after {self.runs} run(s) and was not started again "
                "(AP_DONE is clear on read: an earlier read already took it)")

    def input_stall(self, taken: int) -> str:
        """Why the IP takes no more words from its input stream, of which it took
        ``taken`` for the current transfer."""
        held_up = self._held_up()
        if held_up:
            return held_up
        if not taken:
            return (f"no kernel is started: {self.name} was not started for this transfer "
                    "(write AP_START to its CTRL register)")
        return (f"{self.name} finished its run and reads no more: the transfer is longer "
                "than the kernel reads for its registers")

    def output_stall(self) -> str:
        """Why the IP sends nothing more to its output stream."""
        held_up = self._held_up()
        if held_up:
            return held_up
        if not self.runs:
            return (f"no kernel is started: {self.name} was never started (write AP_START "
                    "to its CTRL register)")
        return (f"{self.name} is idle after {self.runs} run(s) and sends nothing more: "
                "start it again for this transfer")

    def describe(self) -> str:
        if self.state == WAIT_INPUT:
            return (f"{self.name}: started, waiting for input: has {self._have} of "
                    f"{self._need} words")
        if self.state == OUTPUT:
            return (f"{self.name}: {len(self._out_w)} output words not yet accepted "
                    "(is the S2MM channel armed?)")
        if self.state == FAULT:
            return f"{self.name}: fault: {self.fault}"
        return f"{self.name}: idle (never started since its last run)" if not self.runs \
            else f"{self.name}: idle after {self.runs} run(s)"
