"""The graph bundle (schema 2): a round trip of every node kind, schema-1 files still
read, and the reference's graph ops (grouped/dilated conv on signed codes, average
pooling, residual add) against naive integer implementations written here."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cimstack.bundle import (INPUT, AddLayer, AvgPoolLayer, Bundle, ConcatLayer,
                             FlattenLayer, InputSpec, MacroLayer, PoolLayer, Requant,
                             load_bundle, save_bundle)
from cimstack.errors import BundleError
from cimstack.ref.network import run_network

from conftest import digits_like_bundle, graph_bundle, random_weight

WIDE = (-(2**31), 2**31 - 1)


# ------------------------------------------------------------- naive integer ops
# Plain loops over int64, written from the definitions in docs/macros.md, not from
# the executor's code.

def naive_conv(x, w, groups=1, stride=1, padding=0, dilation=1):
    """Signed integer conv2d: x [B, C, H, W], w [N, C/groups, kh, kw], zero padding."""
    x, w = x.astype(np.int64), w.astype(np.int64)
    b, c, h, wd = x.shape
    n, c_g, kh, kw = w.shape
    n_g = n // groups
    xp = np.zeros((b, c, h + 2 * padding, wd + 2 * padding), np.int64)
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    ho = (h + 2 * padding - (kh - 1) * dilation - 1) // stride + 1
    wo = (wd + 2 * padding - (kw - 1) * dilation - 1) // stride + 1
    out = np.zeros((b, n, ho, wo), np.int64)
    for o in range(n):
        g = o // n_g
        for ci in range(c_g):
            for ky in range(kh):
                for kx in range(kw):
                    for oy in range(ho):
                        for ox in range(wo):
                            out[:, o, oy, ox] += w[o, ci, ky, kx] * xp[
                                :, g * c_g + ci, oy * stride + ky * dilation,
                                ox * stride + kx * dilation]
    return out


def naive_windows(x, kernel, stride, reduce):
    """``reduce`` (np.sum or np.max) of every (kh, kw) window, no padding."""
    x = x.astype(np.int64)
    (kh, kw), (sh, sw) = kernel, stride
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo), np.int64)
    for oy in range(ho):
        for ox in range(wo):
            out[:, :, oy, ox] = reduce(x[:, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw],
                                       axis=(2, 3))
    return out


def naive_requant(acc, m, b, shift, lo, hi):
    """``clamp((acc*M + B + r) >> shift, lo, hi)`` per channel (axis 1), Python ints."""
    r = (1 << (shift - 1)) if shift else 0
    out = np.empty(acc.shape, np.int64)
    for idx, a in np.ndenumerate(acc):
        v = (int(a) * int(m[idx[1]]) + int(b[idx[1]]) + r) >> shift
        out[idx] = min(max(v, lo), hi)
    return out


def naive_node(layer, xs, offset):
    """One node of a graph bundle on its inputs' codes; a macro layer's requantizer
    folds ``offset * colsum(W)`` (signed input), so its signed-domain bias is
    ``B + M*offset*colsum``."""
    rq = getattr(layer, "requant", None)
    if isinstance(layer, MacroLayer):
        w = layer.weight
        if layer.op == "conv2d":
            acc = naive_conv(xs[0], w, layer.groups, layer.stride, layer.padding,
                             layer.dilation)
        else:
            acc = xs[0].reshape(len(xs[0]), -1).astype(np.int64) @ w.T.astype(np.int64)
        colsum = w.astype(np.int64).reshape(len(w), -1).sum(axis=1)
        return naive_requant(acc, rq.multiplier, rq.bias + rq.multiplier * offset * colsum,
                             rq.shift, rq.lo, rq.hi)
    if isinstance(layer, PoolLayer):
        return naive_windows(xs[0], (layer.kernel,) * 2, (layer.stride,) * 2, np.max)
    if isinstance(layer, AvgPoolLayer):
        sums = naive_windows(xs[0], layer.kernel, layer.stride, np.sum)
        return naive_requant(sums, rq.multiplier, rq.bias, rq.shift, rq.lo, rq.hi)
    if isinstance(layer, AddLayer):
        a, b = (x.astype(np.int64) for x in xs)
        shape = (1, -1) + (1,) * (a.ndim - 2)
        acc = a * rq.multiplier.reshape(shape) + b * layer.multiplier_b.reshape(shape)
        return naive_requant(acc, np.ones_like(rq.multiplier), rq.bias, rq.shift, rq.lo,
                             rq.hi)
    if isinstance(layer, ConcatLayer):
        return np.concatenate([x.astype(np.int64) for x in xs], axis=1)
    return xs[0].reshape(len(xs[0]), -1)


def extreme_codes(rng, batch, shape, lo, hi):
    """Random codes in [lo, hi], the first two samples all lo and all hi."""
    x = rng.integers(lo, hi + 1, (batch, *shape))
    x[0], x[1] = lo, hi
    return x.astype(np.int8 if lo < 0 else np.uint8)


# ------------------------------------------------------------- 1. schema 2 round trip

def _same_layer(a, b) -> None:
    assert type(a) is type(b), (a.name, type(a), type(b))
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, Requant):
            _same_layer(va, vb)
        elif isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype, (a, f.name)
            np.testing.assert_array_equal(va, vb, err_msg=f"{f.name}")
        else:
            assert va == vb, (getattr(a, "name", ""), f.name, va, vb)


def test_graph_bundle_has_every_node_kind():
    b = graph_bundle()
    kinds = {type(layer) for layer in b.layers}
    assert kinds == {MacroLayer, PoolLayer, AvgPoolLayer, AddLayer, ConcatLayer, FlattenLayer}
    dw = b.layers[0]
    assert (dw.groups, dw.dilation, dw.padding, dw.inputs) == (2, 2, 2, (INPUT,))
    assert b.input.signed and b.formats()["gap"].bipolar
    assert [layer.inputs for layer in b.layers if len(layer.inputs) > 1] == \
        [("dw", "pw"), ("mp", "ap")]


def test_graph_round_trip_keeps_everything(tmp_path):
    b = graph_bundle()
    path = save_bundle(b, tmp_path / "b")
    doc = json.loads((path / "bundle.json").read_text())
    assert doc["schema_version"] == 2
    assert doc["tensors"]["gap"] == {"bits": 1, "signed": False, "bipolar": True, "scale": 1.0}
    assert doc["input"]["signed"] is True
    loaded = load_bundle(path)
    assert loaded.input == b.input
    assert loaded.formats() == b.formats()
    assert (loaded.name, loaded.dcim, loaded.acim) == (b.name, b.dcim, b.acim)
    assert len(loaded.layers) == len(b.layers)
    for x, y in zip(loaded.layers, b.layers):
        _same_layer(x, y)
    codes = extreme_codes(np.random.default_rng(3), 6, b.input.shape, -8, 7)
    got = run_network(loaded, codes, keep_activations=True)
    want = run_network(b, codes, keep_activations=True)
    np.testing.assert_array_equal(got.logits, want.logits)
    assert got.activations.keys() == want.activations.keys()
    for name in want.activations:
        np.testing.assert_array_equal(got.activations[name], want.activations[name])
    assert [s.to_dict() for s in got.stats] == [s.to_dict() for s in want.stats]
    assert [s.name for s in got.stats] == ["dw", "pw", "fc"]


def test_every_graph_node_is_its_naive_op():
    """Each node's output equals the naive op on its inputs' outputs: the wiring (which
    tensors a node reads, in which order), the signed input's padding and offset, and
    the bipolar input of fc (logits W @ (2c - 1))."""
    b = graph_bundle()
    codes = extreme_codes(np.random.default_rng(4), 8, b.input.shape, -8, 7)
    acts = run_network(b, codes, keep_activations=True).activations
    values = {INPUT: codes, **acts}
    formats = b.formats()
    for layer in b.layers:
        want = naive_node(layer, [values[src] for src in layer.inputs],
                          formats[layer.inputs[0]].offset)
        np.testing.assert_array_equal(acts[layer.name], want, err_msg=layer.name)
    signs = 2 * acts["flat"].astype(np.int64) - 1
    np.testing.assert_array_equal(acts["fc"], signs @ b.layers[-1].weight.T.astype(np.int64))
    assert len(np.unique(acts["gap"])) == 2          # the bipolar layer is not constant


def test_graph_bundle_loads_and_runs_without_torch(tmp_path):
    path = save_bundle(graph_bundle(), tmp_path / "b")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None          # any `import torch` now raises ImportError
        sys.modules["brevitas"] = None
        import numpy as np
        from cimstack.bundle import load_bundle
        from cimstack.ref.network import run_network
        b = load_bundle({str(path)!r})
        out = run_network(b, np.full((2, 2, 9, 7), -8, np.int8)).logits
        assert out.shape == (2, 3), out.shape
        assert "torch" not in [m for m, v in sys.modules.items() if v is not None]
        print("ran without torch")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ran without torch" in run.stdout


# ------------------------------------------------------------- 2. schema 1 still reads

def to_schema_1(doc: dict) -> None:
    """A schema-2 chain's bundle.json as schema 1 wrote it."""
    doc["schema_version"] = 1
    del doc["tensors"]
    for key in ("signed", "offset", "bipolar", "narrow"):
        del doc["input"][key]
    for layer in doc["layers"]:
        for key in ("inputs", "dilation", "groups"):
            layer.pop(key, None)


def _schema_1_copy(tmp_path):
    b = digits_like_bundle()
    path = save_bundle(b, tmp_path / "b")
    doc = json.loads((path / "bundle.json").read_text())
    to_schema_1(doc)
    return b, path, doc


def test_schema_1_chain_loads_and_runs_the_same(tmp_path):
    b, path, doc = _schema_1_copy(tmp_path)
    (path / "bundle.json").write_text(json.dumps(doc))
    loaded = load_bundle(path)
    assert loaded.input == b.input
    assert [layer.inputs for layer in loaded.layers] == \
        [(INPUT,), ("conv1",), ("pool1",), ("conv2",), ("pool2",), ("flatten",)]
    for x, y in zip(loaded.layers, b.layers):
        _same_layer(x, y)
    x = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8)).astype(np.uint8)
    np.testing.assert_array_equal(run_network(loaded, x).logits, run_network(b, x).logits)


@pytest.mark.parametrize("where, key, value", [
    ((), "tensors", {}),
    (("input",), "signed", False),
    (("input",), "offset", 0.0),
    (("input",), "narrow", False),
    (("layers", 0), "groups", 1),
    (("layers", 2), "dilation", 1),
    (("layers", 1), "inputs", ["conv1"]),
])
def test_schema_1_refuses_schema_2_keys(tmp_path, where, key, value):
    _, path, doc = _schema_1_copy(tmp_path)
    d = doc
    for k in where:
        d = d[k]
    d[key] = value
    (path / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=rf"unknown key\(s\) \['{key}'\]") as info:
        load_bundle(path)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------- 4. ops vs naive integers

def _one_node_bundle(layers, input_spec) -> Bundle:
    b = Bundle("prop", input_spec, layers)
    b.validate()
    return b


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_g = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    if depthwise:                               # one input channel per group
        c_g, groups = 1, draw(st.integers(1, 4))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation, stride, padding = (draw(st.integers(1, 3)), draw(st.integers(1, 2)),
                                 draw(st.integers(0, 2)))
    span = [max(1, (kk - 1) * dilation + 1 - 2 * padding) for kk in k]
    return dict(groups=groups, c_g=c_g, n_g=draw(st.integers(1, 2)), k=k,
                dilation=dilation, stride=stride, padding=padding,
                hw=tuple(s + draw(st.integers(0, 4)) for s in span),
                signed=draw(st.booleans()), bits=draw(st.integers(1, 8)),
                w_bits=draw(st.integers(1 if groups == 1 else 2, 8)),   # binary: groups 1
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=100)
@given(case=conv_cases())
@example(case=dict(groups=4, c_g=1, n_g=1, k=(3, 3), dilation=3, stride=1, padding=2,
                   hw=(5, 6), signed=True, bits=8, w_bits=8, seed=1))     # depthwise
@example(case=dict(groups=1, c_g=3, n_g=2, k=(3, 2), dilation=1, stride=2, padding=1,
                   hw=(7, 4), signed=False, bits=8, w_bits=8, seed=2))    # groups 1
@example(case=dict(groups=3, c_g=2, n_g=2, k=(2, 3), dilation=2, stride=2, padding=0,
                   hw=(3, 5), signed=True, bits=1, w_bits=2, seed=3))     # 1-bit signed
@example(case=dict(groups=2, c_g=1, n_g=2, k=(1, 1), dilation=3, stride=1, padding=2,
                   hw=(1, 1), signed=True, bits=4, w_bits=4, seed=4))     # all padding
def test_conv_matches_naive_signed_conv(case):
    """A conv whose requantizer is M = 1, shift 0, wide clamp and B = -offset*colsum(W)
    outputs exactly the naive conv of the (signed) codes with zero padding."""
    rng = np.random.default_rng(case["seed"])
    g, c_g, n_g, bits = case["groups"], case["c_g"], case["n_g"], case["bits"]
    c, n = g * c_g, g * n_g
    w = random_weight(rng, (n, c_g, *case["k"]), case["w_bits"])
    spec = InputSpec((c, *case["hw"]), bits, 0.5, signed=case["signed"])
    offset = spec.format.offset
    colsum = w.astype(np.int64).reshape(n, -1).sum(axis=1)
    layer = MacroLayer("conv", "conv2d", w, case["w_bits"], bits,
                       Requant(np.ones(n, np.int64), -offset * colsum, 0, *WIDE),
                       spec.shape, (n, 1, 1), stride=case["stride"],
                       padding=case["padding"], groups=g, dilation=case["dilation"])
    layer.out_shape = layer.expected_out_shape()
    bundle = _one_node_bundle([layer], spec)
    assert bundle.dcim.psum_exact
    codes = extreme_codes(rng, 3, spec.shape, *spec.format.codes)
    got = run_network(bundle, codes).logits.reshape(3, *layer.out_shape)
    want = naive_conv(codes, w, g, case["stride"], case["padding"], case["dilation"])
    np.testing.assert_array_equal(got, want)


@st.composite
def avgpool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return dict(kernel=kernel, stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                hw=tuple(k + draw(st.integers(0, 3)) for k in kernel),
                c=draw(st.integers(1, 3)), bits=draw(st.integers(1, 8)),
                signed=draw(st.booleans()), shift=draw(st.integers(0, 12)),
                out=draw(st.sampled_from(["u4", "s8", "wide"])),
                seed=draw(st.integers(0, 2**16)))


_OUT_RANGE = {"u4": (0, 15), "s8": (-128, 127), "wide": WIDE}


@settings(max_examples=100)
@given(case=avgpool_cases())
@example(case=dict(kernel=(4, 3), stride=(1, 1), hw=(4, 3), c=2, bits=8, signed=False,
                   shift=12, out="u4", seed=1))                  # global, non-square
@example(case=dict(kernel=(1, 1), stride=(3, 2), hw=(4, 4), c=1, bits=1, signed=False,
                   shift=0, out="wide", seed=2))                 # 1x1 window, strided
@example(case=dict(kernel=(2, 3), stride=(2, 3), hw=(5, 7), c=3, bits=8, signed=True,
                   shift=5, out="s8", seed=3))                   # signed, leftover rows
def test_avgpool_matches_naive_window_sums(case):
    rng = np.random.default_rng(case["seed"])
    c, shift = case["c"], case["shift"]
    spec = InputSpec((c, *case["hw"]), case["bits"], 0.5, signed=case["signed"])
    rq = Requant(rng.integers(-(1 << 12), 1 << 12, c).astype(np.int64),
                 rng.integers(-(1 << 16), 1 << 16, c).astype(np.int64), shift,
                 *_OUT_RANGE[case["out"]])
    layer = AvgPoolLayer("ap", spec.shape, (c, 1, 1), case["kernel"], case["stride"], rq)
    layer.out_shape = (c, *((h - k) // s + 1 for h, k, s in
                            zip(case["hw"], case["kernel"], case["stride"])))
    bundle = _one_node_bundle([layer], spec)
    codes = extreme_codes(rng, 3, spec.shape, *spec.format.codes)
    got = run_network(bundle, codes).logits.reshape(3, *layer.out_shape)
    sums = naive_windows(codes, case["kernel"], case["stride"], np.sum)
    np.testing.assert_array_equal(got, naive_requant(sums, rq.multiplier, rq.bias, shift,
                                                     rq.lo, rq.hi))


@st.composite
def add_cases(draw):
    return dict(c=draw(st.integers(1, 4)), hw=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
                bits=draw(st.integers(1, 8)), signed=draw(st.booleans()),
                shift=draw(st.integers(0, 20)), out=draw(st.sampled_from(["u4", "s8", "wide"])),
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=100)
@given(case=add_cases())
@example(case=dict(c=2, hw=(3, 3), bits=8, signed=True, shift=0, out="wide", seed=1))
@example(case=dict(c=3, hw=(1, 1), bits=1, signed=False, shift=20, out="u4", seed=2))
@example(case=dict(c=4, hw=(2, 3), bits=8, signed=False, shift=1, out="s8", seed=3))
def test_add_matches_naive(case):
    """add(input, p) with p a 1x1 conv of the input (so a and b differ), against
    ``clamp((a*M + b*M_b + B + r) >> s)`` per channel."""
    rng = np.random.default_rng(case["seed"])
    c, bits, shift = case["c"], case["bits"], case["shift"]
    spec = InputSpec((c, *case["hw"]), bits, 0.5, signed=case["signed"])
    w = random_weight(rng, (c, c, 1, 1), 4)
    p = MacroLayer("p", "conv2d", w, 4, bits,
                   Requant(rng.integers(1, 64, c).astype(np.int64),
                           rng.integers(0, 4096, c).astype(np.int64), 6, 0, 255),
                   spec.shape, spec.shape)
    if spec.signed:                       # the macro reads code + offset
        p.requant.bias -= p.requant.multiplier * spec.format.offset * \
            w.astype(np.int64).reshape(c, -1).sum(axis=1)
    rq = Requant(rng.integers(-(1 << 20), 1 << 20, c).astype(np.int64),
                 rng.integers(-(1 << 30), 1 << 30, c).astype(np.int64), shift,
                 *_OUT_RANGE[case["out"]])
    m_b = rng.integers(-(1 << 20), 1 << 20, c).astype(np.int64)
    add = AddLayer("add", spec.shape, spec.shape, rq, m_b, inputs=(INPUT, "p"))
    bundle = _one_node_bundle([p, add], spec)
    codes = extreme_codes(rng, 3, spec.shape, *spec.format.codes)
    res = run_network(bundle, codes, keep_activations=True)
    a, b = codes.astype(np.int64), res.activations["p"].astype(np.int64)
    assert b.min() >= 0 and b.max() <= 255
    acc = np.empty(a.shape, object)       # exact Python integers
    for idx in np.ndindex(a.shape):
        acc[idx] = int(a[idx]) * int(rq.multiplier[idx[1]]) + int(b[idx]) * int(m_b[idx[1]])
    want = naive_requant(acc, np.ones(c, np.int64), rq.bias, shift, rq.lo, rq.hi)
    np.testing.assert_array_equal(res.logits.reshape(a.shape), want)


def test_a_node_may_read_one_tensor_twice():
    """add(x, x) and concat(x, x) read one tensor twice: the executor frees it once."""
    rq = Requant(np.ones(2, np.int64), np.zeros(2, np.int64), 0, 0, 255)
    spec = InputSpec((2, 3, 3), 4, 0.5)
    bundle = _one_node_bundle([
        AddLayer("twice", (2, 3, 3), (2, 3, 3), rq, np.full(2, 2, np.int64),
                 inputs=(INPUT, INPUT)),
        ConcatLayer("cat", ((2, 3, 3), (2, 3, 3)), (4, 3, 3), inputs=("twice", "twice"))], spec)
    codes = extreme_codes(np.random.default_rng(0), 3, spec.shape, 0, 15)
    got = run_network(bundle, codes).logits.reshape(3, 4, 3, 3)
    np.testing.assert_array_equal(got, np.concatenate([3 * codes] * 2, axis=1))


# ------------------------------------------------------------- checks found by these tests

def test_concat_reading_more_tensors_than_in_shapes_is_refused(tmp_path):
    path = save_bundle(graph_bundle(), tmp_path / "b")
    doc = json.loads((path / "bundle.json").read_text())
    doc["layers"][5]["inputs"] = ["mp", "ap", "mp"]          # in_shapes lists two
    (path / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="reads 3 tensors .* but lists 2 in_shapes"):
        load_bundle(path)


def test_add_requantizer_overflow_is_refused():
    """Two int32 codes times M = M_b = 2^31 - 1 plus B = 2^62 pass 2^63: refused at
    load (it would wrap silently)."""
    big, wide = np.array([2**31 - 1], np.int64), WIDE
    fc = MacroLayer("fc", "linear", np.array([[127]], np.int8), 8, 8,
                    Requant(big, np.zeros(1, np.int64), 0, *wide), (1,), (1,))
    add = AddLayer("add", (1,), (1,), Requant(big, np.array([2**62], np.int64), 0, *wide),
                   big, inputs=("fc", "fc"))
    with pytest.raises(BundleError, match="overflows"):
        Bundle("ovf", InputSpec((1,), 8, 1.0), [fc, add]).validate()


# ------------------------------------------------------------- host rounding modes

@settings(max_examples=200, deadline=None)
@given(acc=st.lists(st.integers(-2**20, 2**20), min_size=1, max_size=8),
       m=st.integers(-2**12, 2**12), b=st.integers(-2**20, 2**20), shift=st.integers(0, 12),
       rounding=st.sampled_from(["half_up", "half_even", "floor"]))
@example(acc=[1, 3, 5, -1, -3], m=1, b=0, shift=1, rounding="half_even")    # exact ties
@example(acc=[1, 3, -1, -3], m=1, b=0, shift=1, rounding="half_up")
@example(acc=[7, -7], m=1, b=0, shift=2, rounding="floor")
@example(acc=[5], m=3, b=-1, shift=0, rounding="half_even")                 # no shift
def test_host_requantizer_rounds_as_python_fractions(acc, m, b, shift, rounding):
    """``requantize`` with each rounding against exact rational rounding (Python's round() is half
    to even; half up is floor(x + 1/2); floor is floor)."""
    import math
    from fractions import Fraction

    from cimstack.ref.requant import requantize
    got = requantize(np.array([acc]).T, np.array([m]), np.array([b]), shift,
                             -2**40, 2**40, rounding)
    for a, g in zip(acc, got[:, 0].tolist()):
        x = Fraction(a * m + b, 2**shift)
        want = {"half_even": round(x), "half_up": math.floor(x + Fraction(1, 2)),
                "floor": math.floor(x)}[rounding]
        assert g == want, (a, x, rounding)
