"""Typed, documented, validated configuration: macro specs and board facts.

Every hardware knob is a dataclass field declared with :func:`knob`, which records its
allowed range next to its documentation. :func:`validate` is the one place where
values are checked; it runs on construction, so an invalid spec cannot exist.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

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


def check_range(where: str, value: Any, lo: float | None, hi: float | None,
                integer: bool = True) -> None:
    """Raise :class:`ConfigError` naming ``where`` unless ``lo <= value <= hi``."""
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} = {value!r} must be an integer in [{lo}, {hi}]")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{where} = {value!r} is out of range: allowed [{lo}, {hi}]")


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
            if value not in meta["choices"]:
                raise ConfigError(
                    f"{where} = {value!r} is not allowed: choose one of {list(meta['choices'])}")
        elif isinstance(f.default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where} = {value!r} must be a number")
            check_range(where, value, meta["lo"], meta["hi"], integer=False)
        elif isinstance(f.default, int) or meta["lo"] is not None:
            check_range(where, value, meta["lo"], meta["hi"])
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
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(known)}")
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
    macros: int = knob(4, "macros working in parallel on the tiles of one layer", 1, 64)
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
    def psum_exact(self) -> bool:
        """True when the column ADC can represent every partial sum 0..rows_on."""
        return self.psum_bits is None or (1 << self.psum_bits) - 1 >= self.rows_on


# ---------------------------------------------------------------------------- board

@dataclass(frozen=True)
class ClockFacts(Spec):
    ps_crystal_mhz: float = knob(50.0, "PS reference crystal", 1.0, 1000.0)
    fclk0_mhz: float = knob(100.0, "PL clock FCLK_CLK0 driving the overlay", 1.0, 500.0)


@dataclass(frozen=True)
class MemoryFacts(Spec):
    hp_port: str = knob("S_AXI_HP0", "PS slave port the DMAs write through",
                        choices=("S_AXI_HP0", "S_AXI_HP1", "S_AXI_HP2", "S_AXI_HP3"))
    hp_width_bits: int = knob(64, "data width of the HP port", choices=(32, 64))
    ddr_base: int = knob(0, "DDR base address", 0, 2**32 - 1)
    ddr_size: int = knob(0x20000000, "DDR size in bytes", 1, 2**32)
    pl_gp0_base: int = knob(0x40000000, "start of the M_AXI_GP0 window", 0, 2**32 - 1)
    pl_gp0_size: int = knob(0x40000000, "size of the M_AXI_GP0 window", 1, 2**32)


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
    user: str = fact("xilinx", "login user")
    password: str = fact("xilinx", "login password")
    fallback_ip: str = fact("192.168.2.99", "address the image takes with no DHCP lease")

    def _rules(self) -> None:
        object.__setattr__(self, "usb_pids", tuple(self.usb_pids))


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


_SPEC_TYPES = {c.__name__: c for c in (ClockFacts, MemoryFacts, Resources, SerialFacts)}


def boards_dir() -> Path:
    return project_root() / "boards"


def load_board(name: str = "pynq-z2") -> BoardSpec:
    """Read and validate ``boards/<name>/board.toml``."""
    path = boards_dir() / name / "board.toml"
    if not path.is_file():
        known = sorted(p.name for p in boards_dir().iterdir() if (p / "board.toml").is_file())
        raise ConfigError(f"unknown board {name!r}: no {path}; known boards: {known}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return BoardSpec.from_dict(data, where=f"board {name}")
