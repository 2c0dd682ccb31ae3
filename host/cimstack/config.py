"""Typed, documented, validated configuration: macro specs and board facts.

Every hardware knob is a dataclass field declared with :func:`knob`, which records its
allowed range next to its documentation. :func:`validate` is the one place where
values are checked; it runs on construction, so an invalid spec cannot exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError
from .paths import project_root

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on the board images
    import tomli as tomllib


def knob(default: Any, doc: str, lo: float | None = None, hi: float | None = None,
         choices: tuple | None = None, optional: bool = False):
    """A dataclass field with its documentation and allowed range in the metadata."""
    return field(default=default, metadata={
        "doc": doc, "lo": lo, "hi": hi, "choices": choices, "optional": optional})


def fact(default: Any, doc: str):
    """A documented field with no range to check (names, part numbers, strings)."""
    return field(default=default, metadata={
        "doc": doc, "lo": None, "hi": None, "choices": None, "optional": False})


def knob_bounds(spec: type, name: str) -> tuple:
    """``(lo, hi)`` of the :func:`knob` ``name`` of the spec class ``spec``."""
    meta = {f.name: f for f in dataclasses.fields(spec)}[name].metadata
    return meta["lo"], meta["hi"]


def check_range(where: str, value: Any, lo: float | None, hi: float | None,
                integer: bool = True, below_hi: bool = False) -> None:
    """Raise :class:`ConfigError` naming ``where`` unless ``value`` is a number (an
    ``int`` when ``integer``; a bool is never a number here) with ``lo <= value <= hi``
    (``value < hi`` when ``below_hi``).

    NaN and the infinities are refused explicitly: every comparison with NaN is False,
    so a range test alone would let ``nan`` through as if it were in range."""
    allowed = f"[{lo}, {hi}{')' if below_hi else ']'}"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where} = {value!r} must be {kind} in {allowed}")
    if not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r} is not a finite number: allowed {allowed}")
    if (lo is not None and value < lo) or \
            (hi is not None and (value >= hi if below_hi else value > hi)):
        raise ConfigError(f"{where} = {value!r} is out of range: allowed {allowed}")


def check_keys(data: Mapping[str, Any], known, where: str, error: type = ConfigError) -> None:
    """Raise ``error`` naming every key of ``data`` not in ``known``, the known key it
    most resembles (a likely typo: ``strid`` for ``stride``) and the allowed keys."""
    unknown = sorted(set(data) - set(known), key=str)
    if not unknown:
        return
    hints = [(k, difflib.get_close_matches(str(k), [str(n) for n in known], n=1)) for k in unknown]
    hint = "; ".join(f"did you mean {m[0]!r} for {k!r}?" for k, m in hints if m)
    raise error(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(known)}"
                + (f" ({hint})" if hint else ""))

def validate(spec: Any) -> None:
    """Check every :func:`knob` field of ``spec``, then its cross-field rules."""
    name = type(spec).__name__
    for f in dataclasses.fields(spec):
        meta = f.metadata
        if "doc" not in meta:
            continue
        value = getattr(spec, f.name)
        where = f"{name}.{f.name}"
        if value is None and meta["optional"]:
            continue
        if meta["choices"] is not None:
            # same value AND same type: 64.0 is not the choice 64, nor 1 the choice True
            if not any(value == c and type(value) is type(c) for c in meta["choices"]):
                raise ConfigError(
                    f"{where} = {value!r} is not allowed: choose one of {list(meta['choices'])}")
        elif isinstance(f.default, float):
            check_range(where, value, meta["lo"], meta["hi"], integer=False)
        elif isinstance(f.default, int) or meta["lo"] is not None:
            check_range(where, value, meta["lo"], meta["hi"])
        elif isinstance(f.default, str) and not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r} must be a string (in quotes in TOML)")
    rules = getattr(spec, "_rules", None)
    if rules:
        rules()


class Spec:
    """Mixin: validation on construction, dict round trip that rejects unknown keys."""

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | None = None):
        """Build from a mapping; unknown keys are an error naming the allowed ones."""
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a table of settings, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        check_keys(data, known, where)
        kwargs = {}
        for key, value in data.items():
            sub = known[key].type
            nested = _SPEC_TYPES.get(sub if isinstance(sub, str) else getattr(sub, "__name__", ""))
            kwargs[key] = nested.from_dict(value, f"{where}.{key}") if nested else value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """(name, default, doc) of every knob, for docs and ``--help`` text."""
        return [(f.name, f.default, f.metadata.get("doc", ""))
                for f in dataclasses.fields(cls) if "doc" in f.metadata]


# --------------------------------------------------------------------------- macros

@dataclass(frozen=True)
class DcimSpec(Spec):
    """Digital bit-serial SRAM CIM macro (MARS family). See docs/macros.md."""

    rows: int = knob(256, "word lines (input rows) per macro", 1, 4096)
    cols: int = knob(256, "bit lines per macro; a weight takes w_bits adjacent columns", 8, 4096)
    rows_on: int = knob(16, "word lines active in one cycle (MARS limit); divides rows", 1, 4096)
    cores: int = knob(1, "CIM cores (MARS: four); a layer's column tiles are dealt over "
                      "them round-robin, each core fetches the layer's input once and "
                      "broadcasts it to its macros (docs/macros.md, MARS multi-macro mapping)",
                      1, 64)
    macros: int = knob(4, "macros per core, working in parallel on the core's tiles", 1, 64)
    weight_sram_kib: int | None = knob(
        None, "on-chip weight SRAM per core (KiB) for the kept weights of the layers that "
        "do not stream from DRAM; None = room for every layer (the MARS calibration's "
        "assumption)", 1, 1 << 20, optional=True)
    psum_bits: int | None = knob(
        None, "column ADC resolution for the partial sums; None = exact read-out", 1, 16,
        optional=True)
    psum_mode: str = knob("saturate", "what the ADC does past its range",
                          choices=("saturate", "quantize"))

    def _rules(self) -> None:
        if self.rows_on > self.rows:
            raise ConfigError(
                f"DcimSpec.rows_on = {self.rows_on} is out of range: allowed [1, rows={self.rows}]")
        if self.rows % self.rows_on:
            raise ConfigError(
                f"DcimSpec.rows_on = {self.rows_on} must divide rows = {self.rows} so that "
                "row groups never straddle two macros")

    @property
    def total_macros(self) -> int:
        """Macros of all cores: ``cores * macros``."""
        return self.cores * self.macros

    @property
    def psum_exact(self) -> bool:
        """True when the column ADC can represent every partial sum 0..rows_on."""
        return self.psum_bits is None or (1 << self.psum_bits) - 1 >= self.rows_on


@dataclass(frozen=True)
class AcimSpec(Spec):
    """Analog charge-domain CIM macro (IMAGINE family). See docs/macros.md, "Analog CIM
    macro (acim)": gains are unsigned ``gain_bits``-bit integers g with G = g / 2^gain_frac_bits,
    offsets signed ``offset_bits``-bit integers o with beta = o / 2^offset_frac_bits ADC LSBs,
    sigma is applied as round(sigma * 256) / 256 LSB."""

    rows: int = knob(1152, "word lines (input rows) of the array; a layer's K must fit", 1, 1152)
    cols: int = knob(256, "bit lines; a weight takes w_bits adjacent columns", 8, 4096)
    segments: int = knob(8, "row segments of the channel-wise array split; divides rows "
                         "(8: 144 rows = 16 channels of 3x3 kernels)", 1, 1152)
    adc_bits: int = knob(8, "ADC resolution in bits", 1, 8)
    swing: str = knob("adaptive", "normalize by the whole array (fixed) or by the active "
                      "segments (adaptive)", choices=("fixed", "adaptive"))
    adc_per_input_bit: bool = knob(False, "convert after every input cycle and shift-add the "
                                   "codes instead of charge accumulation", choices=(False, True))
    sigma: float = knob(0.0, "ADC noise in LSBs (standard deviation), resolution 1/256", 0.0, 16.0)
    seed: int = knob(0, "noise seed; codes are a function of (seed, layer, sample, channel)",
                     0, 2**32 - 1)
    gain_bits: int = knob(16, "ABN gain width (unsigned integer g)", 1, 16)
    gain_frac_bits: int = knob(8, "fractional bits of the ABN gain: G = g / 2^gain_frac_bits",
                               0, 16)
    offset_bits: int = knob(12, "ABN offset width (signed integer o)", 2, 16)
    offset_frac_bits: int = knob(2, "fractional bits of the ABN offset: beta = o / "
                                 "2^offset_frac_bits ADC LSBs", 0, 16)

    def _rules(self) -> None:
        if not isinstance(self.adc_per_input_bit, bool):
            raise ConfigError(f"AcimSpec.adc_per_input_bit = {self.adc_per_input_bit!r} must "
                              "be True or False")
        if self.segments > self.rows or self.rows % self.segments:
            raise ConfigError(f"AcimSpec.segments = {self.segments} must divide rows = "
                              f"{self.rows} (equal row segments)")
        if self.gain_bits - self.gain_frac_bits > 8:
            raise ConfigError(f"AcimSpec gain format {self.gain_bits}.{self.gain_frac_bits} "
                              "allows gains of 256 or more; keep gain_bits - gain_frac_bits "
                              "<= 8 (int64 headroom of the fixed-point path)")
        if self.offset_frac_bits > self.offset_bits - 1 or \
                self.offset_bits - 1 - self.offset_frac_bits > 11:
            raise ConfigError(f"AcimSpec offset format {self.offset_bits}.{self.offset_frac_bits}"
                              " must satisfy offset_frac_bits <= offset_bits - 1 and |beta| "
                              "<= 2048 LSB (offset_bits - 1 - offset_frac_bits <= 11)")

    @property
    def seg_rows(self) -> int:
        """Rows per segment."""
        return self.rows // self.segments

    @property
    def sigma_q(self) -> int:
        """The noise level as applied: round(sigma * 256) (units of 1/256 LSB)."""
        return int(round(self.sigma * 256))

    @property
    def gain_range(self) -> tuple[int, int]:
        """Allowed integer gains g."""
        return 0, (1 << self.gain_bits) - 1

    @property
    def offset_range(self) -> tuple[int, int]:
        """Allowed integer offsets o."""
        return -(1 << (self.offset_bits - 1)), (1 << (self.offset_bits - 1)) - 1

    def norm_rows(self, active_rows: int) -> int:
        """N_norm: the array (fixed swing) or the active rows rounded up to segments (the
        channel-aligned value for every layer cimstack.mapping.imagine lets map)."""
        check_range("active_rows", active_rows, 1, self.rows)
        if self.swing == "fixed":
            return self.rows
        return -(-active_rows // self.seg_rows) * self.seg_rows


@dataclass
class AcimLayerParams:
    """Per-layer analog parameters: ABN gain and offset per output channel (integers in
    the spec's fixed-point formats) and the layer's noise key."""

    gain: np.ndarray          # [N] integers g, G = g / 2^gain_frac_bits
    offset: np.ndarray        # [N] integers o, beta = o / 2^offset_frac_bits LSB
    layer: int = 0            # noise key (0..65535): the layer's index in the network

    def validate(self, spec: AcimSpec, channels: int | None = None, where: str = "acim") -> None:
        check_abn(spec, self.gain, self.offset, channels, where)
        check_range(f"{where}.layer", int(self.layer), 0, 65535)


def check_abn(spec: AcimSpec, gain, offset, channels: int | None = None,
              where: str = "acim") -> None:
    """Clear errors for gains/offsets outside their fixed-point formats."""
    gain, offset = np.asarray(gain), np.asarray(offset)
    for name, arr in (("gain", gain), ("offset", offset)):
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError(f"{where}.{name} must be a 1-D integer array (fixed point), got "
                              f"{arr.dtype} {arr.shape}")
        if channels is not None and arr.shape[0] != channels:
            raise ConfigError(f"{where}.{name} has {arr.shape[0]} values for {channels} "
                              "output channels")
    for name, arr, (lo, hi), bits, frac in (
            ("gain", gain, spec.gain_range, spec.gain_bits, spec.gain_frac_bits),
            ("offset", offset, spec.offset_range, spec.offset_bits, spec.offset_frac_bits)):
        if arr.size and (arr.min() < lo or arr.max() > hi):
            bad = int(arr.min()) if arr.min() < lo else int(arr.max())
            raise ConfigError(
                f"{where}.{name} holds {bad}, outside its {bits}-bit format with {frac} "
                f"fractional bits: allowed integers [{lo}, {hi}] = "
                f"[{lo / 2**frac:g}, {hi / 2**frac:g}]")


@dataclass(frozen=True)
class SnnSpec(Spec):
    """Spiking event core (FlexSpIM family): one array holds weights and membranes.
    See docs/macros.md, "Spiking event core (snn)"."""

    rows: int = knob(512, "rows of the array (FlexSpIM: 512)", 1, 4096)
    cols: int = knob(256, "bit columns of the array (FlexSpIM: 256); cols / v_bits "
                     "synaptic operations per cycle", 8, 4096)
    w_bits: int = knob(8, "default weight width (two's complement; 1 = binary {-1,+1})", 1, 16)
    v_bits: int = knob(16, "default membrane width (signed, 2..16: with 1 bit the "
                    "membrane spans [-1, 0] and no threshold >= 1 fits)", 2, 16)
    leak_shift: int = knob(0, "leak v -= v >> leak_shift after integration; 0 = no leak "
                           "(integrate-and-fire, FlexSpIM)", 0, 15)
    reset: str = knob("subtract", "reset after a spike: v -= theta, or v = 0",
                      choices=("subtract", "zero"))
    overflow: str = knob("saturate", "membrane past its v_bits range: clamp or wrap",
                         choices=("saturate", "wrap"))
    dataflow: str = knob("auto", "per-layer default: auto keeps the smaller operand "
                         "resident; ws weight-stationary; os output-stationary",
                         choices=("auto", "ws", "os"))
    clock_mhz: float = knob(100.0, "array clock for the cycle model", 1.0, 1000.0)

    @property
    def array_bits(self) -> int:
        return self.rows * self.cols


# ---------------------------------------------------------------------------- board

@dataclass(frozen=True)
class ClockFacts(Spec):
    ps_crystal_mhz: float = knob(50.0, "PS reference crystal", 1.0, 1000.0)
    fclk0_mhz: float = knob(100.0, "PL clock FCLK_CLK0 driving the overlay", 1.0, 500.0)


# Zynq-7000 system-level address map (UG585, Zynq-7000 SoC Technical Reference Manual,
# "System-Level Address Map"): DDR from 0x0000_0000 up to 0x3FFF_FFFF (1 GiB at most;
# the PYNQ-Z2 has 512 MiB), the PL through M_AXI_GP0 at 0x4000_0000-0x7FFF_FFFF and
# through M_AXI_GP1 at 0x8000_0000-0xBFFF_FFFF; PS peripherals, SLCR and the high OCM
# follow from 0xE000_0000. Windows below are [start, end).
ZYNQ7_DDR = (0x0000_0000, 0x4000_0000)
ZYNQ7_GP0 = (0x4000_0000, 0x8000_0000)
ZYNQ7_GP1 = (0x8000_0000, 0xC000_0000)
AXI_MIN_RANGE = 0x1000          # the smallest AXI address range Vivado assigns (4 KiB)
# a Zynq-7000 part: xc7z, device number, optional s (single core), package, pins, speed
ZYNQ7_PART = re.compile(r"xc7z\d{3}s?[a-z]{2,4}\d{3,4}-[0-9a-z]{1,3}")


def check_window(where: str, base: int, size: int, window: tuple[int, int],
                 window_name: str) -> None:
    """ConfigError unless ``[base, base + size)`` lies inside ``window``."""
    if base < window[0] or base + size > window[1]:
        raise ConfigError(
            f"{where} 0x{base:08X}-0x{base + size - 1:08X} is outside the {window_name} "
            f"window 0x{window[0]:08X}-0x{window[1] - 1:08X} of the Zynq-7000 address map")


@dataclass(frozen=True)
class MemoryFacts(Spec):
    hp_port: str = knob("S_AXI_HP0", "PS slave port the DMAs write through",
                        choices=("S_AXI_HP0", "S_AXI_HP1", "S_AXI_HP2", "S_AXI_HP3"))
    hp_width_bits: int = knob(64, "data width of the HP port", choices=(32, 64))
    ddr_base: int = knob(0, "DDR base address", 0, 2**32 - 1)
    ddr_size: int = knob(0x20000000, "DDR size in bytes", 1, 2**32)
    pl_gp0_base: int = knob(0x40000000, "start of the M_AXI_GP0 window", 0, 2**32 - 1)
    pl_gp0_size: int = knob(0x40000000, "size of the M_AXI_GP0 window", 1, 2**32)

    def _rules(self) -> None:
        check_window("MemoryFacts DDR (ddr_base, ddr_size)", self.ddr_base, self.ddr_size,
                     ZYNQ7_DDR, "DDR")
        check_window("MemoryFacts PL window (pl_gp0_base, pl_gp0_size)", self.pl_gp0_base,
                     self.pl_gp0_size, ZYNQ7_GP0, "M_AXI_GP0")
        for name in ("ddr_base", "ddr_size", "pl_gp0_base", "pl_gp0_size"):
            value = getattr(self, name)
            if value % AXI_MIN_RANGE:
                raise ConfigError(f"MemoryFacts.{name} = 0x{value:X} is not a multiple of "
                                  f"4 KiB (0x{AXI_MIN_RANGE:X}), the smallest AXI address range")


@dataclass(frozen=True)
class Resources(Spec):
    lut: int = knob(53200, "LUTs", 1, 10**7)
    ff: int = knob(106400, "flip-flops", 1, 10**7)
    bram36: int = knob(140, "36 Kb block RAMs", 1, 10**5)
    dsp: int = knob(220, "DSP48 slices", 1, 10**5)


@dataclass(frozen=True)
class SerialFacts(Spec):
    uart: str = knob("UART0", "PS UART wired to the USB bridge", choices=("UART0", "UART1"))
    baudrate: int = knob(115200, "console baud rate", 300, 4_000_000)
    bytesize: int = knob(8, "data bits", choices=(7, 8))
    parity: str = knob("N", "parity", choices=("N", "E", "O"))
    stopbits: int = knob(1, "stop bits", choices=(1, 2))
    usb_vid: int = knob(0x0403, "USB vendor id of the USB-UART bridge", 0, 0xFFFF)
    usb_pids: tuple = fact((0x6010, 0x6014), "USB product ids of the bridge")
    user: str = fact("xilinx", "login user (the console; ssh too when neither the board "
                     "address, --user nor the ssh configuration names one)")
    password: str = fact("xilinx", "login password")
    fallback_ip: str = fact("192.168.2.99", "address the image takes with no DHCP lease")

    def _rules(self) -> None:
        pids = self.usb_pids
        if not isinstance(pids, (list, tuple)) or not pids:
            raise ConfigError(f"SerialFacts.usb_pids = {pids!r} must be a non-empty list of "
                              "USB product ids, e.g. [0x6010, 0x6014]")
        for pid in pids:
            check_range("SerialFacts.usb_pids[]", pid, 0, 0xFFFF)
        object.__setattr__(self, "usb_pids", tuple(pids))
        if not self.user:
            raise ConfigError("SerialFacts.user is empty: give the board's login user "
                              "(PYNQ images: \"xilinx\")")
        try:
            ipaddress.IPv4Address(self.fallback_ip)
        except ValueError:
            raise ConfigError(f"SerialFacts.fallback_ip = {self.fallback_ip!r} is not an IPv4 "
                              "address such as \"192.168.2.99\"") from None


@dataclass(frozen=True)
class RemoteFacts(Spec):
    """How cimstack runs on the board: defaults of the board options that every board
    command (deploy, run --board) takes as flags too (cimstack.deploy.options)."""

    python: str = fact("/usr/local/share/pynq-venv/bin/python3",
                       "the board's Python, with numpy and pynq (--python)")
    root: str = fact("cimstack", "cimstack's folder on the board, relative to the login's "
                     "home or absolute (--root)")
    sudo: bool = knob(True, "run the board's Python under sudo: pynq needs root (--sudo)",
                      choices=(False, True))
    ssh_options: tuple = fact((), "ssh_config options KEY=VALUE passed to ssh and scp as "
                              "-o KEY=VALUE (--ssh-option)")
    ssh_config: str = fact("", "ssh configuration file passed with -F; empty: ssh's own "
                           "(~/.ssh/config) (--ssh-config)")

    def _rules(self) -> None:
        opts = self.ssh_options
        if not isinstance(opts, (list, tuple)) or not all(isinstance(o, str) for o in opts):
            raise ConfigError(f"RemoteFacts.ssh_options = {opts!r} must be a list of "
                              "\"KEY=VALUE\" strings, e.g. [\"IdentityFile=~/.ssh/pynq\"]")
        object.__setattr__(self, "ssh_options", tuple(opts))
        if not self.root or not self.python:
            raise ConfigError("RemoteFacts.root and RemoteFacts.python must not be empty")


@dataclass(frozen=True)
class BoardSpec(Spec):
    """Facts of one Zynq board, read from ``boards/<name>/board.toml``."""

    name: str = fact("pynq-z2", "board folder name")
    part: str = fact("xc7z020clg400-1", "FPGA part")
    board_part: str = fact("tul.com.tw:pynq-z2:part0:1.0", "Vivado board part")
    arch: str = knob("armv7l", "CPU architecture pynq sees", choices=("armv7l", "aarch64"))
    clocks: ClockFacts = field(default_factory=ClockFacts)
    memory: MemoryFacts = field(default_factory=MemoryFacts)
    resources: Resources = field(default_factory=Resources)
    serial: SerialFacts = field(default_factory=SerialFacts)
    remote: RemoteFacts = field(default_factory=RemoteFacts)

    def _rules(self) -> None:
        # the overlay is a Zynq-7000 design (processing_system7, M_AXI_GP0, S_AXI_HPn)
        if not ZYNQ7_PART.fullmatch(self.part):
            raise ConfigError(f"BoardSpec.part = {self.part!r} is not a Zynq-7000 part such as "
                              "'xc7z020clg400-1'; cimstack's overlay is built for the "
                              "Zynq-7000 processing system")
        if self.arch != "armv7l":
            raise ConfigError(f"BoardSpec.arch = {self.arch!r} does not match the Zynq-7000 "
                              f"part {self.part} (Cortex-A9): use 'armv7l'")


_SPEC_TYPES = {c.__name__: c for c in (ClockFacts, MemoryFacts, Resources, SerialFacts,
                                        RemoteFacts)}


def boards_dir() -> Path:
    return project_root() / "boards"


def is_board_path(board: str) -> bool:
    """True when ``board`` names a file or folder (``./my/board.toml``, ``my/``), not a
    folder under boards/."""
    return board.endswith(".toml") or "/" in board or "\\" in board


def board_file(board: str) -> Path:
    """The board.toml of ``board``: a folder name under boards/, a board folder path or
    a board.toml path."""
    if is_board_path(board):
        path = Path(board)
        path = path / "board.toml" if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(f"board file {path} does not exist; give a board.toml path, a "
                              "folder holding one, or a board name under boards/")
        return path
    path = boards_dir() / board / "board.toml"
    if not path.is_file():
        known = sorted(p.name for p in boards_dir().iterdir() if (p / "board.toml").is_file())
        raise ConfigError(f"unknown board {board!r}: no {path}; known boards: {known}")
    return path


def load_board(name: str = "pynq-z2") -> BoardSpec:
    """Read and validate a board's facts: ``boards/<name>/board.toml``, or the
    board.toml at a path (see :func:`board_file`). Errors name the file."""
    path = board_file(name)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return BoardSpec.from_dict(data, where="board")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
