"""Published figures and the per-operation constants of the cost models.

Every constant is a :func:`~cimstack.config.knob` of a frozen dataclass, validated on
construction like the macro specs, with its unit and source in its documentation.
"calibrated" constants are the output of :mod:`cimstack.cost.calibrate` (a closed-form
fit to :data:`PAPER_POINTS`), rounded to four significant digits;
``tests/test_cost_calibration.py`` re-runs the fit and checks that the defaults here
are its result. docs/cost.md states the equations and the residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Spec, knob
from ..errors import ConfigError

IMAGINE = ("IMAGINE (Kneip et al., IEEE TCAS-AI 2025, arXiv:2412.19750), abstract: "
           "22 nm FD-SOI, 1152 x 256 charge-domain macro")
FLEXSPIM = ("FlexSpIM (Chauvaux et al., ISCAS 2025, arXiv:2410.23082): 40 nm digital "
            "CIM spiking core, 512 x 256 bits")
BNN_PYNQ = ("BNN-PYNQ (Xilinx/FINN, Umuroglu et al., FPGA 2017 overlays): CNV-W1A1 on the "
            "PYNQ-Z2, as quoted in the project's issue; not re-measured here")
MARS = ("MARS (Sie et al., IEEE TCAD 2022, arXiv:2010.12861), abstract: multi-macro "
        "SRAM CIM accelerator with block-sparse compressed CNNs")


# one DRAM figure for every family (dcim streamed weights, the spiking core's DRAM tier)
DRAM_FJ_PER_BIT = 20310.0
DRAM_SOURCE = ("1.3 nJ per 64-bit DRAM access / 64, the low end of Horowitz, "
               "'Computing's energy problem', ISSCC 2014 (45 nm)")


def _point(figure: str, value: float, unit: str, source: str, bits: int | None = None,
           **extra) -> dict:
    return {"figure": figure, "bits": bits, "value": value, "unit": unit, "source": source,
            **extra}


PAPER_POINTS: dict[str, list[dict]] = {
    "acim": [
        _point("efficiency", 0.15, "POPS/W", IMAGINE, bits=8),
        _point("efficiency", 8.0, "POPS/W", IMAGINE, bits=1),
        _point("density", 2.6, "TOPS/mm^2", IMAGINE, bits=8),
        _point("density", 154.0, "TOPS/mm^2", IMAGINE, bits=1),
        _point("memory_density", 187.0, "kB/mm^2", IMAGINE),
        _point("system_efficiency", 40.0, "TOPS/W", IMAGINE, bits=8,
               note="whole accelerator at 0.3/0.6 V"),
    ],
    "snn": [
        _point("energy_per_sop", 5.7, "pJ/SOP", FLEXSPIM, bits=8, v_bits=16, clock_mhz=75.5),
        _point("energy_per_sop", 7.2, "pJ/SOP", FLEXSPIM, bits=8, v_bits=16, clock_mhz=157.0),
        _point("bit_normalized_energy", 44.5, "fJ/SOP", FLEXSPIM, bits=8, v_bits=16,
               clock_mhz=75.5),
        _point("bit_normalized_energy", 56.3, "fJ/SOP", FLEXSPIM, bits=8, v_bits=16,
               clock_mhz=157.0),
        _point("throughput", 1.2, "GSOP/s", FLEXSPIM, bits=8, v_bits=16, clock_mhz=75.5),
        _point("throughput", 2.5, "GSOP/s", FLEXSPIM, bits=8, v_bits=16, clock_mhz=157.0),
        _point("idle_column_saving", 0.87, "fraction", FLEXSPIM),
        _point("resident_operand_gain", 0.46, "fraction", FLEXSPIM,
               note="resident operands of the per-layer policy vs weight-stationary only, "
                    "on the paper's network"),
        _point("large_system_energy_saving", 0.90, "fraction", FLEXSPIM,
               note="'up to': the paper's extrapolation to 16-18 macros with DRAM at 85-99% "
                    "input sparsity, not a measurement"),
    ],
    # a published FPGA overlay measurement, shown beside the overlay model's figures
    "fpga": [
        _point("throughput", 9150.0, "images/s", BNN_PYNQ, bits=1, network="CNV",
               board="PYNQ-Z2"),
    ],
    "dcim": [
        _point("efficiency", 52.3, "TOPS/W", MARS, network="VGG16"),
        _point("efficiency", 88.2, "TOPS/W", MARS, network="ResNet18"),
        _point("throughput", 700.0, "frames/s", MARS, dataset="CIFAR-10",
               note="lower bound ('over 700')"),
        _point("throughput", 400.0, "frames/s", MARS, dataset="CIFAR-100",
               note="lower bound ('over 400')"),
    ],
}


def paper_value(family: str, figure: str, **match) -> float:
    """The value of the one published point of ``family`` with ``figure`` and ``match``."""
    hits = [p for p in PAPER_POINTS[family] if p["figure"] == figure
            and all(p.get(k) == v for k, v in match.items())]
    if len(hits) != 1:
        raise KeyError(f"{len(hits)} published {family} points match {figure} {match}")
    return hits[0]["value"]


POSITIVE = (0.0, 1e9)


def check_count(name: str, value, meaning: str) -> None:
    """A positive integer argument of the cost functions, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} = {value!r} must be a positive integer ({meaning})")


@dataclass(frozen=True)
class AcimConstants(Spec):
    """IMAGINE charge-domain macro (22 nm FD-SOI): energy per charged bit cell and per
    SAR step, timing and area. Fit: :func:`cimstack.cost.calibrate.fit_imagine`."""

    e_cell_fj: float = knob(
        0.2024, "energy per bit cell charged per input cycle (fJ); calibrated with "
        "e_sar_step_fj on IMAGINE's macro efficiency at 1 b (8 POPS/W) and 8 b (0.15 POPS/W)",
        *POSITIVE)
    e_sar_step_fj: float = knob(
        54.86, "energy per SAR ADC bit decision (fJ); a conversion costs adc_bits steps; "
        "calibrated with e_cell_fj", *POSITIVE)
    t_input_ns: float = knob(
        18.2, "duration of one input-serial cycle (ns); calibrated with t_eval_ns on "
        "IMAGINE's macro density at 1 b (154 TOPS/mm^2) and 8 b (2.6 TOPS/mm^2)", *POSITIVE)
    t_eval_ns: float = knob(
        1.694, "fixed time per evaluation (reset and sampling, ns); the conversion overlaps "
        "the next evaluation's input cycles; calibrated with t_input_ns", *POSITIVE)
    macro_area_mm2: float = knob(
        0.1925, "macro area (mm^2): 1152 x 256 bits = 36 KiB at IMAGINE's 187 kB/mm^2 "
        "(kB read as KiB)", *POSITIVE)
    e_move_fj_per_bit: float = knob(
        142.7, "energy per operand bit moved on or off the array (fJ); calibrated so that a "
        "full 8-b evaluation with its inputs and output codes moved gives IMAGINE's "
        "system efficiency (40 TOPS/W): every system overhead is charged to operand "
        "movement", *POSITIVE)


@dataclass(frozen=True)
class DcimConstants(Spec):
    """MARS-style digital bit-serial macro: energy per active cell, per column read-out
    bit and per moved bit, clock and area. Fit: :func:`cimstack.cost.calibrate.fit_mars`
    (what is calibrated and what is assumed: docs/cost.md)."""

    e_cell_fj: float = knob(
        0.116, "energy per active bit cell per cycle (AND and its share of the column, fJ); "
        "calibrated with e_move_fj_per_bit on MARS's VGG16 (52.3 TOPS/W) and ResNet18 "
        "(88.2 TOPS/W)", *POSITIVE)
    e_read_fj: float = knob(
        0.3711, "energy per column read-out per partial-sum bit (fJ); tied to e_cell_fj by the "
        "assumed read-out share (MarsAssumptions.read_share)", *POSITIVE)
    e_move_fj_per_bit: float = knob(
        154.3, "energy per operand bit moved between the buffers and the macros (inputs, "
        "outputs, reloaded weights, fJ); calibrated with e_cell_fj", *POSITIVE)
    clock_mhz: float = knob(
        477.5, "macro clock (MHz); calibrated so that VGG16 on CIFAR-10 runs at MARS's "
        "700 frames/s", *POSITIVE)
    macro_area_mm2: float = knob(
        0.04278, "area of one rows x cols macro (mm^2): 256 x 256 bits = 8 KiB at "
        "IMAGINE's 187 kB/mm^2 (assumed: MARS publishes no area)", *POSITIVE)
    e_dram_fj_per_bit: float = knob(
        DRAM_FJ_PER_BIT, f"energy per weight bit streamed from DRAM (fJ): {DRAM_SOURCE}; "
        "not fitted and not part of the efficiency compared with MARS (docs/cost.md)",
        *POSITIVE)
    dram_gb_per_s: float = knob(
        12.8, "DRAM bandwidth for streamed weights (GB/s; assumed: one 32-bit LPDDR4-3200 "
        "channel)", 1e-3, 1e6)

    def dram_bits_per_cycle(self) -> float:
        """DRAM bits delivered per macro clock cycle."""
        return self.dram_gb_per_s * 8e3 / self.clock_mhz


@dataclass(frozen=True)
class SnnConstants(Spec):
    """FlexSpIM event core (40 nm): bit-normalized energy per synaptic operation at its
    two published operating points, idle-column standby, operand transfers."""

    e_bit_low_fj: float = knob(
        paper_value("snn", "bit_normalized_energy", clock_mhz=75.5),
        "bit-normalized energy per SOP at clock_low_mhz (fJ): FlexSpIM's 44.5 fJ "
        "(5.7 pJ at 8-b weights and 16-b membranes / 128)", *POSITIVE)
    e_bit_high_fj: float = knob(
        paper_value("snn", "bit_normalized_energy", clock_mhz=157.0),
        "bit-normalized energy per SOP at clock_high_mhz (fJ): FlexSpIM's 56.3 fJ "
        "(7.2 pJ / 128)", *POSITIVE)
    clock_low_mhz: float = knob(75.5, "clock of the low-energy operating point (FlexSpIM)",
                                *POSITIVE)
    clock_high_mhz: float = knob(157.0, "clock of the high-energy operating point "
                                 "(FlexSpIM)", *POSITIVE)
    idle_fraction: float = knob(
        1 - paper_value("snn", "idle_column_saving"), "energy of an idle (event-free) "
        "neuron slot relative to an active SOP: 1 - FlexSpIM's 87% idle-column saving",
        0.0, 1.0)
    move_ops_per_bit: float = knob(
        1.0, "energy of moving one operand bit on or off the array, in bit-normalized "
        "SOPs (assumed: one SRAM access per bit; FlexSpIM publishes no transfer energy)",
        *POSITIVE)
    e_dram_fj_per_bit: float = knob(
        DRAM_FJ_PER_BIT, f"energy per bit moved between DRAM and the macros (fJ): "
        f"{DRAM_SOURCE}; the same figure as DcimConstants (FlexSpIM publishes none)",
        *POSITIVE)

    def _rules(self) -> None:
        if self.clock_high_mhz <= self.clock_low_mhz:
            raise ConfigError(f"SnnConstants.clock_high_mhz = {self.clock_high_mhz} must be "
                              f"above clock_low_mhz = {self.clock_low_mhz}")

    def e_bit_fj(self, clock_mhz: float) -> float:
        """Bit-normalized energy per SOP at ``clock_mhz``: linear between the two
        published operating points, held at the nearer one outside them."""
        span = self.clock_high_mhz - self.clock_low_mhz
        t = min(1.0, max(0.0, (clock_mhz - self.clock_low_mhz) / span))
        return self.e_bit_low_fj + t * (self.e_bit_high_fj - self.e_bit_low_fj)


@dataclass(frozen=True)
class FpgaTiming(Spec):
    """Cycle model of the HLS kernels on the FPGA (docs/cost.md, "FPGA overlay"): one
    cycle per iteration of a pipelined (II = 1) innermost loop, plus these."""

    loop_entry_cycles: int = knob(
        2, "cycles added each time a pipelined loop is entered (fill and exit; assumed: "
        "replace with the csynth latency report)", 0, 1000)
