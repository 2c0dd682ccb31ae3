"""The dcim kernel's word-at-a-time unpacking and lane-parallel read-outs in C
simulation, bit for bit against the NumPy reference, at the corners of the new loops:
input vectors and weight streams that end mid-word (K and K * N not multiples of 8),
K = 1 and K = MAX_K, every input width 1..8, channel counts whose weight words span two
rows and whose columns split lane groups (w_bits 3, 5, 6, 7), several vectors in one
call (the exact read-out's ping-pong buffers), row groups that straddle 64-row words
and groups larger than a word behind the column ADC, and a block table rebuilt when
rows_on changes between calls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_hls_dcim import INT32, block_sparse_weights, call, check_layer

from cimstack.config import DcimSpec
from cimstack.emu.csim import CsimKernel
from cimstack.hw import streams
from cimstack.ref.dcim import macro_matmul

MAX_K = 1152


@pytest.fixture(scope="module")
def kernel() -> CsimKernel:
    return CsimKernel("dcim")

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@SETTINGS
@given(k=st.integers(1, MAX_K), n=st.integers(1, 40), n_vec=st.integers(1, 5),
       w_bits=st.integers(1, 8), x_bits=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
@example(k=1, n=1, n_vec=1, w_bits=1, x_bits=1, seed=0)
@example(k=1, n=3, n_vec=3, w_bits=8, x_bits=8, seed=1)
@example(k=MAX_K, n=17, n_vec=2, w_bits=3, x_bits=8, seed=2)
@example(k=MAX_K, n=128, n_vec=1, w_bits=8, x_bits=2, seed=3)
@example(k=9, n=10, n_vec=4, w_bits=8, x_bits=8, seed=4)
@example(k=63, n=33, n_vec=2, w_bits=5, x_bits=7, seed=5)
@example(k=65, n=5, n_vec=5, w_bits=7, x_bits=3, seed=6)
@example(k=8, n=1, n_vec=2, w_bits=6, x_bits=6, seed=7)
def test_exact_read_out(kernel, k, n, n_vec, w_bits, x_bits, seed):
    check_layer(kernel, np.random.default_rng(seed), k, n, n_vec, w_bits, x_bits, 16,
                None, "saturate", 0.3, "identity")


@SETTINGS
@given(k=st.integers(1, 400), n=st.integers(1, 24), n_vec=st.integers(1, 3),
       w_bits=st.integers(1, 8), x_bits=st.integers(1, 8), rows_on=st.integers(1, 200),
       psum_bits=st.integers(1, 6), psum_mode=st.sampled_from(["saturate", "quantize"]),
       sparsity=st.sampled_from([0.0, 0.5, 0.9]), seed=st.integers(0, 2**32 - 1))
@example(k=1, n=1, n_vec=1, w_bits=1, x_bits=1, rows_on=1, psum_bits=1,
         psum_mode="saturate", sparsity=0.0, seed=0)
@example(k=400, n=9, n_vec=2, w_bits=1, x_bits=8, rows_on=100, psum_bits=3,
         psum_mode="quantize", sparsity=0.5, seed=1)
@example(k=300, n=24, n_vec=1, w_bits=3, x_bits=5, rows_on=70, psum_bits=2,
         psum_mode="saturate", sparsity=0.5, seed=2)
@example(k=129, n=7, n_vec=3, w_bits=8, x_bits=4, rows_on=200, psum_bits=6,
         psum_mode="quantize", sparsity=0.9, seed=3)
def test_adc_read_out(kernel, k, n, n_vec, w_bits, x_bits, rows_on, psum_bits, psum_mode,
                      sparsity, seed):
    check_layer(kernel, np.random.default_rng(seed), k, n, n_vec, w_bits, x_bits, rows_on,
                psum_bits, psum_mode, sparsity, "identity")


def test_block_table_follows_rows_on(kernel):
    """One weight load, then ADC read-outs at two rows_on and an exact one."""
    rng = np.random.default_rng(11)
    k, n, w_bits, x_bits = 200, 20, 4, 6
    w = block_sparse_weights(rng, k, n, w_bits, 40, 0.5)
    x = rng.integers(0, 1 << x_bits, (3, k))
    base = {"k_rows": k, "n_out": n, "w_bits": w_bits, "x_bits": x_bits, "shift": 0,
            "out_lo": INT32[0], "out_hi": INT32[1]}
    call(kernel, {**base, "mode": 0, "rows_on": 8}, streams.pack_weights(w))
    call(kernel, {**base, "mode": 1, "n_out": n}, streams.pack_requant(
        np.ones(n, np.int64), np.zeros(n, np.int64)))
    for rows_on, psum_bits in ((40, 3), (8, 2), (40, 0)):
        regs = {**base, "mode": 2, "n_vec": len(x), "rows_on": rows_on,
                "psum_bits": psum_bits, "psum_mode": 0}
        out, _ = call(kernel, regs, streams.pack_inputs(x))
        spec = DcimSpec(rows=rows_on * 16, rows_on=rows_on, psum_bits=psum_bits or None)
        np.testing.assert_array_equal(streams.unpack_outputs(out, n, len(x)),
                                      macro_matmul(x, w, w_bits, x_bits, spec))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5), st.integers(1, 40), st.integers(0, 2**32 - 1), st.booleans())
@example(3, 16, 0, True)                   # whole words, strided rows: a copy, not a view
@example(0, 8, 1, False)                   # no vectors
def test_input_words_are_the_rows_zero_padded_to_whole_words(n, width, seed, strided):
    """pack_inputs: every row's bytes, then zeros to its word boundary, little endian; rows
    of whole words are taken as they are (no padding copy) with the same words."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, (n, 2 * width if strided else width)).astype(np.uint8)
    rows = rows[:, ::2] if strided else rows
    padded = np.zeros((n, -(-width // 8) * 8), np.uint8)
    padded[:, :width] = rows
    words = streams.pack_inputs(rows)
    assert words.dtype == np.dtype("<u8")
    np.testing.assert_array_equal(words.view(np.uint8), padded.reshape(-1))
