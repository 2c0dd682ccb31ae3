"""Macro families as plug-ins: a toy fourth family, an ideal exact-integer macro, is
declared and registered from this file alone and runs a bundle through bundle
validation, the reference executor, the cost model and the sweep's evaluation of a
point; an unknown family is one clear error."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
from cimstack.bundle import load_bundle, save_bundle
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
from cimstack.sweep.points import MODEL, Point, sweep_knob
from cimstack.sweep.tasks import evaluate_point
from conftest import digits_like_bundle
from hypothesis import example, given, settings
from hypothesis import strategies as st


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


IDEAL = MacroFamily(
    name="ideal", summary="exact integer dot product, one cycle per vector", spec=None,
    check_layer=_check, acc_bound=_acc_bound, reference=_reference,
    cycles=lambda layer, bundle: LayerCost(1, 1, 1, 1, 0, 0),
    cost_constants=IdealConstants, layer_cost=_layer_cost,
    resident_tiles=lambda bundle: 1 << 30, area_mm2=lambda bundle, c: c.macro_area_mm2,
    point=IdealPoint)


@pytest.fixture
def ideal():
    register_family(IDEAL)
    yield IDEAL
    unregister_family("ideal")


def on_family(bundle, macro):
    return replace(bundle, layers=[replace(layer, macro=macro) if hasattr(layer, "macro")
                                   else layer for layer in bundle.layers])


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
