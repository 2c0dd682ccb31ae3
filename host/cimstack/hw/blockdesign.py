"""The Vivado block design of the cimstack overlay, written from the overlay declaration.

:func:`cimstack.overlay_shape.overlay_shape` is the one declaration of the overlay;
this module turns it into a Vivado batch-mode Tcl script, as ``cimstack.emu.hwh``
turns it into the emulation's hardware handoff. Adding a kernel to the overlay is a
new :class:`~cimstack.overlay_shape.Slot` in the declaration (plus its HLS sources
and ``hls/scripts/<kernel>_export.tcl``); nothing here names a kernel.

What the script builds (PYNQ-Z2 facts from ``boards/<board>/board.toml``):

- ``processing_system7_0`` with the board preset, M_AXI_GP0, the declared HP port
  (S_AXI_HP0, 64 bit), FCLK_CLK0 at the declared frequency, UART0 at the declared baud
  rate;
- per slot: an AXI DMA 7.1 in simple mode (no scatter-gather; length width and data
  widths from the :class:`~cimstack.overlay_shape.DmaDecl`), the HLS IP exported from
  hls/ under its VLNV, MM2S -> kernel ``in_r``, kernel ``out_r`` -> S2MM;
- ``ps7_0_axi_periph`` (AXI interconnect) from M_AXI_GP0 to every AXI-Lite slave;
- ``axi_smc`` (SmartConnect) from every DMA master to the HP port;
- ``rst_ps7_0_fclk0`` (processor system reset); everything on FCLK_CLK0;
- the address map of the declaration (``assign_bd_address -offset``), then
  validation, HDL wrapper, synthesis, implementation, bitstream, and a copy of the
  .bit and .hwh side by side under one base name, ready for ``pynq.Overlay``.

    python -m cimstack.hw.blockdesign --board pynq-z2 --out overlay/build/pynq-z2/cimstack_bd.tcl
    python -m cimstack.hw.blockdesign --board pynq-z2 --kernels     # kernel names, one a line
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..emu.hwh import (DMA_CTRL_PORT, KERNEL_CTRL_PORT, KERNEL_IN_PORT, KERNEL_OUT_PORT,
                       PS_INSTANCE, PS_VLNV)
from ..overlay_shape import OverlayShape, overlay_shape

INTERCONNECT_VLNV = "xilinx.com:ip:axi_interconnect:2.1"
SMARTCONNECT_VLNV = "xilinx.com:ip:smartconnect:1.0"
RESET_VLNV = "xilinx.com:ip:proc_sys_reset:5.0"
GP_INTERCONNECT = "ps7_0_axi_periph"
HP_SMARTCONNECT = "axi_smc"
RESET_CELL = "rst_ps7_0_fclk0"
BD_NAME = "cimstack_bd"
# HP port name on the PS -> its DDR address segment name in Vivado
HP_SEGMENTS = {f"S_AXI_HP{i}": f"HP{i}_DDR_LOWOCM" for i in range(4)}


def hls_ip_repo(kernel: str) -> str:
    """Where ``hls/scripts/<kernel>_export.tcl`` leaves the exported IP, relative to the
    project root (Vitis HLS: <project>/<solution>/impl/ip)."""
    return f"hls/build/vitis/{kernel}_prj/solution1/impl/ip"


@dataclass
class Cell:
    name: str
    vlnv: str
    config: dict = field(default_factory=dict)


@dataclass
class AddressSegment:
    cell: str
    interface: str
    base: int
    range: int


@dataclass
class BlockDesign:
    """The block design as data (what the Tcl says), for tests and ``overlay info``."""

    name: str
    board: str
    part: str
    board_part: str
    cells: list[Cell]
    intf_nets: list[tuple[str, str]]          # (pin, pin) interface connections
    clock_pins: list[str]                     # driven by FCLK_CLK0
    reset_pins: list[str]                     # driven by peripheral_aresetn
    addresses: list[AddressSegment]           # GP0 map of the declaration
    hp_segments: list[tuple[str, str]]        # (master address space, HP segment)
    ip_repos: list[str]
    fclk0_mhz: float

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(name)


def _hex(v: int) -> str:
    return f"0x{v:08X}"


def _range(n: int) -> str:
    """Vivado range notation (64K, 512M)."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def block_design(shape: OverlayShape) -> BlockDesign:
    """The block design of ``shape``: cells, nets, clocks, resets and address map."""
    board = shape.board
    hp = board.memory.hp_port
    n_hp = hp[-1]
    ps_config = {
        "PCW_USE_M_AXI_GP0": 1,
        f"PCW_USE_S_AXI_HP{n_hp}": 1,
        f"PCW_S_AXI_HP{n_hp}_DATA_WIDTH": board.memory.hp_width_bits,
        "PCW_FPGA_FCLK0_ENABLE": 1,
        "PCW_FPGA0_PERIPHERAL_FREQMHZ": f"{board.clocks.fclk0_mhz:g}",
        "PCW_CRYSTAL_PERIPHERAL_FREQMHZ": f"{board.clocks.ps_crystal_mhz:g}",
        f"PCW_{board.serial.uart}_PERIPHERAL_ENABLE": 1,
        f"PCW_{board.serial.uart}_BAUD_RATE": board.serial.baudrate,
    }
    cells = [Cell(PS_INSTANCE, PS_VLNV, ps_config)]
    n = len(shape.slots)
    cells.append(Cell(GP_INTERCONNECT, INTERCONNECT_VLNV,
                      {"NUM_SI": 1, "NUM_MI": 2 * n}))
    cells.append(Cell(HP_SMARTCONNECT, SMARTCONNECT_VLNV, {"NUM_SI": 2 * n, "NUM_MI": 1}))
    cells.append(Cell(RESET_CELL, RESET_VLNV))
    intf = [(f"{PS_INSTANCE}/M_AXI_GP0", f"{GP_INTERCONNECT}/S00_AXI"),
            (f"{HP_SMARTCONNECT}/M00_AXI", f"{PS_INSTANCE}/{hp}")]
    clocks = [f"{PS_INSTANCE}/M_AXI_GP0_ACLK", f"{PS_INSTANCE}/{hp}_ACLK",
              f"{GP_INTERCONNECT}/ACLK", f"{GP_INTERCONNECT}/S00_ACLK",
              f"{HP_SMARTCONNECT}/aclk", f"{RESET_CELL}/slowest_sync_clk"]
    resets = [f"{GP_INTERCONNECT}/S00_ARESETN", f"{HP_SMARTCONNECT}/aresetn"]
    addresses, hp_segs, repos = [], [], []
    for i, slot in enumerate(shape.slots):
        d, k = slot.dma, slot.kernel
        cells.append(Cell(d.name, d.vlnv, {
            "c_include_sg": 0, "c_sg_length_width": d.length_width, "c_micro_dma": 0,
            "c_include_mm2s": 1, "c_include_s2mm": 1,
            "c_include_mm2s_dre": 0, "c_include_s2mm_dre": 0,
            "c_m_axi_mm2s_data_width": d.data_width, "c_m_axis_mm2s_tdata_width": d.data_width,
            "c_m_axi_s2mm_data_width": d.data_width, "c_s_axis_s2mm_tdata_width": d.data_width,
            "c_mm2s_burst_size": 16, "c_s2mm_burst_size": 16, "c_addr_width": 32,
        }))
        cells.append(Cell(slot.ip_name, k.vlnv))
        repo = hls_ip_repo(k.name)
        if repo not in repos:
            repos.append(repo)
        m_dma, m_ip = f"M{2 * i:02d}", f"M{2 * i + 1:02d}"
        intf += [
            (f"{GP_INTERCONNECT}/{m_dma}_AXI", f"{d.name}/{DMA_CTRL_PORT}"),
            (f"{GP_INTERCONNECT}/{m_ip}_AXI", f"{slot.ip_name}/{KERNEL_CTRL_PORT}"),
            (f"{d.name}/M_AXI_MM2S", f"{HP_SMARTCONNECT}/S{2 * i:02d}_AXI"),
            (f"{d.name}/M_AXI_S2MM", f"{HP_SMARTCONNECT}/S{2 * i + 1:02d}_AXI"),
            (f"{d.name}/M_AXIS_MM2S", f"{slot.ip_name}/{KERNEL_IN_PORT}"),
            (f"{slot.ip_name}/{KERNEL_OUT_PORT}", f"{d.name}/S_AXIS_S2MM"),
        ]
        clocks += [f"{GP_INTERCONNECT}/{m_dma}_ACLK", f"{GP_INTERCONNECT}/{m_ip}_ACLK",
                   f"{d.name}/s_axi_lite_aclk", f"{d.name}/m_axi_mm2s_aclk",
                   f"{d.name}/m_axi_s2mm_aclk", f"{slot.ip_name}/ap_clk"]
        resets += [f"{GP_INTERCONNECT}/{m_dma}_ARESETN", f"{GP_INTERCONNECT}/{m_ip}_ARESETN",
                   f"{d.name}/axi_resetn", f"{slot.ip_name}/ap_rst_n"]
        addresses += [AddressSegment(d.name, DMA_CTRL_PORT, d.base, d.addr_range),
                      AddressSegment(slot.ip_name, KERNEL_CTRL_PORT, slot.base,
                                     slot.addr_range)]
        hp_segs += [(f"{d.name}/Data_MM2S", f"{PS_INSTANCE}/{hp}/{HP_SEGMENTS[hp]}"),
                    (f"{d.name}/Data_S2MM", f"{PS_INSTANCE}/{hp}/{HP_SEGMENTS[hp]}")]
    return BlockDesign(name=shape.name, board=board.name, part=board.part,
                       board_part=board.board_part, cells=cells, intf_nets=intf,
                       clock_pins=clocks, reset_pins=resets, addresses=addresses,
                       hp_segments=hp_segs, ip_repos=repos, fclk0_mhz=board.clocks.fclk0_mhz)


def _config(cfg: dict) -> str:
    return " ".join(f"CONFIG.{k} {{{v}}}" for k, v in cfg.items())


def _pin(path: str) -> str:
    return f"[get_bd_intf_pins {path}]"


def block_design_tcl(shape: OverlayShape) -> str:
    """The Vivado batch-mode Tcl script of ``shape``.

    Run from anywhere as ``vivado -mode batch -source <script> -tclargs <root> <out>``
    with ``<root>`` the project root (for hls/ IP repositories) and ``<out>`` the
    folder that receives ``<name>.bit`` and ``<name>.hwh`` and the Vivado project.
    The board files of the board part must be installed or pointed at with the
    environment variable ``CIMSTACK_BOARD_REPO``.
    """
    bd = block_design(shape)
    board = shape.board
    ram = board.memory
    L: list[str] = []
    a = L.append
    a(f"# Vivado block design of the {bd.name} overlay for {bd.board}.")
    a("# GENERATED by `python -m cimstack.hw.blockdesign` from host/cimstack/overlay_shape.py")
    a(f"# and boards/{bd.board}/board.toml: edit those, not this file.")
    a("if {$argc < 2} { error \"usage: vivado -mode batch -source <this> -tclargs <root> <out>\" }")
    a("set root [file normalize [lindex $argv 0]]")
    a("set out [file normalize [lindex $argv 1]]")
    a("set jobs [expr {[info exists ::env(CIMSTACK_JOBS)] ? $::env(CIMSTACK_JOBS) : 2}]")
    a(f"set name {bd.name}")
    a(f"set part {bd.part}")
    a(f"set board_part {bd.board_part}")
    a("file mkdir $out")
    a("if {[info exists ::env(CIMSTACK_BOARD_REPO)]} {")
    a("    set_param board.repoPaths [list $::env(CIMSTACK_BOARD_REPO)]")
    a("}")
    a("create_project -force ${name}_prj [file join $out vivado] -part $part")
    a("if {[llength [get_board_parts -quiet $board_part]] == 0} {")
    a("    error \"Vivado does not know board part $board_part: install the board files "
      "(PYNQ-Z2: from TUL) and set CIMSTACK_BOARD_REPO to their folder\"")
    a("}")
    a("set_property board_part $board_part [current_project]")
    repos = " ".join(f"[file join $root {r}]" for r in bd.ip_repos)
    a(f"set_property ip_repo_paths [list {repos}] [current_project]")
    a("update_ip_catalog")
    for slot in shape.slots:
        v = slot.kernel.vlnv
        a(f"if {{[llength [get_ipdefs -quiet {v}]] == 0}} {{")
        a(f"    error \"HLS IP {v} is not in the catalog: run `make -C hls vitis-export` "
          f"(hls/scripts/{slot.kernel.name}_export.tcl) first\"")
        a("}")
    a(f"create_bd_design {BD_NAME}")
    a("")
    a("# ---- cells")
    for c in bd.cells:
        a(f"create_bd_cell -type ip -vlnv {c.vlnv} {c.name}")
        if c.name == PS_INSTANCE:
            a("apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 -config "
              "{make_external \"FIXED_IO, DDR\" apply_board_preset \"1\" Master \"Disable\" "
              f"Slave \"Disable\"}} [get_bd_cells {c.name}]")
        if c.config:
            a(f"set_property -dict [list {_config(c.config)}] [get_bd_cells {c.name}]")
    a("")
    a("# ---- interface nets")
    for p, q in bd.intf_nets:
        a(f"connect_bd_intf_net {_pin(p)} {_pin(q)}")
    a("")
    a("# ---- clock and reset: everything on FCLK_CLK0")
    a(f"connect_bd_net [get_bd_pins {PS_INSTANCE}/FCLK_RESET0_N] "
      f"[get_bd_pins {RESET_CELL}/ext_reset_in]")
    a(f"connect_bd_net [get_bd_pins {PS_INSTANCE}/FCLK_CLK0] "
      + " ".join(f"[get_bd_pins {p}]" for p in bd.clock_pins))
    a(f"connect_bd_net [get_bd_pins {RESET_CELL}/interconnect_aresetn] "
      f"[get_bd_pins {GP_INTERCONNECT}/ARESETN]")
    a(f"connect_bd_net [get_bd_pins {RESET_CELL}/peripheral_aresetn] "
      + " ".join(f"[get_bd_pins {p}]" for p in bd.reset_pins))
    a("")
    a("# ---- address map of the declaration (GP0 window "
      f"{_hex(ram.pl_gp0_base)} + {_range(ram.pl_gp0_size)})")
    a(f"set ps_data [get_bd_addr_spaces {PS_INSTANCE}/Data]")
    for s in bd.addresses:
        a(f"assign_bd_address -offset {_hex(s.base)} -range {_range(s.range)} "
          f"-target_address_space $ps_data [get_bd_addr_segs {s.cell}/{s.interface}/Reg] -force")
    for space, seg in bd.hp_segments:
        a(f"assign_bd_address -offset {_hex(ram.ddr_base)} -range {_range(ram.ddr_size)} "
          f"-target_address_space [get_bd_addr_spaces {space}] [get_bd_addr_segs {seg}] -force")
    a("")
    a("# ---- check, wrap, build")
    a("validate_bd_design")
    a("save_bd_design")
    a(f"set bd_file [get_files {BD_NAME}.bd]")
    a("generate_target all $bd_file")
    a("set wrapper [make_wrapper -files $bd_file -top]")
    a("add_files -norecurse $wrapper")
    a(f"set_property top {BD_NAME}_wrapper [current_fileset]")
    a("update_compile_order -fileset sources_1")
    a("launch_runs impl_1 -to_step write_bitstream -jobs $jobs")
    a("wait_on_run impl_1")
    a("if {[get_property PROGRESS [get_runs impl_1]] != \"100%\"} {")
    a("    error \"implementation failed: see [file join $out vivado] runme.log files\"")
    a("}")
    a("open_run impl_1")
    a("report_utilization -file [file join $out utilization.rpt]")
    a("report_timing_summary -file [file join $out timing.rpt]")
    a("set bit [lindex [glob -nocomplain [file join [get_property DIRECTORY [get_runs impl_1]] *.bit]] 0]")
    a("# .hwh: <proj>.gen/... since Vivado 2020.2, <proj>.srcs/... before")
    a(f"set hwh [lindex [glob -nocomplain [file join $out vivado *.gen sources_1 bd {BD_NAME} "
      f"hw_handoff {BD_NAME}.hwh] [file join $out vivado *.srcs sources_1 bd {BD_NAME} "
      f"hw_handoff {BD_NAME}.hwh]] 0]")
    a("if {$bit eq \"\" || $hwh eq \"\"} { error \"no bitstream or hardware handoff was produced\" }")
    a("file copy -force $bit [file join $out $name.bit]")
    a("file copy -force $hwh [file join $out $name.hwh]")
    a("puts \"cimstack overlay: [file join $out $name.bit] and $name.hwh\"")
    return "\n".join(L) + "\n"


def write_tcl(board: str, out: Path) -> bool:
    """Write the script for ``board`` to ``out`` if its content changed (keeps make's
    timestamps meaningful); returns True when written."""
    text = block_design_tcl(overlay_shape(board))
    out = Path(out)
    if out.is_file() and out.read_text() == text:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cimstack.hw.blockdesign",
                                description="Write the Vivado block-design Tcl of the overlay.")
    p.add_argument("--board", default="pynq-z2")
    p.add_argument("--out", type=Path, help="Tcl file to write (default: stdout)")
    p.add_argument("--kernels", action="store_true",
                   help="print the overlay's kernel names (one a line) and exit")
    p.add_argument("--name", action="store_true", help="print the overlay name and exit")
    args = p.parse_args(argv)
    shape = overlay_shape(args.board)
    if args.kernels:
        print("\n".join(dict.fromkeys(s.kernel.name for s in shape.slots)))
    elif args.name:
        print(shape.name)
    elif args.out:
        write_tcl(args.board, args.out)
    else:
        sys.stdout.write(block_design_tcl(shape))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
