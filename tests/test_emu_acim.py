"""Analog networks on the emulated overlay against the reference, noise included."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cimstack.backends import open_backend
from cimstack.bundle import (Bundle, FlattenLayer, InputSpec, MacroLayer, PoolLayer, Requant,
                             load_bundle, save_bundle)
from cimstack.config import AcimLayerParams, AcimSpec
from cimstack.ref.network import run_network
from cimstack.verify.compare import verify

from conftest import random_weight


def analog_bundle(seed=0, adc_bits=6, sigma=1.0, swing="adaptive", per_bit=False, w_bits=8,
                  fc_out=10) -> Bundle:
    """conv-pool-flatten-fc on 1x8x8 inputs, both macro layers analog."""
    rng = np.random.default_rng(seed)
    spec = AcimSpec(adc_bits=adc_bits, sigma=sigma, swing=swing, adc_per_input_bit=per_bit,
                    seed=seed)
    top = (1 << adc_bits) - 1

    def params(n, key):
        g_lo, g_hi = spec.gain_range
        o_lo, o_hi = spec.offset_range
        return AcimLayerParams(rng.integers(max(g_lo, 1), min(g_hi, 8 << spec.gain_frac_bits), n),
                               rng.integers(max(o_lo, -64), min(o_hi, 64), n), layer=key)

    ident = lambda n, lo, hi: Requant(np.ones(n, np.int64), np.zeros(n, np.int64), 0, lo, hi)
    layers = [
        MacroLayer("conv1", "conv2d", random_weight(rng, (12, 1, 3, 3), w_bits), w_bits, 8,
                   ident(12, 0, top), (1, 8, 8), (12, 8, 8), padding=1, macro="acim",
                   analog=params(12, 0)),
        PoolLayer("pool1", (12, 8, 8), (12, 4, 4)),
        FlattenLayer("flatten", (12, 4, 4), (192,)),
        MacroLayer("fc", "linear", random_weight(rng, (fc_out, 192), w_bits), w_bits, adc_bits,
                   ident(fc_out, -(2**31), 2**31 - 1), (192,), (fc_out,), macro="acim",
                   analog=params(fc_out, 1)),
    ]
    return Bundle("random-analog", InputSpec((1, 8, 8), 8, 1 / 255), layers, acim=spec)


@pytest.fixture(scope="module")
def emu_backend():
    return open_backend("emu", timeout_s=5.0)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), adc_bits=st.integers(1, 8), sigma=st.sampled_from([0.0, 1.5]),
       swing=st.sampled_from(["fixed", "adaptive"]), per_bit=st.booleans(),
       w_bits=st.sampled_from([1, 4, 8]))
def test_analog_networks_bit_exact_with_noise(emu_backend, seed, adc_bits, sigma, swing,
                                              per_bit, w_bits):
    bundle = analog_bundle(seed, adc_bits, sigma, swing, per_bit, w_bits)
    images = np.random.default_rng(seed).integers(0, 256, (6, 1, 8, 8))
    rep = verify(bundle, images, emu_backend.engine, "emu")
    assert rep.ok, rep.summary()


def test_split_batches_and_channel_slices_keep_the_noise(emu_backend):
    bundle = analog_bundle(7, sigma=2.0, fc_out=200)          # fc: two slices of <= 128
    images = np.random.default_rng(7).integers(0, 256, (5, 1, 8, 8))
    runner = emu_backend.overlay.runner("acim")
    runner.max_vectors = 37                                    # conv1: 320 vectors
    got = run_network(bundle, images, engine=runner.engine).logits
    np.testing.assert_array_equal(got, run_network(bundle, images).logits)


def test_noise_changes_with_the_seed_only():
    bundle = analog_bundle(3, sigma=2.0)
    images = np.random.default_rng(3).integers(0, 256, (4, 1, 8, 8))
    a = run_network(bundle, images).logits
    np.testing.assert_array_equal(a, run_network(bundle, images).logits)
    other = replace(bundle, acim=replace(bundle.acim, seed=bundle.acim.seed + 1))
    assert not np.array_equal(a, run_network(other, images).logits)


def test_analog_bundle_round_trip(tmp_path):
    bundle = analog_bundle(5)
    loaded = load_bundle(save_bundle(bundle, tmp_path / "b"))
    assert loaded.acim == bundle.acim
    for a, b in zip(loaded.macro_layers, bundle.macro_layers):
        np.testing.assert_array_equal(a.analog.gain, b.analog.gain)
        np.testing.assert_array_equal(a.analog.offset, b.analog.offset)
        assert a.analog.layer == b.analog.layer and a.macro == "acim"
    images = np.random.default_rng(5).integers(0, 256, (3, 1, 8, 8))
    np.testing.assert_array_equal(run_network(loaded, images).logits,
                                  run_network(bundle, images).logits)


@pytest.mark.parametrize("damage, match", [
    (lambda b: replace(b, acim=None), "has no acim configuration"),
    (lambda b: (setattr(b.layers[0], "analog", None), b)[1], "needs its analog parameters"),
    (lambda b: (b.layers[0].analog.gain.__setitem__(0, 1 << 20), b)[1],
     r"gain holds 1048576, outside its 16-bit format"),
])
def test_bad_analog_bundles(tmp_path, damage, match):
    from cimstack.errors import BundleError
    with pytest.raises(BundleError, match=match):
        save_bundle(damage(analog_bundle(1)), tmp_path / "b")
