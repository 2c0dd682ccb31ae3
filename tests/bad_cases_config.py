"""Bad-input cases: configuration files. A board.toml with NaN, infinities, wrong types
or addresses outside the Zynq-7000 address map; a hardware handoff (.hwh) for another
part, or not a handoff at all; sweep grids with NaN, wrong types, empty lists or
unknown knobs. Each gives one line naming the file or knob, before any work."""

from __future__ import annotations

import re
from pathlib import Path

from badcase import Case
from conftest import digits_like_bundle

from cimstack.bundle import save_bundle
from cimstack.config import load_board
from cimstack.errors import ConfigError

_GOOD_BOARD = (Path(__file__).resolve().parents[1] / "boards" / "pynq-z2"
               / "board.toml").read_text()


def _board(folder: Path, key: str, value: str, name: str = "board.toml") -> Path:
    """The PYNQ-Z2 board.toml with the line of ``key`` set to ``value`` (TOML text)."""
    text, n = re.subn(rf"(?m)^{key} = [^#\n]*", f"{key} = {value} ", _GOOD_BOARD)
    assert n == 1, key
    path = folder / name
    path.write_text(text)
    return path


def board_cli(key: str, value: str):
    """`cimstack overlay info --board ./board.toml` on the board file with one bad line."""
    def setup(folder: Path):
        _board(folder, key, value)
        return ["overlay", "info", "--board", "./board.toml"]
    return setup


def board_api(key: str, value: str):
    """``load_board(path)`` on the board file with one bad line."""
    def setup(folder: Path):
        path = _board(folder, key, value)
        return lambda: load_board(str(path))
    return setup


def _raw_board(text: str):
    def setup(folder: Path):
        (folder / "board.toml").write_text(text)
        return ["overlay", "info", "--board", "board.toml"]
    return setup


# ---------------------------------------------------------------- .hwh beside a .bit

def _hwh(device: str = "7z020", package: str = "clg400", speed: str = "-1") -> str:
    """The head of a Vivado .hwh as Vivado writes it (SYSTEMINFO, one MODULE)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<EDKSYSTEM EDWVERSION="1.2">\n'
            f'  <SYSTEMINFO ARCH="zynq" DEVICE="{device}" NAME="mine" PACKAGE="{package}" '
            f'SPEEDGRADE="{speed}"/>\n  <EXTERNALPORTS/>\n  <MODULES>\n'
            f'    <MODULE FULLNAME="/processing_system7_0" INSTANCE="processing_system7_0" '
            f'MODTYPE="processing_system7" VLNV="xilinx.com:ip:processing_system7:5.5"/>\n'
            f'  </MODULES>\n</EDKSYSTEM>\n')


def _overlay_files(folder: Path, hwh_text: str | None) -> Path:
    bit = folder / "mine.bit"
    bit.write_bytes(b"\x00\x09not a real bitstream")
    if hwh_text is not None:
        bit.with_suffix(".hwh").write_text(hwh_text)
    return bit


def hwh_api(make_text):
    """``open_overlay('emu', bitfile)`` with the .hwh that ``make_text()`` gives."""
    def setup(folder: Path):
        bit = _overlay_files(folder, make_text())
        from cimstack.backends import open_overlay
        return lambda: open_overlay("emu", bit)
    return setup


def _run_with_other_part(folder: Path):
    save_bundle(digits_like_bundle(), folder / "bundle")     # a good bundle: only the .hwh is bad
    _overlay_files(folder, _hwh("7z010", "clg400", "-1"))
    return ["run", "bundle", "--backend", "emu", "--bitfile", "mine.bit"]


def _deploy_with_zu_part(folder: Path):
    _overlay_files(folder, _hwh("xczu3eg", "sbva484", "-1"))
    # 192.0.2.1 (TEST-NET-1) is never contacted: the overlay is refused first
    return ["deploy", "--board", "192.0.2.1", "--overlay", "mine.bit", "--via", "ssh"]


# ---------------------------------------------------------------------- sweep grids

def grid(text: str):
    def setup(folder: Path):
        (folder / "grid.toml").write_text(text)
        return ["sweep", "grid.toml", "--out", "out"]
    return setup


def sets(*items: str):
    def setup(folder: Path):
        return ["sweep", "--out", "out", *(a for item in items for a in ("--set", item))]
    return setup


CASES = [
    # board.toml: NaN, infinity, wrong types
    Case("config-board-fclk-nan", board_cli("fclk0_mhz", "nan"),
         r"board\.toml: .*fclk0_mhz = nan is not a finite number"),
    Case("config-board-crystal-inf", board_api("ps_crystal_mhz", "inf"),
         r"ps_crystal_mhz = inf is not a finite number", ConfigError),
    Case("config-board-fclk-string", board_cli("fclk0_mhz", '"100"'),
         r"fclk0_mhz = '100' must be a number"),
    Case("config-board-lut-float", board_api("lut", "53200.5"),
         r"Resources\.lut = 53200\.5 must be an integer", ConfigError),
    Case("config-board-baud-bool", board_cli("baudrate", "true"),
         r"baudrate = True must be an integer"),
    Case("config-board-hp-width-float", board_api("hp_width_bits", "64.0"),
         r"hp_width_bits = 64\.0 is not allowed: choose one of \[32, 64\]", ConfigError),
    Case("config-board-user-int", board_cli("user", "5"),
         r"SerialFacts\.user = 5 must be a string"),
    Case("config-board-pids-empty", board_api("usb_pids", "[]"),
         r"usb_pids = \[\] must be a non-empty list", ConfigError),
    Case("config-board-fallback-ip", board_api("fallback_ip", '"192.168.2"'),
         r"fallback_ip = '192\.168\.2' is not an IPv4 address", ConfigError),
    Case("config-board-not-toml", _raw_board("[clocks\nfclk0_mhz = 100\n"),
         r"board\.toml is not valid TOML"),
    Case("config-board-clocks-not-table", _raw_board("clocks = 100\n"),
         r"board\.clocks must be a table of settings"),
    Case("config-board-missing", lambda folder: ["overlay", "info", "--board", "./nope/board.toml"],
         r"board file nope/board\.toml does not exist"),
    # board.toml: the Zynq-7000 part and address map
    Case("config-board-zu-part", board_cli("part", '"xczu3eg-sbva484-1-e"'),
         r"part = 'xczu3eg-sbva484-1-e' is not a Zynq-7000 part"),
    Case("config-board-arch-aarch64", board_api("arch", '"aarch64"'),
         r"arch = 'aarch64' does not match the Zynq-7000 part", ConfigError),
    Case("config-board-ddr-too-big", board_cli("ddr_size", "0x60000000"),
         r"DDR .* 0x00000000-0x5FFFFFFF is outside the DDR window 0x00000000-0x3FFFFFFF"),
    Case("config-board-gp0-in-gp1", board_api("pl_gp0_base", "0x80000000"),
         r"0x80000000-0xBFFFFFFF is outside the M_AXI_GP0 window", ConfigError),
    Case("config-board-gp0-unaligned", lambda folder: _raw_board(
        _GOOD_BOARD.replace("pl_gp0_base = 0x40000000", "pl_gp0_base = 0x40000800")
                   .replace("pl_gp0_size = 0x40000000", "pl_gp0_size = 0x1000"))(folder),
         r"pl_gp0_base = 0x40000800 is not a multiple of 4 KiB"),
    Case("config-board-ips-outside-gp0", board_cli("pl_gp0_size", "0x01000000"),
         r"overlay IP dcim_0 0x43C00000-0x43C0FFFF is outside the board pynq-z2 M_AXI_GP0 "
         r"window 0x40000000-0x40FFFFFF"),
    # .hwh beside a user's .bit
    Case("config-hwh-other-part", _run_with_other_part,
         r"mine\.hwh was built for part xc7z010clg400-1, but board pynq-z2 has part "
         r"xc7z020clg400-1"),
    Case("config-hwh-zu-part-deploy", _deploy_with_zu_part,
         r"was built for part xczu3egsbva484-1, but board pynq-z2 has part xc7z020clg400-1"),
    Case("config-hwh-not-xml", hwh_api(lambda: "this is a text file\n"),
         r"mine\.hwh is not a Vivado hardware handoff \(not well-formed XML", ConfigError),
    Case("config-hwh-truncated", hwh_api(lambda: _hwh()[:150]),
         r"not a Vivado hardware handoff \(not well-formed XML: (unclosed token|no element "
         r"found)", ConfigError),
    Case("config-hwh-no-modules", hwh_api(lambda: re.sub(
        r"(?s)<MODULES>.*</MODULES>", "<MODULES/>", _hwh())),
         r"not a Vivado hardware handoff \(no MODULES/MODULE element\)", ConfigError),
    Case("config-hwh-missing", hwh_api(lambda: None),
         r"mine\.bit has no hardware handoff mine\.hwh beside it", ConfigError),
    # sweep grids and --set
    Case("config-grid-nan", grid("[acim]\nsigma = [0.0, nan]\n"),
         r"AcimPoint\.sigma = nan is not a finite number"),
    Case("config-grid-string", grid('[acim]\nadc_bits = ["4", 8]\n'),
         r"AcimPoint\.adc_bits = '4' must be an integer"),
    Case("config-grid-float-for-int", grid("[dcim]\nrows_on = 16.0\n"),
         r"DcimPoint\.rows_on = 16\.0 must be an integer"),
    Case("config-grid-bool", grid("[snn]\nv_bits = true\n"),
         r"SnnPoint\.v_bits = True must be an integer"),
    Case("config-grid-empty-list", grid("[acim]\nadc_bits = []\n"),
         r"grid \[acim\] adc_bits is an empty list"),
    Case("config-grid-unknown-knob", grid("[acim]\nadc_bitz = [4]\n"),
         r"unknown knob\(s\) \['adc_bitz'\]; valid knobs: .*adc_bits"),
    Case("config-set-inf", sets("macro=acim", "sigma=1,inf"),
         r"AcimPoint\.sigma = inf is not a finite number"),
    Case("config-set-unknown-knob", sets("macro=snn", "adc_bits=4"),
         r"--set adc_bits: no selected macro \(snn\) has this knob"),
]
