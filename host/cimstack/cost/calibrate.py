"""Calibration of the cost constants to the published figures (:data:`PAPER_POINTS`).

Each fit is a closed-form solve: the models are linear in their constants, so the
model is evaluated once per constant with that constant set to 1 and the others to 0
(a basis), and the published figures give a small linear system. The defaults in
:mod:`cimstack.cost.constants` are these fits rounded to four significant digits (a
test keeps them equal); :func:`calibration_table` lists published against modelled
values. FlexSpIM's constants are its published figures themselves (no fit).
:func:`held_out_mars` is the one check that is not met by construction: MARS's
constants fitted on one network predict the other network's published efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..bundle import Bundle, InputSpec, MacroLayer, Requant
from ..config import AcimSpec, DcimSpec, SnnSpec, Spec, knob
from ..errors import ConfigError
from ..mapping.tiling import blocks_pruned_per_tile, row_tile_spans
from .acim import acim_macro_curve, full_array
from .dcim import psum_read_bits
from .constants import PAPER_POINTS, AcimConstants, DcimConstants, SnnConstants, paper_value
from .network import network_cost

KIB = 1024


def sig4(x: float) -> float:
    """``x`` rounded to four significant digits (how the defaults are stored)."""
    return float(f"{x:.4g}")


def _solve(basis: list[list[float]], target: list[float]) -> list[float]:
    """Solve ``basis @ x = target`` (square) and refuse a non-physical negative root."""
    x = np.linalg.solve(np.asarray(basis, float), np.asarray(target, float))
    if (x < 0).any():
        raise ValueError(f"calibration has no positive solution: {x}")
    return [float(v) for v in x]


# ------------------------------------------------------------------------- IMAGINE

def imagine_area(rows: int, cols: int) -> float:
    """Area (mm^2) of a rows x cols bit array at IMAGINE's memory density (kB as KiB)."""
    return rows * cols / 8 / KIB / paper_value("acim", "memory_density")


def full_array_moved_bits(bits: int, spec: AcimSpec) -> int:
    """Operand bits of one full-array evaluation: the inputs in, one code per channel out."""
    return spec.rows * bits + (spec.cols // bits) * bits


def _basis(unit, names: tuple, key: str, bits: tuple, spec: AcimSpec) -> list[list[float]]:
    """``key`` of a full-array evaluation at each precision in ``bits`` with one of the
    constants ``names`` set to 1 in turn (the others as in ``unit``)."""
    return [[full_array(r, spec, replace(unit, **{name: 1.0}))[key] for name in names]
            for r in bits]


def fit_imagine(spec: AcimSpec | None = None) -> AcimConstants:
    """IMAGINE: e_cell and e_sar_step from the efficiency at 1 b and 8 b; t_eval and
    t_input from the density at 1 b and 8 b (macro area from the 187 kB/mm^2 memory
    density); e_move from the 8-b system efficiency. Full array, one conversion per
    channel, x_bits = w_bits = adc_bits = r."""
    spec = spec or AcimSpec()
    area = imagine_area(spec.rows, spec.cols)
    bits = (1, 8)
    unit = AcimConstants(e_cell_fj=0.0, e_sar_step_fj=0.0, t_input_ns=0.0, t_eval_ns=0.0,
                         macro_area_mm2=area, e_move_fj_per_bit=0.0)
    ops = {r: full_array(r, spec, unit)["ops"] for r in bits}
    e_cell, e_sar = _solve(
        _basis(unit, ("e_cell_fj", "e_sar_step_fj"), "energy_pj", bits, spec),
        [ops[r] / paper_value("acim", "efficiency", bits=r) * 1e-3 for r in bits])
    t_eval, t_input = _solve(
        _basis(unit, ("t_eval_ns", "t_input_ns"), "latency_s", bits, spec),
        [ops[r] / (paper_value("acim", "density", bits=r) * 1e12 * area) for r in bits])
    fitted = replace(unit, e_cell_fj=e_cell, e_sar_step_fj=e_sar, t_input_ns=t_input,
                     t_eval_ns=t_eval)
    r = 8
    system_pj = ops[r] / paper_value("acim", "system_efficiency", bits=r)
    e_move = (system_pj - full_array(r, spec, fitted)["energy_pj"]) \
        / full_array_moved_bits(r, spec) * 1e3
    return replace(fitted, e_move_fj_per_bit=e_move)


# ---------------------------------------------------------------------------- MARS

@dataclass(frozen=True)
class MarsAssumptions(Spec):
    """What the MARS calibration assumes where the paper's abstract is silent."""

    sparsity: float = knob(0.5, "block sparsity of both networks (each channel keeps the "
                           "same number of blocks in every row tile, random positions)",
                           0.0, 0.95)
    w_bits: int = knob(8, "weight bits of both networks", 1, 8)
    x_bits: int = knob(8, "activation bits of both networks", 1, 8)
    read_share: float = knob(0.5, "share of the column read-out in the energy of one kept "
                             "block's cycle at the DcimSpec defaults", 0.01, 0.99)
    fps_network: str = knob("VGG16", "network behind the 700 frames/s on CIFAR-10",
                            choices=("VGG16", "ResNet18"))
    seed: int = knob(0, "seed of the pruning pattern", 0, 2**32 - 1)


VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M")


def _vgg16_convs() -> list[tuple]:
    """(name, C, N, kernel, stride, padding, input size) of VGG16 for 32 x 32 images."""
    convs, c, size = [], 3, 32
    for v in VGG16:
        if v == "M":
            size //= 2
        else:
            convs.append((f"conv{len(convs) + 1}", c, v, 3, 1, 1, size))
            c = v
    return convs + [("fc", 512, 10, 1, 1, 0, 1)]


def _resnet18_convs() -> list[tuple]:
    """ResNet18 for 32 x 32 images: stem, four stages of two basic blocks (1x1 stride-2
    shortcut convolutions where the width doubles), the classifier."""
    convs, c, size = [("stem", 3, 64, 3, 1, 1, 32)], 64, 32
    for stage, n in enumerate((64, 128, 256, 512), start=1):
        for block in (1, 2):
            stride = 2 if stage > 1 and block == 1 else 1
            name = f"s{stage}b{block}"
            convs.append((f"{name}a", c, n, 3, stride, 1, size))
            if stride == 2:
                convs.append((f"{name}short", c, n, 1, 2, 0, size))
                size //= 2
            convs.append((f"{name}b", n, n, 3, 1, 1, size))
            c = n
    return convs + [("fc", 512, 10, 1, 1, 0, 1)]


CIFAR_NETWORKS = {"VGG16": _vgg16_convs, "ResNet18": _resnet18_convs}


def _balanced_blocks(rng, n: int, k: int, spec: DcimSpec, sparsity: float) -> np.ndarray:
    """Kept-block mask [n, groups]: in every row tile each channel keeps the same number
    of blocks, as many as ``quant/prune.py`` keeps (``blocks_pruned_per_tile``), at
    random positions, so the tiling model's cycle saving equals the sparsity."""
    mask = np.zeros((n, -(-k // spec.rows_on)), bool)
    drops = blocks_pruned_per_tile(k, spec.rows_on, sparsity, spec.rows)
    for (g0, width), drop in zip(row_tile_spans(k, spec.rows_on, spec.rows), drops):
        order = rng.random((n, width)).argsort(axis=1)[:, :width - drop]
        np.put_along_axis(mask[:, g0:g0 + width], order, True, axis=1)
    return mask


def cifar_network(name: str, assume: MarsAssumptions | None = None,
                  spec: DcimSpec | None = None) -> Bundle:
    """The layer shapes of ``name`` (VGG16 or ResNet18 on CIFAR-10) as a dcim bundle with
    block pruning balanced per channel and row tile: the cost models need the shapes and
    the kept blocks, not trained values (every kept weight is 1). Not a runnable network
    (no residual adds)."""
    assume, spec = assume or MarsAssumptions(), spec or DcimSpec()
    rng = np.random.default_rng(assume.seed)
    layers = []
    for lname, c, n, k, stride, pad, size in CIFAR_NETWORKS[name]():
        kk = c * k * k
        mask = _balanced_blocks(rng, n, kk, spec, assume.sparsity)
        w = np.repeat(mask, spec.rows_on, axis=1)[:, :kk].astype(np.int8)
        out = (size + 2 * pad - k) // stride + 1
        last = lname == "fc"
        rq = Requant(np.ones(n, np.int64), np.zeros(n, np.int64), 0,
                     -(2**31) if last else 0, 2**31 - 1 if last else 255)
        layers.append(MacroLayer(
            lname, "linear" if last else "conv2d",
            w if last else w.reshape(n, c, k, k), assume.w_bits, assume.x_bits, rq,
            (c,) if last else (c, size, size), (n,) if last else (n, out, out),
            stride=stride, padding=pad))
    return Bundle(f"{name}-cifar10", InputSpec((3, 32, 32), assume.x_bits, 1 / 255),
                  layers, spec)


@lru_cache(maxsize=4)
def _mars_networks(assume: MarsAssumptions) -> dict:
    return {name: cifar_network(name, assume) for name in CIFAR_NETWORKS}


def _read_ratio(spec: DcimSpec, assume: MarsAssumptions) -> float:
    """``e_read / e_cell`` that gives the column read-out ``read_share`` of a kept
    block's cycle energy (``rows_on`` cells, one read of ``psum_read_bits``)."""
    return assume.read_share / (1 - assume.read_share) * spec.rows_on / psum_read_bits(spec)


def fit_mars(assume: MarsAssumptions | None = None) -> DcimConstants:
    """MARS: e_cell (with e_read tied by ``read_share``) and e_move from the TOPS/W of
    VGG16 and ResNet18 (they differ in operations per weight, so in the share of the
    weight reload); the clock from 700 frames/s of ``fps_network``."""
    assume = assume or MarsAssumptions()
    nets = _mars_networks(assume)
    spec = next(iter(nets.values())).dcim
    ratio = _read_ratio(spec, assume)
    unit = DcimConstants(e_cell_fj=0.0, e_read_fj=0.0, e_move_fj_per_bit=0.0,
                         macro_area_mm2=imagine_area(spec.rows, spec.cols))
    per_cell = replace(unit, e_cell_fj=1.0, e_read_fj=ratio)
    per_move = replace(unit, e_move_fj_per_bit=1.0)
    names = ("VGG16", "ResNet18")
    costs = {n: network_cost(nets[n], dcim=unit).totals for n in names}
    basis = [[network_cost(nets[n], dcim=c).totals["energy_pj"] for c in (per_cell, per_move)]
             for n in names]
    target = [costs[n]["ops"] / paper_value("dcim", "efficiency", network=n) for n in names]
    e_cell, e_move = _solve(basis, target)
    fps = paper_value("dcim", "throughput", dataset="CIFAR-10")
    clock = costs[assume.fps_network]["cycles"] * fps * 1e-6
    return replace(unit, e_cell_fj=e_cell, e_read_fj=e_cell * ratio, e_move_fj_per_bit=e_move,
                   clock_mhz=clock)


def held_out_mars(fit_on: str, assume: MarsAssumptions | None = None,
                  batch: int = 1) -> dict:
    """Fit MARS's constants on one network and predict the other (a held-out check,
    unlike :func:`fit_mars`, which fits both networks and so meets both by construction).

    One published efficiency fixes one energy constant: ``e_cell`` (``e_read`` tied by
    ``read_share``) is fitted on ``fit_on``'s TOPS/W, with ``e_move`` taken from the
    IMAGINE fit (:class:`AcimConstants`, a different paper, so not from MARS); the
    clock is fitted on 700 frames/s for ``fit_on``. ``batch``: images per weight reload
    (a huge batch is a model in which the weights stay resident). A ``ValueError`` when
    no positive ``e_cell`` meets ``fit_on``'s efficiency (movement alone costs more).
    Returns the fitted constants, the other network's predicted TOPS/W and frames/s
    and their errors against the published figures."""
    if fit_on not in CIFAR_NETWORKS:
        raise ConfigError(f"fit_on = {fit_on!r} must be one of {', '.join(CIFAR_NETWORKS)}")
    assume = assume or MarsAssumptions()
    nets = _mars_networks(assume)
    other = next(name for name in nets if name != fit_on)
    spec = nets[fit_on].dcim
    ratio = _read_ratio(spec, assume)
    move_only = DcimConstants(e_cell_fj=0.0, e_read_fj=0.0,
                              e_move_fj_per_bit=AcimConstants().e_move_fj_per_bit,
                              macro_area_mm2=imagine_area(spec.rows, spec.cols))
    per_cell = replace(move_only, e_cell_fj=1.0, e_read_fj=ratio, e_move_fj_per_bit=0.0)
    moves = network_cost(nets[fit_on], batch=batch, dcim=move_only).totals
    cells = network_cost(nets[fit_on], batch=batch, dcim=per_cell).totals["energy_pj"]
    target = moves["ops"] / paper_value("dcim", "efficiency", network=fit_on)
    (e_cell,) = _solve([[cells]], [target - moves["energy_pj"]])
    fps = paper_value("dcim", "throughput", dataset="CIFAR-10")
    fitted = replace(move_only, e_cell_fj=e_cell, e_read_fj=e_cell * ratio,
                     clock_mhz=moves["cycles"] * fps * 1e-6)
    t = network_cost(nets[other], batch=batch, dcim=fitted).totals
    eff = paper_value("dcim", "efficiency", network=other)
    return {"fit_on": fit_on, "predicted": other, "constants": fitted.to_dict(),
            "tops_per_w": t["tops_per_w"], "published_tops_per_w": eff,
            "tops_per_w_error": t["tops_per_w"] / eff - 1,
            "images_per_s": t["images_per_s"], "published_images_per_s": fps,
            "images_per_s_error": t["images_per_s"] / fps - 1}


def held_out_table(assume: MarsAssumptions | None = None) -> list[dict]:
    """:func:`held_out_mars` both ways as rows of :func:`calibration_table`'s form
    (role "held-out"); the frames/s rows compare with the published lower bound
    ("over 700")."""
    rows = []
    for fit_on in CIFAR_NETWORKS:
        h = held_out_mars(fit_on, assume)
        where = f"{h['predicted']} (fit: {fit_on})"
        rows.append(_row("dcim", "efficiency", where, h["published_tops_per_w"],
                         h["tops_per_w"], "TOPS/W", "held-out"))
        rows.append(_row("dcim", "throughput", f"{where} CIFAR-10",
                         h["published_images_per_s"], h["images_per_s"], "frames/s",
                         "held-out"))
    return rows


# ----------------------------------------------------------------------- residuals

def _row(family: str, figure: str, where: str, published: float, model: float,
         unit: str, role: str) -> dict:
    return {"family": family, "figure": figure, "at": where, "published": published,
            "model": model, "unit": unit, "error": model / published - 1, "role": role}


def calibration_table(acim: AcimConstants | None = None, dcim: DcimConstants | None = None,
                      snn: SnnConstants | None = None,
                      assume: MarsAssumptions | None = None) -> list[dict]:
    """Published figure against the model with the given (default) constants, one row
    per published point the models can compute; ``role`` says whether the point was
    fitted or is a check."""
    acim, dcim, snn = acim or AcimConstants(), dcim or DcimConstants(), snn or SnnConstants()
    assume = assume or MarsAssumptions()
    rows = []
    curve = {p["bits"]: p for p in acim_macro_curve((1, 8), acim)}
    for p in PAPER_POINTS["acim"]:
        if p["figure"] in ("efficiency", "density"):
            key = "pops_per_w" if p["figure"] == "efficiency" else "tops_per_mm2"
            rows.append(_row("acim", p["figure"], f"{p['bits']} b", p["value"],
                             curve[p["bits"]][key], p["unit"], "fitted"))
    p = next(p for p in PAPER_POINTS["acim"] if p["figure"] == "system_efficiency")
    ev = full_array(p["bits"], AcimSpec(), acim)
    moved = full_array_moved_bits(p["bits"], AcimSpec())
    system = ev["ops"] / (ev["energy_pj"] + moved * acim.e_move_fj_per_bit * 1e-3)
    rows.append(_row("acim", p["figure"], f"{p['bits']} b", p["value"], system, p["unit"],
                     "fitted"))
    nets = _mars_networks(assume)
    for name, bundle in nets.items():
        t = network_cost(bundle, dcim=dcim).totals
        rows.append(_row("dcim", "efficiency", name, paper_value("dcim", "efficiency",
                                                                 network=name),
                         t["tops_per_w"], "TOPS/W", "fitted"))
        if name == assume.fps_network:
            rows.append(_row("dcim", "throughput", f"{name} CIFAR-10",
                             paper_value("dcim", "throughput", dataset="CIFAR-10"),
                             t["images_per_s"], "frames/s", "fitted"))
    for p in PAPER_POINTS["snn"]:
        f, where = p.get("clock_mhz"), f"{p.get('clock_mhz')} MHz"
        if p["figure"] == "energy_per_sop":
            model = snn.e_bit_fj(f) * p["bits"] * p["v_bits"] * 1e-3
        elif p["figure"] == "throughput":
            model = SnnSpec().cols // p["v_bits"] * f * 1e-3
        else:
            continue
        rows.append(_row("snn", p["figure"], where, p["value"], model, p["unit"],
                         "published constant" if p["figure"] == "energy_per_sop" else "check"))
    return rows
