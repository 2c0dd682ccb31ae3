"""The snn HLS kernel in g++ C simulation against the integer reference, bit for bit;
its register interface against the overlay declaration; the C++ testbench."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cimstack.emu.csim import CsimKernel
from cimstack.errors import ConfigError
from cimstack.events.wire import (frames_to_beats, pack_stream, packet_ends, unpack_events,
                                  unpack_stream)
from cimstack.hw.snn import (ARRAY_BITS, CsimTransactor, SnnKernelRunner, conv_group,
                             group_of, layer_args,
                             pack_weights, plan_runs, plan_samples, plan_slices,
                             unpack_membranes)
from cimstack.mapping.snn import SnnMappingError
from cimstack.overlay_shape import KERNELS, SNN
from cimstack.paths import project_root
from cimstack.config import SnnSpec
from cimstack.ref.snn import SnnLayer, SnnNet, conv_out, run_snn, v_range

from conftest import snn_weights
from test_ref_snn import random_net


@pytest.fixture(scope="module")
def runner() -> SnnKernelRunner:
    return SnnKernelRunner(CsimTransactor(CsimKernel("snn")))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), w_bits=st.integers(1, 16), v_bits=st.integers(2, 16),
       leak=st.sampled_from([0, 2]), reset=st.sampled_from(["subtract", "zero"]),
       mode=st.sampled_from(["saturate", "wrap"]), pad=st.integers(0, 1),
       density=st.sampled_from([0.05, 0.3]), stride=st.sampled_from([1, 1, 2, 3]))
@example(seed=1, w_bits=8, v_bits=12, leak=0, reset="subtract", mode="saturate", pad=1,
         density=0.3, stride=2)                               # padding with stride
@example(seed=2, w_bits=5, v_bits=9, leak=2, reset="zero", mode="wrap", pad=0, density=0.3,
         stride=3)                                            # stride = k
def test_csim_matches_reference(runner, seed, w_bits, v_bits, leak, reset, mode, pad, density,
                                stride):
    net = random_net(seed, w_bits, v_bits, leak, reset, mode, pad, stride=stride)
    frames = np.random.default_rng(seed).random((2, 5, 2, 8, 8)) < density
    ref = run_snn(net, frames, keep_spikes=True)
    got = runner.run(net, frames)
    for name in got.spikes:
        np.testing.assert_array_equal(got.spikes[name], ref.spikes[name], err_msg=name)
    np.testing.assert_array_equal(got.v_final, ref.v_final)
    # the statistics, the fc layer's from the conv's spike events pooled (pool_or_events)
    assert [s.to_dict() for s in got.stats] == [s.to_dict() for s in ref.stats]
    lo, hi = v_range(v_bits)
    if mode == "saturate":
        assert got.v_final.min() >= lo and got.v_final.max() <= hi


@settings(max_examples=500, deadline=None)
@given(n=st.integers(0, 2**31 - 1), d=st.integers(1, 2**32 - 1))
@example(n=0, d=1)
@example(n=2**31 - 1, d=1)
@example(n=2**31 - 1, d=2**32 - 1)                 # largest divisor: shift 63
@example(n=2**31 - 1, d=65535 * 65535)             # the largest plane src_h * src_w
@example(n=2**31 - 1, d=65535)
@example(n=2**31 - 1, d=3)
@example(n=23, d=3)                                # 7.67: floor
@example(n=2**31 - 2, d=2**31 - 1)                 # one below the divisor
@example(n=2**31 - 1, d=2**31 + 1)
def test_event_decode_divide_is_floor_division(n, d):
    """The multiply-and-shift division of the event decode (snn_top.h, divide) is exact
    for every 31-bit address and 32-bit divisor."""
    lib = CsimKernel("snn")._lib
    lib.cimstack_snn_divide.restype = ctypes.c_uint32
    lib.cimstack_snn_divide.argtypes = [ctypes.c_uint32, ctypes.c_uint32]
    assert lib.cimstack_snn_divide(n, d) == n // d


@pytest.mark.parametrize("pool, size", [(3, 10), (3, 11), (5, 12)])
def test_pool_not_a_power_of_two_crops(runner, pool, size):
    """Pools of 3 and 5 after a conv whose output is not a multiple of the pool: the
    kernel's address decode (by pool and by source width) and its crop."""
    rng = np.random.default_rng(pool * size)
    o = size - 2
    p = o // pool
    kw = dict(w_bits=6, v_bits=12, leak_shift=1, reset="subtract", overflow="wrap")
    net = SnnNet("pooled", (2, size, size), [
        SnnLayer("conv1", "conv", (2, size, size), (3, o, o),
                 rng.integers(-31, 32, (3, 2, 3, 3)).astype(np.int32), theta=20, **kw),
        SnnLayer("pool1", "pool", (3, o, o), (3, p, p), kernel=pool),
        SnnLayer("fc", "fc", (3, p, p), (4,),
                 rng.integers(-31, 32, (4, 3 * p * p)).astype(np.int32), theta=15, **kw),
    ], SnnSpec())
    net.validate()
    frames = rng.random((2, 4, 2, size, size)) < 0.4
    ref = run_snn(net, frames, keep_spikes=True)
    got = runner.run(net, frames)
    for name in got.spikes:
        np.testing.assert_array_equal(got.spikes[name], ref.spikes[name], err_msg=name)
    np.testing.assert_array_equal(got.v_final, ref.v_final)


@pytest.mark.parametrize("size, k, pad, stride, pool", [
    (9, 3, 0, 3, 1),        # stride = k
    (9, 2, 0, 3, 1),        # stride > k: some inputs reach nothing
    (11, 3, 2, 2, 1),       # padding with stride, odd size
    (12, 5, 2, 4, 2),       # pooled input (address decode) then stride
    (13, 1, 0, 7, 1),       # the largest stride, a 1x1 kernel
])
def test_strided_conv_on_the_kernel(runner, size, k, pad, stride, pool):
    """Strided convs on the kernel, spike for spike and membrane for membrane equal to
    the reference; the first layer is large enough to be sliced."""
    rng = np.random.default_rng(size * k + stride)
    h = size // pool
    o = conv_out(h, k, pad, stride)
    n = 16 if stride < 4 else 4
    kw = dict(w_bits=6, v_bits=10, leak_shift=1, reset="subtract", overflow="saturate")
    layers = [SnnLayer("pool0", "pool", (2, size, size), (2, h, h), kernel=pool)] * (pool > 1)
    layers += [
        SnnLayer("conv1", "conv", (2, h, h), (n, o, o),
                 rng.integers(-31, 32, (n, 2, k, k)).astype(np.int32), padding=pad,
                 stride=stride, theta=12, **kw),
        SnnLayer("fc", "fc", (n, o, o), (4,),
                 rng.integers(-31, 32, (4, n * o * o)).astype(np.int32), theta=15, **kw)]
    net = SnnNet("strided", (2, size, size), layers)
    net.validate()
    frames = rng.random((2, 4, 2, size, size)) < 0.4
    ref = run_snn(net, frames, keep_spikes=True)
    got = runner.run(net, frames)
    assert ref.spikes["conv1"].any()                       # the test can fail
    for name in got.spikes:
        np.testing.assert_array_equal(got.spikes[name], ref.spikes[name], err_msg=name)
    np.testing.assert_array_equal(got.v_final, ref.v_final)
    assert [s.to_dict() for s in got.stats] == [s.to_dict() for s in ref.stats]


def test_membranes_saturate_in_the_kernel(runner):
    """Large weights, tiny threshold range: the kernel's membranes stay in v_bits."""
    for v_bits in (4, 6, 9):
        net = random_net(7, w_bits=12, v_bits=v_bits)
        frames = np.random.default_rng(1).random((1, 6, 2, 8, 8)) < 0.5
        got = runner.run(net, frames)
        lo, hi = v_range(v_bits)
        assert got.v_final.min() >= lo and got.v_final.max() <= hi
        np.testing.assert_array_equal(got.v_final, run_snn(net, frames).v_final)


def test_layer_larger_than_the_array_is_sliced(runner):
    """The bench's first layer: 10800 16-bit membranes do not fit beside the weights."""
    rng = np.random.default_rng(2)
    conv = SnnLayer("conv1", "conv", (2, 34, 34), (12, 30, 30),
                    rng.integers(-128, 128, (12, 2, 5, 5)).astype(np.int32), theta=100)
    net = SnnNet("big", (2, 34, 34), [conv])
    net.validate()
    slices = plan_slices(conv)
    assert len(slices) == 2 and sum(c for _, c in slices) == 10800
    assert all(conv.n_weights * 8 + c * 16 <= ARRAY_BITS for _, c in slices)
    frames = rng.random((1, 3, 2, 34, 34)) < 0.05
    np.testing.assert_array_equal(runner.run(net, frames).counts, run_snn(net, frames).counts)


def test_conv_whose_weights_exceed_the_array_runs_in_channel_groups(runner):
    """64 x 32 x 3 x 3 8-bit weights (147,456 bits) exceed the 131,072-bit array (as
    FlexSpIM's conv4 does): the kernel runs groups of output channels, each a conv of its
    own with its weights, and the layer's spikes and membranes are the reference's."""
    rng = np.random.default_rng(3)
    conv = SnnLayer("conv4", "conv", (32, 6, 6), (64, 4, 4),
                    rng.integers(-128, 128, (64, 32, 3, 3)).astype(np.int32), theta=300)
    fc = SnnLayer("fc", "fc", (64, 4, 4), (10,),
                  rng.integers(-20, 20, (10, 1024)).astype(np.int32), theta=30)
    net = SnnNet("wide", (32, 6, 6), [conv, fc])
    net.validate()
    assert conv_group(conv) == ARRAY_BITS // (32 * 9 * 8 + 16 * 16) == 51
    assert [group_of(conv, lo)[1] for lo, _ in plan_slices(conv)] == [0, 51 * 16]
    frames = rng.random((1, 3, 32, 6, 6)) < 0.15
    got, want = runner.run(net, frames), run_snn(net, frames, keep_spikes=True)
    assert want.spikes["conv4"].any() and not want.spikes["conv4"].all()
    np.testing.assert_array_equal(got.spikes["conv4"], want.spikes["conv4"])
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.v_final, want.v_final)


def test_fc_that_cannot_fit_one_neuron():
    fc = SnnLayer("fc9", "fc", (20000,), (2,), np.ones((2, 20000), np.int32), w_bits=8)
    with pytest.raises(SnnMappingError, match=r"layer fc9: .*bits missing"):
        plan_slices(fc)


def test_empty_timesteps_and_duplicates():
    kernel = CsimKernel("snn")
    layer = SnnLayer("f", "fc", (4, 1, 1), (3,), np.array([[1, 1, 1, 1], [5, 0, 0, 0],
                                                          [-1, 2, 0, 0]], np.int32), theta=2)
    args = layer_args(layer, (4, 1, 1), 1, 0, 3)
    words = pack_weights(layer, 0, 3)
    kernel.run({**args, "mode": 0, "n_words": words.size}, words, np.ones(words.size, bool))
    kernel.run({**args, "mode": 1}, np.zeros(0, np.uint64), np.zeros(0, bool))
    beats, last = pack_stream([(0, [])])
    _, out, out_last = kernel.run({**args, "mode": 2, "n_words": beats.size}, beats, last)
    assert unpack_stream(out, out_last)[0][0] == 0 and unpack_stream(out, out_last)[0][1].size == 0
    # a raw stream with a repeated address: integrated once
    w32 = np.array([1 << 31 | 1, 0, 0, 1], np.uint32)
    beats = w32.view("<u8")
    _, out, out_last = kernel.run({**args, "mode": 2, "n_words": 2}, beats, np.array([0, 1], bool))
    (t, addrs), = unpack_stream(out, out_last)
    assert t == 1 and addrs.tolist() == [0, 1]          # 0+1+1: n0=2>=2, n1=5>=2, n2=-1+2=1


def test_out_of_range_registers_are_refused():
    kernel = CsimKernel("snn")
    layer = SnnLayer("f", "fc", (4, 1, 1), (3,), np.ones((3, 4), np.int32), theta=2)
    args = {**layer_args(layer, (4, 1, 1), 1, 0, 3), "mode": 2, "n_words": 1}
    for bad in ({"theta": 1 << 15}, {"w_bits": 17}, {"n_lo": 1}, {"n_words": 0},
                {"pool": 9}, {"n_count": 0}, {"src_h": 0}):
        with pytest.raises(ConfigError, match="out of the kernel's range"):
            kernel.words_needed({**args, **bad})
    conv = SnnLayer("c", "conv", (1, 8, 8), (1, 3, 3), np.ones((1, 1, 3, 3), np.int32),
                    stride=2, theta=2)
    args = {**layer_args(conv, (1, 8, 8), 1, 0, 9), "mode": 2, "n_words": 1}
    assert kernel.words_needed(args) == 1
    for bad in ({"stride": 0}, {"stride": SNN.capacity["MAX_STRIDE"] + 1}, {"n_count": 10},
                {"padding": SNN.capacity["MAX_PAD"] + 1}):
        with pytest.raises(ConfigError, match="out of the kernel's range"):
            kernel.words_needed({**args, **bad})


# ------------------------------------------------------------ RUN: all timesteps, one call

RUN_IN, RUN_OUT = 6, 5          # fc 6 -> 5: input j < 5 drives neuron j, input 5 drives all
DIAGONAL = np.hstack([np.eye(RUN_OUT, dtype=np.int32), np.ones((RUN_OUT, 1), np.int32)])


def _slice_calls(kernel: CsimKernel, layer: SnnLayer, lo: int, packets, run: bool):
    """Load and clear the slice lo.. of the fc ``layer``, then all timesteps in one RUN call
    (``run``) or one STEP call each; returns (per call: (words, TLAST)), membranes."""
    args = layer_args(layer, (RUN_IN, 1, 1), 1, lo, RUN_OUT - lo)
    w = pack_weights(layer, lo, RUN_OUT - lo)
    kernel.run({**args, "mode": SNN.modes["load_weights"], "n_words": w.size}, w,
               np.ones(w.size, bool))
    kernel.run({**args, "mode": SNN.modes["clear"]}, np.zeros(0, np.uint64), np.zeros(0, bool))
    calls = [np.concatenate(packets)] if run else packets
    mode = SNN.modes["run" if run else "step"]
    answers = []
    for words in calls:
        used, out, last = kernel.run({**args, "mode": mode, "n_words": words.size,
                                      "n_steps": len(packets)}, words, np.ones(words.size, bool))
        assert used == words.size
        answers.append((out, last))
    _, v, _ = kernel.run({**args, "mode": SNN.modes["read_membranes"]}, np.zeros(0, np.uint64),
                         np.zeros(0, bool))
    return answers, unpack_membranes(v, RUN_OUT - lo)


@settings(max_examples=40, deadline=None)
@given(t_steps=st.integers(1, 6), events=st.sets(st.tuples(st.integers(0, 5),
                                                            st.integers(0, RUN_IN - 1))),
       seed=st.integers(0, 50), lo=st.sampled_from([0, 2]))
@example(t_steps=1, events={(0, 1)}, seed=0, lo=0)                     # T = 1
@example(t_steps=4, events=set(), seed=0, lo=0)                        # every timestep empty
@example(t_steps=3, events={(2, RUN_OUT - 1)}, seed=0, lo=0)           # last neuron, last step
@example(t_steps=3, events={(1, 5), (2, 0), (2, 1)}, seed=0, lo=0)     # 5 spikes, then 2
@example(t_steps=2, events={(0, 5), (1, 5)}, seed=0, lo=2)             # 3 spikes, a slice
def test_one_run_call_equals_step_calls_and_reference(t_steps, events, seed, lo):
    """One RUN call over T timesteps answers the same spike packets and leaves the same
    membranes as T STEP calls and as the reference; its answer is one transfer (TLAST on
    the last beat only) whose packets the driver splits at the markers."""
    rng = np.random.default_rng(seed)
    weights = DIAGONAL if seed == 0 else rng.integers(-3, 4, (RUN_OUT, RUN_IN)).astype(np.int32)
    layer = SnnLayer("f", "fc", (RUN_IN, 1, 1), (RUN_OUT,), weights, theta=1 if seed == 0 else 2,
                     w_bits=4, v_bits=6, leak_shift=0 if seed == 0 else 1)
    net = SnnNet("run", (RUN_IN, 1, 1), [layer])
    net.validate()
    frames = np.zeros((1, t_steps, RUN_IN, 1, 1), bool)
    for t, i in events:
        if t < t_steps:
            frames[0, t, i] = True
    packets = [pack_stream([(t, np.flatnonzero(frames[0, t]))])[0] for t in range(t_steps)]
    kernel = CsimKernel("snn")
    answers, v_run = _slice_calls(kernel, layer, lo, packets, run=True)
    (run_out, run_last), = answers
    steps, v_step = _slice_calls(kernel, layer, lo, packets, run=False)
    assert run_last[-1] and not run_last[:-1].any()                      # one S2MM transfer
    np.testing.assert_array_equal(run_out, np.concatenate([w for w, _ in steps]))
    np.testing.assert_array_equal(packet_ends(run_out), np.concatenate([l for _, l in steps]))
    ref = run_snn(net, frames, keep_spikes=True)
    want = ref.spikes["f"][0].reshape(t_steps, RUN_OUT)
    got = np.zeros_like(want)
    for t, addrs in unpack_stream(run_out, packet_ends(run_out)):
        got[t, addrs] = True
    np.testing.assert_array_equal(got[:, lo:], want[:, lo:])
    np.testing.assert_array_equal(v_run, v_step)
    np.testing.assert_array_equal(v_run, ref.v_final[0, lo:])


def test_run_registers_out_of_range_are_refused():
    """n_steps outside 1..MAX_STEPS, or fewer input words than timesteps: the C-sim
    bridge refuses the registers, the Python side says so in one line."""
    kernel = CsimKernel("snn")
    layer = SnnLayer("f", "fc", (4, 1, 1), (3,), np.ones((3, 4), np.int32), theta=2)
    args = {**layer_args(layer, (4, 1, 1), 1, 0, 3), "mode": SNN.modes["run"], "n_words": 8,
            "n_steps": 8}
    assert kernel.words_needed(args) == 8
    assert kernel.words_out(args) == 8 * 2
    max_steps = SNN.capacity["MAX_STEPS"]
    for bad in ({"n_steps": 0}, {"n_steps": max_steps + 1}, {"n_words": 7}):
        with pytest.raises(ConfigError, match="out of the kernel's range") as err:
            kernel.words_needed({**args, **bad})
        assert "\n" not in str(err.value)
    assert kernel.words_needed({**args, "n_steps": max_steps, "n_words": max_steps}) == max_steps


@settings(max_examples=200, deadline=None)
@given(beats=st.lists(st.integers(1, 9), max_size=40), out=st.integers(1, 5),
       max_beats=st.integers(9, 60))
@example(beats=[], out=1, max_beats=9)
@example(beats=[9, 9], out=5, max_beats=9)          # one timestep per call, exactly full
def test_plan_runs_covers_every_timestep_within_the_dma_limit(beats, out, max_beats):
    runs = plan_runs(beats, out, max_beats)
    assert [t for first, n in runs for t in range(first, first + n)] == list(range(len(beats)))
    for first, n in runs:
        assert n >= 1 and n * out <= max_beats and sum(beats[first:first + n]) <= max_beats
        assert first + n == len(beats) or (n + 1) * out > max_beats \
            or sum(beats[first:first + n + 1]) > max_beats      # greedy: no call cut early


@settings(max_examples=200, deadline=None)
@given(beats=st.lists(st.integers(1, 30), max_size=30), out=st.integers(1, 40),
       max_beats=st.integers(1, 60), max_out=st.integers(1, 120), most=st.integers(1, 9))
@example(beats=[], out=1, max_beats=9, max_out=9, most=9)
@example(beats=[30, 1, 1], out=1, max_beats=9, max_out=9, most=9)   # a sample above the DMA
@example(beats=[1, 1, 1], out=40, max_beats=60, max_out=39, most=9)  # answer above budget
@example(beats=[1] * 5, out=1, max_beats=60, max_out=60, most=1)     # one sample a call
@example(beats=[1] * 16, out=1, max_beats=60, max_out=5, most=99)    # 4, 4, 4, 4
def test_plan_samples_covers_every_sample_within_the_bounds(beats, out, max_beats, max_out,
                                                            most):
    calls = plan_samples(beats, out, max_beats, max_out, most)
    assert [s for first, n in calls for s in range(first, first + n)] == list(range(len(beats)))
    for first, n in calls:
        alone = n == 1                   # a sample above a bound runs alone
        assert alone or (n <= most and n * out <= max_out
                         and sum(beats[first:first + n]) <= max_beats)
    per_call = max(1, min(most, max_out // out))
    if sum(beats) <= max_beats:              # only the count bounds: as few calls, even
        assert len(calls) == -(-len(beats) // per_call)
        assert max(n for _, n in calls) - min(n for _, n in calls) <= 1 if calls else True


def test_plan_runs_refuses_a_timestep_larger_than_a_transfer():
    with pytest.raises(SnnMappingError, match="largest transfer of 8 beats"):
        plan_runs([3, 9], 1, 8)
    with pytest.raises(SnnMappingError, match="largest transfer of 8 beats"):
        plan_runs([3], 9, 8)


def test_runs_cut_at_the_dma_limit_stay_exact():
    """A DMA limit of a few beats, or an answer budget of a few beats, cuts every
    slice's run into several calls; the result is still the reference's, spike for
    spike. Without them a slice takes one call for all samples."""
    net = random_net(3, w_bits=6, v_bits=10)
    frames = np.random.default_rng(3).random((2, 7, 2, 8, 8)) < 0.3
    ref = run_snn(net, frames, keep_spikes=True)
    calls = []

    def counted(transact):
        def call(args, words, out_cap, what):
            calls.append(args["mode"])
            return transact(args, words, out_cap, what)
        return call

    whole = SnnKernelRunner(counted(CsimTransactor(CsimKernel("snn"))))
    cut = SnnKernelRunner(counted(CsimTransactor(CsimKernel("snn"))), max_transfer=60 * 8)
    small = SnnKernelRunner(counted(CsimTransactor(CsimKernel("snn"))), out_budget=60 * 8)
    runs, reads = [], []
    for runner in (whole, cut, small):
        calls.clear()
        got = runner.run(net, frames)
        for name in got.spikes:
            np.testing.assert_array_equal(got.spikes[name], ref.spikes[name], err_msg=name)
        np.testing.assert_array_equal(got.v_final, ref.v_final)
        runs.append(calls.count(SNN.modes["run"]))
        reads.append(calls.count(SNN.modes["read_membranes"]))
        assert SNN.modes["step"] not in calls
    # both samples in one call per slice, the last layer's membranes in membrane packets
    assert runs[0] == sum(len(plan_slices(l)) for l in net.spiking_layers)
    assert reads == [0, 0, 0]                # the last layer's membranes: membrane packets
    assert runs[1] > runs[0] and runs[2] > runs[0]
    assert cut.times.items == small.times.items == whole.times.items == 2 * 7 * 2


def test_last_layer_cut_by_timesteps_reads_its_membranes():
    """A last layer whose sample is cut into calls of a few timesteps (DMA limit 60
    beats) gets each sample's membranes by a read after its last call, and they are the
    reference's."""
    net = random_net(4, w_bits=6, v_bits=10)
    conv = net.spiking_layers[0]
    net = SnnNet("conv-only", net.input_shape, [conv])
    net.validate()
    frames = np.random.default_rng(4).random((3, 7, 2, 8, 8)) < 0.3
    calls = []
    kernel = CsimTransactor(CsimKernel("snn"))

    def counted(args, words, out_cap, what):
        calls.append(args["mode"])
        return kernel(args, words, out_cap, what)

    got = SnnKernelRunner(counted, max_transfer=60 * 8).run(net, frames)
    ref = run_snn(net, frames, keep_spikes=True)
    np.testing.assert_array_equal(got.spikes["conv1"], ref.spikes["conv1"])
    np.testing.assert_array_equal(got.v_final, ref.v_final)
    assert calls.count(SNN.modes["read_membranes"]) == 3 < calls.count(SNN.modes["run"])


def test_registers_match_the_top_function():
    """SNN.registers are the scalar parameters of snn_top, in order."""
    header = (project_root() / "hls" / "snn" / "snn_top.h").read_text()
    sig = header[header.index("void snn_top("):]
    sig = sig[:sig.index(");")]
    names = re.findall(r"ap_u?int<32>\s+(\w+)", sig)
    assert names == [r.name for r in SNN.registers]
    assert KERNELS["snn"] is SNN
    top = (project_root() / "hls" / "snn" / "snn_top.cpp").read_text()
    for r in SNN.registers:
        assert f"s_axilite port = {r.name} bundle = control" in top
    for key in ("ROWS", "COLS", "MAX_IN", "MAX_COUNT", "MAX_OUT_C", "MAX_KSIZE", "MAX_STRIDE",
                "MAX_PAD", "MAX_STEPS", "MAX_SAMPLES", "MAX_SLOTS"):
        assert re.search(rf"const unsigned {key} = {SNN.capacity[key]};", header), key
    assert SNN.capacity["SLICE_WORDS"] == (SNN.capacity["MAX_OUT_C"]
                                           * SNN.capacity["MAX_KSIZE"] ** 2)
    assert "const unsigned SLICE_WORDS = MAX_OUT_C * MAX_KSIZE * MAX_KSIZE;" in header


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_cpp_testbench(tmp_path):
    hls = project_root() / "hls"
    proc = subprocess.run(["make", "-C", str(hls), f"{tmp_path}/tb_snn", f"BUILD={tmp_path}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = subprocess.run([str(tmp_path / "tb_snn")], capture_output=True, text=True)
    assert run.returncode == 0 and "snn testbench passed" in run.stdout, run.stdout


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), extra=st.integers(0, 3),
       stride=st.integers(1, 3))
@example(seed=0, k=1, extra=2, stride=1)                 # a 1x1 kernel padded by 3
@example(seed=1, k=3, extra=0, stride=2)                 # padding exactly k
def test_padding_at_or_above_the_kernel_runs_on_the_kernel(seed, k, extra, stride):
    """The kernel takes zero padding up to MAX_PAD like the reference; with p >= k the
    border outputs see only padding (they integrate nothing and fire only by v_init)."""
    from cimstack.hw.snn import csim_runner
    from cimstack.ref.snn import SnnNet, conv_out, run_snn
    rng = np.random.default_rng(seed)
    pad, h = k + extra, 5
    o = conv_out(h, k, pad, stride)
    conv = SnnLayer("c", "conv", (2, h, h), (3, o, o),
                    rng.integers(-3, 4, (3, 2, k, k)).astype(np.int32), padding=pad,
                    stride=stride, theta=2)
    net = SnnNet("pad", (2, h, h), [conv])
    net.validate()
    x = rng.random((2, 4, 2, h, h)) < 0.3
    ref = run_snn(net, x, keep_spikes=True)
    got = csim_runner().run(net, x)
    assert np.array_equal(got.spikes["c"], ref.spikes["c"])
    assert np.array_equal(got.v_final, ref.v_final)


def test_fields_fill_the_array_to_its_last_bit(runner):
    """fc 101 -> 256 with 5-bit weights and 7-bit membranes takes the whole array
    (101 * 256 * 5 + 256 * 7 = 131,072 bits): fields cross word boundaries and the last
    membrane ends at the array's last bit, where the kernel's field read wraps its second
    word to the first (bits it masks off); spikes and membranes are the reference's."""
    rng = np.random.default_rng(4)
    fc = SnnLayer("fc", "fc", (101, 1, 1), (256,),
                  rng.integers(-16, 16, (256, 101)).astype(np.int32), theta=20, w_bits=5,
                  v_bits=7, leak_shift=1, overflow="wrap")
    net = SnnNet("full", (101, 1, 1), [fc])
    net.validate()
    assert plan_slices(fc) == [(0, 256)] and fc.n_weights * 5 + 256 * 7 == ARRAY_BITS
    frames = rng.random((1, 6, 101, 1, 1)) < 0.3
    got, want = runner.run(net, frames), run_snn(net, frames)
    assert want.counts.any() and want.v_final.min() < 0 < want.v_final.max()
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.v_final, want.v_final)


def _run_slice(kernel: CsimKernel, layer: SnnLayer, src: tuple, lo: int, count: int,
               frames: np.ndarray):
    """Load, clear, run all of ``frames`` ([T, n_src] bool) in one RUN call and read the
    membranes of the slice lo .. lo + count of ``layer``: (spikes [T, count], membranes)."""
    args = layer_args(layer, src, 1, lo, count)
    w = pack_weights(layer, lo, count)
    kernel.run({**args, "mode": SNN.modes["load_weights"], "n_words": w.size}, w,
               np.ones(w.size, bool))
    kernel.run({**args, "mode": SNN.modes["clear"]}, np.zeros(0, np.uint64), np.zeros(0, bool))
    words = np.concatenate([pack_stream([(t, np.flatnonzero(f))])[0]
                            for t, f in enumerate(frames)])
    used, out, _ = kernel.run({**args, "mode": SNN.modes["run"], "n_words": words.size,
                               "n_steps": len(frames)}, words, np.ones(words.size, bool))
    assert used == words.size
    spikes = np.zeros((len(frames), count), bool)
    for t, addrs in unpack_stream(out, packet_ends(out)):
        spikes[t, addrs - lo] = True              # the kernel sends neuron numbers n_lo + j
    _, v, _ = kernel.run({**args, "mode": SNN.modes["read_membranes"]}, np.zeros(0, np.uint64),
                         np.zeros(0, bool))
    return spikes, unpack_membranes(v, count)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), out_c=st.integers(1, 5), k=st.integers(1, 4),
       stride=st.integers(1, 3), pad=st.integers(0, 2), w_bits=st.integers(1, 16),
       v_bits=st.integers(2, 16), lo=st.integers(0, 300), count=st.integers(1, 300))
@example(seed=0, out_c=4, k=3, stride=1, pad=1, w_bits=8, v_bits=12, lo=36, count=72)
#        6 x 6 outputs: channels 1 and 2 of 4, whole: position-major accumulators from 1
@example(seed=1, out_c=3, k=3, stride=2, pad=0, w_bits=5, v_bits=9, lo=1, count=5)
#        2 x 2 outputs: cut inside channels 0 and 1: accumulators in neuron order
@example(seed=2, out_c=1, k=4, stride=1, pad=2, w_bits=1, v_bits=2, lo=0, count=49)
#        one whole channel of 7 x 7, binary weights, 2-bit membranes
def test_any_slice_of_a_conv_layer_on_the_kernel(runner, seed, out_c, k, stride, pad, w_bits,
                                                 v_bits, lo, count):
    """A slice of any neurons n_lo .. n_lo + n_count of a conv layer (whole output
    channels or cut inside them, from any first neuron) spikes and ends with the
    membranes of the reference's neurons n_lo .. n_lo + n_count."""
    rng = np.random.default_rng(seed)
    h = 6
    o = conv_out(h, k, pad, stride)
    n = out_c * o * o
    first = lo % n
    size = min(count, n - first)
    conv = SnnLayer("c", "conv", (3, h, h), (out_c, o, o), snn_weights(rng, (out_c, 3, k, k),
                    w_bits), padding=pad, stride=stride,
                    theta=int(rng.integers(1, v_range(v_bits)[1] + 1)), w_bits=w_bits,
                    v_bits=v_bits)
    net = SnnNet("slice", (3, h, h), [conv])
    net.validate()
    frames = rng.random((1, 5, 3, h, h)) < 0.3
    ref = run_snn(net, frames, keep_spikes=True)
    spikes, v = _run_slice(runner.transact.kernel, conv, (3, h, h), first, size,
                           frames[0].reshape(5, -1))
    np.testing.assert_array_equal(spikes, ref.spikes["c"][0].reshape(5, n)[:, first:first + size])
    np.testing.assert_array_equal(v, ref.v_final[0, first:first + size])


def _sample_words(frames: np.ndarray) -> np.ndarray:
    """The event packets of samples [S, T, ...] back to back, each marked 0 .. T - 1."""
    return np.concatenate([frames_to_beats(f)[0] for f in frames])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), samples=st.integers(1, 5), t_steps=st.integers(1, 4),
       density=st.sampled_from([0.0, 0.1, 0.5]), v_init=st.integers(-20, 20),
       leak=st.sampled_from([0, 2]), reset=st.sampled_from(["subtract", "zero"]))
@example(seed=0, samples=1, t_steps=1, density=0.0, v_init=0, leak=0, reset="subtract")
@example(seed=1, samples=3, t_steps=2, density=0.5, v_init=-7, leak=2, reset="zero")
@example(seed=2, samples=5, t_steps=4, density=0.1, v_init=20, leak=0, reset="subtract")
def test_a_run_of_samples_starts_each_from_v_init(runner, seed, samples, t_steps, density,
                                                  v_init, leak, reset):
    """RUN with n_samples = S: each of the S samples' spikes are the reference's for that
    sample alone (membranes set to v_init before it, whatever they held), and the
    membranes left are the last sample's."""
    rng = np.random.default_rng(seed)
    conv = SnnLayer("c", "conv", (2, 6, 6), (3, 4, 4), snn_weights(rng, (3, 2, 3, 3), 6),
                    theta=int(rng.integers(5, 40)), w_bits=6, v_bits=8, v_init=v_init,
                    leak_shift=leak, reset=reset)
    net = SnnNet("samples", (2, 6, 6), [conv])
    net.validate()
    frames = rng.random((samples, t_steps, 2, 6, 6)) < density
    kernel = runner.transact.kernel
    args = layer_args(conv, (2, 6, 6), 1, 0, 48)
    w = pack_weights(conv, 0, 48)
    kernel.run({**args, "mode": SNN.modes["load_weights"], "n_words": w.size}, w,
               np.ones(w.size, bool))
    noise = _sample_words(rng.random((1, 3, 2, 6, 6)) < 0.6)   # membranes not at v_init
    kernel.run({**args, "mode": SNN.modes["run"], "n_words": noise.size, "n_steps": 3,
                "n_samples": 0}, noise, np.ones(noise.size, bool))
    words = _sample_words(frames)
    used, out, last = kernel.run({**args, "mode": SNN.modes["run"], "n_words": words.size,
                                  "n_steps": t_steps, "n_samples": samples}, words,
                                 np.ones(words.size, bool))
    assert used == words.size and last[-1] and not last[:-1].any()
    marks, packet, addrs = unpack_events(out)
    assert marks.tolist() == list(range(t_steps)) * samples
    got = np.zeros((samples, t_steps, 48), bool)
    got[packet // t_steps, packet % t_steps, addrs] = True
    ref = run_snn(net, frames, keep_spikes=True)
    np.testing.assert_array_equal(got, ref.spikes["c"].reshape(samples, t_steps, 48))
    _, v, _ = kernel.run({**args, "mode": SNN.modes["read_membranes"]}, np.zeros(0, np.uint64),
                         np.zeros(0, bool))
    np.testing.assert_array_equal(unpack_membranes(v, 48), ref.v_final[-1])
    # v_out = 1: each sample's spike packets, then its membrane packet (marked t_steps,
    # the 8-bit fields as stored), TLAST on the last beat only
    used, out_v, last = kernel.run({**args, "mode": SNN.modes["run"], "n_words": words.size,
                                    "n_steps": t_steps, "n_samples": samples, "v_out": 1},
                                   words, np.ones(words.size, bool))
    assert used == words.size and last[-1] and not last[:-1].any()
    marks, packet, values = unpack_events(out_v)
    assert marks.tolist() == (list(range(t_steps)) + [t_steps]) * samples
    membrane = packet % (t_steps + 1) == t_steps
    fields = values[membrane].reshape(samples, 48)
    np.testing.assert_array_equal((fields ^ 128) - 128, ref.v_final)
    ends = packet_ends(out_v)                 # the same spike packets, beat for beat
    beat_packet = np.cumsum(ends) - ends
    np.testing.assert_array_equal(out_v[beat_packet % (t_steps + 1) != t_steps], out)


@pytest.mark.parametrize("out_c, k", [(250, 7), (130, 7), (9, 3)])
def test_slice_buffer_slots_of_any_count(runner, out_c, k):
    """The kernel keeps decoded input-channel weights in the slots of its slice buffer
    (SLICE_WORDS = 256 * 7 * 7 words): 250 channels of 7 x 7 take the whole buffer (one
    slot, every channel change reloads it), 130 take two (channels 0 and 2 share a slot),
    9 of 3 x 3 give every channel a slot; spikes and membranes are the reference's."""
    rng = np.random.default_rng(out_c)
    h = k + 1
    conv = SnnLayer("c", "conv", (3, h, h), (out_c, 2, 2),
                    rng.integers(-1, 2, (out_c, 3, k, k)).astype(np.int32), theta=2,
                    w_bits=2, v_bits=8)
    net = SnnNet("slots", (3, h, h), [conv])
    net.validate()
    assert plan_slices(conv) == [(0, out_c * 4)]
    frames = rng.random((2, 4, 3, h, h)) < 0.4
    ref = run_snn(net, frames, keep_spikes=True)
    got = runner.run(net, frames)
    assert ref.spikes["c"].any() and not ref.spikes["c"].all()
    np.testing.assert_array_equal(got.spikes["c"], ref.spikes["c"])
    np.testing.assert_array_equal(got.v_final, ref.v_final)


def test_a_layers_events_come_in_wire_order(runner):
    """run_layer hands the next layer its output as (frame, neuron) events in wire order
    (by frame = sample * T + t, neurons ascending), merged from its slices (the bench's
    conv1: channel groups of 8 and 4), and its input may be given the same way."""
    rng = np.random.default_rng(5)
    conv = SnnLayer("conv1", "conv", (2, 34, 34), (12, 30, 30),
                    rng.integers(-128, 128, (12, 2, 5, 5)).astype(np.int32), theta=100)
    assert len(plan_slices(conv)) == 2
    frames = (rng.random((3, 4, 2, 34, 34)) < 0.05).reshape(3, 4, -1)
    out, _, (frame, neuron) = runner.run_layer(conv, (2, 34, 34), 1, frames, False)
    assert out.any() and np.all(np.diff(frame * conv.n_neurons + neuron) > 0)
    want = np.divmod(np.flatnonzero(out), conv.n_neurons)
    np.testing.assert_array_equal(frame, want[0])
    np.testing.assert_array_equal(neuron, want[1])
    again, _, _ = runner.run_layer(conv, (2, 34, 34), 1, frames, False,
                                   np.divmod(np.flatnonzero(frames), frames.shape[2]))
    np.testing.assert_array_equal(again, out)
