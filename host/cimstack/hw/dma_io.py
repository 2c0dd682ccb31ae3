"""Bounded waits and recovery for ``pynq.lib.dma`` channels, on the board and in
emulation alike.

pynq's ``_SDMAChannel.wait()`` spins on DMASR.Idle with no time limit (pynq 3.x), so a
transfer the kernel never finishes hangs the process (PYNQ #846). The driver waits with
:func:`wait_idle` instead, and recovers with :func:`reset_dma`.

AXI DMA facts used (PG021, simple mode): each channel's DMASR sits at DMACR + 4
(MM2S 0x04, S2MM 0x34); bit0 Halted, bit1 Idle, bit4 DMAIntErr, bit5 DMASlvErr,
bit6 DMADecErr, bits 8-10 the scatter-gather errors, bit12 IOC_Irq, bit14 Err_Irq.
Errors clear only with a soft reset: DMACR bit2 on either channel resets the whole
core and clears itself when done; the channels then come back halted.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import DmaTimeout, HardwareError

HALTED, IDLE = 0x1, 0x2
ERROR_MASK = 0x770
DMACR_RESET = 0x4
DMACR_RUN, DMACR_RUN_IOC = 0x0001, 0x1001      # RS, and RS with IOC_IrqEn
_STATUS_BITS = (
    (0x001, "Halted"), (0x002, "Idle"), (0x008, "SGIncld"),
    (0x010, "DMAIntErr"), (0x020, "DMASlvErr"), (0x040, "DMADecErr"),
    (0x100, "SGIntErr"), (0x200, "SGSlvErr"), (0x400, "SGDecErr"),
    (0x1000, "IOC_Irq"), (0x2000, "Dly_Irq"), (0x4000, "Err_Irq"),
)
_ERROR_MEANING = {
    0x010: "DMA internal error (zero length, misaligned address without DRE, a packet "
           "longer than the S2MM buffer, or a length wider than c_sg_length_width)",
    0x020: "DMA slave error (the memory port refused the access: bad or freed buffer)",
    0x040: "DMA decode error (the address decodes to no memory)",
    0x100: "scatter-gather internal error",
    0x200: "scatter-gather slave error",
    0x400: "scatter-gather decode error",
}


def decode_dmasr(value: int) -> str:
    """``'0x00004011 (Halted|DMAIntErr|Err_Irq)'``."""
    names = [name for bit, name in _STATUS_BITS if value & bit]
    return f"0x{value:08X} ({'|'.join(names) or 'running, busy'})"


def _direction(channel) -> str:
    return "S2MM" if getattr(channel, "_offset", 0) == 0x30 else "MM2S"


def _label(channel, name: str) -> str:
    """``name (MM2S)``, unless ``name`` already says which direction it is."""
    direction = _direction(channel)
    return name if direction in name else f"{name} ({direction})"


def channel_status(channel) -> int:
    """DMASR of a ``pynq.lib.dma`` channel."""
    return int(channel._mmio.read(channel._offset + 4))


def _emulation_detail(channel) -> str:
    """What the emulated device knows about why the channel is stuck (board: '')."""
    mmio = getattr(channel, "_mmio", None)
    diagnose = getattr(getattr(mmio, "device", None), "diagnose", None)
    if diagnose is None:
        return ""
    try:
        text = diagnose(mmio.base_addr + channel._offset)
    except Exception:
        return ""
    return f" Emulator: {text}." if text else ""


def _hint(direction: str) -> str:
    if direction == "MM2S":
        return ("the stream did not take all the data: the transfer may be longer than "
                "the kernel consumes for its register arguments, or the kernel was never "
                "started (AP_START)")
    return ("no TLAST arrived: the kernel was never started, is still waiting for input "
            "(MM2S length shorter than it needs), or sends less than expected; start the "
            "receive transfer before the kernel")


def check_error(channel, name: str) -> None:
    """Raise :class:`HardwareError` naming the decoded error bits if DMASR has any."""
    status = channel_status(channel)
    if status & ERROR_MASK:
        meanings = "; ".join(text for bit, text in _ERROR_MEANING.items() if status & bit)
        raise HardwareError(
            f"{_label(channel, name)} stopped with an error, DMASR={decode_dmasr(status)}: "
            f"{meanings}.{_emulation_detail(channel)} The DMA stays halted until "
            "cimstack.hw.dma_io.reset_dma() resets it.")


def wait_idle(channel, timeout_s: float, name: str) -> int:
    """Wait until ``channel`` (``dma.sendchannel`` / ``dma.recvchannel``) is idle.

    Raises :class:`DmaTimeout` after ``timeout_s`` seconds and
    :class:`HardwareError` on DMA error bits or a halted channel. On success it
    finishes the transfer as pynq's ``wait()`` does (invalidate the receive buffer,
    read back the byte count; here only the bytes received are invalidated) and
    returns the bytes transferred (S2MM) or sent (MM2S).
    """
    direction = _direction(channel)
    deadline = time.monotonic() + timeout_s
    polls = 0
    while True:
        status = channel_status(channel)
        if status & ERROR_MASK:
            check_error(channel, name)
        if status & IDLE:
            break
        if status & HALTED:
            raise HardwareError(
                f"{_label(channel, name)} is halted (DMASR={decode_dmasr(status)}): it was "
                "never started or was stopped; call reset_dma() or channel.start()")
        if time.monotonic() > deadline:
            raise DmaTimeout(
                f"{_label(channel, name)} did not finish within {timeout_s:g} s: "
                f"DMASR={decode_dmasr(status)}; {_hint(direction)}."
                f"{_emulation_detail(channel)} Recover with cimstack.hw.dma_io.reset_dma().")
        polls += 1
        if polls > 100:
            time.sleep(min(1e-3, max(0.0, deadline - time.monotonic())))
    active = getattr(channel, "_active_buffer", None)
    if active is None:
        return int(channel._mmio.read(channel._offset + 0x28))
    if channel._flush_before:             # MM2S: nothing comes back to the CPU
        channel.wait()        # idle now: returns at once, sets transferred
        return int(channel.transferred)
    # S2MM: the LENGTH register holds the bytes written; only those are invalidated (pynq's
    # wait() invalidates the whole buffer, which is sized for the call's worst case)
    got = int(channel._mmio.read(channel._offset + 0x28))
    active.reshape(-1).view(np.uint8)[:got].invalidate()
    channel._active_buffer = None
    channel.transferred = got
    return got


def reset_dma(dma, timeout_s: float = 1.0) -> None:
    """Soft-reset an AXI DMA (DMACR.Reset on both channels), wait for the reset to
    clear, then start both channels again, so a DMA works after a timeout or error.

    Anything in flight is dropped; re-arm both transfers and restart the kernel. Both
    waits end after ``timeout_s`` (pynq's own ``channel.start()`` would spin forever
    on a channel that does not leave Halted).
    """
    mmio = dma.mmio
    channels = [ch for ch in (dma.sendchannel, dma.recvchannel) if ch is not None]
    for ch in channels:
        mmio.write(ch._offset, DMACR_RESET)
    deadline = time.monotonic() + timeout_s
    while any(mmio.read(ch._offset) & DMACR_RESET for ch in channels):
        if time.monotonic() > deadline:
            raise HardwareError(f"{dma_name(dma)}: DMACR.Reset did not clear within "
                                f"{timeout_s:g} s; the DMA clock or reset may be missing")
    for ch in channels:          # what pynq's channel.start() writes, without its spin
        ch._active_buffer = None
        ch.transferred = 0
        mmio.write(ch._offset, DMACR_RUN_IOC if ch._interrupt else DMACR_RUN)
        ch._first_transfer = True
    deadline = time.monotonic() + timeout_s
    while any(channel_status(ch) & HALTED for ch in channels):
        if time.monotonic() > deadline:
            raise HardwareError(f"{dma_name(dma)}: a channel stayed halted {timeout_s:g} s "
                                "after reset and DMACR.RS=1; the DMA clock may be missing")


def dma_name(dma) -> str:
    return getattr(dma, "_fullpath", None) or getattr(dma, "description", {}).get(
        "fullpath", "dma")
