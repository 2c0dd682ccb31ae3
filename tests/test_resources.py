"""The overlay's resource estimate follows its stated rule and fits the xc7z020."""

from __future__ import annotations

import dataclasses
import math

from typer.testing import CliRunner

from cimstack.hw.resources import _map_array, estimate, format_estimate, kernel_arrays
from cimstack.overlay_shape import overlay_shape

SHAPE = overlay_shape("pynq-z2")


def test_budget_comes_from_the_board_facts():
    est = estimate(SHAPE)
    b = SHAPE.board.resources
    assert (est.budget.lut, est.budget.bram36, est.budget.dsp) == (b.lut, b.bram36, b.dsp)
    assert (b.lut, b.ff, b.bram36, b.dsp) == (53200, 106400, 140, 220)   # xc7z020


def test_overlay_fits_the_xc7z020():
    est = estimate(SHAPE)
    assert est.fits, format_estimate(est)
    names = {p.name for p in est.parts}
    for slot in SHAPE.slots:
        assert {slot.ip_name, slot.dma.name} <= names
    assert est.total()["bram36"] > 0 and est.total()["dsp"] > 0


def test_weight_memory_by_the_rule():
    """w_col[LANES][MAX_N * MAX_W_BITS / LANES * MAX_K / 64] of u64, partitioned
    completely on dim 1: 16 banks (one per lane) of 1152 words of 64 bits; a RAMB18
    holds 512x36, so each bank takes 2 * ceil(depth/512) RAMB18."""
    dcim = SHAPE.slot("dcim").kernel
    arrays = {a.name: a for a in kernel_arrays(dcim)}
    w = arrays["w_col"]
    depth = dcim.capacity["MAX_N"] * 8 // 16 * dcim.capacity["MAX_K"] // 64
    assert (w.banks, w.depth, w.bits) == (16, depth, 64)
    assert w.bram36 == 16 * 2 * math.ceil(depth / 512) / 2


def test_small_arrays_go_to_lutram():
    a = _map_array("tiny", (8,), 32, 1, 8)
    assert a.bram36 == 0 and a.lut == 32
    b = _map_array("deep", (4096,), 8, 1, 4096)
    assert b.bram36 == 1.0            # 4096 x 8 -> 2 RAMB18 at 2Kx9 -> 1 BRAM36


def test_rule_is_generic_over_declared_kernels(tmp_path):
    """A kernel the estimate has never seen: its arrays come from its HLS sources."""
    (tmp_path / "boards").mkdir()
    src = tmp_path / "hls" / "toy"
    src.mkdir(parents=True)
    (src / "toy_top.h").write_text("const unsigned DEPTH = 4096;\nconst unsigned LANES = 4;\n")
    (src / "toy_top.cpp").write_text(
        "static ap_uint<72> mem[LANES][DEPTH];\n"
        "void toy_top() {\n#pragma HLS ARRAY_PARTITION variable = mem dim = 1 complete\n}\n")
    kernel = dataclasses.replace(SHAPE.slots[0].kernel, name="toy", top="toy_top")
    slot = dataclasses.replace(SHAPE.slots[0], kernel=kernel, ip_name="toy_0")
    est = estimate(dataclasses.replace(SHAPE, slots=(slot,)), root=tmp_path)
    toy = next(p for p in est.parts if p.name == "toy_0")
    assert toy.bram36 == 4 * (2 * 8) / 2      # 4 banks x ceil(72/36)*ceil(4096/512) RAMB18
    assert est.warnings and "toy" in est.warnings[0]


def test_overlay_too_big_is_reported():
    s = SHAPE.slots[0]
    many = tuple(dataclasses.replace(s, ip_name=f"dcim_{i}") for i in range(4))
    est = estimate(dataclasses.replace(SHAPE, slots=many))
    assert not est.fits and "DOES NOT FIT" in format_estimate(est)


def test_overlay_info_cli_prints_estimate_and_budget():
    from cimstack.deploy.cli import overlay_app
    r = CliRunner().invoke(overlay_app, ["info"])
    assert r.exit_code == 0, r.output
    assert "budget pynq-z2" in r.output and "fits" in r.output
    for slot in SHAPE.slots:
        assert slot.kernel.vlnv in r.output and f"0x{slot.base:08X}" in r.output
