"""The dcim HLS kernel in g++ C simulation against the NumPy reference, bit for bit."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cimstack.config import DcimSpec
from cimstack.emu.csim import CsimKernel
from cimstack.errors import ConfigError
from cimstack.hw import streams
from cimstack.paths import project_root
from cimstack.ref.dcim import macro_matmul
from cimstack.ref.requant import requantize

INT32 = (-(2**31), 2**31 - 1)


@pytest.fixture(scope="module")
def kernel() -> CsimKernel:
    return CsimKernel("dcim")


def block_sparse_weights(rng, k, n, w_bits, rows_on, sparsity):
    """[K, N] weights with whole (k // rows_on, n) blocks zeroed; binary uses {-1, +1}."""
    if w_bits == 1:
        w = rng.choice(np.array([-1, 1]), (k, n))
    else:
        w = rng.integers(-(1 << (w_bits - 1)), 1 << (w_bits - 1), (k, n))
    groups = -(-k // rows_on)
    pruned = rng.random((groups, n)) < sparsity
    for g, c in zip(*np.nonzero(pruned)):
        w[g * rows_on:(g + 1) * rows_on, c] = 0
    return w


def random_requant(rng, n, kind):
    """(M, B, shift, lo, hi): identity (raw accumulators out), typical, or extreme."""
    if kind == "identity":
        return np.ones(n, np.int64), np.zeros(n, np.int64), 0, *INT32
    if kind == "typical":
        mult = rng.integers(-(1 << 15), 1 << 15, n)
        bias = rng.integers(-(1 << 30), 1 << 30, n)
        shift = int(rng.integers(0, 21))
        lo, hi = sorted(int(v) for v in rng.integers(-(1 << 12), 1 << 12, 2))
        return mult, bias, shift, lo, hi
    mult = rng.integers(*INT32, n, endpoint=True)
    bias = rng.integers(-(2**61), 2**61, n)
    lo, hi = sorted(int(v) for v in rng.integers(*INT32, 2, endpoint=True))
    return mult, bias, int(rng.integers(0, 63)), lo, hi


def call(kernel, regs, words):
    """Run one call that must consume all of ``words``; returns its outputs."""
    last = np.zeros(len(words), bool)
    last[-1:] = True
    consumed, out, out_last = kernel.run(regs, words, last)
    assert consumed == len(words) == kernel.words_needed(regs)
    return out, out_last


def run_layer(kernel, x, w, mult, bias, regs):
    """Load weights and requantizer, compute x; returns [V, N] int32 and TLAST flags."""
    call(kernel, {**regs, "mode": 0}, streams.pack_weights(w))
    call(kernel, {**regs, "mode": 1}, streams.pack_requant(mult, bias))
    out, last = call(kernel, {**regs, "mode": 2, "n_vec": len(x)}, streams.pack_inputs(x))
    return streams.unpack_outputs(out, w.shape[1], len(x)), last


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(1, 300), n=st.integers(1, 40), n_vec=st.integers(1, 4),
       w_bits=st.integers(1, 8), x_bits=st.integers(1, 8), rows_on=st.integers(1, 32),
       psum_bits=st.sampled_from([None, 1, 2, 3, 4, 5, 6]),
       psum_mode=st.sampled_from(["saturate", "quantize"]),
       sparsity=st.sampled_from([0.0, 0.3, 0.8]),
       requant=st.sampled_from(["identity", "typical", "extreme"]),
       seed=st.integers(0, 2**32 - 1))
def test_csim_matches_reference(kernel, k, n, n_vec, w_bits, x_bits, rows_on, psum_bits,
                                psum_mode, sparsity, requant, seed):
    check_layer(kernel, np.random.default_rng(seed), k, n, n_vec, w_bits, x_bits, rows_on,
                psum_bits, psum_mode, sparsity, requant)


@pytest.mark.parametrize("psum_mode", ["saturate", "quantize"])
@pytest.mark.parametrize("w_bits,x_bits", [(1, 8), (8, 8), (3, 5)])
def test_csim_adc_limited(kernel, psum_mode, w_bits, x_bits):
    """Partial sums well past a 2- or 3-bit ADC, with and without pruning."""
    rng = np.random.default_rng(w_bits * 10 + x_bits)
    for psum_bits, rows_on, sparsity in ((2, 32, 0.0), (3, 20, 0.5), (2, 5, 0.3)):
        check_layer(kernel, rng, 200, 24, 3, w_bits, x_bits, rows_on, psum_bits,
                    psum_mode, sparsity, "identity")


def check_layer(kernel, rng, k, n, n_vec, w_bits, x_bits, rows_on, psum_bits, psum_mode,
                sparsity, requant):
    """One random layer through the C simulation equals the reference bit for bit."""
    spec = DcimSpec(rows=rows_on * 16, rows_on=rows_on, psum_bits=psum_bits,
                    psum_mode=psum_mode)
    w = block_sparse_weights(rng, k, n, w_bits, rows_on, sparsity)
    x = rng.integers(0, 1 << x_bits, (n_vec, k))
    mult, bias, shift, lo, hi = random_requant(rng, n, requant)
    regs = dict(k_rows=k, n_out=n, w_bits=w_bits, x_bits=x_bits, rows_on=rows_on,
                psum_bits=psum_bits or 0, psum_mode=int(psum_mode == "quantize"),
                shift=shift, out_lo=lo, out_hi=hi)

    got, last = run_layer(kernel, x, w, mult, bias, regs)

    acc = macro_matmul(x, w, w_bits, x_bits, spec)
    want = requantize(acc, mult, bias, shift, lo, hi)
    np.testing.assert_array_equal(got, want)
    assert last.tolist() == [False] * (len(last) - 1) + [True]


def test_short_input_is_refused(kernel):
    regs = dict(mode=2, k_rows=20, n_out=3, n_vec=2, w_bits=4, x_bits=4, rows_on=4)
    need = kernel.words_needed(regs)
    assert need == 2 * 3
    consumed, out, last = kernel.run(regs, np.zeros(need - 1, np.uint64),
                                     np.zeros(need - 1, bool))
    assert (consumed, len(out), len(last)) == (0, 0, 0)


@pytest.mark.parametrize("bad", [dict(k_rows=1153), dict(n_out=129), dict(w_bits=9),
                                 dict(x_bits=0), dict(shift=63), dict(out_lo=5, out_hi=4),
                                 dict(mode=3)])
def test_out_of_range_registers(kernel, bad):
    regs = {**dict(mode=2, k_rows=8, n_out=2, n_vec=1, w_bits=8, x_bits=8, rows_on=8), **bad}
    with pytest.raises(ConfigError):
        kernel.words_needed(regs)
    with pytest.raises(ConfigError):
        kernel.run(regs, np.zeros(64, np.uint64), np.zeros(64, bool))


def test_unknown_register(kernel):
    with pytest.raises(ConfigError, match="no register"):
        kernel.words_needed({"mode": 2, "k": 3})


def test_instances_do_not_share_weights(kernel):
    other = CsimKernel("dcim")
    rng = np.random.default_rng(1)
    w = rng.integers(-8, 8, (16, 4))
    x = rng.integers(0, 16, (2, 16))
    ones, zeros = np.ones(4, np.int64), np.zeros(4, np.int64)
    regs = dict(k_rows=16, n_out=4, w_bits=4, x_bits=4, rows_on=8, out_lo=INT32[0],
                out_hi=INT32[1])
    got, _ = run_layer(kernel, x, w, ones, zeros, regs)
    np.testing.assert_array_equal(got, x @ w)
    got_other, _ = run_layer(other, x, np.zeros_like(w), ones, zeros, regs)
    np.testing.assert_array_equal(got_other, 0)
    out, _ = call(kernel, {**regs, "mode": 2, "n_vec": 2}, streams.pack_inputs(x))
    np.testing.assert_array_equal(streams.unpack_outputs(out, 4, 2), x @ w)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_csim(tmp_path):
    proc = subprocess.run(["make", "-j2", "-C", str(project_root() / "hls"), "csim",
                           f"BUILD={tmp_path}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "all cases passed" in proc.stdout
