"""Macro families as plug-ins: a toy fourth family, an ideal exact-integer macro, is
declared and registered from this file alone and runs a bundle through bundle
validation, the reference executor, the cost model, ``cimstack cost`` (no FPGA kernel:
the overlay estimate is marked not available) and a sweep (trained through the record's
trainer hook, evaluated through its point class); an unknown family is one clear
error."""

from __future__ import annotations

from dataclasses import dataclass, replace

import json

import numpy as np
import pytest
from badcase import run_cli
from cimstack.bundle import load_bundle, save_bundle
from cimstack.config import Spec, knob
from cimstack.cost import network_cost
from cimstack.errors import BundleError, ConfigError
from cimstack.families import (
    MacroFamily,
    family_names,
    get_family,
    register_family,
    unregister_family,
)
from cimstack.mapping.tiling import LayerCost
from cimstack.ref.network import run_network
from cimstack.ref.requant import requantize
from cimstack.ref.network import integer_accuracy
from cimstack.sweep import expand, merge_sets, run_sweep
from cimstack.sweep.points import MODEL, Point, sweep_knob
from cimstack.sweep.tasks import _digits_test, evaluate_point
from conftest import digits_like_bundle
from hypothesis import example, given, settings
from hypothesis import strategies as st


@dataclass(frozen=True)
class IdealSpec(Spec):
    """The toy family's one knob, kept in bundle.json's ``macros.ideal``."""

    cycles_per_vector: int = knob(1, "cycles per matrix-vector product", 1, 64)


@dataclass(frozen=True)
class IdealConstants:
    pj_per_op: float = 0.5
    macro_area_mm2: float = 2.0
    clock_mhz: float = 100.0


@dataclass(frozen=True)
class IdealPoint(Point):
    """The toy family's sweep knobs: only the seed."""

    macro = "ideal"
    seed: int = sweep_knob(0, "seed", MODEL, 0, 2**31 - 1)

    def apply(self, bundle):
        return bundle


def _cycles(bundle) -> int:
    return (bundle.spec("ideal") or IdealSpec()).cycles_per_vector


def _check(bundle, layer):
    if layer.analog is not None:
        raise BundleError(f"layer {layer.name}: an ideal layer has no analog parameters")


def _acc_bound(bundle, layer):
    x_max = (1 << layer.x_bits) - 1
    return np.abs(layer.matrix().astype(np.int64)).sum(axis=0) * x_max, "exact products"


def _reference(layer, x_mat, bundle):
    acc = x_mat.astype(np.int64) @ layer.matrix().astype(np.int64)
    rq = layer.requant
    return requantize(acc, rq.multiplier, rq.bias, rq.shift, rq.lo, rq.hi)


def _layer_cost(layer, stats, bundle, c, reload, batch):
    ops = 2 * layer.k * layer.channels * stats.vectors
    return {"ops_performed": ops, "cycles": stats.cycles,
            "latency_s": stats.cycles / (c.clock_mhz * 1e6), "energy_array_pj": ops * c.pj_per_op,
            "energy_readout_pj": 0.0, "energy_move_pj": 0.0, "in_bits": 0, "out_bits": 0,
            "weight_bits": 0}


def on_family(bundle, macro):
    return replace(bundle, layers=[replace(layer, macro=macro) if hasattr(layer, "macro")
                                   else layer for layer in bundle.layers])


def _train(model, schedule):
    """The toy family's trainer hook: no training, a seeded random network."""
    return on_family(digits_like_bundle(model["seed"]), "ideal")


IDEAL = MacroFamily(
    name="ideal", summary="exact integer dot product, one cycle per vector", spec=IdealSpec,
    check_layer=_check, acc_bound=_acc_bound, reference=_reference,
    cycles=lambda layer, bundle: LayerCost(1, _cycles(bundle), _cycles(bundle), 1, 0, 0),
    cost_constants=IdealConstants, layer_cost=_layer_cost,
    resident_tiles=lambda bundle: 1 << 30, area_mm2=lambda bundle, c: c.macro_area_mm2,
    trainer=_train, point=IdealPoint)


@pytest.fixture
def ideal():
    register_family(IDEAL)
    yield IDEAL
    unregister_family("ideal")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), w_bits=st.sampled_from([1, 2, 4, 8]))
@example(seed=0, w_bits=8)
@example(seed=1, w_bits=1)
def test_ideal_family_matches_exact_dcim_on_the_reference(seed, w_bits):
    register_family(IDEAL)
    try:
        dcim = digits_like_bundle(seed, w_bits=(w_bits,) * 3)      # exact partial sums
        x = np.random.default_rng(seed).integers(0, 256, (4, 1, 8, 8))
        got = run_network(on_family(dcim, "ideal"), x)
        np.testing.assert_array_equal(got.logits, run_network(dcim, x).logits)
        assert got.cycles_per_image == sum(layer.vectors for layer in dcim.macro_layers)
    finally:
        unregister_family("ideal")


def test_a_plugin_family_keeps_its_configuration_in_the_bundle(ideal, tmp_path):
    """macros.ideal round-trips through bundle.json and drives the family's cycle model;
    a bad value or a family without a spec class is one clear error."""
    bundle = replace(on_family(digits_like_bundle(), "ideal"),
                     specs={"ideal": IdealSpec(cycles_per_vector=3)})
    path = save_bundle(bundle, tmp_path / "b")
    doc = json.loads((path / "bundle.json").read_text())
    assert doc["macros"]["ideal"] == {"cycles_per_vector": 3}
    loaded = load_bundle(path)
    assert loaded.spec("ideal") == IdealSpec(3) and loaded.spec("dcim") == loaded.dcim
    vectors = sum(layer.vectors for layer in loaded.macro_layers)
    assert run_network(loaded, np.zeros((1, 1, 8, 8), np.uint8)).cycles_per_image == 3 * vectors
    doc["macros"]["ideal"]["cycles_per_vector"] = 0
    (path / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="IdealSpec.cycles_per_vector = 0 is out of range"):
        load_bundle(path)
    with pytest.raises(BundleError, match="macros.dcim: the family keeps no configuration"):
        replace(bundle, specs={"dcim": bundle.dcim}).validate()


def test_ideal_bundle_saves_loads_and_costs(ideal, tmp_path):
    bundle = on_family(digits_like_bundle(), "ideal")
    loaded = load_bundle(save_bundle(bundle, tmp_path / "b"))
    assert {layer.macro for layer in loaded.macro_layers} == {"ideal"}
    cost = network_cost(loaded)
    ops = sum(2 * m.k * m.channels * m.vectors for m in loaded.macro_layers)
    assert [r["macro"] for r in cost.layers] == ["ideal"] * 3
    assert cost.totals["ops"] == ops and cost.totals["energy_pj"] == ops * 0.5
    assert cost.totals["area_mm2"] == 2.0
    cheap = network_cost(loaded, constants={"ideal": IdealConstants(pj_per_op=0.25)})
    assert cheap.totals["energy_pj"] == ops * 0.25


def test_sweep_evaluates_an_ideal_point_like_the_exact_dcim_one(ideal):
    dcim = digits_like_bundle()
    got = evaluate_point({"macro": "ideal", "seed": 0}, on_family(dcim, "ideal"), {})
    want = evaluate_point({"macro": "dcim", "w_bits": 8, "x_bits": 8, "sparsity": 0.0,
                           "rows_on": 16, "seed": 0}, dcim, {})
    assert got["metrics"]["accuracy"] == want["metrics"]["accuracy"]
    assert got["metrics"]["fpga_images_per_s"] is None        # no FPGA kernel


def test_unknown_family_is_one_clear_error(tmp_path):
    bundle = on_family(digits_like_bundle(), "nosuch")
    with pytest.raises(BundleError, match=r"layer conv1: macro family 'nosuch' is not "
                                          r"registered; the registered families are dcim, "
                                          r"acim \("):
        save_bundle(bundle, tmp_path / "b")
    with pytest.raises(ConfigError, match="'nosuch' is not registered"):
        network_cost(bundle)
    with pytest.raises(ConfigError, match="'nosuch' is not registered"):
        run_network(bundle, np.zeros((1, 1, 8, 8), np.uint8))


def test_a_saved_toy_bundle_needs_its_family(ideal, tmp_path):
    folder = save_bundle(on_family(digits_like_bundle(), "ideal"), tmp_path / "b")
    unregister_family("ideal")
    try:
        with pytest.raises(BundleError, match="'ideal' is not registered"):
            load_bundle(folder)
    finally:
        register_family(IDEAL)


def test_registry_refuses_a_second_family_of_one_name(ideal):
    with pytest.raises(ConfigError, match="already registered"):
        register_family(replace(IDEAL, summary="another"))
    assert family_names() == ("dcim", "acim", "ideal")
    assert get_family("ideal") is IDEAL


def test_cli_cost_of_an_ideal_bundle_says_the_fpga_estimate_is_not_available(ideal, tmp_path):
    save_bundle(on_family(digits_like_bundle(), "ideal"), tmp_path / "b")
    code, out = run_cli(["cost", "b", "--json", "c.json"], tmp_path)
    assert code == 0, out
    assert "TOPS/W" in out and "DMA bound" not in out
    assert "FPGA overlay: not available (macro family ideal has no FPGA kernel)" in out
    figs = json.loads((tmp_path / "c.json").read_text())
    assert figs["fpga"] is None and figs["network"]["totals"]["area_mm2"] == 2.0


def test_cli_sweep_of_the_ideal_family_trains_through_its_hook(ideal, tmp_path):
    code, out = run_cli(["sweep", "--set", "macro=ideal", "--set", "seed=0,1", "--workers",
                         "0", "--out", "s"], tmp_path)
    assert code == 0, out
    assert "ideal: 2 points" in out and "2 models trained" in out
    rows = json.loads((tmp_path / "s" / "results.json").read_text())["points"]
    x, y = _digits_test()
    assert [(r["macro"], r["seed"]) for r in rows] == [("ideal", 0), ("ideal", 1)]
    for r in rows:
        want = integer_accuracy(_train({"seed": r["seed"]}, {}), x, y)
        assert r["accuracy"] == want and r["fpga_images_per_s"] is None
        assert r["ops"] == sum(2 * m.k * m.channels * m.vectors
                               for m in digits_like_bundle().macro_layers)


def test_a_family_without_trainer_sweeps_only_models_it_has(ideal, tmp_path):
    first = run_sweep({"ideal": {}}, tmp_path, workers=0)
    assert first.models_trained == 1 and first.rows[0]["macro"] == "ideal"
    unregister_family("ideal")
    register_family(replace(IDEAL, trainer=None))
    for point in (tmp_path / "points").iterdir():
        point.unlink()
    again = run_sweep({"ideal": {}}, tmp_path, workers=0)      # its model is in models/
    assert again.models_trained == 0 and again.rows == [
        {**first.rows[0], "seconds": again.rows[0]["seconds"]}]
    with pytest.raises(ConfigError, match="macro family ideal has no trainer hook, so the "
                                          "sweep cannot train its models"):
        run_sweep({"ideal": {"seed": 1}}, tmp_path, workers=0)
    assert len(list((tmp_path / "points").iterdir())) == 1


def test_unknown_family_in_a_sweep_grid_lists_the_sweepable_macros(ideal):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nosuch'\]; use the macro "
                                          r"tables \['dcim', 'acim', 'ideal', 'snn', 'flexspim'\]"):
        expand({"nosuch": {}})
    with pytest.raises(ConfigError, match=r"unknown macro\(s\) \['nosuch'\]; choose from "
                                          r"\['dcim', 'acim', 'ideal', 'snn', 'flexspim'\]"):
        merge_sets(None, {"macro": ["nosuch"]})
    assert [p.params() for p in expand({"ideal": {"seed": [0, 1]}})] == [
        {"macro": "ideal", "seed": 0}, {"macro": "ideal", "seed": 1}]
    unregister_family("ideal")
    try:
        register_family(replace(IDEAL, point=None))
        with pytest.raises(ConfigError, match="unknown key"):  # no sweep knobs: not sweepable
            expand({"ideal": {}})
    finally:
        unregister_family("ideal")
        register_family(IDEAL)


def test_fine_tuning_refuses_a_family_it_does_not_model(ideal):
    from cimstack.quant.graph_model import GraphModel
    with pytest.raises(ConfigError, match="is on ideal: fine-tuning models the dcim and "
                                          "acim macros only"):
        GraphModel(on_family(digits_like_bundle(0), "ideal"))
