"""`cimstack sweep`: grid parsing and validation, stable point ids, a sweep on a local
Dask cluster equal to the same sweep on the local pool, interrupt and resume, and the
table's accuracy and cost against the reference and cimstack.cost run directly."""

from __future__ import annotations

import csv
import dataclasses
import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimstack.errors import ConfigError
from cimstack.paths import project_root
from cimstack.sweep import (COLUMNS, DEFAULT_GRID, SweepError, expand, load_grid, merge_sets,
                            parse_sets, run_sweep)
from cimstack.sweep.points import AcimPoint, DcimPoint, Schedule, SnnPoint, model_id, point_id

# 10 points, 3 models (one per macro: the other knobs are evaluation knobs); the snn
# point with 16-bit membranes output-stationary fails: conv1's membranes do not fit
GRID = {"dcim": {"w_bits": 4, "x_bits": 4, "rows_on": [8, 16]},
        "acim": {"adc_bits": 4, "sigma": [0.0, 1.5]},
        "snn": {"v_bits": [16, 8], "dataflow": ["auto", "ws", "os"]}}
POINTS, FAILING = 10, 1
FAST = dict(quick=True, epochs=1)
SCHEDULE = Schedule.make(**FAST)


# ------------------------------------------------------------------------------ grid

@pytest.mark.parametrize("grid, message", [
    ({"acim": {"adc_bit": 4}}, "unknown knob(s) ['adc_bit']; valid knobs: w_bits (2..8), "
                               "adc_bits (1..8)"),
    ({"acim": {"adc_bits": [4, 9]}}, "adc_bits = 9 is out of range: allowed [1, 8]"),
    ({"dcim": {"rows_on": 24}}, "rows_on = 24 must divide rows = 256"),
    ({"dcim": {"sparsity": 1.0}}, "sparsity = 1.0 is out of range"),
    ({"snn": {"dataflow": "both"}}, "choose one of ['auto', 'ws', 'os']"),
    ({"snn": {"v_bits": 1}}, "v_bits = 1 is out of range: allowed [2, 16]"),
    ({"snn": {"w_bits": "8"}}, "must be an integer"),
    ({"acim": {"sigma": []}}, "sigma is an empty list"),
    ({"acim": {"sigma": [[1]]}}, "give a value or a list of values"),
    ({"gpu": {}}, "unknown key(s) ['gpu']"),
    ({"sigma": 1.0, "acim": {}}, "unknown key(s) ['sigma']"),
    ({}, "the grid has no macro table"),
])
def test_bad_grid_is_a_clear_error(grid, message):
    with pytest.raises(ConfigError) as err:
        expand(grid)
    assert message in str(err.value)


def test_set_options_make_select_and_override_tables():
    assert merge_sets(None, parse_sets(["macro=acim", "adc_bits=2,4,8", "sigma=0,1.5"])) == {
        "acim": [{"adc_bits": [2, 4, 8], "sigma": [0, 1.5]}]}
    # on a grid: seed goes to every table, v_bits only to the snn one
    merged = merge_sets(DEFAULT_GRID, parse_sets(["seed=0,1", "v_bits=12"]))
    assert all(t["seed"] == [0, 1] for tables in merged.values() for t in tables)
    assert merged["snn"][0]["v_bits"] == [12] and "v_bits" not in merged["acim"][0]
    assert set(merge_sets(DEFAULT_GRID, parse_sets(["macro=snn,acim"]))) == {"snn", "acim"}
    for sets, message in ((["adc_bits"], "write KNOB=VALUE"),
                          (["adc_bits=4"], "needs macro=dcim, acim, snn or flexspim"),
                          (["macro=tpu"], "unknown macro(s) ['tpu']")):
        with pytest.raises(ConfigError) as err:
            merge_sets(None, parse_sets(sets))
        assert message in str(err.value)
    with pytest.raises(ConfigError, match="no selected macro"):
        merge_sets(DEFAULT_GRID, parse_sets(["macro=dcim", "v_bits=8"]))


def test_example_grid_and_model_sharing():
    example = expand(load_grid(project_root() / "sweeps" / "example.toml"))
    full = Schedule.make()
    assert len(example) == 26 and len({model_id(p, full) for p in example}) == 9
    points = expand(GRID)
    assert len(points) == POINTS and len({model_id(p, SCHEDULE) for p in points}) == 3
    # rows_on is a model knob only for a pruned dcim model (the pruning block height)
    dense = [DcimPoint(rows_on=r) for r in (8, 16)]
    pruned = [DcimPoint(sparsity=0.5, rows_on=r) for r in (8, 16)]
    assert model_id(dense[0], full) == model_id(dense[1], full)
    assert model_id(pruned[0], full) != model_id(pruned[1], full)


@settings(max_examples=60, deadline=None)
@given(w=st.integers(2, 8), adc=st.integers(1, 8), ts=st.integers(0, 32),
       sigma=st.integers(0, 63), seed=st.integers(0, 2**31 - 1), quick=st.booleans())
def test_point_ids_are_stable(w, adc, ts, sigma, seed, quick):
    sched = Schedule.make(quick)
    p = AcimPoint(w_bits=w, adc_bits=adc, train_sigma=ts / 2, sigma=sigma / 4, seed=seed)
    again = AcimPoint(**{k: v for k, v in json.loads(json.dumps(p.params())).items()
                         if k != "macro"})
    assert point_id(again, sched) == point_id(p, sched)
    if sigma % 4 == 0:                       # an integer sigma is the same point as x.0
        assert point_id(dataclasses.replace(p, sigma=sigma // 4), sched) == point_id(p, sched)
    other = dataclasses.replace(p, sigma=(sigma + 1) / 4)
    assert point_id(other, sched) != point_id(p, sched)
    assert model_id(other, sched) == model_id(p, sched)           # sigma: evaluation only
    assert model_id(dataclasses.replace(p, adc_bits=adc % 8 + 1), sched) != model_id(p, sched)
    assert point_id(p, Schedule.make(not quick)) != point_id(p, sched)


def test_dead_cluster_address_is_a_clear_error(tmp_path):
    with pytest.raises(SweepError, match="cannot reach a Dask scheduler at tcp://127.0.0.1:9"):
        run_sweep({"acim": {}}, tmp_path, cluster="tcp://127.0.0.1:9", connect_timeout=1,
                  **FAST)


@pytest.mark.parametrize("address, message", [
    ("tcp://127.0.0.1:1", "cannot reach a Dask scheduler at tcp://127.0.0.1:1"),
    ("tcp://", "--cluster 'tcp://' is not a Dask scheduler address"),
    ("http://127.0.0.1:1", "--cluster 'http://127.0.0.1:1' is not a Dask scheduler address"),
    ("127.0.0.1:99999", "--cluster '127.0.0.1:99999' is not a Dask scheduler address"),
])
def test_bad_cluster_address_prints_one_line(tmp_path, address, message):
    # a process of its own: Dask logs through `logging` and from its threads, and a
    # client that failed to start complains when it is garbage-collected at exit
    out = subprocess.run(
        [sys.executable, "-c", "from cimstack.cli import main; main()", "sweep", "--quick",
         "--out", str(tmp_path / "o"), "--cluster", address, "--connect-timeout", "2"],
        capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert lines[0].startswith("error: ") and message in lines[0]


def test_a_port_that_does_not_speak_dask_is_a_clear_error(tmp_path):
    # something listens, but never answers: Dask's client would wait for ever
    import socket
    with socket.create_server(("127.0.0.1", 0)) as server:
        address = "tcp://127.0.0.1:%d" % server.getsockname()[1]
        with pytest.raises(SweepError, match="not Dask's protocol"):
            run_sweep({"acim": {}}, tmp_path, cluster=address, connect_timeout=0.5, **FAST)


def test_stuck_tasks_stop_the_sweep_after_the_point_timeout(tmp_path):
    # no training finishes within 50 ms: the sweep stops, ends its worker, writes nothing
    with pytest.raises(SweepError, match="no task finished within 0.05 s"):
        run_sweep({"acim": {}}, tmp_path, workers=1, point_timeout=0.05, **FAST)
    assert not (tmp_path / "points").exists() and not (tmp_path / "results.csv").exists()


# ------------------------------------------------------------------- sweeps that train

def _rows(out):
    with open(out / "results.csv") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def _layers(out):
    return (out / "layers.csv").read_text()


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    events = []
    res = run_sweep(GRID, tmp_path_factory.mktemp("pool"), workers=2, progress=events.append,
                    **FAST)
    return res, events


@pytest.mark.slow
def test_pool_sweep_writes_every_point(pool_run):
    res, events = pool_run
    assert res.skipped == 0 and res.computed == POINTS - FAILING
    assert [(f["params"]["v_bits"], f["params"]["dataflow"]) for f in res.failed] == [(16, "os")]
    assert "SnnMappingError: layer conv1 does not fit" in res.failed[0]["error"]
    assert res.models_trained == 3 and len(list((res.out / "models").iterdir())) == 3
    rows = _rows(res.out)
    assert len(rows) == POINTS - FAILING
    assert list(rows[0]) == [c for c in COLUMNS if c != "seconds"]
    assert sorted(p.name for p in (res.out / "points").iterdir()) == sorted(
        f"{r['point']}.json" for r in rows)
    by = {r["macro"]: r for r in rows}
    assert by["snn"]["x_bits"] == "" and by["snn"]["traffic_vs_ws"] != ""
    assert by["acim"]["x_bits"] == "4" and by["acim"]["sparsity"] == ""
    assert by["dcim"]["fpga_images_per_s"] != "" and by["dcim"]["traffic_bits"] == ""
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 and float(r["energy_pj"]) > 0 for r in rows)
    doc = json.loads(res.results_json.read_text())
    assert doc["grid"]["acim"] == [{"adc_bits": [4], "sigma": [0.0, 1.5]}]
    assert [f["point"] for f in doc["failed"]] == [f["point"] for f in res.failed]
    snn = [p for p in doc["points"] if p["macro"] == "snn"]
    assert all(lr["dataflow"] in ("ws", "os") and "traffic_bits" in lr
               for p in snn for lr in p["layers"])
    assert {r["point"] for r in csv.DictReader(res.layers_csv.open())} == {
        r["point"] for r in rows}
    last = events[-1]
    assert (last.done, last.failed, last.total) == (POINTS - FAILING, FAILING, POINTS)
    assert (last.models_done, last.models_total) == (3, 3)


@pytest.mark.slow
def test_dask_local_cluster_equals_local_pool(pool_run, tmp_path):
    import distributed                    # a dependency: never skipped
    res, _ = pool_run
    # the acim and snn models as the pool trained them (resume keeps them): the workers
    # train the dcim one and evaluate every point, so the test spends its time on Dask
    out = tmp_path / "out"
    (out / "models").mkdir(parents=True)
    shutil.copy(res.out / ".cimstack", out)
    for model in (res.out / "models").iterdir():
        if not model.name.startswith("dcim-"):
            shutil.copytree(model, out / "models" / model.name)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        dask = run_sweep(GRID, out, cluster=cluster.scheduler_address, **FAST)
    assert dask.models_trained == 1
    assert dask.failed == res.failed and dask.engine.startswith("Dask cluster")
    assert _rows(out) == _rows(res.out)
    assert _layers(out) == _layers(res.out)
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(
        p.name for p in (res.out / "models").iterdir())


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_redoing_points(pool_run, tmp_path):
    res, _ = pool_run
    out = tmp_path / "out"
    shutil.copytree(res.out, out)
    for f in (out / "points").glob("*.json"):
        f.unlink()

    def interrupt(ev):
        if ev.done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(GRID, out, workers=2, progress=interrupt, **FAST)
    kept = {f.name: f.stat().st_mtime_ns for f in (out / "points").iterdir()}
    assert 2 <= len(kept) < POINTS - FAILING
    assert all(n.endswith(".json") for n in kept)                 # no temporary files left
    again = run_sweep(GRID, out, workers=1, **FAST)
    assert again.skipped == len(kept) and again.computed == POINTS - FAILING - len(kept)
    assert again.models_trained == 0                         # models/ was kept: no training
    assert all((out / "points" / n).stat().st_mtime_ns == t for n, t in kept.items())
    assert _rows(out) == _rows(res.out) and _layers(out) == _layers(res.out)
    # all done: a third run computes nothing and starts no engine
    done = {**GRID, "snn": [{"v_bits": [16, 8], "dataflow": ["auto", "ws"]},
                            {"v_bits": 8, "dataflow": "os"}]}
    third = run_sweep(done, out, **FAST)
    assert third.skipped == POINTS - FAILING and third.computed == 0 and third.engine is None


def _model(res, point):
    from cimstack.bundle import load_bundle
    from cimstack.snn_bundle import load_snn_bundle
    folder = res.out / "models" / model_id(point, SCHEDULE)
    return load_snn_bundle(folder) if point.macro == "snn" else load_bundle(folder)


def _row(res, point):
    return next(r for r in res.rows if r["point"] == point_id(point, SCHEDULE))


@pytest.mark.slow
def test_accuracy_and_cost_equal_the_reference_run_directly(pool_run):
    from cimstack.cost import fpga_cost, network_cost, snn_cost
    from cimstack.events.datasets import event_digits
    from cimstack.ref.network import integer_accuracy
    from cimstack.quant.data import load_digits_split
    from cimstack.quant.snn_export import narrow_membranes
    from cimstack.ref.snn import run_snn
    res, _ = pool_run
    data = load_digits_split()
    point = AcimPoint(adc_bits=4, sigma=1.5)
    bundle = _model(res, point).with_acim(sigma=1.5, seed=0)
    row = _row(res, point)
    assert row["accuracy"] == integer_accuracy(bundle, data.x_test, data.y_test)
    totals = network_cost(bundle).totals
    assert (row["energy_pj"], row["latency_s"], row["ops"]) == (
        totals["energy_pj"], totals["latency_s"], totals["ops"])
    point = DcimPoint(w_bits=4, x_bits=4, rows_on=8)
    bundle = dataclasses.replace(_model(res, point), dcim=point.spec())
    row = _row(res, point)
    assert row["cycles"] == network_cost(bundle).totals["cycles"]
    assert row["fpga_images_per_s"] == fpga_cost(bundle)["images_per_s"]
    assert row["accuracy"] == integer_accuracy(bundle, data.x_test, data.y_test)
    point = SnnPoint(v_bits=8, dataflow="ws")
    net = narrow_membranes(_model(res, point), 8)
    test = event_digits("test", limit=SCHEDULE.snn_test_samples)
    frames = test.frames(SCHEDULE.snn_steps)
    ran = run_snn(net, frames)
    row = _row(res, point)
    assert row["accuracy"] == float(np.mean(ran.predictions == test.labels))
    cost = snn_cost(net, ran, len(frames), "ws")
    assert row["energy_pj"] == cost["totals"]["energy_pj_per_sample"]


@pytest.mark.slow
def test_shipped_models_need_no_torch(pool_run):
    res, _ = pool_run
    blob = pickle.dumps([_model(res, p) for p in (AcimPoint(adc_bits=4), SnnPoint())])
    code = ("import sys, pickle; sys.modules['torch'] = sys.modules['brevitas'] = None; "
            "models = pickle.loads(sys.stdin.buffer.read()); print(len(models))")
    r = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True)
    assert r.returncode == 0 and r.stdout.strip() == b"2", r.stderr.decode()


@pytest.mark.slow
def test_cli_resumes_prints_the_tables_and_reports_failures(pool_run, tmp_path):
    from typer.testing import CliRunner

    from cimstack.cli import app
    res, _ = pool_run
    out = tmp_path / "out"
    shutil.copytree(res.out, out)
    args = ["sweep", "--out", str(out), "--quick", "--epochs", "1", "--set", "macro=acim"]
    for knob, values in GRID["acim"].items():
        args += ["--set", f"{knob}={','.join(map(str, np.atleast_1d(values)))}"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "nothing to compute, 2 skipped" in " ".join(r.output.split())
    assert _row(res, AcimPoint(adc_bits=4, sigma=1.5))["point"] in r.output
    r = CliRunner().invoke(app, ["sweep", "--out", str(out), "--quick", "--epochs", "1",
                                 "--workers", "1", "--set", "macro=snn", "--set",
                                 "dataflow=os", "--set", "v_bits=16,8"])
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert "0 points computed" in text and "1 skipped" in text      # v_bits 8 ran before
    assert "failed" in text and "layer conv1 does not fit" in text


def test_results_columns_cover_every_knob():
    """A new knob must get its column in results.csv (rows are built by column name)."""
    from cimstack.sweep.points import point_types
    from cimstack.sweep.runner import PARAM_COLUMNS
    knobs = {k for t in point_types().values() for k in t.knob_names()}
    assert set(PARAM_COLUMNS) == {"macro"} | knobs
