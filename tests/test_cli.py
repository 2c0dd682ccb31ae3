"""The command line end to end: train, export, run, verify, and clear errors."""

import json
import subprocess
import sys

import pytest


def cimstack(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "from cimstack.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_train_export_run_verify(tmp_path):
    b = tmp_path / "bundle"
    r = cimstack("train", "--epochs", "2", "--w-bits", "4", "--a-bits", "4", "--sparsity", "0.5",
                 "--out", str(b), "--checkpoint", str(tmp_path / "m.pt"))
    assert r.returncode == 0, r.stderr + r.stdout
    assert (b / "bundle.json").is_file()
    r = cimstack("export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "b2"), "--psum-bits", "3")
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads((tmp_path / "b2" / "bundle.json").read_text())["macros"]["dcim"]["psum_bits"] == 3
    r = cimstack("run", str(b), "--backend", "reference", "--json", str(tmp_path / "run.json"))
    assert r.returncode == 0, r.stderr + r.stdout
    figs = json.loads((tmp_path / "run.json").read_text())
    assert figs["images"] == 360 and figs["accuracy"] > 0.8 and figs["cycles_per_image"] > 0
    r = cimstack("verify", str(b), "--backend", "emu", "--limit", "40",
                 "--report", str(tmp_path / "ver"))
    assert r.returncode == 0, r.stderr + r.stdout
    rep = json.loads((tmp_path / "ver" / "verify.json").read_text())
    assert rep["ok"] and rep["images"] == 40 and rep["stages"]["items"] > 0
    r = cimstack("run", str(b), "--backend", "auto")
    assert r.returncode == 0 and "backend auto -> emu" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "no/such/bundle"], "bundle.json is missing"),
    (["run", ".", "--backend", "gpu"], "unknown backend 'gpu'"),
    (["train", "--w-bits", "9", "--epochs", "1"], "w_bits = 9 is out of range"),
    (["export", "missing.pt"], "no checkpoint at missing.pt"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    if "." in args:
        args = [a if a != "." else str(tmp_path) for a in args]
    r = cimstack(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in " ".join((r.stdout + r.stderr).split())
    assert "Traceback" not in r.stdout + r.stderr
