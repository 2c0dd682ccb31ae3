"""Integer reference of the spiking event core: dataflows, neuron arithmetic, mapping
and capacity errors, the cost model, and the SNN bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cimstack.config import SnnSpec
from cimstack.errors import BundleError, ConfigError
from cimstack.mapping.snn import SnnMappingError, layer_cost, map_layer, map_network
from cimstack.ref.snn import (MAX_STRIDE, SnnLayer, SnnNet, conv_out, fanout_map,
                              neuron_update, run_dataflow, run_snn, synaptic_input, v_range)
from cimstack.snn_bundle import load_snn_bundle, save_snn_bundle
from conftest import snn_weights


def random_net(seed: int, w_bits=8, v_bits=12, leak=0, reset="subtract", mode="saturate",
               pad=0, size=8, spec=None, stride=1) -> SnnNet:
    """conv(2->3, k3, stride)-pool2-fc(5) on 2 x size x size events."""
    rng = np.random.default_rng(seed)

    def weights(shape):
        return snn_weights(rng, shape, w_bits)

    vhi = v_range(v_bits)[1]
    o = conv_out(size, 3, pad, stride)
    p = o // 2
    kw = dict(w_bits=w_bits, v_bits=v_bits, leak_shift=leak, reset=reset, overflow=mode)
    layers = [
        SnnLayer("conv1", "conv", (2, size, size), (3, o, o), weights((3, 2, 3, 3)), padding=pad,
                 stride=stride, theta=int(rng.integers(1, vhi + 1)), **kw),
        SnnLayer("pool1", "pool", (3, o, o), (3, p, p)),
        SnnLayer("fc", "fc", (3, p, p), (5,), weights((5, 3 * p * p)),
                 theta=int(rng.integers(1, vhi + 1)), **kw),
    ]
    net = SnnNet("random", (2, size, size), layers, spec or SnnSpec())
    net.validate()
    return net


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), w_bits=st.integers(1, 16), v_bits=st.integers(2, 16),
       leak=st.sampled_from([0, 0, 1, 3]), reset=st.sampled_from(["subtract", "zero"]),
       mode=st.sampled_from(["saturate", "wrap"]), pad=st.integers(0, 1),
       density=st.sampled_from([0.05, 0.3]), tile=st.sampled_from([None, 7]),
       stride=st.sampled_from([1, 1, 2, 3]))
@example(seed=1, w_bits=8, v_bits=12, leak=0, reset="subtract", mode="saturate", pad=1,
         density=0.3, tile=7, stride=2)                      # padding with stride
@example(seed=2, w_bits=4, v_bits=8, leak=1, reset="zero", mode="wrap", pad=0, density=0.3,
         tile=None, stride=3)                                # stride = k
def test_weight_and_output_stationary_give_identical_spikes(seed, w_bits, v_bits, leak, reset,
                                                            mode, pad, density, tile, stride):
    net = random_net(seed, w_bits, v_bits, leak, reset, mode, pad, stride=stride)
    frames = np.random.default_rng(seed + 1).random((2, 4, 2, 8, 8)) < density
    ref = run_snn(net, frames, keep_spikes=True)
    flows = [n.name for n in net.spiking_layers]
    ws, tr_ws = run_dataflow(net, frames, {n: "ws" for n in flows}, tile_neurons=tile)
    os_, tr_os = run_dataflow(net, frames, {n: "os" for n in flows})
    for name in flows:
        np.testing.assert_array_equal(ws.spikes[name], os_.spikes[name])
        np.testing.assert_array_equal(ws.spikes[name], ref.spikes[name])
    np.testing.assert_array_equal(ws.v_final, os_.v_final)
    np.testing.assert_array_equal(ws.v_final, ref.v_final)
    # the same spikes, different operand traffic
    for layer, st_ref in zip(net.spiking_layers, ref.stats):
        for flow, tr in (("ws", tr_ws), ("os", tr_os)):
            m = map_layer(layer, net.spec, flow)
            cost = layer_cost(layer, m, st_ref, net.spec, samples=2)
            assert cost["weight_traffic_bits"] == tr[layer.name].weight_bits
            assert cost["membrane_traffic_bits"] == tr[layer.name].membrane_bits


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 11), k=st.integers(1, 5), pad=st.integers(0, 2),
       stride=st.integers(1, MAX_STRIDE), seed=st.integers(0, 1000))
@example(size=9, k=3, pad=0, stride=3, seed=0)           # stride = k, windows tile the input
@example(size=9, k=2, pad=0, stride=3, seed=1)           # stride > k: inputs skipped
@example(size=8, k=3, pad=1, stride=2, seed=2)           # padding with stride
@example(size=11, k=5, pad=2, stride=2, seed=3)          # odd size, odd remainder
@example(size=7, k=1, pad=0, stride=7, seed=4)           # one output per axis
def test_strided_conv_equals_torch_conv2d(size, k, pad, stride, seed):
    """The reference conv (currents, fan-out per input, synaptic operations) against
    torch.nn.functional.conv2d with the same stride and padding on the spike maps
    (integer-valued float64: exact)."""
    import torch
    from torch.nn.functional import conv2d
    if size + 2 * pad < k:
        return
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, (3, 2, k, k)).astype(np.int32)
    o = conv_out(size, k, pad, stride)
    layer = SnnLayer("c", "conv", (2, size, size), (3, o, o), w, padding=pad, stride=stride,
                     w_bits=4)
    layer.validate()
    x = rng.random((4, 2, size, size)) < 0.4
    want = conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                  stride=stride, padding=pad).numpy()
    np.testing.assert_array_equal(synaptic_input(layer, x), want)
    # fan-out: the outputs one input event reaches, all N channels
    ones = torch.ones((3, 2, k, k), dtype=torch.float64)
    eye = torch.eye(2 * size * size, dtype=torch.float64).reshape(-1, 2, size, size)
    reach = conv2d(eye, ones, stride=stride, padding=pad).sum(dim=(1, 2, 3))
    np.testing.assert_array_equal(fanout_map(layer).reshape(-1), reach.numpy())
    net = SnnNet("c", (2, size, size), [layer])
    frames = x.reshape(2, 2, 2, size, size)
    sops = run_snn(net, frames, engine="numpy").stats[0].sops
    assert sops == int((x.reshape(4, -1) * reach.numpy()).sum())


def test_stride_errors():
    w = np.ones((1, 1, 3, 3), np.int32)
    with pytest.raises(ConfigError, match=r"layer c.stride = 0"):
        SnnLayer("c", "conv", (1, 8, 8), (1, 6, 6), w, stride=0).validate()
    with pytest.raises(ConfigError, match=rf"layer c.stride = {MAX_STRIDE + 1}"):
        SnnLayer("c", "conv", (1, 8, 8), (1, 1, 1), w, stride=MAX_STRIDE + 1).validate()
    with pytest.raises(ConfigError, match=r"with stride 2 gives \(1, 3, 3\), not \(1, 6, 6\)"):
        SnnLayer("c", "conv", (1, 8, 8), (1, 6, 6), w, stride=2).validate()
    with pytest.raises(ConfigError, match=r"kernel 3 is larger than the input \(1, 2, 2\)"):
        SnnLayer("c", "conv", (1, 2, 2), (1, 0, 0), w).validate()


@settings(max_examples=200, deadline=None)
@given(v_bits=st.integers(1, 16), data=st.data())
def test_saturating_membrane_stays_in_range(v_bits, data):
    lo, hi = v_range(v_bits)
    v = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=20)), np.int32)
    cur = np.array(data.draw(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=v.size,
                                      max_size=v.size)), np.int64)
    theta = data.draw(st.integers(1, max(1, hi)))
    leak = data.draw(st.integers(0, 15))
    reset = data.draw(st.sampled_from(["subtract", "zero"]))
    layer = SnnLayer("l", "fc", (1,), (v.size,), np.ones((v.size, 1), np.int32), theta=theta,
                     v_bits=v_bits, leak_shift=leak, reset=reset)
    new, spikes = neuron_update(v, cur, layer)
    assert new.min() >= lo and new.max() <= hi
    u = np.clip(v.astype(np.int64) + cur, lo, hi)
    u = u - (u >> leak) if leak else u
    np.testing.assert_array_equal(spikes, u >= theta)


def test_neuron_arithmetic_examples():
    layer = SnnLayer("l", "fc", (1,), (4,), np.ones((4, 1), np.int32), theta=10, v_bits=6)
    v, s = neuron_update(np.array([0, 5, 30, -30], np.int32), np.array([9, 5, 100, -100]), layer)
    assert s.tolist() == [False, True, True, False]
    assert v.tolist() == [9, 0, 21, -32]                     # 31 saturates, minus theta
    layer.overflow = "wrap"
    v, _ = neuron_update(np.array([30], np.int32), np.array([3]), layer)
    assert v.tolist() == [-31]                               # 33 wraps to -31
    layer.overflow, layer.reset, layer.leak_shift = "saturate", "zero", 1
    v, s = neuron_update(np.array([0, 0, -7], np.int32), np.array([9, 30, 0]), layer)
    assert v.tolist() == [5, 0, -3] and s.tolist() == [False, True, False]   # 9-4, 30-15, -7+4


def test_pool_dedups_and_layer_first():
    """A spike of conv1 at timestep t reaches fc in the same timestep."""
    w1 = np.ones((1, 1, 1, 1), np.int32) * 5
    net = SnnNet("chain", (1, 2, 2), [
        SnnLayer("c", "conv", (1, 2, 2), (1, 2, 2), w1, theta=5),
        SnnLayer("p", "pool", (1, 2, 2), (1, 1, 1)),
        SnnLayer("f", "fc", (1, 1, 1), (1,), np.array([[3]], np.int32), theta=3)])
    net.validate()
    frames = np.zeros((1, 3, 1, 2, 2), bool)
    frames[0, 1] = True                       # four input spikes at t=1
    res = run_snn(net, frames, keep_spikes=True)
    assert res.spikes["f"][0, :, 0].tolist() == [False, True, False]
    assert res.stats[1].events_in == 1        # OR pooling: one event, not four


def test_policy_keeps_the_smaller_operand():
    spec = SnnSpec()
    conv = SnnLayer("conv1", "conv", (2, 34, 34), (12, 30, 30), np.ones((12, 2, 5, 5), np.int32),
                    w_bits=8, v_bits=16)
    fc = SnnLayer("fc", "fc", (800,), (10,), np.ones((10, 800), np.int32))
    assert map_layer(conv, spec).dataflow == "ws"            # 4800 weight bits < 172800
    assert map_layer(fc, spec).dataflow == "os"              # 160 membrane bits < 64000
    assert map_layer(fc, spec, "ws").dataflow == "ws"


def test_mapping_error_names_the_layer_and_missing_bits():
    conv = SnnLayer("conv1", "conv", (2, 34, 34), (12, 30, 30), np.ones((12, 2, 5, 5), np.int32),
                    w_bits=8, v_bits=16, dataflow="os")
    # 172800 membrane bits + one 12x5x5 8-bit weight slice (2400 bits, 10 rows of 256)
    with pytest.raises(SnnMappingError, match=r"layer conv1 .*output-stationary.*2560 bits of "
                                              r"stream buffer.*44288 bits missing"):
        map_layer(conv, SnnSpec())
    big = SnnLayer("fc2", "fc", (4096,), (64,), np.ones((64, 4096), np.int32), dataflow="ws")
    with pytest.raises(SnnMappingError, match=r"layer fc2 .*2097152 bits of resident weights"
                                              r".*1966336 bits missing"):
        map_layer(big, SnnSpec())
    net = SnnNet("n", (4096,), [big], SnnSpec())
    with pytest.raises(SnnMappingError, match="fc2"):
        map_network(net)
    assert map_network(net, "os")[0].resident_bits == 64 * 16


def test_validation_errors():
    with pytest.raises(ConfigError, match=r"layer conv1.theta = 40000"):
        random_net(0).layers[0].__class__(
            "conv1", "conv", (2, 8, 8), (3, 6, 6), np.ones((3, 2, 3, 3), np.int32),
            theta=40000).validate()
    bad = SnnLayer("fc", "fc", (4,), (2,), np.full((2, 4), 200, np.int32), w_bits=8)
    with pytest.raises(ConfigError, match=r"layer fc.weight holds values outside \[-128, 127\]"):
        bad.validate()
    with pytest.raises(ConfigError, match="binary weights"):
        SnnLayer("b", "fc", (2,), (1,), np.zeros((1, 2), np.int32), w_bits=1).validate()
    with pytest.raises(ConfigError, match="must be \\[B, T, 2, 8, 8\\]"):
        run_snn(random_net(0), np.zeros((2, 3, 8, 8), bool))


def test_stats_count_events_and_sops():
    net = random_net(3)
    frames = np.random.default_rng(3).random((3, 5, 2, 8, 8)) < 0.2
    res = run_snn(net, frames)
    assert res.stats[0].events_in == int(frames.sum())
    _, tr = run_dataflow(net, frames, {"conv1": "os", "fc": "os"})
    assert res.stats[0].sops <= res.stats[0].events_in * net.layers[0].fanout


# ----------------------------------------------------------------------- bundle

def test_bundle_round_trip(tmp_path):
    net = random_net(5, w_bits=6, v_bits=10, leak=2, reset="zero", mode="wrap", pad=1, stride=2)
    net.meta = {"n_steps": 4}
    path = save_snn_bundle(net, tmp_path / "b")
    back = load_snn_bundle(path)
    assert [l.name for l in back.layers] == [l.name for l in net.layers]
    assert back.layers[0].stride == 2
    frames = np.random.default_rng(0).random((2, 4, 2, 8, 8)) < 0.3
    np.testing.assert_array_equal(run_snn(back, frames).counts, run_snn(net, frames).counts)
    assert back.meta == {"n_steps": 4} and back.spec == net.spec
    save_snn_bundle(net, path)                      # overwrite in place
    assert not list(tmp_path.glob(".b.*"))


def test_bundle_errors(tmp_path):
    path = save_snn_bundle(random_net(6), tmp_path / "b")
    with pytest.raises(BundleError, match="snn_bundle.json is missing"):
        load_snn_bundle(tmp_path / "none")
    (path / "conv1.weight.npy").write_bytes((path / "conv1.weight.npy").read_bytes()[:40])
    with pytest.raises(BundleError, match="truncated or corrupt"):
        load_snn_bundle(path)
    path = save_snn_bundle(random_net(6), tmp_path / "c")
    doc = json.loads((path / "snn_bundle.json").read_text())
    doc["layers"][0]["theta"] = 10 ** 6
    (path / "snn_bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="conv1.theta"):
        load_snn_bundle(path)
    doc["schema_version"] = 99
    (path / "snn_bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="schema_version 99"):
        load_snn_bundle(path)
    doc["schema_version"] = 1                       # a bundle from before the stride
    doc["layers"][0]["theta"] = 1
    del doc["layers"][0]["stride"]
    (path / "snn_bundle.json").write_text(json.dumps(doc))
    assert load_snn_bundle(path).layers[0].stride == 1
    doc["layers"][0]["stride"] = 2                  # no longer fits the out_shape
    (path / "snn_bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"layer conv1: .*stride 2 gives"):
        load_snn_bundle(path)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path = save_snn_bundle(random_net(6), tmp_path / "d")
    (path / "fc.weight.npy").write_bytes((tmp_path / "obj.npy").read_bytes())
    with pytest.raises(BundleError, match="fc"):
        load_snn_bundle(path)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), w_bits=st.integers(1, 16), v_bits=st.integers(2, 16),
       leak=st.sampled_from([0, 3]), reset=st.sampled_from(["subtract", "zero"]),
       mode=st.sampled_from(["saturate", "wrap"]), pad=st.integers(0, 1),
       stride=st.sampled_from([1, 2, 3]))
def test_event_engine_equals_dense_engine(seed, w_bits, v_bits, leak, reset, mode, pad, stride):
    from cimstack.ref import snn_fast
    if not snn_fast.AVAILABLE:
        pytest.skip("numba is not installed")
    net = random_net(seed, w_bits, v_bits, leak, reset, mode, pad, stride=stride)
    frames = np.random.default_rng(seed).random((3, 5, 2, 8, 8)) < 0.3
    a = run_snn(net, frames, keep_spikes=True, engine="numpy")
    b = run_snn(net, frames, keep_spikes=True, engine="events")
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name])
    np.testing.assert_array_equal(a.v_final, b.v_final)
    assert [s.to_dict() for s in a.stats] == [s.to_dict() for s in b.stats]


def test_unknown_engine():
    with pytest.raises(ConfigError, match="engine 'gpu'"):
        run_snn(random_net(0), np.zeros((1, 1, 2, 8, 8), bool), engine="gpu")


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 9), h=st.integers(0, 20), w=st.integers(0, 20),
       density=st.sampled_from([0.0, 0.1, 0.9]), seed=st.integers(0, 1000))
@example(k=2, h=11, w=11, density=0.1, seed=0)      # odd sizes: the last row and column cropped
@example(k=8, h=16, w=24, density=0.1, seed=1)      # a window of one 8-byte word
@example(k=3, h=2, w=9, density=0.9, seed=2)        # fewer rows than k: nothing left
def test_pool_or_is_the_any_of_each_window(k, h, w, density, seed):
    from cimstack.ref.snn import pool_or
    x = np.random.default_rng(seed).random((2, 3, h, w)) < density
    ho, wo = h // k, w // k
    want = np.zeros((2, 3, ho, wo), bool)
    for i in range(ho):
        for j in range(wo):
            want[..., i, j] = x[..., i * k:(i + 1) * k, j * k:(j + 1) * k].any(axis=(-2, -1))
    got = pool_or(x, k)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 5), c=st.integers(1, 3), h=st.integers(1, 13), w=st.integers(1, 13),
       density=st.sampled_from([0.0, 0.1, 0.7]), seed=st.integers(0, 1000))
@example(k=2, c=2, h=11, w=11, density=0.3, seed=0)     # odd sizes: the border cropped
@example(k=4, c=1, h=3, w=9, density=0.9, seed=1)       # fewer rows than k: nothing left
def test_pool_or_of_events_equals_pool_or_of_the_maps(k, c, h, w, density, seed):
    from cimstack.ref.snn import pool_or, pool_or_events
    maps = np.random.default_rng(seed).random((5, c, h, w)) < density
    frame, neuron = np.divmod(np.flatnonzero(maps), c * h * w)
    got = pool_or_events(frame, neuron, (c, h, w), k, 5)
    np.testing.assert_array_equal(got, pool_or(maps, k).reshape(5, -1))
