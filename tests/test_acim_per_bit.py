"""The analog macro's ADC-per-input-bit mode: the fused numba back end and the NumPy one
against the fixed-point definition in Python integers (docs/macros.md, "acim"), at
random and at the largest magnitudes the formats allow."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimstack.config import AcimSpec
from cimstack.errors import ConfigError
from cimstack.ref import acim_fast, prng
from cimstack.ref.acim import acim_codes

pytestmark = pytest.mark.skipif(not acim_fast.AVAILABLE, reason="needs numba")

F = 19


def per_bit_exact(x, w, w_bits, x_bits, spec, gain, offset, layer=0, sample_base=0,
                  chan_base=0):
    """The per-bit mode written out in Python integers, one conversion at a time."""
    h, top = 1 << (spec.adc_bits - 1), (1 << spec.adc_bits) - 1
    fs1 = spec.norm_rows(w.shape[0]) * (1 << (w_bits - 1))
    xm = (1 << x_bits) - 1
    gf, of = spec.gain_frac_bits, spec.offset_frac_bits
    out = np.empty((len(x), w.shape[1]), np.int64)
    for i in range(len(x)):
        for j in range(w.shape[1]):
            total = 0
            for b in range(x_bits):
                dot = int(((x[i] >> b) & 1) @ w[:, j])
                m = prng.normal_m_scalar(spec.seed, layer, sample_base + i, chan_base + j, b)
                num = h * int(gain[j]) * 2**(F - gf) * dot \
                    + fs1 * (h * 2**F + 32 * spec.sigma_q * m + 2**(F - 1))
                total += (min(max(num // (fs1 * 2**F), 0), top) - h) << b
            code = (total * 2**F + xm * (h * 2**F + int(offset[j]) * 2**(F - of)
                                         + 2**(F - 1))) // (xm * 2**F)
            out[i, j] = min(max(code, 0), top)
    return out


def both_engines(*args, **kwargs):
    """Codes from the numba and the NumPy back end, checked equal."""
    fused = acim_codes(*args, engine="numba", **kwargs)
    np.testing.assert_array_equal(fused, acim_codes(*args, engine="numpy", **kwargs))
    return fused


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 1152), n=st.integers(1, 9), v=st.integers(1, 5),
       w_bits=st.integers(1, 8), x_bits=st.integers(1, 8), adc_bits=st.integers(1, 8),
       swing=st.sampled_from(["fixed", "adaptive"]), sigma=st.sampled_from([0.0, 0.7, 16.0]),
       gain_bits=st.integers(1, 16), gain_frac=st.integers(0, 16),
       gain_kind=st.sampled_from(["random", "unit", "max"]),
       seed=st.integers(0, 2**32 - 1), layer=st.integers(0, 65535),
       sample_base=st.integers(0, 2**32 - 6), chan_base=st.integers(0, 60000),
       data=st.integers(0, 2**32 - 1))
def test_engines_match_the_integer_definition(k, n, v, w_bits, x_bits, adc_bits, swing, sigma,
                                              gain_bits, gain_frac, gain_kind, seed, layer,
                                              sample_base, chan_base, data):
    gain_frac = max(gain_bits - 8, min(gain_frac, gain_bits))
    spec = AcimSpec(adc_bits=adc_bits, swing=swing, adc_per_input_bit=True, sigma=sigma,
                    seed=seed, gain_bits=gain_bits, gain_frac_bits=gain_frac)
    rng = np.random.default_rng(data)
    w = rng.integers(-(1 << (w_bits - 1)), 1 << (w_bits - 1), (k, n)) if w_bits > 1 \
        else rng.choice(np.array([-1, 1]), (k, n))
    x = rng.integers(0, 1 << x_bits, (v, k))
    lo, hi = spec.gain_range
    gain = {"random": rng.integers(lo, hi + 1, n), "max": np.full(n, hi),
            "unit": np.full(n, min(hi, 1 << gain_frac))}[gain_kind]
    offset = rng.integers(*spec.offset_range, n, endpoint=True)
    keys = {"layer": layer, "sample_base": sample_base, "chan_base": chan_base}
    np.testing.assert_array_equal(
        both_engines(x, w, w_bits, x_bits, spec, gain, offset, **keys),
        per_bit_exact(x, w, w_bits, x_bits, spec, gain, offset, **keys))


@pytest.mark.parametrize("gain_bits, gain_frac", [(16, 8), (8, 0)])
def test_largest_numerators_are_exact(gain_bits, gain_frac):
    """All 1152 rows at their extreme weights, every input bit set, the largest gain and
    sigma, extreme offsets: the numerators reach 2^51, still exact in float64."""
    spec = AcimSpec(swing="fixed", adc_per_input_bit=True, sigma=16.0, seed=3,
                    gain_bits=gain_bits, gain_frac_bits=gain_frac)
    w = np.stack([np.full(1152, -128), np.full(1152, 127), np.tile([-128, 127], 576)], axis=1)
    x = np.stack([np.full(1152, 255), np.zeros(1152, np.int64),
                  np.random.default_rng(0).integers(0, 256, 1152)])
    gain = np.full(3, (1 << gain_bits) - 1)
    offset = np.array([-2048, 2047, 0])
    got = both_engines(x, w, 8, 8, spec, gain, offset)
    np.testing.assert_array_equal(got, per_bit_exact(x, w, 8, 8, spec, gain, offset))
    assert got[0, 0] == 0 and got[0, 1] == 255       # the sums clip at both ends


def test_batches_longer_than_one_chunk():
    """More outputs than one work chunk (2^15): the chunks keep their noise keys."""
    rng = np.random.default_rng(4)
    spec = AcimSpec(adc_per_input_bit=True, sigma=1.0, seed=9, adc_bits=6)
    x = rng.integers(0, 256, (300, 40))
    w = rng.integers(-128, 128, (40, 256))
    gain, offset = rng.integers(0, 4096, 256), rng.integers(-100, 100, 256)
    whole = both_engines(x, w, 8, 8, spec, gain, offset, sample_base=7)
    np.testing.assert_array_equal(whole[250:], acim_codes(x[250:], w, 8, 8, spec, gain, offset,
                                                          sample_base=257))
    np.testing.assert_array_equal(whole[:2, :3], per_bit_exact(x[:2], w[:, :3], 8, 8, spec,
                                                                gain[:3], offset[:3],
                                                                sample_base=7))


def test_engine_errors(monkeypatch):
    spec = AcimSpec(adc_per_input_bit=True)
    x, w, g, o = np.ones((1, 4), int), np.ones((4, 2), int), np.ones(2, int), np.zeros(2, int)
    with pytest.raises(ConfigError, match=r"engine 'gpu': choose one of \('auto', 'numpy', "
                                          r"'numba'\)"):
        acim_codes(x, w, 8, 8, spec, g, o, engine="gpu")
    monkeypatch.setattr(acim_fast, "AVAILABLE", False)
    with pytest.raises(ConfigError, match=r"engine 'numba' needs numba"):
        acim_codes(x, w, 8, 8, spec, g, o, engine="numba")
    np.testing.assert_array_equal(acim_codes(x, w, 8, 8, spec, g, o),       # auto: NumPy
                                  per_bit_exact(x, w, 8, 8, spec, g, o))
