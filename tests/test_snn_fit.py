"""``--fit crop|downsample``: event data of a larger sensor (DVS128 Gesture, 128x128)
moved onto an SNN bundle's smaller input by ``cimstack run`` and ``cimstack snn verify``.

Two events of one gesture, at (64, 64) and (100, 20) on the 128x128 sensor, onto a
32x32 input: ``crop`` keeps the centre window (offset 48), so the first lands on
(16, 16) and the second (x = 52) falls outside; ``downsample`` divides by 4, so they
land on (16, 16) and (25, 5)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cimstack.bundle import save_bundle
from cimstack.cli import app
from cimstack.config import SnnSpec
from cimstack.data import load_events
from cimstack.errors import ConfigError
from cimstack.events import encode_aedat, make_events
from cimstack.ref.snn import SnnLayer, SnnNet
from cimstack.snn_bundle import save_snn_bundle

EVENTS = make_events([64, 100], [64, 20], [100, 200], [1, 0])     # x, y, t (us), p


@pytest.fixture
def gesture(tmp_path):
    d = tmp_path / "gesture"
    d.mkdir()
    (d / "user01_led.aedat").write_bytes(encode_aedat(EVENTS))
    (d / "user01_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n3,0,5000\n")
    return d


def tiny_net(shape=(2, 32, 32)) -> SnnNet:
    w = np.ones((11, int(np.prod(shape))), np.int32)
    return SnnNet("tiny", shape, [SnnLayer(
        "fc", "fc", shape, (11,), w, theta=50, w_bits=8, v_bits=12, leak_shift=0,
        reset="subtract", overflow="saturate")], SnnSpec(), {"n_steps": 4})


@pytest.mark.parametrize("fit, spikes", [
    ("crop", {(1, 16, 16)}),
    ("downsample", {(1, 16, 16), (0, 5, 25)}),
])
def test_fit_places_events_where_the_mode_says(gesture, fit, spikes):
    frames, labels = load_events(tiny_net(), gesture, fit=fit)
    assert frames.shape == (1, 4, 2, 32, 32) and labels.tolist() == [2]
    got = {tuple(int(v) for v in idx[1:]) for idx in np.argwhere(frames[0].any(axis=0)[None])}
    assert got == spikes


def test_without_fit_a_larger_sensor_is_refused_with_the_flag_named(gesture):
    with pytest.raises(ConfigError, match="128x128 sensor.*--fit crop or --fit downsample"):
        load_events(tiny_net(), gesture)
    frames, _ = load_events(tiny_net(), None, limit=2, fit="crop")   # the event digits
    assert frames.shape == (2, 4, 2, 32, 32)


@pytest.mark.parametrize("fit, events", [("crop", 1), ("downsample", 2)])
def test_run_and_verify_take_fit(gesture, tmp_path, fit, events):
    bundle = save_snn_bundle(tiny_net(), tmp_path / "b")
    out = tmp_path / "run.json"
    r = CliRunner().invoke(app, ["run", str(bundle), "--data", str(gesture), "--fit", fit,
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    figs = json.loads(out.read_text())
    assert figs["samples"] == 1 and figs["input_events"] == events
    for verify in (["snn", "verify"], ["verify"]):          # both commands take --fit
        report = tmp_path / "-".join(verify)
        r = CliRunner().invoke(app, [*verify, str(bundle), "--backend", "emu", "--data",
                                     str(gesture), "--fit", fit, "--report", str(report)])
        assert r.exit_code == 0, r.output
        assert json.loads((report / "verify.json").read_text())["ok"]


def test_fit_is_checked_by_the_command_line(gesture, tmp_path, small_bundle):
    bundle = save_snn_bundle(tiny_net(), tmp_path / "b")
    r = CliRunner().invoke(app, ["run", str(bundle), "--data", str(gesture), "--fit", "zoom"])
    assert r.exit_code == 2 and "choose one of crop, downsample" in r.output
    dcim = tmp_path / "dcim"
    save_bundle(small_bundle, dcim)
    for cmd in ("run", "verify"):
        r = CliRunner().invoke(app, [cmd, str(dcim), "--fit", "crop"])
        assert r.exit_code != 0 and "a dcim or acim bundle takes images" in str(r.exception)
