"""The reference's tap-major conv lowering: the macro lowering's columns permuted, and the
dcim reference on a conv layer straight from its activations giving the same integers as
the lowered macro vectors (every kernel shape, stride, padding, dilation, group, signed
input, exact and inexact partial sums)."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from cimstack import threads
from cimstack.bundle import MacroLayer, Requant
from cimstack.config import DcimSpec
from cimstack.errors import ConfigError
from cimstack.ref import dcim, lowering
from cimstack.ref.dcim import macro_conv, macro_matmul
from cimstack.ref.lowering import lower_conv, lower_taps, tap_matrix
from cimstack.ref.network import reference_engine, run_network
from cimstack.ref.requant import code_type, requantize

from conftest import digits_like_bundle, graph_bundle, random_requant, random_weight


def lowered(layer, x_mat, bundle):
    """The reference engine behind a different name: ``run_network`` lowers every conv
    for it (the path of the emulated overlay and the board)."""
    return reference_engine(layer, x_mat, bundle)


@st.composite
def conv_case(draw):
    """A conv of any kernel, stride, padding and dilation with at least one output."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding, dilation = (draw(st.integers(1, 3)), draw(st.integers(0, 3)),
                                 draw(st.integers(1, 3)))
    h_min = max(1, (kh - 1) * dilation + 1 - 2 * padding)
    w_min = max(1, (kw - 1) * dilation + 1 - 2 * padding)
    h, w = draw(st.integers(h_min, h_min + 7)), draw(st.integers(w_min, w_min + 7))
    return dict(b=draw(st.integers(1, 3)), c=draw(st.integers(1, 6)), h=h, w=w, kh=kh, kw=kw,
                stride=stride, padding=padding, dilation=dilation,
                seed=draw(st.integers(0, 2**32 - 1)))


def _out(size, k, stride, padding, dilation):
    return (size + 2 * padding - (k - 1) * dilation - 1) // stride + 1


@settings(max_examples=120)
@given(conv_case(), st.sampled_from([np.uint8, np.int16]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 255))
@example(dict(b=1, c=1, h=1, w=1, kh=1, kw=1, stride=1, padding=0, dilation=1, seed=0),
         np.uint8, np.float32, 0)                                # one pixel, 1x1
@example(dict(b=2, c=3, h=4, w=4, kh=2, kw=2, stride=3, padding=3, dilation=1, seed=1),
         np.int16, np.float64, 255)                              # rows of padding only
@example(dict(b=1, c=2, h=5, w=9, kh=3, kw=1, stride=1, padding=2, dilation=3, seed=2),
         np.uint8, np.float32, 7)                                # dilated, not square
def test_lower_taps_is_lower_conv_with_columns_permuted(case, in_type, out_type, pad_value):
    rng = np.random.default_rng(case["seed"])
    b, c, kh, kw = case["b"], case["c"], case["kh"], case["kw"]
    ho = _out(case["h"], kh, case["stride"], case["padding"], case["dilation"])
    wo = _out(case["w"], kw, case["stride"], case["padding"], case["dilation"])
    layer = SimpleNamespace(weight=np.zeros((1, c, kh, kw), np.int8), stride=case["stride"],
                            padding=case["padding"], dilation=case["dilation"],
                            out_shape=(1, ho, wo))
    x = rng.integers(0, 256, (b, c, case["h"], case["w"])).astype(in_type)
    macro_order = lower_conv(x, layer, pad_value)                 # column c*taps + tap
    taps = lower_taps(x, layer, pad_value, out_type)              # column tap*C + c
    assert taps.dtype == out_type and taps.shape == macro_order.shape
    np.testing.assert_array_equal(
        taps, macro_order.reshape(len(macro_order), c, kh * kw).transpose(0, 2, 1)
        .reshape(len(macro_order), -1))
    w = rng.integers(-8, 8, (c * kh * kw, 5))
    np.testing.assert_array_equal(taps @ tap_matrix(w, c, kh * kw, out_type),
                                  macro_order.astype(np.int64) @ w)


@st.composite
def dcim_conv(draw):
    """A dcim conv layer (grouped or not, any precision and pruning) on random codes."""
    case = draw(conv_case())
    groups = draw(st.sampled_from([1, 2, 3]))
    c, n = case["c"] * groups, draw(st.integers(1, 4)) * groups
    w_bits, x_bits = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    if groups > 1 and w_bits == 1:
        w_bits = 2                               # a grouped binary conv has no encoding
    rows_on = draw(st.sampled_from([1, 4, 16]))
    psum_bits = draw(st.sampled_from([None, 2, 3]))
    rng = np.random.default_rng(case["seed"])
    ho = _out(case["h"], case["kh"], case["stride"], case["padding"], case["dilation"])
    wo = _out(case["w"], case["kw"], case["stride"], case["padding"], case["dilation"])
    weight = random_weight(rng, (n, c // groups, case["kh"], case["kw"]), w_bits, rows_on,
                           draw(st.sampled_from([0.0, 0.5])))
    layer = MacroLayer("conv", "conv2d", weight, w_bits, x_bits, random_requant(rng, n, 4),
                       (c, case["h"], case["w"]), (n, ho, wo), stride=case["stride"],
                       padding=case["padding"], groups=groups, dilation=case["dilation"])
    spec = DcimSpec(rows=max(16, rows_on), rows_on=rows_on, psum_bits=psum_bits)
    x = rng.integers(0, 1 << x_bits, (case["b"], c, case["h"], case["w"])).astype(np.uint8)
    pad_value = int(rng.integers(0, 1 << x_bits))
    return layer, spec, x, pad_value


@settings(max_examples=120)
@given(dcim_conv())
def test_macro_conv_equals_the_macro_on_lowered_vectors(case):
    layer, spec, x, pad_value = case
    want = macro_matmul(lower_conv(x, layer, pad_value), layer.matrix(), layer.w_bits,
                        layer.x_bits, spec)
    np.testing.assert_array_equal(macro_conv(x, layer, spec, pad_value), want)


@settings(max_examples=80)
@given(dcim_conv(), st.integers(1, 1 << 14), st.integers(1, 3))
@example((MacroLayer("conv", "conv2d", np.ones((2, 1, 1, 1), np.int8), 4, 4,
                     Requant(np.ones(2, np.int64), np.zeros(2, np.int64), 0, 0, 15),
                     (1, 1, 1), (2, 1, 1)), DcimSpec(), np.full((3, 1, 1, 1), 15, np.uint8), 0),
         1, 2)                                    # one image per chunk, on two threads
def test_macro_conv_in_chunks_of_images_with_then(case, chunk_bytes, cores):
    """Any chunk size (down to one image per chunk, the last chunk short), the chunks on
    one to three threads, and ``then`` applied chunk by chunk: the same rows as ``then``
    of the whole lowered product."""
    layer, spec, x, pad_value = case
    rq = layer.requant
    then = lambda acc: requantize(acc, rq.multiplier, rq.bias, rq.shift, rq.lo, rq.hi,  # noqa: E731
                                  dtype=code_type(rq.lo, rq.hi))
    want = then(macro_matmul(lower_conv(x, layer, pad_value), layer.matrix(), layer.w_bits,
                             layer.x_bits, spec))
    saved = dcim._LOWERED_BYTES, dcim.usable_cores, threads.usable_cores
    dcim._LOWERED_BYTES = chunk_bytes
    dcim.usable_cores = threads.usable_cores = lambda: cores
    try:
        got = macro_conv(x, layer, spec, pad_value, then=then)
    finally:
        dcim._LOWERED_BYTES, dcim.usable_cores, threads.usable_cores = saved
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_a_product_past_float32_is_taken_in_float64():
    """K * 255 * 128 >= 2^24 from K = 514: a 3x3 conv over 64 channels (K = 576) is
    exact only in float64; one differing bit of the products fails the comparison."""
    rng = np.random.default_rng(5)
    weight = np.full((2, 64, 3, 3), -128, np.int8)
    layer = MacroLayer("conv", "conv2d", weight, 8, 8, random_requant(rng, 2),
                       (64, 3, 3), (2, 1, 1))
    x = np.full((1, 64, 3, 3), 255, np.uint8)
    x[0, 0, 0, 0] = 254
    got = macro_conv(x, layer, DcimSpec(), as_float=True)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[-(576 * 255 - 1) * 128] * 2])


def test_inputs_out_of_range_are_one_clear_error():
    layer = MacroLayer("conv", "conv2d", np.ones((1, 1, 1, 1), np.int8), 2, 4,
                       Requant(np.ones(1, np.int64), np.zeros(1, np.int64), 0, 0, 15),
                       (1, 2, 2), (1, 2, 2))
    with pytest.raises(ConfigError, match=r"outside the unsigned 4-bit range \[0, 15\]"):
        macro_conv(np.full((1, 1, 2, 2), 16, np.uint8), layer, DcimSpec())


def test_without_numba_the_macro_lowering_is_used(monkeypatch):
    rng = np.random.default_rng(3)
    layer = MacroLayer("conv", "conv2d", random_weight(rng, (3, 2, 3, 3), 4), 4, 4,
                       random_requant(rng, 3, 4), (2, 5, 5), (3, 5, 5), padding=1)
    x = rng.integers(0, 16, (2, 2, 5, 5)).astype(np.uint8)
    want = macro_conv(x, layer, DcimSpec(), 3)
    monkeypatch.setattr(lowering, "AVAILABLE", False)
    monkeypatch.setattr(lowering, "lower_taps", None)      # a call would fail
    np.testing.assert_array_equal(macro_conv(x, layer, DcimSpec(), 3), want)


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1))
@example(0)
def test_networks_run_the_same_with_and_without_the_lowering(seed):
    """Every node of the graph bundle (signed input, depthwise dilated conv, 1x1 conv,
    residual add, pools, concat, linear) and of a digits-like bundle with an inexact
    column ADC: the same codes and types when the reference lowers every conv."""
    rng = np.random.default_rng(seed)
    graph = graph_bundle(seed % 1000)
    digits = digits_like_bundle(seed % 1000, sparsity=0.5)
    digits.dcim = DcimSpec(psum_bits=int(rng.integers(2, 6)))
    for bundle, x in ((graph, rng.integers(-8, 8, (3, 2, 9, 7)).astype(np.int8)),
                      (digits, rng.integers(0, 256, (3, 1, 8, 8)).astype(np.uint8))):
        fast = run_network(bundle, x, keep_activations=True)
        slow = run_network(bundle, x, engine=lowered, keep_activations=True)
        for name, codes in slow.activations.items():
            assert fast.activations[name].dtype == codes.dtype, name
            np.testing.assert_array_equal(fast.activations[name], codes, err_msg=name)
        np.testing.assert_array_equal(fast.logits, slow.logits)


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(0, 15), (-8, 7), (0, 255), (-128, 127),
                                                    (-(2**20), 2**20)]))
@example(0, (0, 1))
def test_requantize_into_the_code_type(seed, bounds):
    rng = np.random.default_rng(seed)
    lo, hi = bounds
    acc = rng.integers(-(1 << 20), 1 << 20, (7, 5)).astype(np.float32)
    m, b = rng.integers(1, 1 << 10, 5), rng.integers(-(1 << 24), 1 << 24, 5)
    wide = requantize(acc, m, b, 12, lo, hi)
    narrow = requantize(acc, m, b, 12, lo, hi, dtype=code_type(lo, hi))
    assert wide.dtype == np.int64 and narrow.dtype == code_type(lo, hi)
    np.testing.assert_array_equal(narrow, wide)
