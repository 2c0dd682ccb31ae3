"""The command line end to end: train, export, run, verify, and clear errors."""

import json
import subprocess
import sys

import pytest
from conftest import console_output


def cimstack(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "from cimstack.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_train_export_run_verify(tmp_path):
    """train in its own process (the installed entry point), then export, run and
    verify in this one (the same commands, without a second torch start-up each)."""
    b = tmp_path / "bundle"
    r = cimstack("train", "--epochs", "2", "--w-bits", "4", "--a-bits", "4", "--sparsity", "0.5",
                 "--out", str(b), "--checkpoint", str(tmp_path / "m.pt"))
    assert r.returncode == 0, r.stderr + r.stdout
    assert (b / "bundle.json").is_file()
    code, out = _in_process(["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "b2"),
                             "--psum-bits", "3"], tmp_path)
    assert code == 0, out
    assert json.loads((tmp_path / "b2" / "bundle.json").read_text())["macros"]["dcim"]["psum_bits"] == 3
    code, out = _in_process(["run", str(b), "--backend", "reference", "--json",
                             str(tmp_path / "run.json")], tmp_path)
    assert code == 0, out
    figs = json.loads((tmp_path / "run.json").read_text())
    assert figs["images"] == 360 and figs["accuracy"] > 0.8 and figs["cycles_per_image"] > 0
    code, out = _in_process(["verify", str(b), "--backend", "emu", "--limit", "40",
                             "--report", str(tmp_path / "ver")], tmp_path)
    assert code == 0, out
    rep = json.loads((tmp_path / "ver" / "verify.json").read_text())
    assert rep["ok"] and rep["images"] == 40 and rep["stages"]["items"] > 0
    code, out = _in_process(["run", str(b), "--backend", "auto"], tmp_path)
    assert code == 0 and "backend auto -> emu" in " ".join(out.split()), out


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


# --------------------------------------------------------------- data, SNN bundles, progress

def _in_process(args, cwd):
    from badcase import run_cli
    return run_cli(args, cwd)


def test_data_npz_images_with_labels_and_one_channel_shape(tmp_path):
    import numpy as np
    from cimstack.bundle import save_bundle
    from conftest import digits_like_bundle
    save_bundle(digits_like_bundle(), tmp_path / "b")
    x = np.random.default_rng(0).random((7, 8, 8))            # (N, H, W), float64
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 3, 4, 5, 6], np.uint8))
    code, out = _in_process(["run", "b", "--data", "d.npz", "--json", "r.json"], tmp_path)
    assert code == 0, out
    figs = json.loads((tmp_path / "r.json").read_text())
    assert figs["images"] == 7 and 0.0 <= figs["accuracy"] <= 1.0


def test_data_half_a_step_outside_the_range_is_allowed():
    """The quantizer clips values up to twice its range (as a trained model's does);
    beyond that, or below 0 by more than half a step, the data are scaled wrongly."""
    import numpy as np
    from cimstack.data import check_images
    from cimstack.errors import ConfigError
    from conftest import digits_like_bundle
    b = digits_like_bundle()                                   # 8 bits, scale 1/255: 0..1
    x = np.zeros((1, 1, 8, 8))
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 2 + 0.4 / 255, -0.4 / 255
    check_images(b, x)
    x[0, 0, 0, 0] = 2 + 0.6 / 255
    with pytest.raises(ConfigError, match="beyond twice 0..1"):
        check_images(b, x)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 1, -0.6 / 255
    with pytest.raises(ConfigError, match="unsigned: undo a mean/std"):
        check_images(b, x)


def test_snn_bundle_run_and_verify(tmp_path):
    from bad_cases_data import _snn, _snn_net, nmnist_folder
    _snn(tmp_path, _snn_net(), nmnist_folder(tmp_path / "n", labels=(0, 1, 2, 3)))
    code, out = _in_process(["run", "s", "--data", "n", "--json", "r.json"], tmp_path)
    assert code == 0, out
    figs = json.loads((tmp_path / "r.json").read_text())
    assert figs["backend"] == "reference" and figs["samples"] == 4 and figs["sops"] > 0
    code, out = _in_process(["verify", "s", "--data", "n", "--limit", "2", "--report", "v"],
                            tmp_path)
    assert code == 0, out
    rep = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert rep["ok"] and rep["backend"] == "emu" and rep["images"] == 2
    assert [l["name"] for l in rep["layers"]] == ["conv1", "fc"]
    assert "BIT-EXACT" in (tmp_path / "v" / "verify.txt").read_text()


def test_snn_demo_on_a_bundle_says_where_it_wrote_and_refreshes_the_report(tmp_path):
    from bad_cases_data import _snn, _snn_net, nmnist_folder
    _snn(tmp_path, _snn_net(), nmnist_folder(tmp_path / "n"))
    code, out = _in_process(["snn", "demo", "--bundle", "s", "--data", "n", "--out", "o",
                             "--backend", "csim", "--verify-samples", "2"], tmp_path)
    assert code == 0, out
    assert "figures: o/snn_demo.json" in out and "report: o/report/index.html" in out
    assert (tmp_path / "o" / "report" / "index.html").is_file()


def test_long_step_prints_progress_lines_when_piped():
    import time
    from cimstack.report.console import long_step
    with console_output() as buf:                              # not a terminal
        with long_step("crunching", interval=0.05) as step:
            time.sleep(0.2)
            step.update("crunching: half way")
            time.sleep(0.2)
        lines_at_exit = buf.getvalue().count("\n")
        time.sleep(0.15)
    out = buf.getvalue()
    assert "crunching ... " in out and "crunching: half way ... " in out
    assert out.count("\n") == lines_at_exit                   # stopped with the step


def test_long_step_is_silent_for_a_short_step():
    from cimstack.report.console import long_step
    with console_output() as buf:
        with long_step("quick", interval=5.0):
            pass
    assert buf.getvalue() == ""


def _small_bundle(folder, shape=(1, 4, 4)):
    """A flatten + fc bundle whose input is not the digits' 1x8x8."""
    import numpy as np
    from conftest import random_requant, random_weight

    from cimstack.bundle import Bundle, FlattenLayer, InputSpec, MacroLayer, save_bundle
    rng = np.random.default_rng(3)
    k = int(np.prod(shape))
    layers = [FlattenLayer("flatten", shape, (k,)),
              MacroLayer("fc", "linear", random_weight(rng, (10, k), 8), 8, 8,
                         random_requant(rng, 10), (k,), (10,))]
    return save_bundle(Bundle("small", InputSpec(shape, 8, 1 / 255), layers), folder)


def test_a_bundle_without_digits_input_runs_and_verifies_on_random_images(tmp_path):
    from badcase import run_cli
    _small_bundle(tmp_path / "b")
    code, out = run_cli(["run", "b", "--json", "run.json"], tmp_path)
    assert code == 0, out
    assert "64 seeded random images (seed 0)" in " ".join(out.split())
    figs = json.loads((tmp_path / "run.json").read_text())
    assert figs["images"] == 64 and "accuracy" not in figs
    code, out = run_cli(["verify", "b", "--backend", "emu", "--random", "7",
                         "--report", "v"], tmp_path)
    assert code == 0, out
    rep = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert rep["ok"] and rep["images"] == 7


def test_random_images_cover_the_quantizer_codes_and_are_seeded(tmp_path):
    import numpy as np

    from cimstack.bundle import load_bundle
    from cimstack.data import random_images
    from cimstack.ref.network import quantize_input
    b = load_bundle(_small_bundle(tmp_path / "b"))
    x = random_images(b, 200, seed=5)
    codes = quantize_input(b, x)
    assert np.array_equal(x, random_images(b, 200, seed=5))
    assert not np.array_equal(x, random_images(b, 200, seed=6))
    assert np.allclose(codes * b.input.scale, x, atol=1e-6)        # exactly the codes
    assert codes.min() == 0 and codes.max() == 255                 # the whole range
