"""The event-driven SNN engine (cimstack.ref.snn_fast) against the dense golden model
(run_snn's numpy engine, neuron_update): spikes of every layer, final membranes and
event statistics, on random networks with every neuron option."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cimstack.ref import snn_fast
from conftest import snn_weights
from cimstack.ref.snn import NEURON_CHOICES, SnnLayer, SnnNet, conv_out, run_snn, v_range

pytestmark = pytest.mark.skipif(not snn_fast.AVAILABLE, reason="numba is not installed")

OPTIONS = {"reset": list(NEURON_CHOICES["reset"]), "fire": list(NEURON_CHOICES["fire"]),
           "leak_order": list(NEURON_CHOICES["leak_order"]),
           "overflow": ["saturate", "wrap"]}


def neuron(rng, w_bits: int, v_bits: int, choice: dict) -> dict:
    """Neuron settings of one layer: the drawn ones, the rest random from ``rng``."""
    lo, hi = v_range(v_bits)
    opts = {k: choice.get(k) or str(rng.choice(v)) for k, v in OPTIONS.items()}
    return dict(w_bits=w_bits, v_bits=v_bits, theta=int(rng.integers(1, hi + 1)),
                leak_shift=int(rng.choice([0, 0, 1, 3])), v_init=int(rng.integers(lo, hi + 1)),
                **opts)


def random_net(seed: int, w_bits: int, v_bits: int, choice: dict, pool_first: bool,
               second: str, strides=(1, 1), size: int = 12) -> SnnNet:
    """[pool2] - conv(2->3, k3, pad 0/1, strides[0]) - [pool2 when its output is 4 or
    more] - (conv 3->4 k2 strides[1] | fc 6) - fc 5."""
    rng = np.random.default_rng(seed)

    def weights(shape):
        return snn_weights(rng, shape, w_bits)

    layers, in_size = [], size
    if pool_first:
        layers.append(SnnLayer("pool0", "pool", (2, size, size), (2, size // 2, size // 2)))
        size //= 2
    pad = int(rng.integers(0, 2))
    o = conv_out(size, 3, pad, strides[0])
    layers.append(SnnLayer("conv1", "conv", (2, size, size), (3, o, o), weights((3, 2, 3, 3)),
                           padding=pad, stride=strides[0], **neuron(rng, w_bits, v_bits, choice)))
    p = o
    if o >= 4:
        p = o // 2
        layers.append(SnnLayer("pool1", "pool", (3, o, o), (3, p, p)))
    if second == "conv":
        o2 = conv_out(p, 2, 0, strides[1])
        shape = (4, o2, o2)
        layers.append(SnnLayer("conv2", "conv", (3, p, p), shape, weights((4, 3, 2, 2)),
                               stride=strides[1], **neuron(rng, w_bits, v_bits, choice)))
    else:
        layers.append(SnnLayer("fc1", "fc", (3, p, p), (6,), weights((6, 3 * p * p)),
                               **neuron(rng, w_bits, v_bits, choice)))
        shape = (6,)
    n_in = int(np.prod(shape))
    layers.append(SnnLayer("fc", "fc", shape, (5,), weights((5, n_in)),
                           **neuron(rng, w_bits, v_bits, choice)))
    net = SnnNet("random", (2, in_size, in_size), layers)
    net.validate()
    return net


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), w_bits=st.integers(1, 16), v_bits=st.integers(2, 16),
       density=st.sampled_from([0.0, 0.05, 0.3, 1.0]), pool_first=st.booleans(),
       second=st.sampled_from(["conv", "fc"]),
       reset=st.sampled_from([None, *OPTIONS["reset"]]),
       fire=st.sampled_from([None, *OPTIONS["fire"]]),
       leak_order=st.sampled_from([None, *OPTIONS["leak_order"]]),
       overflow=st.sampled_from([None, *OPTIONS["overflow"]]),
       strides=st.tuples(st.sampled_from([1, 1, 2, 3]), st.sampled_from([1, 1, 2, 3])),
       size=st.sampled_from([11, 12]))
@example(seed=1, w_bits=8, v_bits=12, density=0.0, pool_first=False, second="conv",
         reset=None, fire=None, leak_order=None, overflow=None, strides=(1, 1),
         size=12)                                                          # no events
@example(seed=2, w_bits=8, v_bits=12, density=1.0, pool_first=True, second="fc",
         reset="subtract", fire="gt", leak_order="before", overflow="saturate", strides=(1, 1),
         size=12)                                                          # all spiking
@example(seed=3, w_bits=16, v_bits=4, density=1.0, pool_first=False, second="conv",
         reset="zero", fire="ge", leak_order="after", overflow="wrap", strides=(1, 1),
         size=12)                                                          # wrap, int32 currents
@example(seed=4, w_bits=5, v_bits=3, density=0.3, pool_first=False, second="fc",
         reset="step", fire="gt", leak_order="before", overflow="wrap", strides=(1, 1),
         size=12)                                                          # wrap, int16 currents
@example(seed=5, w_bits=8, v_bits=12, density=0.3, pool_first=False, second="conv",
         reset=None, fire=None, leak_order=None, overflow=None, strides=(3, 2),
         size=12)                                                          # stride = k, both
@example(seed=6, w_bits=8, v_bits=12, density=0.3, pool_first=True, second="conv",
         reset=None, fire=None, leak_order=None, overflow=None, strides=(2, 3),
         size=11)                                    # odd size, pool then stride, stride > k
@example(seed=7, w_bits=6, v_bits=10, density=1.0, pool_first=False, second="fc",
         reset="zero", fire="gt", leak_order="after", overflow="saturate", strides=(2, 1),
         size=11)                                              # stride 2, pool after it
def test_event_engine_equals_golden_model(seed, w_bits, v_bits, density, pool_first, second,
                                          reset, fire, leak_order, overflow, strides, size):
    choice = {"reset": reset, "fire": fire, "leak_order": leak_order, "overflow": overflow}
    net = random_net(seed, w_bits, v_bits, choice, pool_first, second, strides, size)
    frames = np.random.default_rng(seed + 1).random((3, 6, *net.input_shape)) < density
    gold = run_snn(net, frames, keep_spikes=True, engine="numpy")
    fast = run_snn(net, frames, keep_spikes=True, engine="events")
    assert list(fast.spikes) == list(gold.spikes)
    for name in gold.spikes:
        np.testing.assert_array_equal(fast.spikes[name], gold.spikes[name], err_msg=name)
    np.testing.assert_array_equal(fast.v_final, gold.v_final)
    np.testing.assert_array_equal(fast.counts, gold.counts)
    assert [s.to_dict() for s in fast.stats] == [s.to_dict() for s in gold.stats]
    plain = run_snn(net, frames, engine="events")          # without keeping the spikes
    np.testing.assert_array_equal(plain.counts, gold.counts)
    np.testing.assert_array_equal(plain.v_final, gold.v_final)


def test_wrap_overflow_corner():
    """Currents far outside the membrane range wrap exactly (and the int32 path is
    taken: a neuron's sum of |w| exceeds int16)."""
    w = np.full((2, 4), 32767, np.int32)
    net = SnnNet("wrap", (4, 1, 1), [
        SnnLayer("fc", "fc", (4, 1, 1), (2,), w, w_bits=16, v_bits=5, theta=3,
                 overflow="wrap", fire="gt", v_init=-16)])
    net.validate()
    frames = np.ones((1, 3, 4, 1, 1), bool)
    gold = run_snn(net, frames, keep_spikes=True, engine="numpy")
    fast = run_snn(net, frames, keep_spikes=True, engine="events")
    np.testing.assert_array_equal(fast.spikes["fc"], gold.spikes["fc"])
    np.testing.assert_array_equal(fast.v_final, gold.v_final)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), w_bits=st.integers(1, 16), v_bits=st.integers(2, 16),
       leak_shift=st.integers(0, 15), theta_at=st.sampled_from([0.0, 0.5, 1.0]),
       v_init_at=st.sampled_from([0.0, 0.5, 1.0]),
       reset=st.sampled_from(OPTIONS["reset"]), fire=st.sampled_from(OPTIONS["fire"]),
       leak_order=st.sampled_from(OPTIONS["leak_order"]),
       overflow=st.sampled_from(OPTIONS["overflow"]))
@example(seed=0, w_bits=16, v_bits=16, leak_shift=0, theta_at=1.0, v_init_at=1.0,
         reset="subtract", fire="gt", leak_order="after", overflow="saturate")  # never fires
@example(seed=1, w_bits=16, v_bits=16, leak_shift=15, theta_at=0.0, v_init_at=0.0,
         reset="zero", fire="ge", leak_order="before", overflow="wrap")  # int32 currents, wrap
@example(seed=2, w_bits=9, v_bits=2, leak_shift=1, theta_at=0.0, v_init_at=0.0,
         reset="subtract", fire="ge", leak_order="after", overflow="saturate")  # v_bits 2
def test_neuron_options_over_their_whole_ranges(seed, w_bits, v_bits, leak_shift, theta_at,
                                                v_init_at, reset, fire, leak_order, overflow):
    """The event engine's neuron step (16-bit lanes) against ``neuron_update`` at the
    ends of every range: theta 1 .. v_max, v_init v_min .. v_max, leak shifts up to
    15, currents far outside the membrane range (int16 and int32 ones)."""
    rng = np.random.default_rng(seed)
    lo, hi = v_range(v_bits)
    n_in = 40
    net = SnnNet("neurons", (n_in, 1, 1), [
        SnnLayer("fc", "fc", (n_in, 1, 1), (9,), snn_weights(rng, (9, n_in), w_bits),
                 w_bits=w_bits, v_bits=v_bits, leak_shift=leak_shift,
                 theta=1 + round(theta_at * (hi - 1)), v_init=lo + round(v_init_at * (hi - lo)),
                 reset=reset, fire=fire, leak_order=leak_order, overflow=overflow)])
    net.validate()
    frames = rng.random((2, 12, n_in, 1, 1)) < rng.choice([0.05, 0.5, 1.0])
    gold = run_snn(net, frames, keep_spikes=True, engine="numpy")
    fast = run_snn(net, frames, keep_spikes=True, engine="events")
    np.testing.assert_array_equal(fast.spikes["fc"], gold.spikes["fc"])
    np.testing.assert_array_equal(fast.v_final, gold.v_final)


@settings(max_examples=80, deadline=None)
@given(n_words=st.integers(0, 40), density=st.sampled_from([0.0, 0.03, 0.3, 1.0]),
       seed=st.integers(0, 10_000))
@example(n_words=0, density=0.0, seed=0)           # no words
@example(n_words=8, density=1.0, seed=0)           # one full mask: 64 set bits
@example(n_words=13, density=1.0, seed=1)          # a partial last group, all set
@example(n_words=16, density=0.0, seed=2)          # whole groups, none set
@example(n_words=1, density=1.0, seed=3)           # one word alone
def test_set_bytes_lists_every_set_flag(n_words, density, seed):
    """``_set_bytes`` gives the ascending indices of the set 0/1 bytes, on word counts
    with and without a partial group of 8, masks with fewer and more set bits than
    UNROLLED; its branch-free writes stay inside the documented room (guards after it
    keep their values)."""
    flags = (np.random.default_rng(seed).random(8 * n_words) < density).astype(np.uint8)
    room = flags.size + snn_fast.UNROLLED
    buf = np.full(room + 16, -1, np.int32)
    n = snn_fast._set_bytes(flags.view(np.uint64), buf[:room])
    assert n == int(flags.sum())
    np.testing.assert_array_equal(buf[:n], np.flatnonzero(flags))
    assert (buf[room:] == -1).all()
