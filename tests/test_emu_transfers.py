"""What one kernel call moves through the emulated DDR and DMA: the driver flushes and
invalidates only the words of the call (not the whole DMA buffer it keeps, which is
sized for the largest call so far), and MM2S hands out the transferred bytes as stream
words, 64-bit or narrower, with a partial last beat zero padded."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import pynq

from cimstack.emu.dma import AxiDmaModel
from cimstack.emu.memory import DdrModel
from cimstack.hw.kernel import DmaTransactor
from cimstack.hw.macros import DcimIP  # noqa: F401  (binds the driver to the IP)
from cimstack.overlay_shape import overlay_shape

emu_device = importlib.import_module("cimstack.emu.device")   # emu.device is a function
SLOT = overlay_shape("pynq-z2").slots[0]


@pytest.fixture
def dev(doubler_device):
    return doubler_device


def test_a_call_flushes_and_invalidates_only_its_own_words(bitfile, dev, monkeypatch):
    ol = pynq.Overlay(str(bitfile), device=dev)
    transact = DmaTransactor(getattr(ol, SLOT.ip_name), getattr(ol, SLOT.dma.name),
                             timeout_s=2.0)
    synced = []
    for name in ("flush", "invalidate"):
        real = getattr(emu_device.EmuDevice, name)

        def spy(self, bo, offset, ptr, size, _name=name, _real=real):
            synced.append((_name, size))
            return _real(self, bo, offset, ptr, size)
        monkeypatch.setattr(emu_device.EmuDevice, name, spy)
    try:
        for n in (1000, 3):                   # the second call reuses the larger buffers
            words = np.arange(1, n + 1, dtype=np.uint64)
            synced.clear()
            out = transact({"n_vec": n}, words, n, "doubling")
            assert np.array_equal(out, 2 * words)
            assert synced == [("flush", 8 * n), ("invalidate", 8 * n)]
        assert transact._bufs["in"].shape[0] >= 2000
    finally:
        transact.close()


def test_argument_registers_are_written_only_when_they_change(bitfile, dev, monkeypatch):
    """set_args writes a register again only with a new value (the IP keeps the last);
    forget_args, which a failed call runs, makes the next call write every register,
    and the kernel sees every value either way."""
    ol = pynq.Overlay(str(bitfile), device=dev)
    ip = getattr(ol, SLOT.ip_name)
    written = []
    real = type(ip).write
    monkeypatch.setattr(type(ip), "write",
                        lambda self, offset, value: (written.append(offset),
                                                     real(self, offset, value)))
    regs = {"k_rows": 5, "n_out": 3, "n_vec": 0}
    ip.set_args(**regs)
    assert len(written) == 3
    written.clear()
    ip.set_args(**{**regs, "n_out": 4})
    assert written == [SLOT.kernel.reg("n_out").offset]
    assert ip.read(SLOT.kernel.reg("n_out").offset) == 4
    written.clear()
    ip.forget_args()
    ip.set_args(**regs)
    assert len(written) == 3
    ip.start_kernel()
    assert dev.ips[SLOT.ip_name].args["n_out"] == 3


def beats(data: bytes, width: int) -> np.ndarray:
    """The stream words of ``data``: ``width`` bytes per beat, little endian, the last
    beat zero padded."""
    padded = data + bytes(-len(data) % width)
    return np.array([int.from_bytes(padded[i:i + width], "little")
                     for i in range(0, len(padded), width)], np.uint64)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), width=st.sampled_from([4, 8]),
       pull=st.integers(1, 40))
@example(data=bytes(range(1, 17)), width=8, pull=1)       # whole 64-bit beats
@example(data=bytes(range(1, 14)), width=8, pull=40)      # a partial last beat
@example(data=bytes(range(1, 14)), width=4, pull=2)
def test_mm2s_hands_out_the_bytes_as_stream_words(data, width, pull):
    ddr = DdrModel(0x0, 1 << 24)
    dma = AxiDmaModel("dma", {"c_sg_length_width": 23, "c_m_axi_mm2s_data_width": 64,
                              "c_m_axis_mm2s_tdata_width": 8 * width,
                              "c_s_axis_s2mm_tdata_width": 8 * width}, ddr, fifo_depth=4)
    region = ddr.allocate(len(data), cacheable=False)
    region.mem[:] = np.frombuffer(data, np.uint8)
    dma.write(0x00, 0x1)                      # MM2S DMACR.RS
    dma.write(0x18, region.phys)
    dma.write(0x28, len(data))                # LENGTH starts the transfer
    words, last = [], []
    while dma.mm2s.pending_beats():
        w, l = dma.mm2s.supply(pull)
        assert w.dtype == np.uint64
        words.append(w)
        last.append(l)
    words, last = np.concatenate(words), np.concatenate(last)
    assert np.array_equal(words, beats(data, width))
    assert last[-1] and not last[:-1].any()
