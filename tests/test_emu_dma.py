"""The unmodified pynq.lib.dma driver against the emulated AXI DMA (PG021 simple mode),
with a plain Python kernel in the HLS IP slot, and the bounded waits of
cimstack.hw.dma_io. Every failure mode must end in an error, never a hang."""

from __future__ import annotations

import importlib
import time

import numpy as np
import pytest

import pynq

emu_device = importlib.import_module("cimstack.emu.device")   # emu.device is a function
from cimstack.errors import DmaTimeout, HardwareError  # noqa: E402
from cimstack.hw.dma_io import channel_status, decode_dmasr, reset_dma, wait_idle  # noqa: E402
from bad_cases_emu import bounded  # noqa: E402
from cimstack.overlay_shape import AP_DONE, AP_START, CTRL, overlay_shape  # noqa: E402

SLOT = overlay_shape("pynq-z2").slots[0]
N_VEC = SLOT.kernel.reg("n_vec").offset
T = 0.2          # seconds: every wait here is bounded by this


@pytest.fixture
def dev(doubler_device):
    return doubler_device


@pytest.fixture
def ol(bitfile, dev):
    return pynq.Overlay(str(bitfile), device=dev)


@pytest.fixture
def dma(ol):
    return getattr(ol, SLOT.dma.name)


@pytest.fixture
def ip(ol):
    return getattr(ol, SLOT.ip_name)


def buffers(dev, n, cacheable=True):
    src = pynq.allocate((n,), np.uint64, target=dev, cacheable=cacheable)
    dst = pynq.allocate((n,), np.uint64, target=dev, cacheable=cacheable)
    src[:] = np.arange(1, n + 1, dtype=np.uint64)
    return src, dst


def run(dma, ip, src, dst, n):
    """The order that works on the board: receive, send, start, wait on both."""
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    wait_idle(dma.sendchannel, T, "dma.sendchannel")
    return wait_idle(dma.recvchannel, T, "dma.recvchannel")


def test_correct_transfer(dev, dma, ip):
    n = 1000
    src, dst = buffers(dev, n)
    assert run(dma, ip, src, dst, n) == 8 * n
    np.testing.assert_array_equal(dst, 2 * src)
    assert ip.read(CTRL) & AP_DONE


def test_pynq_wait_works_too(dev, dma, ip):
    n = 64
    src, dst = buffers(dev, n)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert dma.recvchannel.transferred == 8 * n
    np.testing.assert_array_equal(dst, 2 * src)


def test_channel_status_after_start_and_after_a_transfer(dev, dma, ip):
    # running, not idle until the first transfer completes (pynq's _first_transfer)
    assert channel_status(dma.sendchannel) & 0x3 == 0
    assert channel_status(dma.recvchannel) & 0x3 == 0
    src, dst = buffers(dev, 8)
    run(dma, ip, src, dst, 8)
    assert channel_status(dma.recvchannel) & 0x1002 == 0x1002      # Idle, IOC_Irq
    dma.mmio.write(0x34, 0x1000)                                    # W1C
    assert channel_status(dma.recvchannel) & 0x1000 == 0


def test_s2mm_length_reads_back_bytes_received(dev, dma, ip):
    n = 10
    src, _ = buffers(dev, n)
    big = pynq.allocate((4 * n,), np.uint64, target=dev)
    dma.recvchannel.transfer(big)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    assert wait_idle(dma.recvchannel, T, "dma.recvchannel") == 8 * n
    assert dma.mmio.read(0x58) == 8 * n


def test_only_the_bytes_received_are_invalidated(dev, dma, ip, monkeypatch):
    """wait_idle refreshes the CPU's view of the bytes S2MM wrote, not of the whole
    buffer (sized for a call's worst case): they read right, the rest keeps what the
    CPU cache held."""
    n = 10
    src, _ = buffers(dev, n)
    big = pynq.allocate((4 * n,), np.uint64, target=dev)
    big[:] = 7                                 # in the CPU cache only
    sizes = []
    real = type(dev).invalidate                # patched on the class: an instance attribute
    monkeypatch.setattr(type(dev), "invalidate",   # would outlive the test (monkeypatch
                        lambda self, bo, offset, ptr, size: (  # restores it as one)
                            sizes.append(size), real(self, bo, offset, ptr, size)))
    dma.recvchannel.transfer(big)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    assert wait_idle(dma.recvchannel, T, "dma.recvchannel") == 8 * n
    assert sizes == [8 * n] and dma.recvchannel.transferred == 8 * n
    np.testing.assert_array_equal(big[:n], 2 * src)
    np.testing.assert_array_equal(big[n:], 7)


def test_missing_flush_gives_wrong_data(dev, dma, ip):
    """A driver that programs MM2S itself and forgets to flush sends stale DDR."""
    n = 16
    src, dst = buffers(dev, n)                 # written by the CPU, never flushed
    dma.recvchannel.transfer(dst)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    dma.mmio.write(0x18, src.physical_address)
    dma.mmio.write(0x28, src.nbytes)           # LENGTH starts MM2S, no flush before
    wait_idle(dma.recvchannel, T, "dma.recvchannel")
    assert not np.array_equal(dst, 2 * src)
    np.testing.assert_array_equal(dst, 0)      # DDR still held zeros


def test_missing_invalidate_gives_stale_data(dev, dma, ip):
    """A driver that polls Idle itself and reads without invalidate sees its cache."""
    n = 16
    src, dst = buffers(dev, n)
    dst[:] = 12345                             # what the CPU cache holds
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    while not dma.recvchannel.idle:
        pass                                   # synchronous model: idle already
    np.testing.assert_array_equal(dst, 12345)  # stale
    dst.invalidate()
    np.testing.assert_array_equal(dst, 2 * src)


def test_non_cacheable_buffers_need_no_cache_maintenance(dev, dma, ip):
    n = 16
    src, dst = buffers(dev, n, cacheable=False)
    dma.recvchannel.transfer(dst)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    dma.mmio.write(0x18, src.physical_address)
    dma.mmio.write(0x28, src.nbytes)           # no flush: uncached memory
    wait_idle(dma.recvchannel, T, "dma.recvchannel")
    np.testing.assert_array_equal(dst, 2 * src)


def test_length_longer_than_the_kernel_consumes_times_out(dev, dma, ip):
    n = 32
    extra = 4 * dev.fifo_depth                 # more than the stream FIFO can hold
    src, dst = buffers(dev, n + extra)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    t0 = time.monotonic()
    with pytest.raises(DmaTimeout) as err:
        wait_idle(dma.sendchannel, T, f"{SLOT.dma.name}.sendchannel")
    assert time.monotonic() - t0 < T + 1.0
    msg = str(err.value)
    assert f"{SLOT.dma.name}.sendchannel (MM2S) did not finish within 0.2 s" in msg
    assert "longer than the kernel consumes" in msg
    assert "not yet accepted by the stream" in msg          # the emulator's detail
    # the kernel itself finished on the words it needed
    assert wait_idle(dma.recvchannel, T, "dma.recvchannel") == 8 * n
    np.testing.assert_array_equal(dst[:n], 2 * src[:n])


def test_kernel_never_started_times_out_on_s2mm(dev, dma, ip):
    n = 8
    src, dst = buffers(dev, n)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    wait_idle(dma.sendchannel, T, "dma.sendchannel")         # fits in the FIFO
    t0 = time.monotonic()
    with pytest.raises(DmaTimeout, match=r"dma\.recvchannel \(S2MM\) did not finish") as err:
        wait_idle(dma.recvchannel, T, "dma.recvchannel")
    assert time.monotonic() - t0 < T + 1.0
    assert "never started" in str(err.value)


def test_reset_dma_recovers_after_a_timeout(dev, dma, ip):
    n = 32
    src, dst = buffers(dev, n + 4 * dev.fifo_depth)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    with pytest.raises(DmaTimeout):
        wait_idle(dma.sendchannel, T, "dma.sendchannel")
    reset_dma(dma)
    assert dma.mmio.read(0x00) & 0x5 == 0x1 and dma.mmio.read(0x30) & 0x5 == 0x1
    src2, dst2 = buffers(dev, n)
    assert run(dma, ip, src2, dst2, n) == 8 * n
    np.testing.assert_array_equal(dst2, 2 * src2)


def test_soft_reset_returns_both_channels_to_reset_state(dma):
    dma.mmio.write(0x30, 0x4)                  # reset via S2MM resets the whole core
    assert dma.mmio.read(0x00) == 0x00010000 and dma.mmio.read(0x30) == 0x00010000
    assert dma.mmio.read(0x04) == 0x1 and dma.mmio.read(0x34) == 0x1     # halted


def test_unaligned_buffer_gives_a_clear_error(dev, dma, ip):
    src, dst = buffers(dev, 16)
    # the pynq driver refuses by itself (no DRE in this DMA)
    with pytest.raises(RuntimeError, match="unaligned"):
        dma.sendchannel.transfer(src, start=4, nbytes=64)
    # a driver writing the registers directly gets DMAIntErr and a halted channel
    dma.mmio.write(0x18, src.physical_address + 4)
    dma.mmio.write(0x28, 64)
    status = channel_status(dma.sendchannel)
    assert status & 0x10 and status & 0x1 and status & 0x4000
    with pytest.raises(HardwareError, match="DMAIntErr") as err:
        wait_idle(dma.sendchannel, T, "dma.sendchannel")
    assert "not aligned to the 8-byte" in str(err.value)
    reset_dma(dma)
    assert run(dma, ip, src, dst, 16) == 128


def test_transfer_over_max_length_errors(dev, dma):
    src = pynq.allocate((16,), np.uint64, target=dev)
    too_long = 1 << SLOT.dma.length_width
    with pytest.raises(ValueError, match="exceeds"):
        dma.sendchannel.transfer(src, nbytes=too_long)
    dma.mmio.write(0x18, src.physical_address)
    dma.mmio.write(0x28, too_long)
    with pytest.raises(HardwareError, match="LENGTH field"):
        wait_idle(dma.sendchannel, T, "dma.sendchannel")
    reset_dma(dma)


def test_packet_longer_than_the_s2mm_buffer_is_an_error(dev, dma, ip):
    n = 16
    src, _ = buffers(dev, n)
    small = pynq.allocate((n // 2,), np.uint64, target=dev)
    dma.recvchannel.transfer(small)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    with pytest.raises(HardwareError, match="longer than the 64-byte S2MM buffer"):
        wait_idle(dma.recvchannel, T, "dma.recvchannel")
    reset_dma(dma)


def test_buffer_outside_any_allocation_is_a_slave_error(dev, dma):
    src = pynq.allocate((16,), np.uint64, target=dev)
    dma.mmio.write(0x18, src.physical_address + src.nbytes + 4096 * 64)
    dma.mmio.write(0x28, 64)
    with pytest.raises(HardwareError, match="DMASlvErr"):
        wait_idle(dma.sendchannel, T, "dma.sendchannel")
    reset_dma(dma)


def test_length_written_while_halted_has_no_effect(dev, dma):
    src = pynq.allocate((16,), np.uint64, target=dev)
    dma.sendchannel.stop()
    dma.mmio.write(0x18, src.physical_address)
    dma.mmio.write(0x28, 128)
    assert channel_status(dma.sendchannel) == 0x1
    with pytest.raises(HardwareError, match="halted"):
        wait_idle(dma.sendchannel, T, "dma.sendchannel")
    dma.sendchannel.start()


def test_decode_dmasr():
    assert decode_dmasr(0x4011) == "0x00004011 (Halted|DMAIntErr|Err_Irq)"
    assert decode_dmasr(0x0) == "0x00000000 (running, busy)"


# ------------------------------------- pynq's own unbounded waits, in emulation

def stalled(action) -> str:
    """Run ``action`` (which spins in pynq on the board); the message it raises."""
    t0 = time.monotonic()
    with bounded(), pytest.raises(DmaTimeout) as err:
        action()
    assert time.monotonic() - t0 < emu_device.STALL_SECONDS + 5
    message = str(err.value)
    assert "\n" not in message and "none can come without a register write" in message
    return message


def test_pynq_wait_with_the_kernel_never_started(dev, dma, ip):
    src, dst = buffers(dev, 16)
    dma.sendchannel.transfer(src)
    dma.recvchannel.transfer(dst)
    msg = stalled(dma.recvchannel.wait)
    assert f"{SLOT.dma.name} S2MM can make no progress: received 0 of up to 16 words" in msg
    assert f"no kernel is started: {SLOT.ip_name} was never started" in msg


def test_pynq_wait_on_a_send_the_kernel_never_takes(dev, dma, ip):
    n = 4 * dev.fifo_depth
    src, _ = buffers(dev, n)
    dma.sendchannel.transfer(src)
    msg = stalled(dma.sendchannel.wait)
    assert (f"{SLOT.dma.name} MM2S can make no progress: the kernel consumed 0 of {n} "
            f"words; no kernel is started: {SLOT.ip_name}") in msg


def test_pynq_wait_on_a_send_longer_than_the_kernel_reads(dev, dma, ip):
    n = 4 * dev.fifo_depth
    src, dst = buffers(dev, n)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, 12)
    ip.write(CTRL, AP_START)
    msg = stalled(dma.sendchannel.wait)
    assert f"{SLOT.dma.name} MM2S can make no progress: the kernel consumed 12 of {n}" in msg
    assert "longer than the kernel reads for its registers" in msg
    dma.recvchannel.wait()                        # the kernel's own output did arrive
    np.testing.assert_array_equal(dst[:12], 2 * src[:12])


def test_pynq_wait_for_output_of_a_kernel_missing_input(dev, dma, ip):
    src, dst = buffers(dev, 16)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src, nbytes=8 * 12)
    ip.write(N_VEC, 16)
    ip.write(CTRL, AP_START)
    dma.sendchannel.wait()                        # all 12 words were taken
    msg = stalled(dma.recvchannel.wait)
    assert "received 0 of up to 16 words" in msg
    assert f"{SLOT.ip_name} waits for input: it has 12 of 16 words, 4 missing" in msg


def test_pynq_wait_without_a_transfer(dma):
    msg = stalled(dma.recvchannel.wait)
    assert f"{SLOT.dma.name} S2MM has no transfer in progress" in msg


def test_pynq_start_of_a_channel_in_error(dev, dma):
    src = pynq.allocate((16,), np.uint64, target=dev)
    dma.mmio.write(0x18, src.physical_address + 4)         # misaligned: DMAIntErr
    dma.mmio.write(0x28, 64)
    dma.sendchannel.stop()                                 # already halted: returns
    msg = stalled(dma.sendchannel.start)                   # spins on DMASR.Halted
    assert f"{SLOT.dma.name} MM2S is halted by an error (address 0x" in msg
    reset_dma(dma)


def test_polling_ap_done_of_a_kernel_whose_output_is_not_taken(dev, dma, ip):
    n = 4 * dev.fifo_depth
    src, _ = buffers(dev, n)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)

    def poll():
        while not ip.read(CTRL) & AP_DONE:
            pass
    msg = stalled(poll)
    assert f"{SLOT.ip_name} is blocked sending {n - dev.fifo_depth} output words" in msg


def test_polling_ap_done_already_read(dev, ip):
    ip.write(N_VEC, 0)
    ip.write(CTRL, AP_START)
    assert ip.read(CTRL) & AP_DONE                # clear on read

    def poll():
        while not ip.read(CTRL) & AP_DONE:
            pass
    assert "AP_DONE is clear on read" in stalled(poll)


def test_status_reads_before_the_start_are_not_a_hang(dev, dma, ip):
    """pynq's usual order: both transfers, maybe status reads, AP_START, then wait().
    Many reads in little time, or a few reads over a long time, are not a spin."""
    n = 16
    for polls, pause in ((2 * emu_device.STALL_POLLS, 0.0), (3, emu_device.STALL_SECONDS)):
        src, dst = buffers(dev, n)
        dma.sendchannel.transfer(src)
        dma.recvchannel.transfer(dst)
        for _ in range(polls):
            assert not dma.recvchannel.idle
            time.sleep(pause)
        ip.write(N_VEC, n)
        ip.write(CTRL, AP_START)
        with bounded():
            dma.sendchannel.wait()
            dma.recvchannel.wait()
        np.testing.assert_array_equal(dst, 2 * src)


def test_reads_resume_a_pump_cut_short(dev, dma, ip, monkeypatch):
    monkeypatch.setattr(emu_device, "MAX_PUMP_ROUNDS", 1)
    n = 8 * dev.fifo_depth
    src, dst = buffers(dev, n)
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, n)
    ip.write(CTRL, AP_START)
    with bounded():
        dma.sendchannel.wait()
        dma.recvchannel.wait()
    np.testing.assert_array_equal(dst, 2 * src)
