"""Bad-input cases: the emulated hardware. pynq's own DMA driver waits without a time
limit; on the emulated overlay every such wait on a transfer that cannot finish ends
in a DmaTimeout naming the channel and what is missing. A damaged C-simulation cache
is refused or rebuilt, never mapped."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
from pathlib import Path

import numpy as np

from badcase import Case
from conftest import Doubler

from cimstack.errors import ConfigError, DmaTimeout, HardwareError, OutputError
from cimstack.overlay_shape import AP_DONE, AP_START, CTRL, overlay_shape

SLOT = overlay_shape("pynq-z2").slots[0]
DMA, IP = SLOT.dma.name, SLOT.ip_name
N_VEC = SLOT.kernel.reg("n_vec").offset
WORDS = 256                       # more than the stream FIFO between DMA and kernel holds


# ------------------------------------------------------- pynq waits that would spin

@contextlib.contextmanager
def bounded(seconds: float = 20.0):
    """Fail (AssertionError) instead of hanging the tests if the emulation lets a pynq
    wait spin."""
    def expire(*_):
        raise AssertionError(f"still spinning after {seconds} s: the emulation did not stop it")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _on_overlay(drive):
    """A case: the emulated overlay (written into the case folder) with the Doubler
    kernel; the API call runs ``drive(device, dma, ip, src, dst)``."""
    def setup(folder: Path):
        from cimstack import emu
        bit = emu.install(folder=folder / "overlay")

        def call():
            import pynq
            dev = emu.device()
            dev.set_kernels({IP: Doubler})
            try:
                ol = pynq.Overlay(str(bit), device=dev)
                src = pynq.allocate((WORDS,), np.uint64, target=dev)
                dst = pynq.allocate((WORDS,), np.uint64, target=dev)
                src[:] = np.arange(WORDS, dtype=np.uint64)
                with bounded():
                    drive(dev, getattr(ol, DMA), getattr(ol, IP), src, dst)
            finally:
                dev.set_kernels({IP: None})
        return call
    return setup


def _poll_ap_done(ip):
    while not ip.read(CTRL) & AP_DONE:
        pass


def _never_started(dev, dma, ip, src, dst):
    dma.sendchannel.transfer(src, nbytes=8 * 16)
    dma.recvchannel.transfer(dst, nbytes=8 * 16)
    dma.recvchannel.wait()


def _send_never_taken(dev, dma, ip, src, dst):
    dma.sendchannel.transfer(src)
    dma.sendchannel.wait()


def _send_longer_than_read(dev, dma, ip, src, dst):
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src)
    ip.write(N_VEC, 12)
    ip.write(CTRL, AP_START)
    dma.sendchannel.wait()


def _input_missing(dev, dma, ip, src, dst):
    dma.recvchannel.transfer(dst, nbytes=8 * 16)
    dma.sendchannel.transfer(src, nbytes=8 * 12)
    ip.write(N_VEC, 16)
    ip.write(CTRL, AP_START)
    dma.recvchannel.wait()


def _no_transfer(dev, dma, ip, src, dst):
    dma.recvchannel.wait()


def _start_in_error(dev, dma, ip, src, dst):
    dma.mmio.write(0x18, src.physical_address + 4)    # misaligned, no DRE: DMAIntErr
    dma.mmio.write(0x28, 64)
    dma.sendchannel.start()                           # pynq spins on DMASR.Halted


def _length_while_halted(dev, dma, ip, src, dst):
    dma.sendchannel.stop()
    dma.mmio.write(0x18, src.physical_address)
    dma.mmio.write(0x28, 64)                          # ignored: the channel is halted
    while not dma.sendchannel.idle:
        pass


def _output_not_taken(dev, dma, ip, src, dst):
    dma.sendchannel.transfer(src)                     # the receive side is never armed
    ip.write(N_VEC, WORDS)
    ip.write(CTRL, AP_START)
    _poll_ap_done(ip)


def _done_already_read(dev, dma, ip, src, dst):
    ip.write(N_VEC, 0)
    ip.write(CTRL, AP_START)
    ip.read(CTRL)                                     # takes AP_DONE (clear on read)
    _poll_ap_done(ip)


# ------------------------------------------------------- the C-simulation cache

@contextlib.contextmanager
def _cache_in(folder: Path):
    """CIMSTACK_CACHE pointed at ``folder`` for the duration of the call."""
    old = os.environ.get("CIMSTACK_CACHE")
    os.environ["CIMSTACK_CACHE"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            del os.environ["CIMSTACK_CACHE"]
        else:
            os.environ["CIMSTACK_CACHE"] = old


def _truncated_at_load(folder: Path):
    """A library that was whole when checked and is truncated when loaded."""
    from cimstack.emu import csim
    lib = folder / "dcim-0123.so"
    data = bytes(range(256)) * 64
    lib.write_bytes(data[:len(data) // 2])
    build = csim.BuildResult(lib, False, 0.0, "0123", hashlib.sha256(data).hexdigest())
    return lambda: csim._load_private_copy(build)


def _folder_in_cache(which: str):
    """The cache holds a folder of the user's where the dcim library (``"library"``)
    or its checksum file (``"checksum"``) belongs."""
    def setup(folder: Path):
        from cimstack.emu import csim
        cache = folder / "cache"
        with _cache_in(cache):
            lib = csim.build_plan("dcim").path        # no compile: only the cache key
        lib.parent.mkdir(parents=True)
        if which == "library":
            mine = lib
        else:
            lib.write_bytes(b"\x7fELF not really a library")
            mine = csim.checksum_file(lib)
        mine.mkdir()
        (mine / "notes.txt").write_text("my notes\n")

        def call():
            with _cache_in(cache):
                csim.build_library("dcim")
        return call
    return setup


def _cache_is_a_file(folder: Path):
    """CIMSTACK_CACHE names a file: installing the emulated overlay needs the cache."""
    cache = folder / "not-a-folder"
    cache.write_text("a file, not the cache folder\n")

    def call():
        from cimstack import emu
        with _cache_in(cache):
            emu.install()
    return call


CASES = [
    Case("emu-hang-kernel-never-started", _on_overlay(_never_started),
         rf"{DMA} S2MM can make no progress: received 0 of up to 16 words.*no kernel is "
         rf"started: {IP} was never started", raises=DmaTimeout),
    Case("emu-hang-send-never-taken", _on_overlay(_send_never_taken),
         rf"{DMA} MM2S can make no progress: the kernel consumed 0 of {WORDS} words; no "
         r"kernel is started", raises=DmaTimeout),
    Case("emu-hang-send-longer-than-kernel-reads", _on_overlay(_send_longer_than_read),
         rf"{DMA} MM2S can make no progress: the kernel consumed 12 of {WORDS} words.*longer "
         r"than the kernel reads", raises=DmaTimeout),
    Case("emu-hang-input-missing", _on_overlay(_input_missing),
         rf"{DMA} S2MM can make no progress.*{IP} waits for input: it has 12 of 16 words, 4 "
         r"missing", raises=DmaTimeout),
    Case("emu-hang-wait-without-transfer", _on_overlay(_no_transfer),
         rf"{DMA} S2MM has no transfer in progress.*call transfer\(\) before wait\(\)",
         raises=DmaTimeout),
    Case("emu-hang-start-channel-in-error", _on_overlay(_start_in_error),
         rf"{DMA} MM2S is halted by an error \(address 0x[0-9A-F]+ is not aligned.*soft reset",
         raises=DmaTimeout),
    Case("emu-hang-length-while-halted", _on_overlay(_length_while_halted),
         rf"{DMA} MM2S is halted: start it.*LENGTH=64 written while the channel is halted",
         raises=DmaTimeout),
    Case("emu-hang-output-not-taken", _on_overlay(_output_not_taken),
         rf"{IP} is blocked sending \d+ output words: arm the receive channel",
         raises=DmaTimeout),
    Case("emu-hang-ap-done-already-read", _on_overlay(_done_already_read),
         rf"{IP} is idle after 1 run\(s\).*AP_DONE is clear on read", raises=DmaTimeout),
    Case("emu-csim-truncated-at-load", _truncated_at_load,
         r"dcim-0123\.so changed while it was being loaded", raises=HardwareError),
    Case("emu-cache-library-is-a-folder", _folder_in_cache("library"),
         r"cache holds a folder .*dcim-\w+\.so where cimstack keeps a file",
         raises=OutputError),
    Case("emu-cache-checksum-is-a-folder", _folder_in_cache("checksum"),
         r"cache holds a folder .*dcim-\w+\.so\.sha256 where cimstack keeps a file",
         raises=OutputError),
    Case("emu-cache-not-a-folder", _cache_is_a_file,
         r"cannot use .*not-a-folder as the cimstack cache folder \(it is a file\); set "
         r"CIMSTACK_CACHE to a writable folder", raises=ConfigError),
]
