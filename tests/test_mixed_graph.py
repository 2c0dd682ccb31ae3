"""Mixed graphs: dcim and acim layers in one bundle, each with its own w_bits, x_bits and
(acim) ADC bits, run bit-exactly on the reference, the emulated overlay and verify, and
costed per layer on its own family."""

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from cimstack.backends import open_backend
from cimstack.bundle import (Bundle, FlattenLayer, InputSpec, MacroLayer, PoolLayer, Requant,
                             load_bundle, save_bundle)
from cimstack.config import AcimLayerParams, AcimSpec
from cimstack.cost.network import network_cost
from cimstack.errors import BundleError
from cimstack.ref.network import run_network
from cimstack.verify.compare import verify

from conftest import random_requant, random_weight


def mixed_bundle(seed=0, adc_conv2=5, spec_adc=7, sigma=1.0, per_bit=False) -> Bundle:
    """dcim conv1 (W8 X8) -> acim conv2 (W4 X4, its own ``adc_conv2`` ADC bits) -> acim
    fc1 (W6, X = adc_conv2, the spec's ``spec_adc`` bits) -> dcim fc2 (W4, X = spec_adc,
    the logits). Tensors cross dcim -> acim -> acim -> dcim."""
    rng = np.random.default_rng(seed)
    spec = AcimSpec(adc_bits=spec_adc, sigma=sigma, adc_per_input_bit=per_bit, seed=seed)

    def params(n, key):
        return AcimLayerParams(rng.integers(1, 8 << spec.gain_frac_bits, n),
                               rng.integers(-64, 64, n), layer=key)

    def ident(n, bits):
        return Requant(np.ones(n, np.int64), np.zeros(n, np.int64), 0, 0, (1 << bits) - 1)

    layers = [
        MacroLayer("conv1", "conv2d", random_weight(rng, (16, 1, 3, 3), 8), 8, 8,
                   random_requant(rng, 16, 4), (1, 8, 8), (16, 8, 8), padding=1),
        PoolLayer("pool1", (16, 8, 8), (16, 4, 4)),
        MacroLayer("conv2", "conv2d", random_weight(rng, (32, 16, 3, 3), 4), 4, 4,
                   ident(32, adc_conv2), (16, 4, 4), (32, 4, 4), padding=1, macro="acim",
                   analog=params(32, 2), adc_bits=adc_conv2),
        PoolLayer("pool2", (32, 4, 4), (32, 2, 2)),
        FlattenLayer("flatten", (32, 2, 2), (128,)),
        MacroLayer("fc1", "linear", random_weight(rng, (24, 128), 6), 6, adc_conv2,
                   ident(24, spec_adc), (128,), (24,), macro="acim", analog=params(24, 5)),
        MacroLayer("fc2", "linear", random_weight(rng, (10, 24), 4), 4, spec_adc,
                   random_requant(rng, 10), (24,), (10,)),
    ]
    return Bundle("mixed", InputSpec((1, 8, 8), 8, 1 / 255), layers, acim=spec)


@pytest.fixture(scope="module")
def emu_backend():
    return open_backend("emu", timeout_s=5.0)


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), adc_conv2=st.integers(1, 8), spec_adc=st.integers(1, 8),
       sigma=st.sampled_from([0.0, 1.5]), per_bit=st.booleans())
@example(seed=0, adc_conv2=1, spec_adc=8, sigma=1.5, per_bit=False)
@example(seed=1, adc_conv2=8, spec_adc=3, sigma=0.0, per_bit=True)
def test_mixed_graph_is_bit_exact_on_reference_emu_and_verify(emu_backend, seed, adc_conv2,
                                                             spec_adc, sigma, per_bit):
    bundle = mixed_bundle(seed, adc_conv2, spec_adc, sigma, per_bit)
    x = np.random.default_rng(seed).integers(0, 256, (5, 1, 8, 8))
    ref = run_network(bundle, x, keep_activations=True)
    assert ref.activations["conv2"].max() <= (1 << adc_conv2) - 1
    report = verify(bundle, x, emu_backend.engine, "emu")
    assert report.ok, report.summary()
    emu = run_network(bundle, x, emu_backend.engine)
    np.testing.assert_array_equal(emu.logits, ref.logits)


def test_a_layers_adc_bits_replace_the_specs_for_that_layer_only():
    """conv2 with its own 5 ADC bits under a 7-bit spec computes what it computes under a
    5-bit spec; fc1 (no adc_bits of its own) follows the spec."""
    x = np.random.default_rng(3).integers(0, 256, (6, 1, 8, 8))
    own = run_network(mixed_bundle(adc_conv2=5, spec_adc=7), x, keep_activations=True)
    b5 = mixed_bundle(adc_conv2=5, spec_adc=7)
    b5 = replace(b5, acim=replace(b5.acim, adc_bits=5))
    b5.layers[2] = replace(b5.layers[2], adc_bits=None)
    b5.layers[5] = replace(b5.layers[5], requant=replace(b5.layers[5].requant, hi=31))
    b5.layers[6] = replace(b5.layers[6], x_bits=5)
    spec5 = run_network(b5, x, keep_activations=True)
    np.testing.assert_array_equal(own.activations["conv2"], spec5.activations["conv2"])
    assert own.activations["fc1"].max() > 31 >= spec5.activations["fc1"].max()


def test_mixed_graph_costs_each_layer_on_its_family_with_its_adc_bits():
    bundle = mixed_bundle(adc_conv2=3, spec_adc=8)
    rows = network_cost(bundle).layers
    assert [r["macro"] for r in rows] == ["dcim", "acim", "acim", "dcim"]
    own = rows[1]
    same = network_cost(replace(bundle, acim=replace(bundle.acim, adc_bits=3))).layers[1]
    wide = network_cost(replace(bundle, layers=[
        replace(layer, adc_bits=None) if isinstance(layer, MacroLayer) else layer
        for layer in bundle.layers])).layers[1]
    assert own["energy_readout_pj"] == pytest.approx(same["energy_readout_pj"])
    assert own["energy_readout_pj"] == pytest.approx(wide["energy_readout_pj"] * 3 / 8)


def test_adc_bits_round_trip_and_old_bundles_load(tmp_path):
    bundle = mixed_bundle()
    back = load_bundle(save_bundle(bundle, tmp_path / "b"))
    assert [getattr(layer, "adc_bits", None) for layer in back.layers] == \
        [None, None, 5, None, None, None, None]
    meta = tmp_path / "b" / "bundle.json"
    doc = json.loads(meta.read_text())
    assert [d.get("adc_bits") for d in doc["layers"]] == [None, None, 5, None, None, None, None]
    x = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8))
    np.testing.assert_array_equal(run_network(back, x).logits, run_network(bundle, x).logits)
    del doc["layers"][2]["adc_bits"]               # a bundle written before the key
    doc["layers"][5]["x_bits"] = 7                 # fc1 now reads conv2's 7-bit codes
    meta.write_text(json.dumps(doc))
    assert load_bundle(tmp_path / "b").layers[2].adc_bits is None


@pytest.mark.parametrize("layer, change, match", [
    (2, {"adc_bits": 9}, r"conv2.adc_bits = 9 is out of range"),
    (2, {"adc_bits": 0}, r"conv2.adc_bits = 0 is out of range"),
    (0, {"adc_bits": 6}, r"conv1: a dcim layer has no analog parameters .*adc_bits"),
])
def test_bad_adc_bits_are_one_clear_error(layer, change, match):
    bundle = mixed_bundle()
    bundle.layers[layer] = replace(bundle.layers[layer], **change)
    with pytest.raises(BundleError, match=match):
        bundle.validate()
