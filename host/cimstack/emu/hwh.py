"""The hardware handoff (.hwh) of the cimstack overlay, generated from
:func:`cimstack.overlay_shape.overlay_shape`.

Vivado writes a .hwh next to every bitstream; pynq parses it (through
pynqmetadata) into ``ip_dict``, ``clock_dict`` and the register maps, and binds
drivers by VLNV. The emulated device serves the same file, so a ``pynq.Overlay`` over
the emulation is built exactly as on the board. What pynqmetadata 0.2.0 needs for an
IP to reach ``ip_dict`` (checked against its ``hwh_frontend``):

- a ``processing_system7`` MODULE with an aximm MASTER ``M_AXI_GP0`` BUSINTERFACE and
  one ``MEMRANGE`` per slave (BASEVALUE, HIGHVALUE, MEMTYPE=REGISTER,
  MASTERBUSINTERFACE, INSTANCE, SLAVEBUSINTERFACE) in its MEMORYMAP;
- the four FCLK enables, divisors and clock sources as PS parameters (``clock_dict``
  raises without them);
- on each slave, an aximm SLAVE BUSINTERFACE named as in the MEMRANGE, and registers
  under ``ADDRESSBLOCK/REGISTERS/REGISTER`` with ADDRESS_OFFSET, SIZE, ACCESS,
  IS_ENABLED=true and their FIELDs;
- an ``EXTERNALPORTS`` element, even empty.

Kernel stream ports follow Vitis HLS naming: arguments called ``in`` and ``out`` are
reserved words in VHDL/Verilog, so HLS exports them as ``in_r`` and ``out_r``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from ..overlay_shape import AP_IDLE, CTRL, GIER, IP_IER, IP_ISR, OverlayShape, Slot, overlay_shape

PS_INSTANCE = "processing_system7_0"
PS_VLNV = "xilinx.com:ip:processing_system7:5.5"
AXIMM = "xilinx.com:interface:aximm:1.0"
AXIS = "xilinx.com:interface:axis:1.0"
KERNEL_CTRL_PORT = "s_axi_control"   # HLS: #pragma HLS INTERFACE s_axilite port=return bundle=control
KERNEL_IN_PORT = "in_r"              # HLS renames an argument called `in`
KERNEL_OUT_PORT = "out_r"            # ... and `out`
DMA_CTRL_PORT = "S_AXI_LITE"
IO_PLL_MHZ = 1000.0                  # Zynq-7000 IO PLL in the PYNQ board presets
ARM_PLL_MHZ = 1300.0                 # CPU at 650 MHz = ARM PLL / 2
DDR_PLL_MHZ = 1050.0                 # DDR3 at 525 MHz


# ----------------------------------------------------------------------- clock plan

@dataclass(frozen=True)
class ClockPlan:
    """Zynq-7000 PS clock settings: PLL feedback dividers and the FCLK dividers.

    FCLKn = IO PLL / (DIVISOR0 * DIVISOR1), each divisor 1..63 (6-bit fields of the
    SLCR FPGAn_CLK_CTRL register); IO PLL = PS crystal * IO_PLL_FDIV.
    """

    crystal_mhz: float
    arm_fdiv: int
    ddr_fdiv: int
    io_fdiv: int
    arm_div: int
    fclk_enable: tuple[bool, bool, bool, bool]
    fclk_div: tuple[tuple[int, int], ...]     # (DIVISOR0, DIVISOR1) per FCLK

    @property
    def io_pll_mhz(self) -> float:
        return self.crystal_mhz * self.io_fdiv

    def fclk_mhz(self, i: int) -> float:
        d0, d1 = self.fclk_div[i]
        return round(self.io_pll_mhz / (d0 * d1), 6)


def fclk_divisors(src_mhz: float, want_mhz: float) -> tuple[int, int]:
    """The (DIVISOR0, DIVISOR1) pair, each 1..63, closest to ``src / want``;
    the smaller DIVISOR1 wins a tie, as in Vivado's PS7 configuration."""
    best = None
    for d1 in range(1, 64):
        for d0 in range(1, 64):
            err = abs(src_mhz / (d0 * d1) - want_mhz)
            if best is None or err < best[0] - 1e-9:
                best = (err, d0, d1)
    return best[1], best[2]


def clock_plan(shape: OverlayShape) -> ClockPlan:
    """PS clock settings of the overlay: FCLK0 from the board facts, FCLK1-3 off."""
    crystal = shape.board.clocks.ps_crystal_mhz
    io_fdiv = round(IO_PLL_MHZ / crystal)
    divs = [fclk_divisors(crystal * io_fdiv, shape.fclk0_mhz)]
    divs += [fclk_divisors(crystal * io_fdiv, 100.0)] * 3
    return ClockPlan(crystal_mhz=crystal, arm_fdiv=round(ARM_PLL_MHZ / crystal),
                     ddr_fdiv=round(DDR_PLL_MHZ / crystal), io_fdiv=io_fdiv, arm_div=2,
                     fclk_enable=(True, False, False, False), fclk_div=tuple(divs))


# -------------------------------------------------------------------- XML builders

def _params(parent: ET.Element, params: dict) -> None:
    node = ET.SubElement(parent, "PARAMETERS")
    for name, value in params.items():
        ET.SubElement(node, "PARAMETER", NAME=name, VALUE=str(value))


def _props(parent: ET.Element, props: dict) -> None:
    for name, value in props.items():
        ET.SubElement(parent, "PROPERTY", NAME=name, VALUE=str(value))


def _register(regs: ET.Element, name: str, offset: int, access: str, desc: str,
              fields: list[tuple[str, int, int, str, str]], reset: int = 0) -> None:
    """One 32-bit REGISTER with FIELDs given as (name, bit_offset, bit_width, access, doc)."""
    reg = ET.SubElement(regs, "REGISTER", NAME=name)
    _props(reg, {"DESCRIPTION": desc, "ADDRESS_OFFSET": hex(offset), "SIZE": 32,
                 "ACCESS": access, "IS_ENABLED": "true", "RESET_VALUE": hex(reset)})
    node = ET.SubElement(reg, "FIELDS")
    for fname, bit, width, faccess, fdoc in fields:
        fld = ET.SubElement(node, "FIELD", NAME=fname)
        _props(fld, {"DESCRIPTION": fdoc, "ADDRESS_OFFSET": bit, "ACCESS": faccess,
                     "BIT_OFFSET": bit, "BIT_WIDTH": width})


def _module(modules: ET.Element, instance: str, vlnv: str, modtype: str,
            **extra: str) -> ET.Element:
    version = vlnv.rsplit(":", 1)[1]
    return ET.SubElement(modules, "MODULE", FULLNAME=f"/{instance}", HWVERSION=version,
                         INSTANCE=instance, IPTYPE="PERIPHERAL", IS_ENABLE="1",
                         MODCLASS="PERIPHERAL", MODTYPE=modtype, VLNV=vlnv, **extra)


class _Ports:
    """The PORTS of one MODULE: scalar clock ports and AXI-Stream signal ports, with
    CONNECTIONS written on both ends as Vivado does."""

    def __init__(self, module: ET.Element):
        self.node = ET.SubElement(module, "PORTS")
        self.by_name: dict[str, ET.Element] = {}

    def add(self, name: str, direction: str, width: int = 1, sigis: str | None = None,
            signame: str | None = None) -> ET.Element:
        attrs = {"DIR": direction, "NAME": name}
        if width > 1:
            attrs.update(LEFT=str(width - 1), RIGHT="0")
        if sigis:
            attrs["SIGIS"] = sigis
        if signame:
            attrs["SIGNAME"] = signame
        port = ET.SubElement(self.node, "PORT", **attrs)
        ET.SubElement(port, "CONNECTIONS")
        self.by_name[name] = port
        return port


def _connect(a: ET.Element, a_inst: str, b: ET.Element, b_inst: str) -> None:
    ET.SubElement(a.find("CONNECTIONS"), "CONNECTION", INSTANCE=b_inst, PORT=b.get("NAME"))
    ET.SubElement(b.find("CONNECTIONS"), "CONNECTION", INSTANCE=a_inst, PORT=a.get("NAME"))


def _bus(businterfaces: ET.Element, name: str, busname: str, btype: str, vlnv: str,
         portmap: dict[str, str] | None = None, width: int | None = None,
         params: dict | None = None) -> ET.Element:
    attrs = {"BUSNAME": busname, "NAME": name, "TYPE": btype, "VLNV": vlnv}
    if width:
        attrs["DATAWIDTH"] = str(width)
    bus = ET.SubElement(businterfaces, "BUSINTERFACE", **attrs)
    _params(bus, params or {})
    maps = ET.SubElement(bus, "PORTMAPS")
    for logical, physical in (portmap or {}).items():
        ET.SubElement(maps, "PORTMAP", LOGICAL=logical, PHYSICAL=physical)
    return bus


_STREAM_SIGNALS = (("TDATA", None), ("TLAST", 1), ("TVALID", 1), ("TREADY", 1))


def _stream_ports(ports: _Ports, prefix: str, driver: bool, width: int,
                  upper: bool = False) -> dict[str, str]:
    """Physical ports of one AXI-Stream interface; returns its logical->physical map.
    Xilinx IP spells them ``m_axis_mm2s_tdata``, HLS ``in_r_TDATA``."""
    portmap = {}
    for logical, w in _STREAM_SIGNALS:
        out = driver != (logical == "TREADY")
        phys = f"{prefix}{logical if upper else logical.lower()}"
        ports.add(phys, "O" if out else "I", w or width)
        portmap[logical] = phys
    return portmap


# ---------------------------------------------------------------------- the modules

def _ps_parameters(shape: OverlayShape, plan: ClockPlan) -> dict:
    p = {
        "PCW_CRYSTAL_PERIPHERAL_FREQMHZ": plan.crystal_mhz,
        "PCW_APU_PERIPHERAL_FREQMHZ": plan.crystal_mhz * plan.arm_fdiv / plan.arm_div,
        "PCW_ARMPLL_CTRL_FBDIV": plan.arm_fdiv,
        "PCW_DDRPLL_CTRL_FBDIV": plan.ddr_fdiv,
        "PCW_IOPLL_CTRL_FBDIV": plan.io_fdiv,
        "PCW_CPU_PERIPHERAL_DIVISOR0": plan.arm_div,
        "PCW_USE_M_AXI_GP0": 1,
        "PCW_USE_S_AXI_HP0": int(shape.board.memory.hp_port == "S_AXI_HP0"),
        "PCW_S_AXI_HP0_DATA_WIDTH": shape.board.memory.hp_width_bits,
        "PCW_UART0_PERIPHERAL_ENABLE": 1,
        "PCW_UART0_BAUD_RATE": shape.board.serial.baudrate,
    }
    for i in range(4):
        d0, d1 = plan.fclk_div[i]
        en = int(plan.fclk_enable[i])
        p[f"PCW_FPGA_FCLK{i}_ENABLE"] = en
        p[f"PCW_EN_CLK{i}_PORT"] = en
        p[f"PCW_FCLK_CLK{i}_BUF"] = "TRUE" if en else "FALSE"
        p[f"PCW_FCLK{i}_PERIPHERAL_CLKSRC"] = "IO PLL"
        p[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0"] = d0
        p[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1"] = d1
        p[f"PCW_FPGA{i}_PERIPHERAL_FREQMHZ"] = f"{plan.fclk_mhz(i):g}"
        p[f"PCW_ACT_FPGA{i}_PERIPHERAL_FREQMHZ"] = f"{plan.fclk_mhz(i):.6f}"
    return p


def _hls_registers(regs: ET.Element, slot: Slot) -> None:
    """The ap_ctrl_hs block and one read-write 32-bit register per scalar argument."""
    _register(regs, "CTRL", CTRL, "read-write", "Control signals", [
        ("AP_START", 0, 1, "read-write", "Control signal Register for 'ap_start'."),
        ("AP_DONE", 1, 1, "read-only", "Control signal Register for 'ap_done' (clear on read)."),
        ("AP_IDLE", 2, 1, "read-only", "Control signal Register for 'ap_idle'."),
        ("AP_READY", 3, 1, "read-only", "Control signal Register for 'ap_ready' (clear on read)."),
        ("RESERVED_1", 4, 3, "read-only", "Reserved.  0s on read."),
        ("AUTO_RESTART", 7, 1, "read-write", "Control signal Register for 'auto_restart'."),
        ("RESERVED_2", 8, 24, "read-only", "Reserved.  0s on read."),
    ], reset=AP_IDLE)
    _register(regs, "GIER", GIER, "read-write", "Global Interrupt Enable Register", [
        ("Enable", 0, 1, "read-write", "Master enable for the device interrupt output"),
        ("RESERVED", 1, 31, "read-only", "Reserved.  0s on read."),
    ])
    _register(regs, "IP_IER", IP_IER, "read-write", "IP Interrupt Enable Register", [
        ("CHAN0_INT_EN", 0, 1, "read-write", "Enable Channel 0 (ap_done) Interrupt"),
        ("CHAN1_INT_EN", 1, 1, "read-write", "Enable Channel 1 (ap_ready) Interrupt"),
        ("RESERVED", 2, 30, "read-only", "Reserved.  0s on read."),
    ])
    _register(regs, "IP_ISR", IP_ISR, "read-write", "IP Interrupt Status Register", [
        ("CHAN0_INT_ST", 0, 1, "read-write", "Channel 0 (ap_done) Interrupt Status (toggle on write)"),
        ("CHAN1_INT_ST", 1, 1, "read-write", "Channel 1 (ap_ready) Interrupt Status (toggle on write)"),
        ("RESERVED", 2, 30, "read-only", "Reserved.  0s on read."),
    ])
    for reg in slot.kernel.registers:
        _register(regs, reg.name, reg.offset, "read-write",
                  f"Data signal of {reg.name}: {reg.doc}",
                  [(reg.name, 0, 32, "read-write", f"Bit 31 to 0 of {reg.name}")])


_DMA_REGISTERS = (
    # (name, offset, description, fields)
    ("MM2S_DMACR", 0x00, "MM2S DMA Control Register", "cr"),
    ("MM2S_DMASR", 0x04, "MM2S DMA Status Register", "sr"),
    ("MM2S_SA", 0x18, "MM2S Source Address", "addr"),
    ("MM2S_SA_MSB", 0x1C, "MM2S Source Address upper 32 bits", "addr"),
    ("MM2S_LENGTH", 0x28, "MM2S Transfer Length (bytes); writing it starts the transfer", "len"),
    ("S2MM_DMACR", 0x30, "S2MM DMA Control Register", "cr"),
    ("S2MM_DMASR", 0x34, "S2MM DMA Status Register", "sr"),
    ("S2MM_DA", 0x48, "S2MM Destination Address", "addr"),
    ("S2MM_DA_MSB", 0x4C, "S2MM Destination Address upper 32 bits", "addr"),
    ("S2MM_LENGTH", 0x58, "S2MM Buffer Length (bytes); reads back the bytes received", "len"),
)

_DMA_FIELDS = {
    "cr": [("RS", 0, 1, "read-write", "Run / Stop"),
           ("Reset", 2, 1, "read-write", "Soft reset of the whole AXI DMA (self clearing)"),
           ("Keyhole", 3, 1, "read-write", "Keyhole read/write"),
           ("Cyclic_BD_Enable", 4, 1, "read-write", "Cyclic BD mode (SG only)"),
           ("IOC_IrqEn", 12, 1, "read-write", "Interrupt on complete enable"),
           ("Dly_IrqEn", 13, 1, "read-write", "Interrupt on delay enable"),
           ("Err_IrqEn", 14, 1, "read-write", "Interrupt on error enable"),
           ("IRQThreshold", 16, 8, "read-write", "Interrupt threshold"),
           ("IRQDelay", 24, 8, "read-write", "Interrupt delay time-out")],
    "sr": [("Halted", 0, 1, "read-only", "DMA channel halted"),
           ("Idle", 1, 1, "read-only", "DMA channel idle"),
           ("SGIncld", 3, 1, "read-only", "Scatter gather included"),
           ("DMAIntErr", 4, 1, "read-only", "DMA internal error"),
           ("DMASlvErr", 5, 1, "read-only", "DMA slave error"),
           ("DMADecErr", 6, 1, "read-only", "DMA decode error"),
           ("SGIntErr", 8, 1, "read-only", "Scatter gather internal error"),
           ("SGSlvErr", 9, 1, "read-only", "Scatter gather slave error"),
           ("SGDecErr", 10, 1, "read-only", "Scatter gather decode error"),
           ("IOC_Irq", 12, 1, "read-write", "Interrupt on complete (write 1 to clear)"),
           ("Dly_Irq", 13, 1, "read-write", "Interrupt on delay (write 1 to clear)"),
           ("Err_Irq", 14, 1, "read-write", "Interrupt on error (write 1 to clear)"),
           ("IRQThresholdSts", 16, 8, "read-only", "Interrupt threshold status"),
           ("IRQDelaySts", 24, 8, "read-only", "Interrupt delay time status")],
    "addr": [("Address", 0, 32, "read-write", "Buffer address")],
}


def _dma_parameters(slot: Slot, hp_width: int) -> dict:
    d = slot.dma
    base = {
        "C_INCLUDE_SG": 0, "C_SG_LENGTH_WIDTH": d.length_width, "C_MICRO_DMA": 0,
        "C_INCLUDE_MM2S": 1, "C_INCLUDE_S2MM": 1,
        "C_INCLUDE_MM2S_DRE": 0, "C_INCLUDE_S2MM_DRE": 0,
        "C_M_AXI_MM2S_DATA_WIDTH": d.data_width, "C_M_AXIS_MM2S_TDATA_WIDTH": d.data_width,
        "C_M_AXI_S2MM_DATA_WIDTH": d.data_width, "C_S_AXIS_S2MM_TDATA_WIDTH": d.data_width,
        "C_MM2S_BURST_SIZE": 16, "C_S2MM_BURST_SIZE": 16, "C_ADDR_WIDTH": 32,
        "C_S_AXI_LITE_DATA_WIDTH": 32, "C_S_AXI_LITE_ADDR_WIDTH": 10,
        "C_ENABLE_MULTI_CHANNEL": 0, "C_INCLUDE_MM2S_SF": 1, "C_INCLUDE_S2MM_SF": 1,
        "C_BASEADDR": f"0x{d.base:08X}", "C_HIGHADDR": f"0x{d.base + d.addr_range - 1:08X}",
        "HP_PORT_WIDTH": hp_width,
    }
    # Vivado writes both spellings; pynq.lib.dma reads the lower-case ones
    out = dict(base)
    out.update({k.lower(): v for k, v in base.items() if k.startswith("C_")})
    out["Component_Name"] = f"cimstack_{d.name}_0"
    return out


def build_hwh(shape: OverlayShape) -> str:
    """The .hwh XML text for ``shape`` (deterministic: same shape, same bytes)."""
    plan = clock_plan(shape)
    board = shape.board
    part = board.part  # e.g. xc7z020clg400-1
    root = ET.Element("EDKSYSTEM", EDWVERSION="1.2", TIMESTAMP="generated by cimstack",
                      VIVADOVERSION="cimstack-emu")
    ET.SubElement(root, "SYSTEMINFO", ARCH="zynq", BOARD=board.board_part,
                  DEVICE=part[2:7], NAME=shape.name, PACKAGE=part[7:13],
                  SPEEDGRADE=part[13:])
    ET.SubElement(root, "EXTERNALPORTS")
    ET.SubElement(root, "EXTERNALINTERFACES")
    modules = ET.SubElement(root, "MODULES")

    # ---- processing system
    ps = _module(modules, PS_INSTANCE, PS_VLNV, "processing_system7",
                 IS_PL="FALSE", CONFIGURABLE="TRUE")
    _params(ps, _ps_parameters(shape, plan))
    ps_ports = _Ports(ps)
    fclk0 = ps_ports.add("FCLK_CLK0", "O", sigis="clk", signame="processing_system7_0_FCLK_CLK0")
    ps_bus = ET.SubElement(ps, "BUSINTERFACES")
    _bus(ps_bus, "M_AXI_GP0", f"{PS_INSTANCE}_M_AXI_GP0", "MASTER", AXIMM, width=32)
    _bus(ps_bus, board.memory.hp_port, "axi_mem_intercon_M00_AXI", "SLAVE", AXIMM,
         width=board.memory.hp_width_bits)
    memmap = ET.SubElement(ps, "MEMORYMAP")

    for slot in shape.slots:
        dma, k = slot.dma, slot.kernel
        for inst, base, rng, itf in ((dma.name, dma.base, dma.addr_range, DMA_CTRL_PORT),
                                     (slot.ip_name, slot.base, slot.addr_range,
                                      KERNEL_CTRL_PORT)):
            ET.SubElement(memmap, "MEMRANGE", ADDRESSBLOCK="Reg", BASENAME="C_BASEADDR",
                          BASEVALUE=f"0x{base:08X}", HIGHNAME="C_HIGHADDR",
                          HIGHVALUE=f"0x{base + rng - 1:08X}", INSTANCE=inst,
                          IS_DATA="TRUE", IS_INSTRUCTION="TRUE",
                          MASTERBUSINTERFACE="M_AXI_GP0", MEMTYPE="REGISTER",
                          SLAVEBUSINTERFACE=itf)

        # ---- AXI DMA
        dm = _module(modules, dma.name, dma.vlnv, "axi_dma", COREREVISION="21")
        blocks = ET.SubElement(ET.SubElement(dm, "ADDRESSBLOCKS"), "ADDRESSBLOCK",
                               ACCESS="read-write", INTERFACE=DMA_CTRL_PORT, NAME="Reg",
                               RANGE=str(dma.addr_range), USAGE="register")
        regs = ET.SubElement(blocks, "REGISTERS")
        for name, off, desc, kind in _DMA_REGISTERS:
            if kind == "len":
                fields = [("Length", 0, dma.length_width, "read-write", "Bytes to transfer")]
            else:
                fields = _DMA_FIELDS[kind]
            reset = 0x00010000 if kind == "cr" else (0x1 if kind == "sr" else 0)
            _register(regs, name, off, "read-write", desc, fields, reset=reset)
        _params(dm, _dma_parameters(slot, board.memory.hp_width_bits))
        dports = _Ports(dm)
        for clk in ("s_axi_lite_aclk", "m_axi_mm2s_aclk", "m_axi_s2mm_aclk"):
            _connect(fclk0, PS_INSTANCE, dports.add(clk, "I", sigis="clk"), dma.name)
        mm2s = _stream_ports(dports, "m_axis_mm2s_", True, dma.data_width)
        s2mm = _stream_ports(dports, "s_axis_s2mm_", False, dma.data_width)

        # ---- HLS kernel
        km = _module(modules, slot.ip_name, k.vlnv, k.top)
        blocks = ET.SubElement(ET.SubElement(km, "ADDRESSBLOCKS"), "ADDRESSBLOCK",
                               ACCESS="read-write", INTERFACE=KERNEL_CTRL_PORT, NAME="Reg",
                               RANGE=str(slot.addr_range), USAGE="register")
        _hls_registers(ET.SubElement(blocks, "REGISTERS"), slot)
        _params(km, {"C_S_AXI_CONTROL_BASEADDR": f"0x{slot.base:08X}",
                     "C_S_AXI_CONTROL_HIGHADDR": f"0x{slot.base + slot.addr_range - 1:08X}",
                     "C_S_AXI_CONTROL_DATA_WIDTH": 32,
                     "Component_Name": f"cimstack_{slot.ip_name}"})
        kports = _Ports(km)
        _connect(fclk0, PS_INSTANCE, kports.add("ap_clk", "I", sigis="clk"), slot.ip_name)
        k_in = _stream_ports(kports, f"{KERNEL_IN_PORT}_", False, dma.data_width, upper=True)
        k_out = _stream_ports(kports, f"{KERNEL_OUT_PORT}_", True, dma.data_width, upper=True)
        for logical in mm2s:
            _connect(dports.by_name[mm2s[logical]], dma.name, kports.by_name[k_in[logical]],
                     slot.ip_name)
            _connect(kports.by_name[k_out[logical]], slot.ip_name,
                     dports.by_name[s2mm[logical]], dma.name)

        # ---- bus interfaces (stream nets share a BUSNAME at both ends)
        dbus = ET.SubElement(dm, "BUSINTERFACES")
        _bus(dbus, DMA_CTRL_PORT, f"{PS_INSTANCE}_M_AXI_GP0", "SLAVE", AXIMM, width=32)
        _bus(dbus, "M_AXI_MM2S", f"{dma.name}_M_AXI_MM2S", "MASTER", AXIMM, width=dma.data_width)
        _bus(dbus, "M_AXI_S2MM", f"{dma.name}_M_AXI_S2MM", "MASTER", AXIMM, width=dma.data_width)
        _bus(dbus, "M_AXIS_MM2S", f"{dma.name}_M_AXIS_MM2S", "INITIATOR", AXIS, mm2s,
             params={"TDATA_NUM_BYTES": dma.data_width // 8, "HAS_TLAST": 1})
        _bus(dbus, "S_AXIS_S2MM", f"{slot.ip_name}_{KERNEL_OUT_PORT}", "TARGET", AXIS, s2mm,
             params={"TDATA_NUM_BYTES": dma.data_width // 8, "HAS_TLAST": 1})
        kbus = ET.SubElement(km, "BUSINTERFACES")
        _bus(kbus, KERNEL_CTRL_PORT, f"{PS_INSTANCE}_M_AXI_GP0", "SLAVE", AXIMM, width=32)
        _bus(kbus, KERNEL_IN_PORT, f"{dma.name}_M_AXIS_MM2S", "SLAVE", AXIS, k_in,
             params={"TDATA_NUM_BYTES": dma.data_width // 8, "HAS_TLAST": 1})
        _bus(kbus, KERNEL_OUT_PORT, f"{slot.ip_name}_{KERNEL_OUT_PORT}", "MASTER", AXIS, k_out,
             params={"TDATA_NUM_BYTES": dma.data_width // 8, "HAS_TLAST": 1})

    ET.indent(root, space="  ")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n'
            + ET.tostring(root, encoding="unicode") + "\n")


# ------------------------------------------------------------------ files on disk

def placeholder_bit(hwh_text: str, part: str, design: str = "cimstack") -> bytes:
    """A well-formed Xilinx .bit header around a tiny payload naming the emulation.

    It is not a bitstream. Its bytes depend on the .hwh (a SHA-256 is embedded), so
    pynq's bitstream hash, used to key its metadata cache, changes with the handoff.
    """
    digest = hashlib.sha256(hwh_text.encode()).hexdigest()

    def field(key: bytes, text: str) -> bytes:
        data = text.encode("ascii") + b"\0"
        return key + struct.pack(">H", len(data)) + data

    payload = f"CIMSTACK EMULATED OVERLAY - NOT A BITSTREAM - hwh sha256 {digest}".encode()
    payload += b"\0" * (-len(payload) % 4)
    return (struct.pack(">H", 9) + bytes.fromhex("0ff00ff00ff00ff000") + struct.pack(">H", 1)
            + field(b"a", f"{design};UserID=0XFFFFFFFF;Version=cimstack-emu")
            + field(b"b", part.removeprefix("xc").rsplit("-", 1)[0])
            + field(b"c", "2000/01/01") + field(b"d", "00:00:00")
            + b"e" + struct.pack(">I", len(payload)) + payload)


def overlay_dir(board: str = "pynq-z2") -> Path:
    """``<cache>/overlay/<board>``, where :func:`write_overlay` puts its files."""
    from ..paths import cache_dir
    return cache_dir() / "overlay" / board


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def write_overlay(board: str = "pynq-z2", folder: str | Path | None = None) -> Path:
    """Write ``cimstack.hwh`` and a placeholder ``cimstack.bit`` side by side and
    return the .bit path, for ``pynq.Overlay(str(path))``.

    Files are rewritten only when their content changes. When the handoff changes,
    pynq's global PL state is cleared if it names this bitfile, so pynq never serves a
    stale ``ip_dict`` from its cache.
    """
    shape = overlay_shape(board)
    folder = Path(folder) if folder is not None else overlay_dir(board)
    folder.mkdir(parents=True, exist_ok=True)
    text = build_hwh(shape)
    hwh_path = folder / f"{shape.name}.hwh"
    bit_path = folder / f"{shape.name}.bit"
    changed = _write_if_changed(hwh_path, text.encode())
    changed |= _write_if_changed(bit_path, placeholder_bit(text, shape.board.part, shape.name))
    if changed:
        _forget_pynq_state(bit_path)
    return bit_path


def _forget_pynq_state(bit_path: Path) -> None:
    """Clear pynq's global PL state if it refers to ``bit_path`` (never another one)."""
    try:
        from pynq.pl_server import global_state as gs
        if gs.global_state_file_exists():
            state = gs.load_global_state()
            if Path(state.bitfile_name).resolve() == bit_path.resolve():
                gs.clear_global_state()
    except Exception:  # pynq absent or its state unreadable: nothing cached to clear
        pass
