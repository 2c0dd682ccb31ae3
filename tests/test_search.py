"""The per-layer design search (cimstack.study.search): its figures are those of
`cimstack run` and `cimstack cost` for the same bundle, its front is a Pareto front, a
Dask cluster and the local pool give the same search, and a search resumes."""

import json
import shutil

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from cimstack.bundle import bundle_digest, load_bundle, save_bundle
from cimstack.config import AcimSpec
from cimstack.errors import ConfigError
from cimstack.quant.data import load_digits_split
from cimstack.study.search import (Setting, apply_assignment, dominates, holdout_split,
                                   knee_index, pareto_front, run_search)

from badcase import run_cli
from conftest import lstsq_bundle

SIGMA = 0.5


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def base(digits):
    return lstsq_bundle(digits)


@pytest.fixture(scope="module")
def pool_search(base, digits, tmp_path_factory):
    """30 candidates on a local pool of 2 processes."""
    out = tmp_path_factory.mktemp("pool") / "s"
    return run_search(base, digits.x_test, digits.y_test, out, budget=30, sigma=SIGMA,
                      workers=2)


def _doc(out) -> tuple:
    """What a search wrote, without its timings and engine counts."""
    cands = json.loads((out / "candidates.json").read_text())["candidates"]
    front = json.loads((out / "front.json").read_text())
    return cands, front["front"], front["knee"], (out / "front.csv").read_text()


def test_front_point_figures_equal_run_and_cost(base, digits, tmp_path):
    save_bundle(base, tmp_path / "b")
    code, text = run_cli(["search", "b", "--budget", "40", "--noise", str(SIGMA),
                          "--workers", "0", "--out", "s"], tmp_path)
    assert code == 0, text
    assert "Pareto front of 40 candidates" in text and "knee" in text
    cands, front, knee, _ = _doc(tmp_path / "s")
    assert len(cands) == 40 and knee in [{k: v for k, v in f.items() if k != "knee"}
                                          for f in front]
    # the default holds a quarter of the test split out; the search saw the rest
    held = np.array(json.loads((tmp_path / "s" / "front.json").read_text())
                    ["held_out"]["indices"], int)
    guide = np.setdiff1d(np.arange(len(digits.y_test)), held)
    assert len(held) == round(0.25 * len(digits.y_test)) and "held-out" in text
    for name, idx in (("guide", guide), ("held", held)):
        np.savez(tmp_path / f"{name}.npz", x=digits.x_test[idx], y=digits.y_test[idx])
    assert all(f["held_out_accuracy"] is not None for f in front)
    assert all(c["held_out_accuracy"] is None for c in cands
               if c["index"] not in {f["index"] for f in front})
    # the knee's bundle and an analog candidate's, through the user's commands
    def best(has):
        return max((c for c in cands if c["accuracy"] is not None
                    and any(has(r) for r in c["layers"])), key=lambda c: c["accuracy"])
    analog = best(lambda r: r["family"] == "acim")
    sparse = best(lambda r: r["sparsity"] > 0)          # a block-pruned dcim layer
    spec = AcimSpec(sigma=SIGMA)
    for name, cand in (("analog", analog), ("sparse", sparse)):
        save_bundle(apply_assignment(base, tuple(Setting(**{k: v for k, v in r.items()
                                                           if k != "layer"})
                                                 for r in cand["layers"]), spec),
                    tmp_path / name)
    def run_accuracy(folder, data):
        assert run_cli(["run", folder, "--data", data, "--json", "run.json"], tmp_path)[0] == 0
        return json.loads((tmp_path / "run.json").read_text())["accuracy"]
    assert run_accuracy("s/knee", "held.npz") == knee["held_out_accuracy"]
    for folder, cand in (("s/knee", knee), ("analog", analog), ("sparse", sparse)):
        assert run_cli(["cost", folder, "--json", "cost.json"], tmp_path)[0] == 0
        cost = json.loads((tmp_path / "cost.json").read_text())["network"]["totals"]
        assert run_accuracy(folder, "guide.npz") == cand["accuracy"]
        assert (cost["energy_pj"], cost["latency_s"], cost["area_mm2"]) == (
            cand["energy_pj"], cand["latency_s"], cand["area_mm2"])
    assert any(c["layers"][0]["family"] == "acim" for c in cands)


objective_sets = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]),
                                    st.integers(0, 4), st.integers(0, 2)),
                          min_size=1, max_size=12)


@settings(max_examples=150)
@given(objective_sets, st.tuples(st.booleans(), st.booleans(), st.booleans()))
@example([(0.5, 1, 1)], (True, False, False))                      # one point
@example([(0.5, 1, 1)] * 4, (True, False, False))                  # all equal
@example([(0.5, 1, 0), (0.5, 1, 0), (0.4, 1, 0)], (True, False, False))   # ties
@example([(1.0, 4, 0), (0.0, 0, 0), (0.5, 2, 0)], (True, False, False))   # all on front
def test_front_is_the_undominated_set(values, larger_better):
    front = pareto_front(values, larger_better)
    assert front, "a non-empty set has a front"
    for i in front:                              # no evaluated point dominates a front one
        assert not any(dominates(v, values[i], larger_better) for v in values)
    for i in set(range(len(values))) - set(front):   # every other one is dominated
        assert any(dominates(values[j], values[i], larger_better) for j in front)
    knee = knee_index([values[i] for i in front], larger_better)
    assert 0 <= knee < len(front)


@settings(max_examples=200)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60),
       st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75]))
@example([3], 0.0)                                   # one image, nothing held
@example([0, 0, 1, 1], 0.5)                          # one of each label held
@example([0] * 8 + [1], 0.25)                        # a label too rare to lose one
def test_holdout_split_keeps_the_label_mix(labels, fraction):
    labels = np.array(labels)
    try:
        guide, held = holdout_split(labels, fraction)
    except ConfigError as exc:                       # only when a part would be empty
        assert fraction > 0 and "leaves" in str(exc)
        return
    assert np.array_equal(np.sort(np.concatenate([guide, held])), np.arange(len(labels)))
    assert (np.diff(guide) > 0).all() and (np.diff(held) > 0).all()
    for value in np.unique(labels):                  # per label, its share held out
        assert (labels[held] == value).sum() == round(fraction * (labels == value).sum())
    again = holdout_split(labels, fraction)          # the same on every call and machine
    assert np.array_equal(again[0], guide) and np.array_equal(again[1], held)
    assert len(held) > 0 if fraction > 0 else len(held) == 0


def test_knee_is_farthest_from_the_line_between_the_ends():
    #  accuracy up, energy down: (0.5, 10) bulges towards the ideal corner
    front = [(0.2, 1.0), (0.5, 2.0), (0.6, 8.0), (0.9, 10.0)]
    assert knee_index(front, (True, False)) == 1
    assert knee_index([(0.2, 1.0), (0.9, 10.0)], (True, False)) == 1   # ends: best accuracy


def test_dask_cluster_equals_local_pool(pool_search, base, digits, tmp_path):
    import distributed                        # a dependency: never skipped
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", dashboard_address=None) as cluster:
        res = run_search(base, digits.x_test, digits.y_test, tmp_path / "s", budget=30,
                         sigma=SIGMA, cluster=cluster.scheduler_address)
    assert res.engine.startswith("Dask cluster") and res.computed == 30
    assert _doc(tmp_path / "s") == _doc(pool_search.out)


def test_resume_evaluates_only_the_rest(pool_search, base, digits, tmp_path):
    out = tmp_path / "s"
    first = run_search(base, digits.x_test, digits.y_test, out, budget=12, sigma=SIGMA,
                       workers=0)
    assert first.computed == 12
    (out / "front.json").unlink()           # an interrupted run wrote only candidates/
    again = run_search(base, digits.x_test, digits.y_test, out, budget=30, sigma=SIGMA,
                       workers=0)
    assert again.computed == 18 and len(again.candidates) == 30
    assert _doc(out) == _doc(pool_search.out)
    # a minimum accuracy keeps the weaker candidates out of the front and the greedy path
    floor = sorted(c.accuracy for c in again.front)[len(again.front) // 2]
    high = run_search(base, digits.x_test, digits.y_test, out, budget=30, sigma=SIGMA,
                      workers=0, min_accuracy=floor)
    assert min(c.accuracy for c in high.front) >= floor > min(c.accuracy for c in again.front)
    assert high.knee.accuracy >= floor
    # other noise: nothing is taken from the earlier files
    other = run_search(base, digits.x_test, digits.y_test, out, budget=5, sigma=0.0,
                       workers=0)
    assert other.computed == 5


def test_bad_inputs_one_line(base, digits, tmp_path):
    save_bundle(base, tmp_path / "b")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    np.savez(tmp_path / "nolabels.npz", x=digits.x_test[:5])
    cases = [(["--objective", "accuracy,power"], "give accuracy and one or more of"),
             (["--objective", "energy,latency"], "give accuracy and one or more of"),
             (["--objective", "accuracy,energy,energy"], "each once"),
             (["--budget", "0"], "--budget"),
             (["--cluster", "http://x"], "not a Dask scheduler address"),
             (["--data", "nolabels.npz"], "needs labels"),
             (["--min-accuracy", "1.5"], "--min-accuracy"),
             (["--min-accuracy", "0.99"], "the bundle itself reaches"),
             (["--holdout", "1"], "--holdout"),
             (["--holdout", "0.999"], "leaves 0 to guide the search"),
             (["--out", "mine"], "did not write")]
    for args, match in cases:
        code, text = run_cli(["search", "b", "--workers", "0", *args], tmp_path)
        assert code != 0 and match in text and "Traceback" not in text, (args, text)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="--budget 0"):
        run_search(base, digits.x_test, digits.y_test, tmp_path / "x", budget=0)
    assert not (tmp_path / "x").exists()


def test_sparsity_moves_go_up_in_steps_and_back_only_to_the_base(base):
    from cimstack.study.search import MAX_SPARSITY, _moves, _Search, base_assignment
    search = _Search(base, AcimSpec(), None, None, None, ("accuracy", "energy"), 1, 0, 0,
                     None, 1.0, 1.0, None)
    search.base_settings = start = base_assignment(base)
    assert [s.sparsity for s in start] == [0.0, 0.0]
    here, seen = start, []
    while True:
        up = [a for a in _moves(search, here) if a[0].sparsity > here[0].sparsity]
        if not up:
            break
        here = up[0]
        seen.append(here[0].sparsity)
    assert seen == [0.25, 0.5, MAX_SPARSITY]
    down = [a[0].sparsity for a in _moves(search, here, up=True)
            if a[0].family == "dcim" and a[0].sparsity < here[0].sparsity]
    assert down == [0.5]
    back = [a for a in _moves(search, start, up=True) if a[0].sparsity < 0.0]
    assert back == []
    # a layer moved to acim goes back to the base's sparsity and takes no sparsity move
    acim = next(a for a in _moves(search, here) if a[0].family == "acim")
    assert acim[0].sparsity == 0.0
    assert not [a for a in _moves(search, acim) if a[0].sparsity != acim[0].sparsity]


def test_layers_analog_in_the_base_search_their_adc(base):
    """A base whose fc1 is on acim (8-bit ADC): its ADC goes down one bit per move, and
    back up only to the base's; the search writes the base into OUT/base."""
    from cimstack.study.search import _moves, _Search, base_assignment
    from cimstack.study.sensitivity import to_acim
    mixed = to_acim(base, "fc1", AcimSpec(adc_bits=8))
    search = _Search(mixed, mixed.acim, None, None, None, ("accuracy", "energy"), 1, 0, 0,
                     None, 1.0, 1.0, None)
    search.base_settings = start = base_assignment(mixed)
    assert start[0].family == "acim" and start[0].adc_bits == 8
    down = [a[0].adc_bits for a in _moves(search, start) if a[0].adc_bits != 8]
    assert down == [7]
    lower = next(a for a in _moves(search, start) if a[0].adc_bits == 7)
    assert [a[0].adc_bits for a in _moves(search, lower, up=True)
            if a[0].adc_bits != 7] == [6, 8]
    assert not [a for a in _moves(search, start, up=True) if a[0].adc_bits > 8]


def test_search_on_a_qonnx_model_imports_it_into_out_base(tmp_path):
    import qonnx_models
    import torch
    from cimstack.importer.qonnx_import import import_qonnx
    model = tmp_path / "m.onnx"
    qonnx_models.export(qonnx_models.user_cnn(), torch.rand(1, 1, 8, 8), model)
    code, text = run_cli(["search", "m.onnx", "--budget", "6", "--workers", "0",
                          "--out", "s"], tmp_path)
    assert code == 0, text
    assert "Pareto front of 6 candidates" in text
    assert bundle_digest(load_bundle(tmp_path / "s" / "base")) == bundle_digest(
        import_qonnx(model))
    front = json.loads((tmp_path / "s" / "front.json").read_text())
    assert front["evaluated"] == 6 and front["front"]
    # a second run resumes from the same imported base
    code, text = run_cli(["search", "m.onnx", "--budget", "6", "--workers", "0",
                          "--out", "s"], tmp_path)
    assert code == 0 and "nothing to evaluate, 6 from" in text, text
    (tmp_path / "notes.txt").write_text("mine")
    for arg in ("notes.txt", "missing.onnx"):
        code, text = run_cli(["search", arg, "--workers", "0", "--out", "t"], tmp_path)
        assert code != 0 and "neither a bundle folder nor a QONNX model file" in text \
            and "Traceback" not in text, text
    assert not (tmp_path / "t").exists()


def test_search_imports_a_qonnx_model_on_the_macro_asked(digits, tmp_path):
    import qonnx_models
    import torch
    qonnx_models.export(qonnx_models.mlp(), torch.rand(1, 64), tmp_path / "mlp.onnx")
    np.savez(tmp_path / "d.npz", x=digits.x_test[:60].reshape(60, 64), y=digits.y_test[:60])
    code, text = run_cli(["search", "mlp.onnx", "--macro", "acim", "--set", "adc_bits=6",
                          "--data", "d.npz", "--budget", "3", "--workers", "0", "--out", "a"],
                         tmp_path)
    assert code == 0, text
    base = load_bundle(tmp_path / "a" / "base")
    assert {layer.macro for layer in base.macro_layers} == {"acim"}
    assert base.acim.adc_bits == 6
    save_bundle(base, tmp_path / "b")
    for args, words in ((["b", "--macro", "acim"], "a bundle folder's layers already"),
                        (["b", "--set", "adc_bits=6"], "a bundle folder's layers already"),
                        (["mlp.onnx", "--macro", "xcim"], "--macro xcim"),
                        (["mlp.onnx", "--set", "nosuch=1"], "nosuch")):
        code, text = run_cli(["search", *args, "--workers", "0", "--out", "t"], tmp_path)
        assert code != 0 and words in text and "Traceback" not in text, text
        assert len(text.strip().splitlines()) == 1, text


def test_its_sensitivities_are_the_sensitivity_study(pool_search, base, digits):
    from cimstack.study.sensitivity import sensitivity
    doc = json.loads((pool_search.out / "sensitivity.json").read_text())
    guide, _ = holdout_split(digits.y_test, 0.25)       # the images the search saw
    study = sensitivity(base, digits.x_test[guide], digits.y_test[guide], sigma=SIGMA)
    assert doc["baseline"] == study.baseline
    assert [(c["layer"], c["change"], c["value"], c["accuracy"]) for c in doc["changes"]] == [
        (c.layer, c.change, c.value, c.accuracy) for c in study.changes]


def test_report_draws_the_search(pool_search, tmp_path):
    from cimstack.report.build import write_report
    run = tmp_path / "run"
    shutil.copytree(pool_search.out, run / "search")
    rep = write_report(run)
    section = next(s for s in rep.sections if s.key == "search")
    assert section.status == "complete" and (rep.out / section.figure).is_file()
    assert "Pareto front" in section.caption
    knee = next(t for t in section.tables if t.title == "knee point")
    assert [r[0] for r in knee.rows] == ["fc1", "fc2"]


def test_the_search_writes_its_base(pool_search, base):
    assert bundle_digest(load_bundle(pool_search.out / "base")) == bundle_digest(base)
