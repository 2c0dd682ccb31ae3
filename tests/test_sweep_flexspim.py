"""FlexSpIM's network in `cimstack sweep` (the `flexspim` points: the dataflow model of
`cimstack.cost.snn.policy_study`, no training) and its section in `cimstack report`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cimstack.cost.fpga import snn_fpga_cost
from cimstack.cost.snn import event_run, policy_study
from cimstack.errors import ConfigError
from cimstack.mapping.flexspim import POLICIES
from cimstack.models.flexspim import flexspim_net
from cimstack.report.build import write_report
from cimstack.sweep import expand, run_sweep
from cimstack.sweep.tasks import evaluate_point

# 16 points, 1 network (2 x 8 x 8 input: seconds)
GRID = {"flexspim": {"downsample": 16, "macros": [1, 2], "policy": list(POLICIES),
                     "input_sparsity": [0.9, 0.99], "steps": 2}}
NET = flexspim_net(16)


def _study(net, sparsity, macros, policy, samples, steps, seed) -> dict:
    """The row of ``policy_study`` for one point."""
    rows = policy_study(net, [sparsity], [macros], samples, steps, seed)
    return next(r for r in rows if r["policy"] == policy)


def _same(point: dict, layers: list, row: dict, samples: int) -> None:
    """A sweep point's figures (per sample) and layer rows equal the study's row."""
    assert point["resident_bits"] == row["resident_bits"]
    assert point["resident_vs_ws"] == row["resident_vs_ws"]
    assert point["dram_bits"] == row["dram_bits_per_sample"]
    assert point["dram_vs_ws"] == row["dram_vs_ws"]
    assert point["energy_pj"] == row["energy_pj_per_sample"]
    assert point["energy_vs_ws"] == row["energy_vs_ws"]
    assert [(r["layer"], r["dataflow"], r["resident"], r["stationary_bits"], r["rows"])
            for r in layers] == [(l["name"], l["dataflow"], l["resident"],
                                  l["stationary_bits"], l["rows"])
                                 for l in row["plan"]["layers"]]
    assert [r["dram_bits"] * samples for r in layers] == pytest.approx(
        [l["dram_bits"] for l in row["plan"]["layers"]])
    assert [r["spike_rate"] for r in layers] == [row["rates"][r["layer"]] for r in layers]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("flexspim") / "sweep"
    return run_sweep(GRID, out, workers=0)


# ------------------------------------------------------------------------------ sweep

@settings(max_examples=8, deadline=None)
@given(macros=st.integers(1, 6), policy=st.sampled_from(POLICIES),
       sparsity=st.floats(0.0, 1.0), samples=st.integers(1, 2), seed=st.integers(0, 9))
@example(macros=1, policy="hs-min", sparsity=1.0, samples=1, seed=0)     # no input event
@example(macros=1, policy="min-traffic", sparsity=0.0, samples=2, seed=0)
@example(macros=6, policy="os", sparsity=0.85, samples=1, seed=3)
def test_a_point_is_the_policy_study_row(macros, policy, sparsity, samples, seed):
    params = {"macro": "flexspim", "w_bits": 8, "macros": macros, "policy": policy,
              "input_sparsity": sparsity, "downsample": 16, "steps": 2, "samples": samples,
              "seed": seed}
    got = evaluate_point(params, NET, {})
    _same(got["metrics"], got["layers"],
          _study(NET, sparsity, macros, policy, samples, 2, seed), samples)
    # the snn kernel on the PYNQ-Z2 overlay, for the same events
    fpga = snn_fpga_cost(NET, event_run(NET, sparsity, samples, 2, seed), samples)
    assert got["metrics"]["fpga_samples_per_s"] == fpga["images_per_s"] > 0
    assert got["metrics"]["fpga_cycles"] == fpga["cycles_per_image"]


def test_sweep_rows_files_and_resume(swept):
    assert len(swept.rows) == 16 and not swept.failed and swept.models_trained == 1
    points = json.loads(swept.results_json.read_text())["points"]
    for p in points:            # the network is built from the point's seed, as the bench
        _same(p, p["layers"], _study(NET, p["input_sparsity"], p["macros"], p["policy"],
                                     p["samples"], p["steps"], p["seed"]), p["samples"])
    with open(swept.results_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["macro"] for r in rows} == {"flexspim"} and rows[0]["accuracy"] == ""
    assert float(rows[0]["dram_bits"]) == points[0]["dram_bits"]
    with open(swept.layers_csv, newline="") as fh:
        layers = list(csv.DictReader(fh))
    assert len(layers) == 16 * 9 and {"dataflow", "resident", "dram_bits"} <= set(layers[0])
    again = run_sweep(GRID, swept.out, workers=0)
    assert (again.skipped, again.computed, again.models_trained) == (16, 0, 0)
    assert again.rows == swept.rows


@pytest.mark.parametrize("grid, message", [
    ({"flexspim": {"polcy": "ws"}}, ("grid [flexspim]: unknown knob(s) ['polcy']; valid "
                                     "knobs: w_bits (8..8), macros (1..4096), policy "
                                     "(hs-min|ws|os|")),
    ({"flexspim": {"policy": "wos"}}, "choose one of ['hs-min', 'ws', 'os', 'min-traffic']"),
    ({"flexspim": {"input_sparsity": 1.5}}, "input_sparsity = 1.5 is out of range"),
    ({"flexspim": {"downsample": 3}}, "downsample = 3 is not allowed: choose one of [1, 2"),
    ({"flexspim": {"macros": 0}}, "macros = 0 is out of range: allowed [1, 4096]"),
    ({"w_bits": [8, 4], "flexspim": {}, "snn": {}},
     "grid [flexspim]: FlexSpimPoint.w_bits = 4 is out of range: allowed [8, 8]"),
])
def test_bad_flexspim_grid_is_one_line(grid, message):
    with pytest.raises(ConfigError) as err:
        expand(grid)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_top_level_knobs_reach_the_flexspim_table():
    points = expand({"seed": [0, 1], "w_bits": 8, "flexspim": {"macros": 2}, "snn": {}})
    assert sorted((p.macro, p.seed, p.w_bits) for p in points) == [
        ("flexspim", 0, 8), ("flexspim", 1, 8), ("snn", 0, 8), ("snn", 1, 8)]


def test_sweep_command_rejects_an_unknown_knob_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "from cimstack.cli import main; main()", "sweep", "--set",
         "macro=flexspim", "--set", "polcy=ws", "--out", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120, check=False)
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert lines[0].startswith("error: --set polcy: no selected macro (flexspim)")
    assert not (tmp_path / "s").exists()


# ----------------------------------------------------------------------------- report

def test_report_section_with_figure_only_when_the_sweep_has_flexspim_points(swept, tmp_path):
    rep = write_report(swept.out, tmp_path / "report")
    section = next(s for s in rep.sections if s.key == "flexspim")
    assert section.status == "complete" and (rep.out / section.figure).is_file()
    layer_table, compared, paper = section.tables
    assert len(layer_table.rows) == len(POLICIES) * 9 and len(compared.rows) == 16
    assert paper.rows[0][1] == "+46%" and paper.rows[1][2] == "not in this sweep"
    assert "the model's" in section.caption and "flexspim" in (rep.out / "report.md").read_text()

    other = tmp_path / "other"
    other.mkdir()
    doc = json.loads(swept.results_json.read_text())
    (other / "results.json").write_text(json.dumps({**doc, "points": []}))
    rep = write_report(other, tmp_path / "report2")
    assert "flexspim" not in {s.key for s in rep.sections}
    assert not (rep.out / "figures" / "flexspim.png").exists()
