"""The overlay declaration, the Vivado block design, the emulation's handoff, the HLS
kernels' control interfaces and the drivers agree (IP names, VLNVs, addresses,
registers, DMA parameters, clocks)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from xml.etree import ElementTree as ET

import pytest

from cimstack.emu.hwh import KERNEL_IN_PORT, KERNEL_OUT_PORT, build_hwh
from cimstack.hw.blockdesign import block_design_tcl
from cimstack.overlay_shape import ARG_BASE, ARG_STRIDE, Slot, overlay_shape
from cimstack.paths import project_root

ROOT = project_root()
SHAPE = overlay_shape("pynq-z2")


@pytest.fixture(scope="module")
def tcl():
    return block_design_tcl(SHAPE)


@pytest.fixture(scope="module")
def hwh():
    return ET.fromstring(build_hwh(SHAPE))


def tcl_cells(text):
    return dict((name, vlnv) for vlnv, name in
                re.findall(r"create_bd_cell -type ip -vlnv (\S+) (\S+)", text))


def tcl_config(text, cell):
    m = re.search(r"set_property -dict \[list (.*?)\] \[get_bd_cells %s\]" % re.escape(cell), text)
    return dict(re.findall(r"CONFIG\.(\w+) \{([^}]*)\}", m.group(1))) if m else {}


def tcl_addresses(text):
    return {(cell, itf): (int(off, 16), rng) for off, rng, cell, itf in re.findall(
        r"assign_bd_address -offset (0x[0-9A-F]+) -range (\S+) -target_address_space \$ps_data "
        r"\[get_bd_addr_segs (\w+)/(\w+)/Reg\]", text)}


def hwh_modules(root):
    return {m.get("INSTANCE"): m for m in root.iter("MODULE")}


def hwh_params(module):
    return {p.get("NAME"): p.get("VALUE") for p in module.find("PARAMETERS")}


def test_cells_and_vlnvs_agree(tcl, hwh):
    cells, mods = tcl_cells(tcl), hwh_modules(hwh)
    for slot in SHAPE.slots:
        for name, vlnv in ((slot.ip_name, slot.kernel.vlnv), (slot.dma.name, slot.dma.vlnv)):
            assert cells[name] == vlnv, name
            assert mods[name].get("VLNV") == vlnv, name
    assert cells["processing_system7_0"] == mods["processing_system7_0"].get("VLNV")


def test_address_map_agrees(tcl, hwh):
    addrs = tcl_addresses(tcl)
    ranges = {(r.get("INSTANCE"), r.get("SLAVEBUSINTERFACE")):
              (int(r.get("BASEVALUE"), 16), int(r.get("HIGHVALUE"), 16))
              for r in hwh.iter("MEMRANGE")}
    assert len(addrs) == len(ranges) == 2 * len(SHAPE.slots)
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    gp0 = SHAPE.board.memory
    for (cell, itf), (base, rng) in addrs.items():
        size = int(rng[:-1]) * units[rng[-1]]
        assert ranges[(cell, itf)] == (base, base + size - 1)
        assert gp0.pl_gp0_base <= base and base + size <= gp0.pl_gp0_base + gp0.pl_gp0_size
    for slot in SHAPE.slots:
        assert addrs[(slot.ip_name, "s_axi_control")][0] == slot.base
        assert addrs[(slot.dma.name, "S_AXI_LITE")][0] == slot.dma.base
    spans = sorted((b, b + int(r[:-1]) * units[r[-1]]) for b, r in addrs.values())
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "overlapping address ranges"


def test_dma_parameters_agree(tcl, hwh):
    mods = hwh_modules(hwh)
    for slot in SHAPE.slots:
        cfg, params = tcl_config(tcl, slot.dma.name), hwh_params(mods[slot.dma.name])
        assert cfg["c_include_sg"] == "0" and cfg["c_sg_length_width"] == str(slot.dma.length_width)
        for key, value in cfg.items():
            assert params[key] == value, key
        for key in ("c_m_axis_mm2s_tdata_width", "c_s_axis_s2mm_tdata_width"):
            assert int(cfg[key]) == slot.dma.data_width


def test_ps_settings_agree(tcl, hwh):
    cfg = tcl_config(tcl, "processing_system7_0")
    params = hwh_params(hwh_modules(hwh)["processing_system7_0"])
    b = SHAPE.board
    assert float(cfg["PCW_FPGA0_PERIPHERAL_FREQMHZ"]) == b.clocks.fclk0_mhz \
        == float(params["PCW_FPGA0_PERIPHERAL_FREQMHZ"])
    assert cfg["PCW_USE_S_AXI_HP0"] == params["PCW_USE_S_AXI_HP0"] == "1"
    assert cfg["PCW_S_AXI_HP0_DATA_WIDTH"] == params["PCW_S_AXI_HP0_DATA_WIDTH"] == "64"
    assert cfg["PCW_UART0_BAUD_RATE"] == params["PCW_UART0_BAUD_RATE"] == "115200"
    assert f"set part {b.part}" in tcl and f"set board_part {b.board_part}" in tcl


def test_stream_and_control_interfaces_agree(tcl, hwh):
    mods = hwh_modules(hwh)
    for slot in SHAPE.slots:
        names = {b.get("NAME") for b in mods[slot.ip_name].iter("BUSINTERFACE")}
        assert {"s_axi_control", KERNEL_IN_PORT, KERNEL_OUT_PORT} <= names
        assert f"{slot.dma.name}/M_AXIS_MM2S] [get_bd_intf_pins {slot.ip_name}/{KERNEL_IN_PORT}]" in tcl
        assert f"{slot.ip_name}/{KERNEL_OUT_PORT}] [get_bd_intf_pins {slot.dma.name}/S_AXIS_S2MM]" in tcl


def test_registers_agree_with_hwh(hwh):
    mods = hwh_modules(hwh)
    for slot in SHAPE.slots:
        regs = {r.get("NAME"): int({p.get("NAME"): p.get("VALUE") for p in r.findall("PROPERTY")}
                                   ["ADDRESS_OFFSET"], 16) for r in mods[slot.ip_name].iter("REGISTER")}
        for i, reg in enumerate(slot.kernel.registers):
            assert reg.offset == ARG_BASE + ARG_STRIDE * i
            assert regs[reg.name] == reg.offset
        assert regs["CTRL"] == 0


def top_params(slot: Slot):
    src = (ROOT / "hls" / slot.kernel.name / f"{slot.kernel.top}.cpp").read_text()
    m = re.search(r"\bvoid\s+%s\s*\((.*?)\)\s*\{" % slot.kernel.top, src, re.S)
    assert m, f"no top function {slot.kernel.top} in hls/{slot.kernel.name}"
    params = [re.findall(r"\w+", p)[-1] for p in m.group(1).split(",")]
    streams = [re.findall(r"\w+", p)[-1] for p in m.group(1).split(",") if "stream" in p]
    return src, params, streams


@pytest.mark.parametrize("slot", SHAPE.slots, ids=lambda s: s.ip_name)
def test_hls_top_function_matches_declaration(slot):
    src, params, streams = top_params(slot)
    scalars = [p for p in params if p not in streams]
    assert scalars == [r.name for r in slot.kernel.registers]
    # HLS renames `in`/`out` to in_r/out_r: the handoff and the block design use those
    assert [f"{s}_r" for s in streams] == [KERNEL_IN_PORT, KERNEL_OUT_PORT]
    for reg in slot.kernel.registers:
        assert re.search(r"INTERFACE s_axilite port = %s bundle = control" % reg.name, src)
    assert re.search(r"INTERFACE s_axilite port = return bundle = control", src)
    assert re.search(r"INTERFACE ap_ctrl_hs port = return", src)


@pytest.mark.parametrize("slot", SHAPE.slots, ids=lambda s: s.ip_name)
def test_hls_export_vlnv_part_and_clock(slot):
    k = slot.kernel
    export = (ROOT / "hls" / "scripts" / f"{k.name}_export.tcl").read_text()
    vendor = re.search(r"-vendor (\S+)", export).group(1)
    library = re.search(r"-library (\S+)", export).group(1)
    version = re.search(r"-version (\S+)", export).group(1)
    assert f"{vendor}:{library}:{k.top}:{version}" == k.vlnv
    project = (ROOT / "hls" / "scripts" / f"{k.name}_project.tcl").read_text()
    assert f"set_top {k.top}" in project
    assert f"set_part {SHAPE.board.part}" in project
    period = float(re.search(r"create_clock -period (\S+)", project).group(1))
    assert period == pytest.approx(1000.0 / SHAPE.fclk0_mhz)


def test_drivers_bind_to_the_declared_vlnvs():
    from pynq.lib.dma import DMA

    from cimstack.hw import macros, snn
    bound = {v for module in (macros, snn) for cls in vars(module).values()
             if isinstance(cls, type) for v in getattr(cls, "bindto", [])}
    for slot in SHAPE.slots:
        assert slot.kernel.vlnv in bound, f"no driver binds to {slot.kernel.vlnv}"
        assert slot.dma.vlnv in DMA.bindto


def test_adding_a_kernel_is_declaring_it():
    """A second slot appears in the block design with its DMA, ports and addresses."""
    s0 = SHAPE.slots[0]
    extra = dataclasses.replace(s0, ip_name="dcim_1", base=0x43C70000,
                                dma=dataclasses.replace(s0.dma, name="dcim_dma_1",
                                                        base=0x40470000))
    shape = dataclasses.replace(SHAPE, slots=SHAPE.slots + (extra,))
    text = block_design_tcl(shape)
    assert tcl_cells(text)["dcim_1"] == s0.kernel.vlnv
    assert tcl_config(text, "ps7_0_axi_periph")["NUM_MI"] == str(2 * len(shape.slots))
    assert tcl_config(text, "axi_smc")["NUM_SI"] == str(2 * len(shape.slots))
    assert tcl_addresses(text)[("dcim_dma_1", "S_AXI_LITE")][0] == 0x40470000
    hw = ET.fromstring(build_hwh(shape))
    assert "dcim_1" in hwh_modules(hw)


def test_make_tcl_and_missing_tools(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path / "bd"
    subprocess.run(["make", "-s", "-C", str(ROOT / "overlay"), "tcl", f"OUT={out}"],
                   check=True, capture_output=True)
    assert (out / "cimstack_bd.tcl").read_text() == block_design_tcl(SHAPE)
    if shutil.which("vivado") or shutil.which("vitis_hls"):
        return
    env = dict(os.environ, PATH=os.path.dirname(shutil.which("make")) + os.pathsep + "/bin")
    p = subprocess.run(["make", "-C", str(ROOT / "overlay"), "BOARD=pynq-z2", f"OUT={out}"],
                       capture_output=True, text=True, env=env, timeout=20)
    assert p.returncode != 0
    assert "vitis_hls" in p.stderr and "vivado" in p.stderr and "install" in p.stderr


@pytest.mark.vivado
def test_vivado_builds_the_overlay(tmp_path):
    if not (shutil.which("vivado") and shutil.which("vitis_hls")):
        pytest.skip("Vivado / Vitis HLS are not on PATH")
    out = tmp_path / "build"
    subprocess.run(["make", "-C", str(ROOT / "overlay"), f"OUT={out}"], check=True)
    assert (out / "cimstack.bit").is_file() and (out / "cimstack.hwh").is_file()
