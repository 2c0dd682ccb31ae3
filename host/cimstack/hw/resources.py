"""Resource estimate of the overlay against the board's budget (``boards/<b>/board.toml``).

This is an estimate by a stated rule, made before synthesis so that a kernel that
cannot fit is caught at declaration time; Vivado's ``utilization.rpt`` (written by
``make -C overlay`` next to the bitstream) is the measurement. The rule:

BRAM (per kernel, from its HLS sources). Every array declared in
``hls/<kernel>/*.cpp`` (static or local, except testbenches and C-sim bridges) with
an element type of known width is split into banks by its ``ARRAY_PARTITION``
pragmas (``complete`` on dimension *d*: one bank per index of *d*; ``cyclic``/``block``
factor *f*: *f* banks). A bank of *D* words of *W* bits goes to LUTRAM if it holds at
most 1024 bits or at most 32 words (as Vitis HLS does for small arrays: W·⌈D/64⌉
LUTs), otherwise to block RAM: the fewest RAMB18 over the 7-series aspect ratios
(512x36, 1Kx18, 2Kx9, 4Kx4, 8Kx2, 16Kx1; ⌈W/w⌉·⌈D/d⌉ each), two RAMB18 per
BRAM36. Array bounds are evaluated from the ``const unsigned`` constants of the
kernel's headers.

DSP and LUT datapath (per kernel, :data:`DATAPATH`): one DSP48E1 per 25x18 tile of
each hardware multiplier (⌈a/25⌉·⌈b/18⌉); LUTs for the datapath as documented per
kernel. An undeclared kernel gets :data:`DEFAULT_DATAPATH` and a warning.

Control: each AXI-Lite register costs 20 LUT on top of a 150-LUT AXI-Lite slave.

Infrastructure (typical figures of the Xilinx product guides for these configurations,
rounded up): AXI DMA 7.1 simple mode with 64-bit streams 1,800 LUT, 2,700 FF,
2 BRAM36 (PG021); AXI interconnect with one slave 200 LUT + 150 per master port
(PG059); SmartConnect 1,000 LUT + 700 per slave port (PG247); processor system
reset 20 LUT; processing_system7 nothing. Flip-flops: 1.2 per LUT unless stated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Resources
from ..overlay_shape import KernelDecl, OverlayShape
from ..paths import project_root

ELEMENT_BITS = {
    "u64": 64, "uint64_t": 64, "int64_t": 64, "long long": 64, "double": 64,
    "uint32_t": 32, "int32_t": 32, "int": 32, "unsigned": 32, "float": 32,
    "uint16_t": 16, "int16_t": 16, "short": 16,
    "uint8_t": 8, "int8_t": 8, "char": 8, "bool": 1,
}
BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
LUTRAM_MAX_BITS = 1024
LUTRAM_MAX_WORDS = 32
FF_PER_LUT = 1.2
AXILITE_BASE_LUT, AXILITE_REG_LUT = 150, 20
DMA_COST = {"lut": 1800, "ff": 2700, "bram36": 2.0, "dsp": 0}
INTERCONNECT_LUT, INTERCONNECT_PER_MI = 200, 150
SMARTCONNECT_LUT, SMARTCONNECT_PER_SI = 1000, 700
RESET_LUT = 20


def dsp_tiles(a_bits: int, b_bits: int) -> int:
    """DSP48E1 slices of an a x b multiplier: one per 25x18 tile."""
    return math.ceil(a_bits / 25) * math.ceil(b_bits / 18)


@dataclass(frozen=True)
class Datapath:
    dsp: int
    lut: int
    rule: str


# dcim (hls/dcim/dcim_top.cpp): one shared lane_reads instance, 16 lanes x 8 input bits
# of AND + 64-bit popcount (~64 LUT6 each); the exact path's per-lane shift-add of its
# 8 counts (~105 LUT); the ADC path's per-lane 11-bit count adder, ADC saturate/mask,
# reference-or-count select and shift by the input bit (~75 LUT) and the binary
# reference column's 8 popcounts; one shared add_lanes instance: per lane the column
# coefficient as shift and negate plus a 32-bit add (~130 LUT) and the rotation of 16
# lanes onto the 16 accumulator banks with the per-channel lane sums (~1,500 LUT); the
# weight load's byte-to-column scatter and band-buffer write routing (~1,600 LUT); the
# input word's transpose (wiring) and plane byte selects (~500 LUT); the lane-group
# scheduler (count/find-first of the kept mask, row masks, ~300 LUT) and loop counters
# (~500 LUT); the requantizer (48x32 multiply in DSP, rounding shift and clamp ~300 LUT)
# and the stream packing (~400 LUT). Registers and buffers declared as arrays (band
# buffers, ping-pong planes and accumulators, lane counts) are counted by the array rule.
DCIM_LANES, DCIM_X_BITS = 16, 8
DATAPATH = {
    "dcim": Datapath(dsp=dsp_tiles(48, 32),
                     lut=DCIM_LANES * DCIM_X_BITS * 64 + DCIM_LANES * (105 + 75 + 130)
                     + DCIM_X_BITS * 64 + 1500 + 1600 + 500 + 300 + 500 + 300 + 400,
                     rule="16 lanes x 8 input bits x 64-bit popcount 64 LUT (shared by both "
                          "read-outs); per lane exact shift-add 105 + ADC count/saturate/shift "
                          "75 + column coefficient shift-negate and 32-bit add 130 LUT; binary "
                          "reference column 8 popcounts; lane-to-accumulator rotation 1500; "
                          "weight load scatter 1600; input transpose selects 500; lane-group "
                          "scheduler 300; counters 500; requantizer 300 LUT + 48x32 multiply "
                          "4 DSP48; stream packing 400 LUT"),
    "acim": Datapath(dsp=128 * dsp_tiles(8, 8) + dsp_tiles(35, 27) + dsp_tiles(31, 26)
                     + dsp_tiles(46, 10) + dsp_tiles(31, 8) + 2 * dsp_tiles(64, 64)
                     + dsp_tiles(48, 32),
                     lut=40 + 500 + 300 + 300 + 200 + 8 * 110 + 8 * 75 + 40 + 300 + 60 + 300
                     + 400,
                     rule="128 lanes x 8x8 MAC, one DSP48 each accumulating in its P register "
                          "(one weight row of all channels per cycle) + row operand select "
                          "40 LUT; weight-row realign (128-bit window, byte shifts) 500 LUT; "
                          "ABN decode (saturation, gain shift) 300 LUT; per-call 32-bit "
                          "divider (segments) 300 LUT; conversion: dot x gain 35x27 4 DSP48, "
                          "FS x offset 31x26 4 DSP48, noise m x unit 46x10 2 DSP48, numerator "
                          "adds 200 LUT, SAR 8 steps x 54-bit add/compare 880 LUT; per-bit back "
                          "end (2^x-1) x level 31x8 2 DSP48 + SAR 8 x 36-bit 600 LUT + "
                          "shift-add 40 LUT; splitmix64 noise hash two 64x64 multiplies 24 "
                          "DSP48 + 300 LUT; Irwin-Hall sum 60 LUT; requantizer 48x32 = 4 "
                          "DSP48 + 300 LUT; stream packing 400 LUT"),
    "snn": Datapath(dsp=3 * dsp_tiles(33, 31) + dsp_tiles(32, 32) + dsp_tiles(32, 16)
                    + 2 * dsp_tiles(16, 16),
                    lut=3 * 400 + 400 + 200 + 100 + 200 + 400,
                    rule="event address decode without a divider: three 31x33 multiply-shift "
                         "divisions (by src_h*src_w, src_w, pool) 12 DSP48, remainders "
                         "32x32 and 32x16 multiplies 6 DSP48, (c*H+y)*W+x two 16x16 "
                         "multiplies 2 DSP48; their magic numbers by three per-call 64/32-bit "
                         "dividers 1200 LUT; conv fan-out loop 400 LUT; weight sign "
                         "extension 200 LUT; 32-bit synaptic accumulator 100 LUT; "
                         "saturate/wrap/leak/fire/reset 200 LUT; event packing 400 LUT"),
}
DEFAULT_DATAPATH = Datapath(dsp=4, lut=2000, rule="no datapath rule declared: 2000 LUT, 4 DSP")


@dataclass
class ArrayUse:
    name: str
    dims: tuple[int, ...]
    bits: int
    banks: int
    depth: int
    bram36: float
    lut: int

    @property
    def where(self) -> str:
        return "BRAM" if self.bram36 else "LUTRAM"


@dataclass
class Usage:
    """Estimated use of one overlay component."""

    name: str
    lut: int = 0
    ff: int = 0
    bram36: float = 0.0
    dsp: int = 0
    rule: str = ""
    arrays: list[ArrayUse] = field(default_factory=list)


@dataclass
class Estimate:
    board: str
    budget: Resources
    parts: list[Usage]
    warnings: list[str] = field(default_factory=list)

    def total(self) -> dict:
        return {k: sum(getattr(p, k) for p in self.parts) for k in ("lut", "ff", "bram36", "dsp")}

    def fraction(self) -> dict:
        t = self.total()
        return {k: t[k] / getattr(self.budget, k) for k in t}

    @property
    def fits(self) -> bool:
        return all(v <= 1.0 for v in self.fraction().values())

    def to_dict(self) -> dict:
        return {"board": self.board, "budget": self.budget.to_dict(), "total": self.total(),
                "fraction": self.fraction(), "fits": self.fits, "warnings": self.warnings,
                "parts": [{"name": p.name, "lut": p.lut, "ff": p.ff, "bram36": p.bram36,
                           "dsp": p.dsp, "rule": p.rule,
                           "arrays": [a.__dict__ for a in p.arrays]} for p in self.parts]}


# ------------------------------------------------------------------ HLS source scan

_CONST = re.compile(r"\bconst\s+(?:unsigned|int|uint32_t|size_t)\s+(\w+)\s*=\s*([^;]+);")
_ARRAY = re.compile(
    r"^\s*(?:static\s+)?(?:const\s+)?(ap_u?int<\s*(\d+)\s*>|[A-Za-z_][\w ]*?)\s+"
    r"(\w+)((?:\s*\[[^\]]+\])+)\s*(?:=[^;]*)?;", re.M)
_PARTITION = re.compile(r"#pragma\s+HLS\s+ARRAY_PARTITION\s+([^\n]*)", re.I)


def _eval(expr: str, consts: dict) -> int:
    expr = expr.strip()
    if not re.fullmatch(r"[\w\s+\-*/()]+", expr):
        raise ValueError(expr)
    names = {k: v for k, v in consts.items()}
    return int(eval(expr.replace("/", "//"), {"__builtins__": {}}, names))  # noqa: S307


def kernel_sources(kernel: KernelDecl, root: Path | None = None) -> list[Path]:
    folder = (root or project_root()) / "hls" / kernel.name
    return sorted(p for p in folder.glob("*.cpp")
                  if not p.name.startswith("tb_") and not p.name.endswith("_csim.cpp"))


def kernel_constants(kernel: KernelDecl, root: Path | None = None) -> dict:
    root = root or project_root()
    consts: dict = {}
    headers = sorted((root / "hls" / kernel.name).glob("*.h")) + \
        sorted((root / "hls" / "include").rglob("*.h"))
    for h in headers:
        for name, expr in _CONST.findall(h.read_text()):
            try:
                consts[name] = _eval(expr, consts)
            except Exception:       # not a plain integer expression
                pass
    return consts


def kernel_arrays(kernel: KernelDecl, root: Path | None = None) -> list[ArrayUse]:
    """The arrays of the kernel's HLS sources with their memory mapping (rule above)."""
    consts = kernel_constants(kernel, root)
    out = []
    for src in kernel_sources(kernel, root):
        text = src.read_text()
        text = re.sub(r"//[^\n]*", "", text)
        parts: dict[str, list[tuple[int, str, int]]] = {}
        for args in _PARTITION.findall(text):
            kv = dict(re.findall(r"(\w+)\s*=\s*(\w+)", args))
            kind = "complete" if "complete" in args else ("cyclic" if "cyclic" in args else "block")
            parts.setdefault(kv.get("variable", ""), []).append(
                (int(kv.get("dim", 1)), kind, int(kv.get("factor", 0) or 0)))
        for m in _ARRAY.finditer(text):
            tname, ap_bits, name, dims_s = m.group(1).strip(), m.group(2), m.group(3), m.group(4)
            if ap_bits:
                bits = int(ap_bits)
            elif tname in ELEMENT_BITS:
                bits = ELEMENT_BITS[tname]
            else:
                continue
            try:
                dims = tuple(_eval(d, consts) for d in re.findall(r"\[([^\]]+)\]", dims_s))
            except Exception:
                continue
            banks, per_bank = 1, list(dims)
            for dim, kind, factor in parts.get(name, []):
                i = dim - 1 if dim > 0 else None
                if i is None:                    # dim=0: every dimension
                    banks *= math.prod(per_bank)
                    per_bank = [1]
                    break
                if kind == "complete":
                    banks *= per_bank[i]
                    per_bank[i] = 1
                else:
                    f = max(1, factor)
                    banks *= f
                    per_bank[i] = math.ceil(per_bank[i] / f)
            depth = math.prod(per_bank)
            out.append(_map_array(name, dims, bits, banks, depth))
    return out


def _map_array(name: str, dims, bits: int, banks: int, depth: int) -> ArrayUse:
    if depth * bits <= LUTRAM_MAX_BITS or depth <= LUTRAM_MAX_WORDS:
        return ArrayUse(name, tuple(dims), bits, banks, depth, 0.0,
                        banks * bits * math.ceil(depth / 64))
    b18 = min(math.ceil(bits / w) * math.ceil(depth / d) for w, d in BRAM18_SHAPES)
    return ArrayUse(name, tuple(dims), bits, banks, depth, banks * b18 / 2, 0)


# ----------------------------------------------------------------------- estimate

def estimate(shape: OverlayShape, root: Path | None = None) -> Estimate:
    """Estimated LUT / FF / BRAM36 / DSP of every component of ``shape``."""
    parts, warnings = [], []
    n = len(shape.slots)
    for slot in shape.slots:
        k = slot.kernel
        arrays = kernel_arrays(k, root)
        dp = DATAPATH.get(k.name)
        if dp is None:
            dp = DEFAULT_DATAPATH
            warnings.append(f"kernel {k.name}: no datapath rule in cimstack.hw.resources."
                            "DATAPATH; used the default")
        ctrl = AXILITE_BASE_LUT + AXILITE_REG_LUT * len(k.registers)
        lut = ctrl + dp.lut + sum(a.lut for a in arrays)
        parts.append(Usage(slot.ip_name, lut=lut, ff=int(FF_PER_LUT * lut),
                           bram36=sum(a.bram36 for a in arrays), dsp=dp.dsp,
                           rule=f"AXI-Lite {ctrl} LUT; {dp.rule}", arrays=arrays))
        parts.append(Usage(slot.dma.name, lut=DMA_COST["lut"], ff=DMA_COST["ff"],
                           bram36=DMA_COST["bram36"], rule="AXI DMA simple mode, PG021"))
    ic = INTERCONNECT_LUT + INTERCONNECT_PER_MI * 2 * n
    sc = SMARTCONNECT_LUT + SMARTCONNECT_PER_SI * 2 * n
    parts.append(Usage("ps7_0_axi_periph", lut=ic, ff=int(FF_PER_LUT * ic),
                       rule=f"AXI interconnect 1 SI x {2 * n} MI, PG059"))
    parts.append(Usage("axi_smc", lut=sc, ff=int(FF_PER_LUT * sc),
                       rule=f"SmartConnect {2 * n} SI x 1 MI, PG247"))
    parts.append(Usage("rst_ps7_0_fclk0", lut=RESET_LUT, ff=40, rule="proc_sys_reset"))
    return Estimate(shape.board.name, shape.board.resources, parts, warnings)


def format_estimate(est: Estimate) -> str:
    """A plain-text table of the estimate (used by ``cimstack overlay info``)."""
    lines = [f"{'component':<18}{'LUT':>8}{'FF':>8}{'BRAM36':>8}{'DSP':>6}  rule"]
    for p in est.parts:
        lines.append(f"{p.name:<18}{p.lut:>8}{p.ff:>8}{p.bram36:>8.1f}{p.dsp:>6}  {p.rule}")
        for a in p.arrays:
            lines.append(f"  {a.name:<16}{'':>8}{'':>8}{a.bram36:>8.1f}{'':>6}  "
                         f"{'x'.join(map(str, a.dims))} x {a.bits} b -> {a.banks} bank(s) of "
                         f"{a.depth} words in {a.where}" + (f" ({a.lut} LUT)" if a.lut else ""))
    t, f, b = est.total(), est.fraction(), est.budget
    lines.append(f"{'total':<18}{t['lut']:>8}{t['ff']:>8}{t['bram36']:>8.1f}{t['dsp']:>6}")
    lines.append(f"{'budget ' + est.board:<18}{b.lut:>8}{b.ff:>8}{b.bram36:>8}{b.dsp:>6}")
    lines.append(f"{'used':<18}{f['lut']:>8.1%}{f['ff']:>8.1%}{f['bram36']:>8.1%}{f['dsp']:>6.0%}"
                 f"  -> {'fits' if est.fits else 'DOES NOT FIT'}")
    lines += [f"warning: {w}" for w in est.warnings]
    return "\n".join(lines)
