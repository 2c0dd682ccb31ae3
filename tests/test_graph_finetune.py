"""Fine-tuning without a Brevitas source (`cimstack finetune --assignment A` with no
checkpoint): the torch model of a graph bundle computes the bundle's own integers before
training (every node kind, dcim and acim), exports back to the same bundle, and
fine-tuning a candidate whose analog layers cost accuracy wins some back, keeps the
assignment and the pruned blocks, is seeded, runs bit-exactly on the emulated overlay,
and its figures are what `cimstack run` reports. Bad input is one line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings, strategies as st

from badcase import assert_one_line, run_cli
from conftest import digits_like_bundle, graph_bundle
from test_export_qonnx import tiny_checkpoint

from cimstack.backends import open_backend
from cimstack.bundle import bundle_digest, load_bundle, save_bundle
from cimstack.config import AcimSpec
from cimstack.mapping.tiling import kept_blocks
from cimstack.quant.checkpoint import load_checkpoint
from cimstack.quant.data import load_digits_split
from cimstack.quant.graph_model import GraphModel, export_graph
from cimstack.ref.network import quantize_input, run_network
from cimstack.study.finetune import finetune_bundle
from cimstack.study.search import Setting, apply_assignment, base_assignment
from cimstack.study.sensitivity import to_acim
from cimstack.verify.compare import verify

SIGMA = 0.5
# conv2 and fc (the logits) on acim at 6- and 5-bit ADCs: the analog path costs accuracy
MIXED = (Setting("dcim", 8, 8), Setting("acim", 6, 8, 6), Setting("acim", 5, 6, 5))


def _codes(bundle, n: int, seed: int) -> np.ndarray:
    lo, hi = bundle.input.format.codes
    return np.random.default_rng(seed).integers(lo, hi + 1, (n, *bundle.input.shape))


def _model_logits(bundle, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return GraphModel(bundle).logits(torch.from_numpy(x.astype(np.float64))).numpy()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), data_seed=st.integers(0, 2**16))
@example(seed=0, data_seed=0)
def test_an_untrained_model_computes_the_bundles_integers(seed, data_seed):
    """Every node kind (depthwise dilated conv on signed codes, residual add, max and
    average pools, concat, global average pool to bipolar codes, linear logits)."""
    bundle = graph_bundle(seed)
    x = _codes(bundle, 8, data_seed)
    assert np.array_equal(_model_logits(bundle, x), run_network(bundle, x).logits)
    assert bundle_digest(export_graph(GraphModel(bundle))) == bundle_digest(bundle)


@pytest.mark.parametrize("moved", [("conv2",), ("fc",), ("conv2", "fc")])
def test_acim_layers_compute_the_references_codes(moved):
    bundle = digits_like_bundle(seed=1)
    for name in moved:
        bundle = to_acim(bundle, name, AcimSpec(sigma=0.0), 6)
    x = _codes(bundle, 64, 2)
    assert np.array_equal(_model_logits(bundle, x), run_network(bundle, x).logits)
    assert bundle_digest(export_graph(GraphModel(bundle))) == bundle_digest(bundle)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny checkpoint's bundle (pruned conv2 and fc), a search-like folder with its
    base, a front.json whose point 0 is MIXED, and the MIXED candidate as a knee."""
    root = tmp_path_factory.mktemp("gft")
    base = load_checkpoint(tiny_checkpoint(root / "m.pt", 8, 8, 8)).export()
    knee = apply_assignment(base, MIXED, AcimSpec(sigma=SIGMA))
    save_bundle(base, root / "s" / "base")
    save_bundle(knee, root / "s" / "knee")
    layers = [{"layer": layer.name, "family": s.family, "w_bits": s.w_bits,
               "x_bits": s.x_bits, "adc_bits": s.adc_bits, "sparsity": b.sparsity}
              for layer, s, b in zip(base.macro_layers, MIXED, base_assignment(base))]
    (root / "s" / "front.json").write_text(json.dumps({
        "sigma": SIGMA, "base_digest": bundle_digest(base),
        "front": [{"index": 0, "layers": layers}], "knee": {"layers": layers}}))
    return root


def test_fine_tuning_wins_accuracy_back_and_keeps_the_candidate(work):
    knee = load_bundle(work / "s" / "knee")
    data = load_digits_split()
    one, two = (finetune_bundle(knee, data.x_train, data.y_train, images=data.x_test,
                                labels=data.y_test, epochs=2, seed=3, train_images=768)
                for _ in range(2))
    assert bundle_digest(one.after) == bundle_digest(two.after)          # seeded
    assert one.accuracy_after >= one.accuracy_before + 0.10, (one.accuracy_before,
                                                              one.accuracy_after)
    # (the sparsity measured may grow: trained weights that round to zero)
    assert [replace(s, sparsity=0.0) for s in base_assignment(one.after)] == \
        [replace(s, sparsity=0.0) for s in base_assignment(knee)] == list(MIXED)
    rows_on = knee.dcim.rows_on
    for was, now in zip(knee.macro_layers, one.after.macro_layers):
        if was.macro == "dcim":                  # its zero blocks stay zero
            assert not (kept_blocks(now.matrix(), rows_on)
                        & ~kept_blocks(was.matrix(), rows_on)).any()
        else:
            assert np.array_equal(now.analog.layer, was.analog.layer)   # same noise keys
    assert one.after.acim == knee.acim
    meta = one.after.meta["finetune"]
    assert (meta["accuracy_before"], meta["accuracy_after"]) == (one.accuracy_before,
                                                                 one.accuracy_after)
    rep = verify(one.after, quantize_input(one.after, data.x_test[:16]),
                 open_backend("emu", timeout_s=5.0).engine, "emu")
    assert rep.ok, rep.summary()


def test_the_cli_tunes_a_knee_and_a_front_point_without_a_checkpoint(work, tmp_path):
    for ref, out in ((work / "s" / "knee", "k"), (f"{work / 's' / 'front.json'}#0", "p")):
        code, text = run_cli(["finetune", "--assignment", str(ref), "--epochs", "1",
                              "--out", out], tmp_path)
        assert code == 0, text
        assert "accuracy before" in text
        figures = load_bundle(tmp_path / out).meta["finetune"]
        assert figures["model"] == "graph"
        for folder, key in ((work / "s" / "knee", "accuracy_before"),
                            (tmp_path / out, "accuracy_after")):
            assert run_cli(["run", str(folder), "--json", "run.json"], tmp_path)[0] == 0
            assert json.loads((tmp_path / "run.json").read_text())["accuracy"] == figures[key]
    # the front point is the knee rebuilt from OUT/base: the same tuned bundle
    assert bundle_digest(load_bundle(tmp_path / "k")) == bundle_digest(load_bundle(tmp_path / "p"))


def test_bad_inputs_one_line(work, tmp_path):
    knee = str(work / "s" / "knee")
    (tmp_path / "alone").mkdir()
    front = json.loads((work / "s" / "front.json").read_text())
    (tmp_path / "alone" / "front.json").write_text(json.dumps(front))
    other = tmp_path / "other"
    other.mkdir()
    (other / "front.json").write_text(json.dumps(front))
    base = load_bundle(work / "s" / "base")
    save_bundle(replace(base, name="another"), other / "base")
    wide = graph_bundle(0)
    save_bundle(wide, tmp_path / "wide")
    np.savez(tmp_path / "nolabels.npz", x=load_digits_split().x_train[:8])
    cases = [
        (["finetune", "--assignment", f"{tmp_path / 'alone' / 'front.json'}#0"],
         ("to rebuild the point from",)),
        (["finetune", "--assignment", f"{other / 'front.json'}#0"],
         ("is not the bundle the search ran on",)),
        (["finetune", str(work / "m.pt"), "--assignment", knee, "--train-data", "x.npz"],
         ("--train-data: a checkpoint's network trains on the digits",)),
        (["finetune", "--assignment", str(tmp_path / "wide")],
         ("not the digits'; give --train-data",)),
        (["finetune", "--assignment", knee, "--train-data", "nolabels.npz"],
         ("no labels y",)),
        (["finetune", "--assignment", knee, "--train-data", "none.npz"],
         ("--train-data none.npz: no such file",)),
    ]
    for args, words in cases:
        assert_one_line(*run_cli(args, tmp_path), *words)
