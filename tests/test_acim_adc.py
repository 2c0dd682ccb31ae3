"""The acim kernel's divider-free ADC (hls/include/cimstack/acim_adc.h: a SAR search of
adc_bits compare steps) against floor division and against the NumPy reference's
formulas (host/cimstack/ref/acim.py), over the full register ranges the kernel accepts."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cimstack.emu.csim import CsimKernel
from cimstack.ref import prng
from cimstack.ref.acim import adc_codes, per_bit_codes_numpy, per_bit_scale

LL, I32 = ctypes.c_longlong, ctypes.c_int32
M_MAX = 372                        # |m| of the Irwin-Hall noise integer (acim_noise.h)
MAX_FRAC, MAX_SIGMA_Q, MAX_ROWS = 16, 4096, 1152


@pytest.fixture(scope="module")
def lib():
    lib = CsimKernel("acim")._lib
    lib.cimstack_acim_sar_code.restype = LL
    lib.cimstack_acim_sar_code.argtypes = [LL, LL, ctypes.c_uint]
    lib.cimstack_acim_charge_code.restype = LL
    lib.cimstack_acim_charge_code.argtypes = [LL, LL, LL, LL, I32] + [ctypes.c_uint] * 4
    lib.cimstack_acim_per_bit_code.restype = LL
    lib.cimstack_acim_per_bit_code.argtypes = ([ctypes.POINTER(I32)] * 2 + [ctypes.c_uint, LL,
                                               LL, LL] + [ctypes.c_uint] * 4)
    return lib


@settings(max_examples=300, deadline=None)
@given(num=st.integers(-(2**60), 2**60), den=st.integers(1, 2**45), bits=st.integers(1, 8))
@example(num=0, den=1, bits=1)
@example(num=-1, den=1, bits=8)                     # negative: code 0
@example(num=255 * 7, den=7, bits=8)                # exactly the top code
@example(num=255 * 7 - 1, den=7, bits=8)            # just below it
@example(num=2**60, den=1, bits=8)                  # far above: clipped
@example(num=2**45 * 128 - 1, den=2**45, bits=8)    # largest den, one below code 128
@example(num=6, den=4, bits=3)                      # 1.5: floor, not round
def test_sar_code_is_clipped_floor_division(lib, num, den, bits):
    assert lib.cimstack_acim_sar_code(num, den, bits) == min(max(num // den, 0), 2**bits - 1)


def fs_of(norm, x_bits, w_bits, per_bit):
    return norm * (1 if per_bit else (1 << x_bits) - 1) << (w_bits - 1)


def spec_of(adc_bits, gain_frac, offset_frac, sigma_q, seed=0):
    """The fields of AcimSpec the conversions read, at any register value."""
    return SimpleNamespace(adc_bits=adc_bits, gain_frac_bits=gain_frac,
                           offset_frac_bits=offset_frac, sigma_q=sigma_q, seed=seed)


def clamp(v, lo, hi):
    return max(lo, min(hi, v))


# The kernel's compute registers at their full ranges; dot, gain, offset and noise drawn
# wide and clamped into their ranges (so the bounds come up often).
registers = dict(
    norm=st.integers(1, MAX_ROWS), x_bits=st.integers(1, 8), w_bits=st.integers(1, 8),
    adc_bits=st.integers(1, 8), gain_frac=st.integers(0, MAX_FRAC),
    offset_frac=st.integers(0, MAX_FRAC), sigma_q=st.integers(0, MAX_SIGMA_Q),
    g=st.integers(-1, 2**25), o=st.integers(-(2**28), 2**28))
BIG = dict(norm=MAX_ROWS, x_bits=8, w_bits=8, adc_bits=8, gain_frac=MAX_FRAC,
           offset_frac=MAX_FRAC, sigma_q=MAX_SIGMA_Q)
SMALL = dict(norm=1, x_bits=1, w_bits=1, adc_bits=1, gain_frac=0, offset_frac=0, sigma_q=0)


def abn(g, o, gain_frac, offset_frac):
    return (clamp(g, 0, (256 << gain_frac) - 1),
            clamp(o, -(2048 << offset_frac), 2048 << offset_frac))


@settings(max_examples=400, deadline=None)
@given(**registers, dot=st.integers(-(2**26), 2**26), m=st.integers(-M_MAX - 9, M_MAX + 9))
@example(**SMALL, g=0, o=0, dot=0, m=0)                          # zero, gain 0
@example(**BIG, g=2**25, o=2**28, dot=2**26, m=M_MAX)            # max dot, top clip
@example(**BIG, g=2**25, o=-(2**28), dot=-(2**26), m=-M_MAX)     # min dot, bottom clip
@example(**BIG, g=0, o=2**28, dot=2**26, m=M_MAX)                # gain 0, top offset
@example(**{**BIG, "adc_bits": 1}, g=2**25, o=0, dot=-1, m=0)    # one below mid-scale
def test_charge_code_matches_reference(lib, norm, x_bits, w_bits, adc_bits, gain_frac,
                                       offset_frac, sigma_q, g, o, dot, m):
    fs = fs_of(norm, x_bits, w_bits, False)
    dot, m = clamp(dot, -fs, fs), clamp(m, -M_MAX, M_MAX)
    g, o = abn(g, o, gain_frac, offset_frac)
    spec = spec_of(adc_bits, gain_frac, offset_frac, sigma_q)
    want = adc_codes(np.array([[dot]], np.int64), fs, np.array([g]), np.array([o]), spec,
                     np.array([[m]], np.int64))[0, 0]
    got = lib.cimstack_acim_charge_code(dot, fs, g, o, m, sigma_q, adc_bits, gain_frac,
                                        offset_frac)
    assert got == want


@pytest.mark.parametrize("adc_bits", [1, 4, 8])
def test_charge_code_ties_round_half_up(lib, adc_bits):
    """Unit gain, no offset, no noise: the code is round_half_up(h * (dot / FS + 1)). At
    dot = (2t + 1 - 2h) * FS / 2h that is exactly t + 1/2: the code is t + 1, and t one
    dot below."""
    fs, h = 2 * 255 * 128, 1 << (adc_bits - 1)
    spec = spec_of(adc_bits, 0, 0, 0)
    for t in range(2 * h - 1):
        tie = (2 * t + 1 - 2 * h) * (fs // (2 * h))
        for dot, code in ((tie, t + 1), (tie - 1, t)):
            ref = adc_codes(np.array([[dot]]), fs, np.array([1]), np.array([0]), spec, None)
            assert ref[0, 0] == code
            assert lib.cimstack_acim_charge_code(dot, fs, 1, 0, 0, 0, adc_bits, 0, 0) == code


@settings(max_examples=200, deadline=None)
@given(**registers, dots=st.lists(st.integers(-(2**18), 2**18), min_size=8, max_size=8),
       layer=st.integers(0, 65535), sample=st.integers(0, prng.MAX_SAMPLE),
       channel=st.integers(0, prng.MAX_CHANNEL), seed=st.integers(0, 2**32 - 1))
@example(**BIG, g=2**25, o=2**28, dots=[2**18] * 8, layer=65535, sample=prng.MAX_SAMPLE,
         channel=prng.MAX_CHANNEL, seed=2**32 - 1)
@example(**BIG, g=2**25, o=-(2**28), dots=[-(2**18)] * 8, layer=1, sample=0, channel=0,
         seed=1)
@example(**SMALL, g=0, o=0, dots=[0] * 8, layer=0, sample=0, channel=0, seed=0)
def test_per_bit_code_matches_reference(lib, norm, x_bits, w_bits, adc_bits, gain_frac,
                                        offset_frac, sigma_q, g, o, dots, layer, sample,
                                        channel, seed):
    fs1 = fs_of(norm, x_bits, w_bits, True)
    dots = [clamp(d, -fs1, fs1) for d in dots[:x_bits]]
    g, o = abn(g, o, gain_frac, offset_frac)
    spec = spec_of(adc_bits, gain_frac, offset_frac, sigma_q, seed)
    samples, channels = np.array([sample]), np.array([channel])
    scale = per_bit_scale(spec, fs1, x_bits, np.array([g]), np.array([o]))
    want = per_bit_codes_numpy(np.array(dots, np.float64).reshape(x_bits, 1, 1), scale, spec,
                               layer, samples, channels, np.empty((1, 1), np.int64))[0, 0]
    ms = [int(prng.normal_m_grid(seed, layer, samples, channels, b)[0, 0]) if sigma_q else 0
          for b in range(x_bits)]
    got = lib.cimstack_acim_per_bit_code((I32 * x_bits)(*dots), (I32 * x_bits)(*ms), x_bits,
                                         fs1, g, o, sigma_q, adc_bits, gain_frac, offset_frac)
    assert got == want
