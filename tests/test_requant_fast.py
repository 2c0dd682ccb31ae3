"""The fused requantizer (cimstack.ref.requant_fast, numba) gives the integers of its
NumPy definition (cimstack.ref.requant) on int64 and exact float accumulators."""

import numpy as np
from hypothesis import example, given, settings, strategies as st

from cimstack.ref import requant_fast
from cimstack.ref.requant import requantize, requantize_numpy


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), v=st.integers(1, 9), n=st.integers(1, 9),
       acc_max=st.sampled_from([1, 255, 2**20, 2**24 - 1, 2**40]),
       m_max=st.sampled_from([1, 3, 2**15, 2**20]), shift=st.integers(0, 30),
       lo=st.sampled_from([-(2**31), -128, 0]), hi=st.sampled_from([0, 15, 255, 2**31 - 1]),
       as_float=st.booleans())
@example(seed=0, v=1, n=1, acc_max=1, m_max=1, shift=0, lo=0, hi=0, as_float=False)
@example(seed=1, v=3, n=4, acc_max=2**24 - 1, m_max=2**15, shift=30, lo=-(2**31),
         hi=2**31 - 1, as_float=True)                 # float32's exact edge, no clamp
@example(seed=2, v=2, n=2, acc_max=255, m_max=3, shift=1, lo=0, hi=15,
         as_float=False)                              # halves rounding up, both clamps
def test_fused_requantizer_equals_numpy(seed, v, n, acc_max, m_max, shift, lo, hi, as_float):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-acc_max, acc_max + 1, (v, n))
    if as_float:                                       # exact in the float type
        acc = acc.astype(np.float32 if acc_max < 2**24 else np.float64)
    multiplier = rng.integers(-m_max, m_max + 1, n)
    bias = rng.integers(-2**40, 2**40, n)
    want = requantize_numpy(acc, multiplier, bias, shift, lo, hi)
    got = requantize(acc, multiplier, bias, shift, lo, hi)      # the fused path
    assert got.dtype == np.int64 and np.array_equal(got, want)


def test_the_reference_takes_the_fused_path():
    assert requant_fast.AVAILABLE, "numba is a dependency: the fused path must be there"


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shape=st.sampled_from([(1, 1), (2, 3), (2, 3, 4, 5),
                                                              (1, 4, 1, 1), (3, 2, 5)]),
       rounding=st.sampled_from(["half_up", "half_even", "floor"]),
       shift=st.integers(0, 20), residual=st.booleans(), per_tensor=st.booleans(),
       signed=st.booleans(), layouts=st.sampled_from(["first", "last", "mixed"]))
@example(seed=0, shape=(1, 1), rounding="half_even", shift=1, residual=False,
         per_tensor=False, signed=True, layouts="first")   # ties to even on a single value
@example(seed=3, shape=(2, 3, 4, 5), rounding="floor", shift=0, residual=True,
         per_tensor=True, signed=True, layouts="last")     # no shift, one multiplier for all
@example(seed=4, shape=(2, 3, 4, 5), rounding="half_up", shift=3, residual=True,
         per_tensor=False, signed=False, layouts="mixed")  # one operand channels-last
def test_fused_host_requantizer_equals_numpy(seed, shape, rounding, shift, residual,
                                             per_tensor, signed, layouts):
    """Every shape, rounding and operand layout: channels first in memory, channels last
    (a macro layer's output) read in place, or one of each."""
    from types import SimpleNamespace

    from cimstack.bundle import Requant
    from cimstack.ref.network import host_requant, host_requant_numpy
    rng = np.random.default_rng(seed)
    c = 1 if per_tensor else shape[1]
    dtype = np.int8 if signed else np.uint8
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    b = rng.integers(info.min, info.max + 1, shape).astype(dtype) if residual else None
    mb = rng.integers(-2**12, 2**12, c) if residual else None
    layer = SimpleNamespace(rounding=rounding, requant=Requant(
        rng.integers(-2**12, 2**12, c), rng.integers(-2**20, 2**20, c), shift, -100, 100))
    want = host_requant_numpy(a, layer, mb, b)
    if layouts != "first":
        a = _channels_last(a)
        b = _channels_last(b) if b is not None and layouts == "last" else b
    got = host_requant(a, layer, mb, b)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    if layouts == "last" and len(shape) > 2:     # the result keeps the operands' layout
        assert np.moveaxis(got, 1, -1).flags.c_contiguous
    # ties: exact halves after the shift exercise the rounding modes
    if shift:
        half = np.full(shape, 1 << (shift - 1), np.int64) * np.arange(-3, 3).repeat(
            -(-int(np.prod(shape)) // 6))[:int(np.prod(shape))].reshape(shape)
        layer.requant = Requant(np.ones(c, np.int64), np.zeros(c, np.int64), shift,
                                -(2**31), 2**31 - 1)
        assert np.array_equal(host_requant(half, layer), host_requant_numpy(half, layer))


def _channels_last(x: np.ndarray) -> np.ndarray:
    """``x`` with the same values and its channels (axis 1) last in memory."""
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(31, 60))
@example(0, 31)                                   # -2^31 fits int32, +2^31 does not
def test_float32_products_past_int32_take_the_int64_path(seed, exp):
    """float32 products are read through int32; a value outside int32 (never an exact
    product, but a float32 can hold it) sends the whole array through int64."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-4, 5, (5, 3)).astype(np.float32)
    acc[rng.integers(0, 5), rng.integers(0, 3)] = np.float32(2.0**exp)
    acc[0, 0] = np.float32(-(2.0**31))
    multiplier, bias = rng.integers(1, 8, 3), rng.integers(-100, 100, 3)
    want = requantize_numpy(acc, multiplier, bias, 20, -(2**40), 2**40)
    np.testing.assert_array_equal(requantize(acc, multiplier, bias, 20, -(2**40), 2**40),
                                  want)
