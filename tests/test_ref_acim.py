"""The analog macro reference: fixed-point definition, noise generator, errors, and the
effective-bits property of the swing modes."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimstack.config import AcimSpec
from cimstack.errors import ConfigError
from cimstack.ref import prng
from cimstack.ref.acim import acim_codes, acim_layer, AcimLayerParams, exact_matmul, ideal_code
from cimstack.study.analog import effective_bits


def layer(rng, k, n, v, w_bits=8, x_bits=8, spec=AcimSpec(), gain_max=None):
    w = rng.integers(-(1 << (w_bits - 1)), 1 << (w_bits - 1), (k, n))
    x = rng.integers(0, 1 << x_bits, (v, k))
    lo, hi = spec.gain_range
    gain = rng.integers(lo, (gain_max or hi) + 1, n)
    olo, ohi = spec.offset_range
    return x, w, gain, rng.integers(olo, ohi + 1, n)


def test_noise_generator_scalar_and_vector_agree():
    m = prng.normal_m_grid(7, 3, np.arange(50), np.arange(20), 5)
    for s, c in [(0, 0), (13, 4), (49, 19)]:
        assert m[s, c] == prng.normal_m_scalar(7, 3, s, c, 5)
    big = prng.normal_m_grid(1, 0, np.arange(4000), np.arange(50)) / 64
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
    assert np.abs(big).max() <= 372 / 64


def test_same_seed_same_codes_other_seed_other_codes():
    rng = np.random.default_rng(0)
    spec = AcimSpec(sigma=1.5, seed=3, adc_bits=6)
    x, w, g, _ = layer(rng, 144, 16, 20, gain_max=2048)
    o = rng.integers(-40, 40, 16)
    a = acim_codes(x, w, 8, 8, spec, g, o, layer=1)
    np.testing.assert_array_equal(a, acim_codes(x, w, 8, 8, spec, g, o, layer=1))
    assert (a != acim_codes(x, w, 8, 8, AcimSpec(sigma=1.5, seed=4, adc_bits=6), g, o,
                            layer=1)).mean() > 0.3
    assert (a != acim_codes(x, w, 8, 8, spec, g, o, layer=2)).mean() > 0.3
    clean = acim_codes(x, w, 8, 8, AcimSpec(sigma=0.0, seed=3, adc_bits=6), g, o, layer=1)
    np.testing.assert_array_equal(clean, acim_codes(x, w, 8, 8, AcimSpec(seed=99, adc_bits=6),
                                                    g, o, layer=5))
    assert 1.0 < (a - clean)[(clean > 8) & (clean < 55)].std() < 2.0


@pytest.mark.parametrize("per_bit", [False, True])
def test_split_batches_and_slices_give_identical_noise(per_bit):
    rng = np.random.default_rng(1)
    spec = AcimSpec(sigma=2.0, seed=5, adc_per_input_bit=per_bit)
    x, w, g, o = layer(rng, 100, 12, 9, gain_max=4096)
    whole = acim_codes(x, w, 8, 8, spec, g, o)
    parts = np.concatenate([acim_codes(x[:4], w, 8, 8, spec, g, o),
                            acim_codes(x[4:], w, 8, 8, spec, g, o, sample_base=4)])
    cols = np.concatenate([acim_codes(x, w[:, :5], 8, 8, spec, g[:5], o[:5]),
                           acim_codes(x, w[:, 5:], 8, 8, spec, g[5:], o[5:], chan_base=5)],
                          axis=1)
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(whole, cols)


def exact_code(dot, fs, g, gf, o, of, a):
    """round_half_up(h*(G*dot/FS + 1) + beta), clipped, in exact rationals."""
    h = 1 << (a - 1)
    v = Fraction(h * g * dot, fs * (1 << gf)) + h + Fraction(o, 1 << of)
    return min(max(math.floor(v + Fraction(1, 2)), 0), (1 << a) - 1)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 1152), w_bits=st.integers(1, 8), x_bits=st.integers(1, 8),
       adc_bits=st.integers(1, 8), swing=st.sampled_from(["fixed", "adaptive"]),
       segments=st.sampled_from([1, 2, 4, 9, 16]), seed=st.integers(0, 2**32 - 1))
def test_sigma0_is_the_rounded_ideal_formula(k, w_bits, x_bits, adc_bits, swing, segments,
                                             seed):
    spec = AcimSpec(adc_bits=adc_bits, swing=swing, segments=segments)
    rng = np.random.default_rng(seed)
    x, w, g, o = layer(rng, k, 3, 2, w_bits if w_bits > 1 else 2, x_bits, spec)
    if w_bits == 1:
        w = np.where(w >= 0, 1, -1)
    codes = acim_codes(x, w, w_bits, x_bits, spec, g, o)
    fs = spec.norm_rows(k) * ((1 << x_bits) - 1) * (1 << (w_bits - 1))
    dot = x @ w
    want = [[exact_code(int(dot[i, j]), fs, int(g[j]), spec.gain_frac_bits, int(o[j]),
                        spec.offset_frac_bits, adc_bits) for j in range(3)] for i in range(2)]
    np.testing.assert_array_equal(codes, want)


def test_ideal_limit_enough_adc_bits():
    """sigma 0, 8-bit ADC, gains that keep the swing inside the range: every code is the
    ideal value rounded, within half an LSB of the float formula."""
    rng = np.random.default_rng(3)
    spec = AcimSpec(adc_bits=8)
    x, w, _, _ = layer(rng, 300, 16, 50)
    g = np.full(16, 256 * 8)
    o = np.zeros(16, np.int64)
    codes = acim_codes(x, w, 8, 8, spec, g, o)
    ideal = ideal_code(x @ w, spec.norm_rows(300), 8, 8, spec, g, o)
    assert (ideal > 0).all() and (ideal < 255).all()
    assert np.abs(codes - ideal).max() <= 0.5


def test_per_bit_mode_equals_charge_mode_without_quantization_loss():
    """With x_bits = 1 and no offset there is a single conversion: both modes agree."""
    rng = np.random.default_rng(4)
    x, w, g, _ = layer(rng, 64, 8, 30, x_bits=1, gain_max=3000)
    o = np.zeros(8, np.int64)       # the per-bit mode adds the offset after its clip
    for sigma in (0.0, 3.0):
        a = acim_codes(x, w, 8, 1, AcimSpec(sigma=sigma), g, o)
        b = acim_codes(x, w, 8, 1, AcimSpec(sigma=sigma, adc_per_input_bit=True), g, o)
        np.testing.assert_array_equal(a, b)


def test_exact_matmul_chunks():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (7, 1152))
    w = rng.integers(-128, 128, (1152, 5))
    np.testing.assert_array_equal(exact_matmul(x, w, 255, 128), x @ w)


def test_requantized_layer():
    from cimstack.bundle import Requant
    rng = np.random.default_rng(6)
    x, w, g, o = layer(rng, 20, 4, 3, gain_max=2000)
    p = AcimLayerParams(g, o, layer=2)
    rq = Requant(np.full(4, 3, np.int64), np.full(4, -10, np.int64), 1, 0, 100)
    codes = acim_layer(x, w, 8, 8, AcimSpec(), p)
    np.testing.assert_array_equal(acim_layer(x, w, 8, 8, AcimSpec(), p, rq),
                                  np.clip((codes * 3 - 10 + 1) >> 1, 0, 100))


@pytest.mark.parametrize("kwargs, match", [
    (dict(adc_bits=0), r"adc_bits = 0 is out of range: allowed \[1, 8\]"),
    (dict(adc_bits=9), r"adc_bits = 9 is out of range: allowed \[1, 8\]"),
    (dict(segments=5), r"segments = 5 must divide rows = 1152"),
    (dict(swing="auto"), r"swing = 'auto' is not allowed"),
    (dict(gain_bits=16, gain_frac_bits=4), r"gain format 16.4 allows gains of 256"),
    (dict(sigma=20.0), r"sigma = 20.0 is out of range"),
    (dict(adc_per_input_bit=1), r"adc_per_input_bit = 1 is not allowed: choose one of \[False, True\]"),
])
def test_bad_specs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AcimSpec(**kwargs)


def test_bad_layers():
    rng = np.random.default_rng(7)
    spec = AcimSpec(rows=128, segments=4)
    x, w, g, o = layer(rng, 129, 2, 1, spec=AcimSpec())
    with pytest.raises(ConfigError, match="activates 129 rows but the analog array has rows = 128"):
        acim_codes(x, w, 8, 8, spec, np.zeros(2, int), np.zeros(2, int))
    x, w, g, o = layer(rng, 10, 2, 1)
    with pytest.raises(ConfigError, match=r"gain holds 65536, outside its 16-bit format .*"
                                          r"\[0, 65535\]"):
        acim_codes(x, w, 8, 8, AcimSpec(), np.array([1, 65536]), o)
    with pytest.raises(ConfigError, match=r"gain holds -1"):
        acim_codes(x, w, 8, 8, AcimSpec(), np.array([1, -1]), o)
    with pytest.raises(ConfigError, match=r"offset holds 2048, outside its 12-bit format"):
        acim_codes(x, w, 8, 8, AcimSpec(), g, np.array([0, 2048]))
    with pytest.raises(ConfigError, match=r"gain must be a 1-D integer array"):
        acim_codes(x, w, 8, 8, AcimSpec(), np.array([1.5, 2.0]), o)
    with pytest.raises(ConfigError, match=r"inputs span"):
        acim_codes(x + 300, w, 8, 8, AcimSpec(), g, o)


@pytest.mark.parametrize("active_rows", [144, 288, 72])
def test_adaptive_swing_recovers_the_fixed_swing_loss(active_rows):
    """ENOB(adaptive + ABN) - ENOB(fixed) = log2(1152 / active_rows) within 0.5 bit."""
    want = math.log2(1152 / active_rows)
    for a in (7, 8):
        fixed = effective_bits(a, "fixed", active_rows, samples=1024, channels=16)
        adapt = effective_bits(a, "adaptive+abn", active_rows, samples=1024, channels=16)
        assert abs(adapt["enob"] - fixed["enob"] - want) < 0.5, (a, fixed, adapt)
        assert abs(adapt["enob"] - (a - 0.29)) < 0.5
