"""Per-layer sensitivity (cimstack.study.sensitivity): each figure is the accuracy of the
bundle with that one layer changed, built here by hand from the rules in the module's
docstring, minus the baseline."""

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from cimstack.bundle import Bundle, Requant, save_bundle
from cimstack.config import AcimLayerParams, AcimSpec
from cimstack.errors import ConfigError
from cimstack.quant.data import load_digits_split
from cimstack.ref.network import integer_accuracy, quantize_input, run_network
from cimstack.cost import network_cost
from cimstack.bundle import bundle_digest
from cimstack.study.search import apply_assignment, base_assignment
from cimstack.study.sensitivity import (lower_adc_bits, lower_w_bits, lower_x_bits,
                                        sensitivity, to_acim)

from badcase import run_cli
from conftest import lstsq_bundle


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def fitted(digits) -> Bundle:
    """The least-squares digits bundle of conftest (0.81 accuracy)."""
    return lstsq_bundle(digits)


def test_each_figure_is_the_hand_built_bundle_minus_the_baseline(fitted, digits):
    x, y = digits.x_test, digits.y_test
    res = sensitivity(fitted, x, y, sigma=0.5, adc_bits=6)
    base = integer_accuracy(fitted, x, y)
    assert res.baseline == base > 0.75
    spec = AcimSpec(sigma=0.5)
    fc1, fc2 = fitted.layers[1], fitted.layers[2]
    # fc1 on acim, 6-bit ADC: G = m*FS/h, beta = c - h, identity requantizer
    unit = 2.0**fc1.requant.shift
    m, c = fc1.requant.multiplier / unit, fc1.requant.bias / unit
    fs, h = spec.norm_rows(64) * 255 * 128, 32
    analog = AcimLayerParams(np.round(m * fs / h * 256).astype(np.int64),
                             np.round((c - h) * 4).astype(np.int64), layer=1)
    fc1_acim = replace(fc1, macro="acim", analog=analog, adc_bits=6, requant=Requant(
        np.ones(32, np.int64), np.zeros(32, np.int64), 0, 0, 63))
    # fc1's weights to 7 bits: w' = floor(w/2 + 1/2) within [-64, 63], M * 2
    w7 = np.clip(np.floor(fc1.weight / 2 + 0.5), -64, 63).astype(np.int8)
    fc1_w7 = replace(fc1, weight=w7, w_bits=7,
                     requant=replace(fc1.requant, multiplier=fc1.requant.multiplier * 2))
    # fc2 reads 5-bit inputs: fc1 rounds to [0, 31] (shift + 1), fc2's M * 2
    fc1_x5 = replace(fc1, requant=replace(fc1.requant, shift=fc1.requant.shift + 1, hi=31))
    fc2_x5 = replace(fc2, x_bits=5,
                     requant=replace(fc2.requant, multiplier=fc2.requant.multiplier * 2))
    # fc2 block-pruned to 0.25: of its 2 groups of 16 rows (one row tile) each channel
    # zeroes the one with the smaller L2 norm (the first on a tie)
    w = fc2.weight.astype(np.int64)
    norms = np.stack([(w[:, :16] ** 2).sum(1), (w[:, 16:] ** 2).sum(1)], axis=1)
    weakest = np.argmin(norms, axis=1)
    w_pruned = fc2.weight.copy()
    for n, g in enumerate(weakest):
        w_pruned[n, 16 * g:16 * (g + 1)] = 0
    fc2_sparse = replace(fc2, weight=w_pruned)
    by_hand = {("fc2", "sparsity"): [fitted.layers[0], fc1, fc2_sparse],
               ("fc1", "acim"): [fitted.layers[0], fc1_acim, fc2],
               ("fc1", "w_bits"): [fitted.layers[0], fc1_w7, fc2],
               ("fc2", "x_bits"): [fitted.layers[0], fc1_x5, fc2_x5]}
    got = {(ch.layer, ch.change): ch for ch in res.changes}
    for key, layers in by_hand.items():
        acc = integer_accuracy(replace(fitted, layers=layers, acim=spec), x, y)
        assert got[key].delta == acc - base, key
    assert got[("fc1", "acim")].delta != 0 and got[("fc2", "x_bits")].delta != 0
    assert got[("fc1", "x_bits")].value == 7                 # the input quantizer loses a bit
    assert got[("fc2", "sparsity")].value == 0.25 and got[("fc2", "sparsity")].delta < 0
    assert got[("fc2", "acim")].accuracy is not None         # the logits' mapping
    again = sensitivity(fitted, x, y, sigma=0.5, adc_bits=6)
    assert again.to_dict() == res.to_dict()                  # deterministic


def test_changes_a_layer_cannot_take_say_why(fitted, digits):
    res = sensitivity(fitted, digits.x_test[:20], digits.y_test[:20], adc_bits=5,
                      w_bits=2, changes=("acim", "w_bits"))
    notes = {(c.layer, c.change): c.note for c in res.changes if c.accuracy is None}
    assert "activation has 6 bits but the ADC gives 5-bit codes" in notes[("fc1", "acim")]
    assert not notes.get(("fc2", "w_bits"))
    with pytest.raises(ConfigError, match="already on acim"):
        to_acim(to_acim(fitted, "fc1", AcimSpec()), "fc1", AcimSpec())
    with pytest.raises(ConfigError, match="cannot be lowered to 1"):
        lower_w_bits(fitted, "fc2", 1)
    with pytest.raises(ConfigError, match="no macro layer 'fc3'"):
        lower_x_bits(fitted, "fc3", 4)
    with pytest.raises(ConfigError, match="choose from acim, w_bits, x_bits, sparsity"):
        sensitivity(fitted, digits.x_test, digits.y_test, changes=("pruning",))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), w_bits=st.integers(3, 8), d=st.integers(1, 6))
@example(seed=0, w_bits=8, d=6)
@example(seed=1, w_bits=3, d=1)
def test_lowered_weights_are_the_rounded_shift(fitted, seed, w_bits, d):
    """Within the new range, ``w' * 2^d`` is ``w`` to within half a new step; only the top
    code clips (round half up of the largest weights)."""
    if w_bits - d < 2:
        return
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    w = rng.integers(lo, hi + 1, (10, 32)).astype(np.int8)
    b = replace(fitted, layers=[fitted.layers[0], fitted.layers[1],
                                replace(fitted.layers[2], weight=w, w_bits=w_bits)])
    out = lower_w_bits(b, "fc2", w_bits - d).layers[2]
    w2 = out.weight.astype(np.int64)
    new_hi = (1 << (w_bits - d - 1)) - 1
    assert w2.min() >= -new_hi - 1 and w2.max() <= new_hi
    inside = w2 < new_hi
    assert np.all(np.abs(w2 * 2**d - w)[inside] <= 2 ** (d - 1))
    assert np.all(w[~inside] >= new_hi * 2**d - 2 ** (d - 1))
    assert np.array_equal(out.requant.multiplier, b.layers[2].requant.multiplier << d)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), adc_bits=st.integers(6, 8))
@example(seed=0, adc_bits=6)
def test_moving_a_layer_to_acim_keeps_its_codes_within_one(fitted, seed, adc_bits):
    """Without noise the analog layer computes ``round(m*dot + c)`` up to the ABN's
    fixed-point rounding: no code moves by more than one."""
    x = quantize_input(fitted, np.random.default_rng(seed).random((40, 1, 8, 8)))
    moved = to_acim(fitted, "fc1", AcimSpec(adc_bits=adc_bits))
    assert moved.layers[1].adc_bits is None and moved.acim.adc_bits == adc_bits
    a = run_network(fitted, x, keep_activations=True).activations["fc1"].astype(int)
    b = run_network(moved, x, keep_activations=True).activations["fc1"].astype(int)
    assert np.abs(a - b).max() <= 1


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), adc_bits=st.integers(6, 8), d=st.integers(1, 4))
@example(seed=0, adc_bits=8, d=4)
@example(seed=1, adc_bits=6, d=1)
def test_a_lowered_adc_gives_coarser_codes_of_the_same_scale(fitted, seed, adc_bits, d):
    """An acim layer's ADC at ``a - d`` bits: its outputs (the requantizer takes ``M *
    2^d``) stay within ``2^d`` of the full ADC's, in the same format, and the cost model
    prices the smaller ADC."""
    x = quantize_input(fitted, np.random.default_rng(seed).random((40, 1, 8, 8)))
    moved = to_acim(fitted, "fc1", AcimSpec(adc_bits=adc_bits))
    low = lower_adc_bits(moved, "fc1", adc_bits - d)
    layer = low.layers[1]
    assert layer.adc_bits == adc_bits - d and low.acim_for(layer).adc_bits == adc_bits - d
    assert np.array_equal(layer.requant.multiplier, moved.layers[1].requant.multiplier << d)
    assert (layer.requant.lo, layer.requant.hi) == (moved.layers[1].requant.lo,
                                                   moved.layers[1].requant.hi)
    a = run_network(moved, x, keep_activations=True).activations["fc1"].astype(int)
    b = run_network(low, x, keep_activations=True).activations["fc1"].astype(int)
    assert np.abs(a - b).max() <= 2 ** d
    hi = layer.requant.hi                      # the coarser codes, times 2^d, or the top
    assert np.all((b % (1 << d) == 0) | (b == hi))
    energy = [network_cost(bd).totals["energy_pj"] for bd in (moved, low)]
    assert energy[1] < energy[0]
    # the search's assignment with that ADC is the same bundle
    settings_low = tuple(replace(s, adc_bits=adc_bits - d) if s.family == "acim" else s
                         for s in base_assignment(moved))
    assert bundle_digest(apply_assignment(moved, settings_low, moved.acim)) == \
        bundle_digest(low)


def test_the_adc_of_acim_layers_is_a_sensitivity(fitted, digits):
    moved = to_acim(fitted, "fc1", AcimSpec(adc_bits=7))
    res = sensitivity(moved, digits.x_test, digits.y_test, changes=("adc_bits",))
    got = {c.layer: c for c in res.changes}
    assert got["fc1"].value == 6 and got["fc1"].accuracy == integer_accuracy(
        lower_adc_bits(moved, "fc1", 6), digits.x_test, digits.y_test)
    assert "fc2" not in got                    # a dcim layer has no ADC
    with pytest.raises(ConfigError, match="cannot be lowered to 7 bits"):
        lower_adc_bits(moved, "fc1", 7)


def test_cli_prints_the_table_and_writes_the_json(fitted, digits, tmp_path):
    save_bundle(fitted, tmp_path / "b")
    np.savez(tmp_path / "d.npz", x=digits.x_test[:60], y=digits.y_test[:60])
    code, text = run_cli(["sensitivity", "b", "--data", "d.npz", "--adc-bits", "6",
                          "--out", "s.json"], tmp_path)
    assert code == 0, text
    assert "sensitivity of lstsq" in text and "fc2" in text
    doc = json.loads((tmp_path / "s.json").read_text())
    want = sensitivity(fitted, digits.x_test[:60], digits.y_test[:60], adc_bits=6,
                       source="--data d.npz").to_dict()
    assert doc == json.loads(json.dumps(want))
    np.savez(tmp_path / "nolabels.npz", x=digits.x_test[:5])
    code, text = run_cli(["sensitivity", "b", "--data", "nolabels.npz"], tmp_path)
    assert code == 2 and "needs labels" in text and "Traceback" not in text
