"""The dcim reference: bit-serial macro == integer dot product, skipping, ADC, cycles."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cimstack.config import DcimSpec
from cimstack.errors import ConfigError
from cimstack.mapping.tiling import layer_cost
from cimstack.ref.dcim import macro_matmul, macro_matmul_bitserial
from cimstack.ref.requant import requantize

from conftest import random_weight


@st.composite
def macro_case(draw):
    w_bits = draw(st.integers(1, 8))
    x_bits = draw(st.integers(1, 8))
    rows_on = draw(st.sampled_from([1, 2, 3, 4, 8, 16, 32]))
    k = draw(st.integers(1, 200))
    n = draw(st.integers(1, 24))
    v = draw(st.integers(1, 12))
    sparsity = draw(st.sampled_from([0.0, 0.3, 0.7]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w = random_weight(rng, (n, k), w_bits, rows_on, sparsity).T.astype(np.int64)
    x = rng.integers(0, 1 << x_bits, (v, k))
    return w_bits, x_bits, rows_on, x, w


@settings(max_examples=150, deadline=None)
@given(macro_case())
def test_bitserial_equals_integer_dot_product(case):
    w_bits, x_bits, rows_on, x, w = case
    spec = DcimSpec(rows=rows_on * 8, rows_on=rows_on)
    got = macro_matmul_bitserial(x, w, w_bits, x_bits, spec)
    np.testing.assert_array_equal(got, x @ w)
    np.testing.assert_array_equal(macro_matmul(x, w, w_bits, x_bits, spec), x @ w)


@settings(max_examples=60, deadline=None)
@given(macro_case(), st.integers(0, 2**32 - 1))
def test_block_skipping_changes_cycles_never_results(case, seed):
    w_bits, x_bits, rows_on, x, w = case
    spec = DcimSpec(rows=rows_on * 4, rows_on=rows_on)
    rng = np.random.default_rng(seed)
    dense = w.copy()
    if w_bits == 1:
        dense[dense == 0] = 1
    else:
        dense[dense == 0] = rng.choice([-1, 1], size=int((dense == 0).sum()))
    pruned = dense.copy()
    groups = -(-w.shape[0] // rows_on)
    # prune one block per channel, in a balanced way
    for ch in range(w.shape[1]):
        g = int(rng.integers(groups))
        pruned[g * rows_on:(g + 1) * rows_on, ch] = 0
    # same result as the dense matrix with those weights zeroed: skipping is free
    np.testing.assert_array_equal(macro_matmul_bitserial(x, pruned, w_bits, x_bits, spec),
                                  x @ pruned)
    c_dense = layer_cost(dense, w_bits, x_bits, spec)
    c_pruned = layer_cost(pruned, w_bits, x_bits, spec)
    assert c_pruned.pruned_blocks == w.shape[1]
    assert c_pruned.dense_cycles == c_dense.cycles == c_dense.dense_cycles
    assert c_pruned.cycles <= c_dense.cycles
    if c_dense.tiles == 1:
        # every channel lost one block and channels run in lockstep: one group fewer
        assert c_pruned.cycles == c_dense.cycles - x_bits


def test_cycles_formula_small():
    spec = DcimSpec(rows=32, cols=64, rows_on=8, macros=2)
    w = np.ones((64, 20), np.int64)          # 2 row tiles, 8 channels per tile -> 3 col tiles
    w[0:8, :] = 0                            # group 0 pruned in every channel
    cost = layer_cost(w, 8, 4, spec)
    assert (cost.row_tiles, cost.col_tiles) == (2, 3)
    # tiles row-major: (0,0)=3 groups,(0,1)=3,(0,2)=3,(1,0)=4,(1,1)=4,(1,2)=4 groups kept
    # rounds of 2 macros: max(3,3)+max(3,4)+max(4,4) = 11 groups -> x 4 bits
    assert cost.cycles == 4 * 11
    assert cost.dense_cycles == 4 * 12
    assert cost.pruned_blocks == 20


@pytest.mark.parametrize("mode, expect", [("saturate", 3), ("quantize", 8)])
def test_column_adc_limits_partial_sums(mode, expect):
    spec = DcimSpec(rows=64, rows_on=16, psum_bits=2, psum_mode=mode)
    x = np.ones((1, 16), np.int64)
    x[0, 0] = 0                              # 15 active inputs
    w = np.ones((16, 1), np.int64)           # 2-bit weight 01: column 0 reads p = 15
    # saturate: min(15, 3) = 3; quantize: LSB 2^3 so that 16 >> 3 fits 2 bits: 15 -> 8
    assert macro_matmul(x, w, 2, 1, spec)[0, 0] == expect


def test_adc_exact_when_range_covers_rows_on():
    spec = DcimSpec(rows=60, rows_on=15, psum_bits=4)      # 15 fits 4 bits
    rng = np.random.default_rng(1)
    x, w = rng.integers(0, 256, (5, 60)), rng.integers(-128, 128, (60, 7))
    assert spec.psum_exact
    np.testing.assert_array_equal(macro_matmul_bitserial(x, w, 8, 8, spec), x @ w)


@pytest.mark.parametrize("k", [1, 514, 515, 1152])
def test_exact_product_on_both_sides_of_the_float32_bound(k):
    """8-bit operands: K = 514 is the largest K whose bound K * 255 * 128 fits float32's
    2^24 (float32 product), 515 and up take float64. Extreme operands (every input 255,
    every weight -128 or 127) reach the bound; random ones make sums above 2^24 odd, which
    float32 would round."""
    rng = np.random.default_rng(k)
    x = np.vstack([np.full(k, 255), rng.integers(0, 256, (3, k))])
    w = np.hstack([np.full((k, 1), -128), np.full((k, 1), 127), rng.integers(-128, 128, (k, 5))])
    np.testing.assert_array_equal(macro_matmul(x, w, 8, 8, DcimSpec(rows=1152)), x @ w)


def test_requantize_rounds_half_up_and_clamps():
    acc = np.array([[5, -5, 7, 1000]])
    y = requantize(acc, np.array([1, 1, 1, 1]), np.array([0, 0, 0, 0]), 1, -2, 100)
    np.testing.assert_array_equal(y, [[3, -2, 4, 100]])     # 2.5->3, -2.5->-2, 3.5->4, clamp


@pytest.mark.parametrize("bad, match", [
    (dict(x=np.array([[256]]), x_bits=8), "outside the unsigned 8-bit"),
    (dict(w=np.array([[8]]), w_bits=4), "outside the 4-bit"),
    (dict(w_bits=9), "w_bits = 9"),
    (dict(x_bits=0), "x_bits = 0"),
    (dict(w=np.ones((3, 1), int)), "do not chain"),
])
def test_bad_operands_get_clear_errors(bad, match):
    args = dict(x=np.array([[1]]), w=np.array([[1]]), w_bits=4, x_bits=8)
    args.update(bad)
    with pytest.raises(ConfigError, match=match):
        macro_matmul(args["x"], args["w"], args["w_bits"], args["x_bits"], DcimSpec())
