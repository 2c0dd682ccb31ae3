"""The emulated Zynq device through the real pynq API: handoff, clocks, registers,
memory and the HLS ap_ctrl_hs protocol. No board and no XILINX_XRT needed."""

from __future__ import annotations

import numpy as np
import pytest

import pynq

from cimstack import emu  # noqa: E402
from cimstack.errors import HardwareError  # noqa: E402
from conftest import Doubler  # noqa: E402
from cimstack.overlay_shape import (AP_AUTO_RESTART, AP_DONE, AP_IDLE, AP_READY,  # noqa: E402
                                    AP_START, CTRL, GIER, IP_IER, IP_ISR, overlay_shape)

SHAPE = overlay_shape("pynq-z2")
SLOT = SHAPE.slots[0]


@pytest.fixture
def dev():
    device = emu.device()
    yield device
    device.set_kernels({SLOT.ip_name: None})      # back to the C-simulation kernel


@pytest.fixture
def ol(bitfile, dev):
    kernels = {}
    dev.set_kernels({SLOT.ip_name: lambda: kernels.setdefault("k", Doubler())})
    overlay = pynq.Overlay(str(bitfile), device=dev)
    overlay.kernels = kernels
    return overlay


def test_device_is_registered_with_pynq(dev):
    assert dev in pynq.Device.devices
    assert dev.has_capability("REGISTER_RW")
    assert dev.arch == "armv7l"
    if not emu.real_device_present():
        assert pynq.Device.active_device is dev


def test_install_is_idempotent_and_rewrites_only_on_change(tmp_path):
    bit = emu.install(folder=tmp_path)
    hwh = bit.with_suffix(".hwh")
    assert bit.is_file() and hwh.is_file() and bit.parent == tmp_path
    stamp = hwh.stat().st_mtime_ns
    assert emu.install(folder=tmp_path) == bit
    assert hwh.stat().st_mtime_ns == stamp
    hwh.write_text("stale")
    emu.install(folder=tmp_path)
    assert hwh.read_text() == emu.build_hwh(SHAPE)


def test_default_overlay_goes_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CIMSTACK_CACHE", str(tmp_path))
    bit = emu.install()
    assert bit == tmp_path / "overlay" / "pynq-z2" / "cimstack.bit"


def test_placeholder_bit_has_a_valid_header(bitfile):
    from pynq.pl_server.embedded_device import parse_bit_header
    header = parse_bit_header(bitfile.read_bytes())
    assert header["part"] == "7z020clg400"
    assert header["design"] == "cimstack"


def test_ip_dict_has_the_declared_ips_and_registers(ol):
    ip = ol.ip_dict[SLOT.ip_name]
    assert ip["phys_addr"] == SLOT.base and ip["addr_range"] == SLOT.addr_range
    assert ip["type"] == SLOT.kernel.vlnv
    regs = ip["registers"]
    for name, off in (("CTRL", CTRL), ("GIER", GIER), ("IP_IER", IP_IER), ("IP_ISR", IP_ISR)):
        assert regs[name]["address_offset"] == off
    for reg in SLOT.kernel.registers:
        assert regs[reg.name]["address_offset"] == reg.offset
        assert regs[reg.name]["size"] == 32
    assert regs["CTRL"]["fields"]["AP_DONE"]["bit_offset"] == 1
    dma = ol.ip_dict[SLOT.dma.name]
    assert dma["phys_addr"] == SLOT.dma.base and dma["type"] == "xilinx.com:ip:axi_dma:7.1"
    params = dma["parameters"]
    assert int(params["c_sg_length_width"]) == SLOT.dma.length_width
    assert int(params["c_m_axis_mm2s_tdata_width"]) == SLOT.dma.data_width
    assert int(params["c_include_sg"]) == 0
    assert type(getattr(ol, SLOT.dma.name)).__name__ == "DMA"


def test_pl_clock_comes_from_the_board(ol, dev):
    assert ol.clock_dict[0]["frequency"] == SHAPE.fclk0_mhz
    assert pynq.Clocks.fclk0_mhz == pytest.approx(SHAPE.fclk0_mhz)
    assert dev.pl_clk_mhz(0) == pytest.approx(SHAPE.fclk0_mhz)
    pynq.Clocks.fclk0_mhz = 50.0
    assert dev.pl_clk_mhz(0) == pytest.approx(50.0)
    pynq.Clocks.fclk0_mhz = SHAPE.fclk0_mhz


def test_hls_control_registers_through_mmio(ol):
    mmio = pynq.MMIO(SLOT.base, SLOT.addr_range, device=ol.device)
    assert mmio.read(CTRL) == AP_IDLE
    mmio.write(GIER, 1)
    mmio.write(IP_IER, 3)
    assert (mmio.read(GIER), mmio.read(IP_IER)) == (1, 3)
    reg = SLOT.kernel.reg("k_rows")
    mmio.write(reg.offset, 1152)
    assert mmio.read(reg.offset) == 1152
    ip = getattr(ol, SLOT.ip_name)
    assert ip.register_map.k_rows.k_rows == 1152

    # a run that needs no input finishes at once: done and ready are clear-on-read
    mmio.write(SLOT.kernel.reg("n_vec").offset, 0)
    mmio.write(CTRL, AP_START)
    ctrl = mmio.read(CTRL)
    assert ctrl & (AP_DONE | AP_IDLE | AP_READY) == AP_DONE | AP_IDLE | AP_READY
    assert not ctrl & AP_START
    assert mmio.read(CTRL) == AP_IDLE
    assert mmio.read(IP_ISR) == 3            # both interrupts enabled and raised
    mmio.write(IP_ISR, 1)                    # toggle on write clears bit 0
    assert mmio.read(IP_ISR) == 2
    mmio.write(IP_ISR, 1)                    # ... and sets it again
    assert mmio.read(IP_ISR) == 3


def test_signed_registers_reach_the_kernel_sign_extended(ol):
    ip = getattr(ol, SLOT.ip_name)
    ip.write(SLOT.kernel.reg("out_lo").offset, (-128) & 0xFFFFFFFF)
    ip.write(SLOT.kernel.reg("n_vec").offset, 0)
    ip.write(CTRL, AP_START)
    assert ol.kernels["k"].calls[-1]["out_lo"] == -128


def test_kernel_stalls_until_its_input_arrives(ol, dev):
    ip = getattr(ol, SLOT.ip_name)
    dma = getattr(ol, SLOT.dma.name)
    n = 300
    src = pynq.allocate((n,), np.uint64, target=dev)
    dst = pynq.allocate((n,), np.uint64, target=dev)
    src[:] = np.arange(n, dtype=np.uint64)
    ip.write(SLOT.kernel.reg("n_vec").offset, n)
    ip.write(CTRL, AP_START)
    assert ip.read(CTRL) & (AP_DONE | AP_IDLE) == 0          # started, starved
    dma.recvchannel.transfer(dst)
    dma.sendchannel.transfer(src, nbytes=8 * 100)             # only part of the input
    assert ip.read(CTRL) & AP_DONE == 0
    assert "has 100 of 300 words" in dev.diagnose()
    dma.sendchannel.wait()
    dma.sendchannel.transfer(src, start=800, nbytes=8 * 200)  # the rest
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert ip.read(CTRL) & AP_DONE
    np.testing.assert_array_equal(dst, 2 * np.arange(n, dtype=np.uint64))


def test_only_writes_that_can_start_something_pump_the_device(ol, dev, monkeypatch):
    """An argument register write starts nothing (the kernel reads its arguments when it
    starts), so it does not run the device's pump; a control or DMA write does, and a
    kernel started after argument writes sees every value."""
    pumps = []
    real = type(dev).pump                     # on the class: see test_emu_dma's invalidate
    monkeypatch.setattr(type(dev), "pump", lambda self: (pumps.append(1), real(self))[1])
    ip = getattr(ol, SLOT.ip_name)
    ip.write(SLOT.kernel.reg("k_rows").offset, 7)
    ip.write(SLOT.kernel.reg("n_vec").offset, 0)
    assert pumps == []
    ip.write(GIER, 0)
    assert len(pumps) == 1
    ip.write(CTRL, AP_START)
    assert len(pumps) == 2 and ol.kernels["k"].calls[-1]["k_rows"] == 7
    getattr(ol, SLOT.dma.name).sendchannel.stop()        # DMA register writes
    assert len(pumps) > 2


def test_auto_restart_runs_again(ol, dev):
    ip = getattr(ol, SLOT.ip_name)
    ip.write(SLOT.kernel.reg("n_vec").offset, 0)
    ip.write(CTRL, AP_START | AP_AUTO_RESTART)
    calls = len(ol.kernels["k"].calls)
    assert calls >= 1
    assert ip.read(CTRL) & AP_AUTO_RESTART
    ip.write(CTRL, 0)                                        # stop restarting
    assert dev.ips[SLOT.ip_name].auto_restart is False


def test_allocate_gives_aligned_distinct_physical_buffers(dev):
    a = pynq.allocate((1000,), np.uint32, target=dev)
    b = pynq.allocate((3, 5), np.int16, target=dev)
    assert a.physical_address % 4096 == 0 and b.physical_address % 4096 == 0
    assert a.physical_address != b.physical_address
    assert a.physical_address > 0
    assert b.shape == (3, 5) and b.dtype == np.int16
    view = a[4:]
    assert view.physical_address == a.physical_address + 16


def test_cacheable_buffer_has_cpu_and_memory_copies(dev):
    buf = pynq.allocate((4,), np.uint32, target=dev, cacheable=True)
    ddr = pynq.MMIO(buf.physical_address, 16, device=dev)
    buf[:] = [1, 2, 3, 4]
    assert ddr.read(0) == 0                   # still only in the CPU cache
    buf.flush()
    assert [ddr.read(4 * i) for i in range(4)] == [1, 2, 3, 4]
    ddr.write(0, 99)                          # a bus master writes DDR
    assert buf[0] == 1                        # the CPU still sees its cached copy
    buf.invalidate()
    assert buf[0] == 99


def test_non_cacheable_buffer_writes_through(dev):
    buf = pynq.allocate((2,), np.uint32, target=dev, cacheable=False)
    ddr = pynq.MMIO(buf.physical_address, 8, device=dev)
    buf[:] = [7, 8]
    assert (ddr.read(0), ddr.read(4)) == (7, 8)


def test_unmapped_address_is_a_bus_error(dev):
    mmio = pynq.MMIO(0x80000000, 16, device=dev)
    with pytest.raises(HardwareError, match="no slave answers at 0x80000000"):
        mmio.read(0)


def test_kernel_exception_surfaces_as_hardware_error(bitfile, dev):
    class Broken(Doubler):
        def run(self, args, words, last):
            raise ValueError("boom")

    dev.set_kernels({SLOT.ip_name: Broken})
    ol = pynq.Overlay(str(bitfile), device=dev)
    ip = getattr(ol, SLOT.ip_name)
    ip.write(SLOT.kernel.reg("n_vec").offset, 0)
    with pytest.raises(HardwareError, match="kernel.run raised ValueError: boom"):
        ip.write(CTRL, AP_START)
    assert ip.read(CTRL) & AP_IDLE == 0


def test_freed_buffer_returns_to_the_pool(dev):
    buf = pynq.allocate((512,), np.uint64, target=dev)
    phys = buf.physical_address
    buf.freebuffer()
    assert all(r.phys != phys for r in dev.ddr.live)
    again = pynq.allocate((512,), np.uint64, target=dev)
    assert again.physical_address == phys


def test_late_registration_still_lists_the_device(tmp_path):
    """pynq enumerated its devices before cimstack.emu was imported."""
    import subprocess
    import sys
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "import pynq\n"
        "early = list(pynq.Device.devices)\n"
        "from cimstack import emu\n"
        "dev = emu.device()\n"
        "assert dev in pynq.Device.devices\n"
        "if not early: assert pynq.Device.active_device is dev\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**__import__("os").environ,
                                          "CIMSTACK_CACHE": str(tmp_path)})
    assert out.stdout.strip() == "ok", out.stderr
