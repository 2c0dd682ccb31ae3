"""The analog study: small sweeps write their CSV and PNG files; the CLI sub-app."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from cimstack.study import study_app
from cimstack.study.analog import run_analog_study


def test_enob_part_writes_csv_and_png(tmp_path):
    summary = run_analog_study(tmp_path, ["enob"], quick=True)
    rows = list(csv.DictReader((tmp_path / "enob.csv").open()))
    assert len(rows) == 24 and {r["config"] for r in rows} == {"fixed", "adaptive",
                                                                "adaptive+abn"}
    assert (tmp_path / "enob.png").stat().st_size > 1000
    assert abs(summary["enob"]["recovered_bits_at"][8] - 3.0) < 0.5


@pytest.mark.slow
def test_accuracy_parts_quick(tmp_path):
    steps = []
    summary = run_analog_study(tmp_path, ["sigma", "bits"], quick=True, epochs=1,
                               float_epochs=2, bits=[3], sigmas=[0, 2], threads=1,
                               progress=lambda d, n=1: steps.append(d))
    for name in ("sigma", "adc_bits"):
        assert (tmp_path / f"{name}.csv").is_file() and (tmp_path / f"{name}.png").is_file()
    rows = list(csv.DictReader((tmp_path / "sigma.csv").open()))
    assert {r["model"] for r in rows} == {"aware", "unaware"}
    assert set(summary["bits"]) == {3}
    assert len(steps) >= 6


def test_cli(tmp_path):
    result = CliRunner().invoke(study_app, ["analog", "--out", str(tmp_path), "--parts",
                                            "enob", "--quick"])
    assert result.exit_code == 0, result.output
    assert "bits recovered by split + ABN" in result.output
    bad = CliRunner().invoke(study_app, ["analog", "--out", str(tmp_path), "--parts", "nope"])
    assert bad.exit_code != 0 and "unknown study part" in str(bad.exception)   # main() prints it
