"""The dcim and snn C simulations split over several kernel copies
(emu.csim.ParallelCsimKernel) give the words, TLAST flags and consumed counts of one
copy, call for call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cimstack.backends import open_backend
from cimstack.emu import csim
from cimstack.emu.csim import CsimKernel, ParallelCsimKernel, csim_kernel, csim_workers
from cimstack.errors import ConfigError
from cimstack.hw import streams
from cimstack.ref.network import run_network

from conftest import digits_like_bundle, random_requant, random_weight


@pytest.fixture(scope="module")
def kernels() -> list:
    """One plain copy, then 2 and 3 workers splitting every call of 2+ vectors."""
    return [CsimKernel("dcim"), ParallelCsimKernel("dcim", 2, min_part_words=1),
            ParallelCsimKernel("dcim", 3, min_part_words=1)]


def stream(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    last = np.zeros(len(words), bool)
    last[-1:] = True
    return words, last


def same_call(kernels, regs, words, last):
    """Run one call on every kernel; all give the first one's result, which it returns."""
    want = kernels[0].run(regs, words, last)
    for kernel in kernels[1:]:
        got = kernel.run(regs, words, last)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[2], want[2])
        assert got[2].dtype == want[2].dtype == bool
    return want


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(1, 300), n=st.integers(1, 40), n_vec=st.integers(1, 9),
       w_bits=st.integers(1, 8), x_bits=st.integers(1, 8), rows_on=st.integers(1, 32),
       psum_bits=st.sampled_from([0, 1, 3, 6]), psum_mode=st.integers(0, 1),
       sparsity=st.sampled_from([0.0, 0.5, 0.9]), seed=st.integers(0, 1000))
@example(k=1, n=1, n_vec=1, w_bits=1, x_bits=1, rows_on=1, psum_bits=0, psum_mode=0,
         sparsity=0.0, seed=0)
@example(k=70, n=9, n_vec=2, w_bits=1, x_bits=8, rows_on=16, psum_bits=3, psum_mode=1,
         sparsity=0.9, seed=1)                  # n_vec < 3 workers, binary, pruned blocks
@example(k=300, n=40, n_vec=7, w_bits=4, x_bits=4, rows_on=32, psum_bits=2, psum_mode=0,
         sparsity=0.5, seed=2)                  # n_vec divisible by neither 2 nor 3
@example(k=129, n=17, n_vec=9, w_bits=8, x_bits=5, rows_on=7, psum_bits=0, psum_mode=0,
         sparsity=0.5, seed=3)                  # exact path
def test_split_calls_match_one_copy(kernels, k, n, n_vec, w_bits, x_bits, rows_on,
                                    psum_bits, psum_mode, sparsity, seed):
    rng = np.random.default_rng(seed)
    w = random_weight(rng, (n, k), w_bits, rows_on, sparsity).T   # [K, N], blocks pruned
    rq = random_requant(rng, n)
    x = rng.integers(0, 1 << x_bits, (n_vec, k))
    regs = dict(k_rows=k, n_out=n, w_bits=w_bits, x_bits=x_bits, rows_on=rows_on,
                psum_bits=psum_bits, psum_mode=psum_mode, shift=rq.shift, out_lo=rq.lo,
                out_hi=rq.hi)
    assert same_call(kernels, {**regs, "mode": 0}, *stream(streams.pack_weights(w)))[0] > 0
    same_call(kernels, {**regs, "mode": 1}, *stream(streams.pack_requant(rq.multiplier, rq.bias)))
    words = streams.pack_inputs(x)
    consumed, out, last = same_call(kernels, {**regs, "mode": 2, "n_vec": n_vec},
                                    *stream(np.concatenate([words, words[:3]])))
    assert consumed == len(words)               # the extra words are left in the stream
    assert last.tolist() == [False] * (len(out) - 1) + [True]


def test_short_input_is_refused_by_every_part(kernels):
    regs = dict(mode=2, k_rows=20, n_out=3, n_vec=6, w_bits=4, x_bits=4, rows_on=4)
    need = kernels[0].words_needed(regs)
    consumed, out, last = same_call(kernels, regs, *stream(np.zeros(need - 1, np.uint64)))
    assert (consumed, len(out), len(last)) == (0, 0, 0)


def test_bad_registers_raise_as_one_copy(kernels):
    regs = dict(mode=2, k_rows=1153, n_out=2, n_vec=4, w_bits=8, x_bits=8, rows_on=8)
    for kernel in kernels:
        with pytest.raises(ConfigError, match="out of the kernel's range"):
            kernel.run(regs, np.zeros(64, np.uint64), np.zeros(64, bool))


def test_short_calls_stay_on_one_copy():
    kernel = ParallelCsimKernel("dcim", 2)      # default: parts of MIN_PART_WORDS words
    calls = []

    def counted(run):
        def wrapped(args, words, last):
            calls.append(args["n_vec"])
            return run(args, words, last)
        return wrapped

    for copy in kernel.copies:
        copy.run = counted(copy.run)
    regs = dict(mode=2, k_rows=8, n_out=2, w_bits=8, x_bits=8, rows_on=8, out_lo=-99,
                out_hi=99)                      # one input and one output word per vector
    for n_vec, parts in ((2 * csim.MIN_PART_WORDS - 1, [2 * csim.MIN_PART_WORDS - 1]),
                         (2 * csim.MIN_PART_WORDS + 1, [csim.MIN_PART_WORDS,
                                                        csim.MIN_PART_WORDS + 1])):
        calls.clear()
        words = np.zeros(n_vec, np.uint64)
        consumed, out, _ = kernel.run({**regs, "n_vec": n_vec}, words, np.zeros(n_vec, bool))
        assert (consumed, len(out)) == (n_vec, n_vec)
        assert sorted(calls) == parts


@pytest.mark.parametrize("value,want", [("1", 1), ("2", 2), (" 3 ", 3)])
def test_workers_from_the_environment(monkeypatch, value, want):
    monkeypatch.setenv(csim.WORKERS_ENV, value)
    assert csim_workers() == want


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", str(csim.MAX_WORKERS + 1)])
def test_bad_workers_setting(monkeypatch, value):
    monkeypatch.setenv(csim.WORKERS_ENV, value)
    with pytest.raises(ConfigError, match=csim.WORKERS_ENV):
        csim_workers()


def test_default_workers(monkeypatch):
    monkeypatch.delenv(csim.WORKERS_ENV, raising=False)
    assert 1 <= csim_workers() <= csim.DEFAULT_MAX_WORKERS


def test_which_kernels_split():
    assert type(csim_kernel("dcim", workers=1)) is CsimKernel
    assert type(csim_kernel("dcim", workers=2)) is ParallelCsimKernel
    assert type(csim_kernel("acim", workers=2)) is CsimKernel   # noise keyed by vector index
    assert type(csim_kernel("snn", workers=2)) is ParallelCsimKernel   # runs of samples
    with pytest.raises(ConfigError, match="vector_mode"):
        ParallelCsimKernel("acim", 2)


@pytest.fixture(scope="module")
def snn_kernels() -> list:
    return [CsimKernel("snn"), ParallelCsimKernel("snn", 2, min_part_words=1),
            ParallelCsimKernel("snn", 3, min_part_words=1)]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), samples=st.integers(0, 7), t_steps=st.integers(1, 4),
       density=st.sampled_from([0.0, 0.1, 0.6]), v_init=st.integers(-9, 9),
       v_out=st.integers(0, 1))
@example(seed=0, samples=0, t_steps=2, density=0.3, v_init=0, v_out=1)   # continues: one
#                                                   copy; v_out is ignored without samples
@example(seed=1, samples=2, t_steps=1, density=0.0, v_init=3, v_out=0)   # empty packets only
@example(seed=2, samples=7, t_steps=3, density=0.6, v_init=-9, v_out=1)  # 7 = 2 + 2 + 3 parts,
#                                                   each sample's membrane packet
def test_snn_runs_of_samples_split_like_one_copy(snn_kernels, seed, samples, t_steps,
                                                 density, v_init, v_out):
    """A RUN of S samples split at sample boundaries answers as one copy; the first
    copy, which ran the last part, then reads the last sample's membranes, and a run
    that continues them (n_samples = 0) answers as one copy too."""
    from cimstack.events.wire import frames_to_beats
    from cimstack.hw.snn import layer_args, pack_weights
    from cimstack.overlay_shape import SNN
    from cimstack.ref.snn import SnnLayer
    rng = np.random.default_rng(seed)
    conv = SnnLayer("c", "conv", (2, 6, 6), (3, 4, 4),
                    rng.integers(-20, 20, (3, 2, 3, 3)).astype(np.int32), theta=25,
                    v_bits=8, v_init=v_init)
    args = layer_args(conv, (2, 6, 6), 1, 0, 48)
    modes = SNN.modes
    w = pack_weights(conv, 0, 48)
    same_call(snn_kernels, {**args, "mode": modes["load_weights"], "n_words": w.size},
              *stream(w))
    same_call(snn_kernels, {**args, "mode": modes["clear"]}, *stream(np.zeros(0, np.uint64)))
    frames = rng.random((max(samples, 1), t_steps, 2, 6, 6)) < density
    words = np.concatenate([frames_to_beats(f)[0] for f in frames])
    run = {**args, "mode": modes["run"], "n_words": words.size, "n_steps": t_steps,
           "n_samples": samples, "v_out": v_out}
    consumed, out, last = same_call(snn_kernels, run, *stream(np.concatenate([words,
                                                                              words[:3]])))
    assert consumed == words.size               # the extra words are left in the stream
    assert last.tolist() == [False] * (len(out) - 1) + [True]
    same_call(snn_kernels, {**args, "mode": modes["read_membranes"]},
              *stream(np.zeros(0, np.uint64)))
    more = frames_to_beats(frames[0])[0]
    same_call(snn_kernels, {**run, "n_words": more.size, "n_samples": 0, "v_out": 0},
              *stream(more))
    same_call(snn_kernels, {**args, "mode": modes["read_membranes"]},
              *stream(np.zeros(0, np.uint64)))


def test_network_on_two_workers_is_bit_exact(monkeypatch):
    monkeypatch.setenv(csim.WORKERS_ENV, "2")
    backend = open_backend("emu", timeout_s=5.0)
    bundle = digits_like_bundle(5)
    images = np.random.default_rng(5).integers(0, 256, (6, 1, 8, 8))
    got = run_network(bundle, images, engine=backend.engine)
    np.testing.assert_array_equal(got.logits, run_network(bundle, images).logits)
    ips = [ip for ip in backend.overlay.device.ips.values()
           if isinstance(getattr(ip, "kernel", None), ParallelCsimKernel)]
    assert ips and ips[0].kernel.workers == 2
