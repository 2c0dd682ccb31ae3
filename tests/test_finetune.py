"""`cimstack finetune`: noise-aware fine-tuning of a searched per-layer assignment from its
Brevitas checkpoint. The tuned bundle has the requested assignment, runs bit-exactly on
the reference and the emulated overlay, its before/after accuracies are what `cimstack
run` reports for the search's candidate and for the tuned bundle, a seed gives the same
bundle, and bad input is one line."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from badcase import assert_one_line, run_cli
from test_export_qonnx import tiny_checkpoint

from cimstack.backends import open_backend
from cimstack.bundle import MacroLayer, bundle_digest, load_bundle, save_bundle
from cimstack.config import AcimSpec
from cimstack.errors import ConfigError
from cimstack.quant.checkpoint import load_checkpoint
from cimstack.quant.data import load_digits_split
from cimstack.study.finetune import candidate_bundle, finetune, read_assignment
from cimstack.ref.network import quantize_input
from cimstack.study.search import Setting, apply_assignment, base_assignment, \
    run_search
from cimstack.verify.compare import verify

SIGMA = 0.5
# conv1 digital, conv2 analog at a 6-bit ADC (so fc reads 6-bit codes) with 6-bit
# weights, fc (the logits) analog at a 5-bit ADC: tensors cross dcim -> acim -> acim
MIXED = (Setting("dcim", 8, 8), Setting("acim", 6, 8, 6), Setting("acim", 5, 6, 5))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny checkpoint and a search-like knee folder with the MIXED assignment."""
    root = tmp_path_factory.mktemp("ft")
    path = tiny_checkpoint(root / "m.pt", 8, 8, 8)
    base = load_checkpoint(path).export()
    knee = apply_assignment(base, MIXED, AcimSpec(sigma=SIGMA))
    save_bundle(replace(knee, meta={**knee.meta, "search_knee": {"index": 0}}), root / "knee")
    return root


def test_tuned_bundle_has_the_assignment_is_bit_exact_and_its_figures_are_runs(work, tmp_path):
    code, text = run_cli(["finetune", str(work / "m.pt"), "--assignment", str(work / "knee"),
                          "--epochs", "1", "--out", "t"], tmp_path)
    assert code == 0, text
    assert "accuracy before" in text and "after" in text
    tuned = load_bundle(tmp_path / "t")
    # (sparsity: the checkpoint's own block pruning, which the tuned bundle keeps)
    assert tuple(replace(s, sparsity=0.0) for s in base_assignment(tuned)) == MIXED
    assert tuned.acim == AcimSpec(sigma=SIGMA)
    figures = tuned.meta["finetune"]
    for folder, key in ((work / "knee", "accuracy_before"), (tmp_path / "t", "accuracy_after")):
        assert run_cli(["run", str(folder), "--json", "run.json"], tmp_path)[0] == 0
        assert json.loads((tmp_path / "run.json").read_text())["accuracy"] == figures[key]
    x = quantize_input(tuned, load_digits_split().x_test[:24])
    report = verify(tuned, x, open_backend("emu", timeout_s=5.0).engine, "emu")
    assert report.ok, report.summary()


def test_a_seed_gives_the_same_bundle(work):
    ck = load_checkpoint(work / "m.pt")
    source = read_assignment(work / "knee")
    one, two = (finetune(ck, source, epochs=1, seed=3, train_images=256) for _ in range(2))
    assert bundle_digest(one.after) == bundle_digest(two.after)
    assert one.accuracy_before == two.accuracy_before
    assert one.accuracy_after == two.accuracy_after
    assert one.after.meta["finetune"]["accuracy_before"] == one.accuracy_before
    for pruned, tuned in zip(ck.export().macro_layers, one.after.macro_layers):
        zero = pruned.weight == 0              # the checkpoint's pruned blocks stay zero
        assert zero.mean() > 0.3 or pruned.name == "conv1"
        assert not tuned.weight[zero].any()


def test_front_points_are_the_searchs_candidates(work, tmp_path):
    ck = load_checkpoint(work / "m.pt")
    digits = load_digits_split()
    base = ck.export()
    run_search(base, digits.x_test[:60], digits.y_test[:60], tmp_path / "s", budget=6,
               sigma=SIGMA, workers=0)
    front = json.loads((tmp_path / "s" / "front.json").read_text())
    for row in front["front"]:
        source = read_assignment(f"{tmp_path / 's' / 'front.json'}#{row['index']}")
        settings = tuple(Setting(**{k: v for k, v in r.items() if k != "layer"})
                         for r in row["layers"])
        assert source.settings == settings
        assert bundle_digest(candidate_bundle(ck, source)) == bundle_digest(
            apply_assignment(base, settings, AcimSpec(sigma=SIGMA)))
    knee = candidate_bundle(ck, read_assignment(tmp_path / "s" / "knee"))
    assert base_assignment(knee) == base_assignment(load_bundle(tmp_path / "s" / "knee"))
    assert read_assignment(tmp_path / "s" / "knee").exact      # the knee records them
    # a point that block-prunes beyond the checkpoint: the tuned bundle keeps its mask
    first = read_assignment(f"{tmp_path / 's' / 'front.json'}#{front['front'][0]['index']}")
    more = round(base_assignment(base)[1].sparsity + 0.25, 2)
    sparse = replace(first, settings=tuple(replace(s, family="dcim", adc_bits=None,
                                                   sparsity=more) if i == 1 else s
                                           for i, s in enumerate(first.settings)))
    res = finetune(ck, sparse, epochs=1, seed=1, train_images=256)
    assert bundle_digest(res.before) == bundle_digest(candidate_bundle(ck, sparse))
    was, now = res.before.macro_layers[1], res.after.macro_layers[1]
    assert base_assignment(res.before)[1].sparsity > base_assignment(base)[1].sparsity
    from cimstack.mapping.tiling import kept_blocks
    rows_on = res.before.dcim.rows_on           # every block zero before stays zero
    assert not (kept_blocks(now.matrix(), rows_on) & ~kept_blocks(was.matrix(), rows_on)).any()
    assert base_assignment(res.after)[1].sparsity >= base_assignment(res.before)[1].sparsity
    assert res.after.meta["finetune"]["accuracy_after"] == res.accuracy_after
    # a search on another network: its points are refused
    other = replace(base, layers=[replace(node, weight=-node.weight) if node.name == "conv1"
                                  else node for node in base.layers])
    run_search(other, digits.x_test[:60], digits.y_test[:60], tmp_path / "o", budget=2,
               workers=0)
    for ref in (tmp_path / "o" / "knee", f"{tmp_path / 'o' / 'front.json'}#0"):
        with pytest.raises(ConfigError, match="was not searched from this checkpoint"):
            candidate_bundle(ck, read_assignment(ref))


def test_bad_inputs_one_line(work, tmp_path):
    ck, knee = str(work / "m.pt"), str(work / "knee")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "front.json").write_text(json.dumps({"front": [], "knee": {}, "sigma": 0}))
    (tmp_path / "bad.json").write_text("[1, 2")
    cases = [
        (["finetune", "junk.pt", "--assignment", knee], ("not a readable cimstack checkpoint",)),
        (["finetune", "none.pt", "--assignment", knee], ("no checkpoint at",)),
        (["finetune", ck, "--assignment", "nowhere"], ("no such file or folder",)),
        (["finetune", ck, "--assignment", "bad.json"], ("is not a search's front.json",)),
        (["finetune", ck, "--assignment", "front.json#4"], ("has no front point 4",)),
        (["finetune", ck, "--assignment", f"{knee}#2"], ("#N selects a point",)),
    ]
    for args, words in cases:
        assert_one_line(*run_cli(args + ["--out", "t"], tmp_path), *words)
    # an assignment for another network's layers
    other = load_bundle(work / "knee")
    layers = [replace(node, name=f"x{node.name}") if isinstance(node, MacroLayer) else node
              for node in other.layers]
    macros = {layer.name for layer in other.macro_layers}
    renamed = replace(other, layers=[replace(node, inputs=()) for node in layers],
                      tensors={f"x{k}" if k in macros else k: v
                               for k, v in other.tensors.items()})
    save_bundle(renamed, tmp_path / "renamed")
    assert_one_line(*run_cli(["finetune", ck, "--assignment", "renamed", "--out", "t"], tmp_path),
              "assigns the layers xconv1, xconv2, xfc", "has conv1, conv2, fc")
    # the per-input-bit ADC is not trained
    per_bit = apply_assignment(load_checkpoint(ck).export(), MIXED,
                               AcimSpec(sigma=SIGMA, adc_per_input_bit=True))
    save_bundle(per_bit, tmp_path / "per_bit")
    assert_one_line(*run_cli(["finetune", ck, "--assignment", "per_bit", "--out", "t"], tmp_path),
              "adc_per_input_bit")
    assert not (tmp_path / "t").exists()
