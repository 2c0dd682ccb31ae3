"""The acim HLS kernel in g++ C simulation against the NumPy reference, bit for bit,
noise included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cimstack.config import AcimSpec
from cimstack.emu.csim import CsimKernel
from cimstack.errors import ConfigError
from cimstack.hw import streams
from cimstack.hw.streams import pack_abn
from cimstack.ref.acim import acim_codes, kernel_registers
from cimstack.ref.requant import requantize

INT32 = (-(2**31), 2**31 - 1)


@pytest.fixture(scope="module")
def kernel() -> CsimKernel:
    return CsimKernel("acim")


def call(kernel, regs, words):
    last = np.zeros(len(words), bool)
    last[-1:] = True
    consumed, out, out_last = kernel.run(regs, words, last)
    assert consumed == len(words) == kernel.words_needed(regs)
    return out, out_last


def run_slice(kernel, x, w, gain, offset, rq, regs):
    """Load weights, requantizer and ABN, compute x; [V, N] int32 and TLAST flags."""
    mult, bias, shift, lo, hi = rq
    regs = {**regs, "shift": shift, "out_lo": lo, "out_hi": hi}
    call(kernel, {**regs, "mode": 0}, streams.pack_weights(w))
    call(kernel, {**regs, "mode": 1}, streams.pack_requant(mult, bias))
    call(kernel, {**regs, "mode": 3}, pack_abn(gain, offset))
    out, last = call(kernel, {**regs, "mode": 2, "n_vec": len(x)}, streams.pack_inputs(x))
    return streams.unpack_outputs(out, w.shape[1], len(x)), last


def random_layer(rng, spec, k, n, v, w_bits, x_bits):
    if w_bits == 1:
        w = rng.choice(np.array([-1, 1]), (k, n))
    else:
        w = rng.integers(-(1 << (w_bits - 1)), 1 << (w_bits - 1), (k, n))
    x = rng.integers(0, 1 << x_bits, (v, k))
    lo, hi = spec.gain_range
    gain = rng.integers(lo, hi + 1, n)
    olo, ohi = spec.offset_range
    offset = rng.integers(olo, ohi + 1, n)
    return x, w, gain, offset


def identity(n):
    return np.ones(n, np.int64), np.zeros(n, np.int64), 0, *INT32


def check(kernel, rng, spec, k, n, v, w_bits, x_bits, layer, chan_base, sample_base,
          requant=False):
    x, w, gain, offset = random_layer(rng, spec, k, n, v, w_bits, x_bits)
    if requant:
        rq = (rng.integers(-(1 << 12), 1 << 12, n), rng.integers(-(1 << 20), 1 << 20, n),
              int(rng.integers(0, 12)), -300, 300)
    else:
        rq = identity(n)
    regs = kernel_registers(spec, k, n, w_bits, x_bits, layer, chan_base, sample_base)
    got, last = run_slice(kernel, x, w, gain, offset, rq, regs)
    codes = acim_codes(x, w, w_bits, x_bits, spec, gain, offset, layer=layer,
                       sample_base=sample_base, chan_base=chan_base)
    np.testing.assert_array_equal(got, requantize(codes, *rq))
    assert last.tolist() == [False] * (len(last) - 1) + [True]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 300), n=st.integers(1, 24), v=st.integers(1, 4),
       w_bits=st.integers(1, 8), x_bits=st.integers(1, 8), adc_bits=st.integers(1, 8),
       segments=st.sampled_from([1, 2, 3, 4, 6, 9]), swing=st.sampled_from(["fixed", "adaptive"]),
       per_bit=st.booleans(), sigma=st.sampled_from([0.0, 0.5, 2.0, 16.0]),
       gain_bits=st.integers(4, 16), gain_frac=st.integers(0, 8),
       seed=st.integers(0, 2**32 - 1), layer=st.integers(0, 65535),
       chan_base=st.integers(0, 1000), sample_base=st.integers(0, 2**32 - 5),
       data=st.integers(0, 2**32 - 1), requant=st.booleans())
def test_csim_matches_reference(kernel, k, n, v, w_bits, x_bits, adc_bits, segments, swing,
                                per_bit, sigma, gain_bits, gain_frac, seed, layer,
                                chan_base, sample_base, data, requant):
    spec = AcimSpec(rows=576, segments=segments, adc_bits=adc_bits, swing=swing,
                    adc_per_input_bit=per_bit, sigma=sigma, seed=seed, gain_bits=gain_bits,
                    gain_frac_bits=max(gain_bits - 8, min(gain_frac, gain_bits)), offset_bits=10,
                    offset_frac_bits=1)
    check(kernel, np.random.default_rng(data), spec, k, n, v, w_bits, x_bits, layer,
          chan_base, sample_base, requant)


@pytest.mark.parametrize("per_bit", [False, True])
def test_csim_full_array(kernel, per_bit):
    """All 1152 rows at 8 bits, the largest sums, with noise."""
    spec = AcimSpec(adc_per_input_bit=per_bit, sigma=3.0, seed=7, swing="fixed")
    check(kernel, np.random.default_rng(5), spec, 1152, 128, 2, 8, 8, 3, 128, 10)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 121, 127])
def test_weight_rows_of_any_width(kernel, n):
    """The load realigns the k-major stream into rows of ceil(n/8) words: rows that start
    inside a stream word (n % 8 != 0), several rows per word (n < 8), 16 words (n > 120)."""
    spec = AcimSpec(sigma=1.0, seed=3, adc_bits=7)
    check(kernel, np.random.default_rng(n), spec, 37, n, 3, 8, 8, 2, 5, 0, requant=True)


def test_split_batches_same_noise(kernel):
    """Two calls with sample_base give the same outputs as one call."""
    spec = AcimSpec(sigma=2.0, seed=11, adc_bits=5)
    rng = np.random.default_rng(2)
    x, w, gain, offset = random_layer(rng, spec, 100, 8, 6, 8, 8)
    regs = kernel_registers(spec, 100, 8, 8, 8, layer=1)
    whole, _ = run_slice(kernel, x, w, gain, offset, identity(8), regs)
    first, _ = run_slice(kernel, x[:4], w, gain, offset, identity(8), regs)
    second, _ = run_slice(kernel, x[4:], w, gain, offset, identity(8), {**regs, "sample_base": 4})
    np.testing.assert_array_equal(whole, np.concatenate([first, second]))


@pytest.mark.parametrize("bad", [dict(k_rows=1153), dict(n_out=129), dict(adc_bits=0),
                                 dict(adc_bits=9), dict(k_rows=20, rows=16),
                                 dict(segments=5), dict(sigma_q=4097), dict(gain_frac=17),
                                 dict(layer=70000), dict(mode=4), dict(swing=2),
                                 dict(chan_base=65535, n_out=2)])
def test_out_of_range_registers(kernel, bad):
    regs = {**kernel_registers(AcimSpec(rows=64, segments=4), 8, 2, 8, 8, n_vec=1),
            "mode": 2, **bad}
    with pytest.raises(ConfigError):
        kernel.words_needed(regs)
