"""Surrogate-gradient training of the spiking CNN with Brevitas weights, export to the
integer network, and the membrane-width sweep (a short run on part of the data)."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from cimstack.events.datasets import event_digits  # noqa: E402
from cimstack.quant.snn import train_snn  # noqa: E402
from cimstack.quant.snn_export import narrow_membranes  # noqa: E402
from cimstack.ref.snn import run_snn, v_range  # noqa: E402
from cimstack.snn_bundle import load_snn_bundle, save_snn_bundle  # noqa: E402
from cimstack.snn_cli import membrane_sweep  # noqa: E402

STEPS = 8


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(2)
    return train_snn(n_steps=STEPS, epochs=4, limit_train=400, limit_test=100, seed=0)


@pytest.mark.slow
def test_training_learns_and_export_is_exact(trained):
    r = trained
    assert r.history[-1]["train_acc"] > r.history[0]["train_acc"]
    assert r.ref_acc > 0.6, r.history
    ds = event_digits("test", limit=100)
    frames = ds.frames(STEPS)
    with torch.no_grad():
        counts, _ = r.model(torch.from_numpy(frames).float())
    ref = run_snn(r.net, frames)
    # float32 torch and the integer core give the same output spikes
    np.testing.assert_array_equal(counts.numpy().astype(np.int64), ref.counts)
    for layer in r.net.spiking_layers:
        assert layer.w_bits == 8 and layer.v_bits == 16
        assert layer.theta & (layer.theta - 1) == 0          # 1 / power-of-two scale
        assert np.abs(layer.weight).max() <= 128


@pytest.mark.slow
def test_bundle_and_sweep(trained, tmp_path):
    path = save_snn_bundle(trained.net, tmp_path / "snn")
    net = load_snn_bundle(path)
    assert net.meta["n_steps"] == STEPS
    ds = event_digits("test", limit=60)
    frames = ds.frames(STEPS)
    rows = membrane_sweep(net, frames, ds.labels, widths=(16, 10, 6))
    assert [r["v_bits"] for r in rows] == [16, 10, 6]
    assert rows[0]["accuracy"] >= rows[-1]["accuracy"] - 0.05 or rows[0]["accuracy"] > 0.5
    assert all(r["traffic_bits"] > 0 for r in rows)
    # conv1 is weight-stationary: its membranes move at v_bits each
    assert rows[0]["dataflows"][0] == rows[-1]["dataflows"][0] == "ws"
    assert rows[0]["membrane_traffic_bits"] > rows[-1]["membrane_traffic_bits"] > 0
    n6 = narrow_membranes(net, 6)
    for layer in n6.spiking_layers:
        assert 1 <= layer.theta <= v_range(6)[1] and layer.v_bits == 6
    res = run_snn(n6, frames)
    assert res.v_final.min() >= -32 and res.v_final.max() <= 31


@pytest.mark.parametrize("ksize, stride, padding", [(3, 2, 1), (5, 1, 2), (2, 2, 0)])
def test_strided_padded_model_exports_exactly(ksize, stride, padding):
    """SpikingCNN with a conv stride and zero padding: its shapes are the convs', the
    export carries stride and padding, and the integer reference gives torch's spikes
    (an untrained model with its weights scaled up so that every layer spikes)."""
    from cimstack.quant.snn import SpikingCNN
    from cimstack.quant.snn_export import export_snn
    torch.manual_seed(ksize + stride)
    model = SpikingCNN(8, (4, 6), ksize, input_shape=(2, 20, 20), stride=stride,
                       padding=padding)
    with torch.no_grad():
        for mod in (model.conv1, model.conv2, model.fc):
            mod.weight.mul_(8.0)
    net = export_snn(model)
    convs = [l for l in net.spiking_layers if l.op == "conv"]
    assert [(l.stride, l.padding) for l in convs] == [(stride, padding)] * 2
    frames = np.random.default_rng(0).random((3, 6, 2, 20, 20)) < 0.4
    with torch.no_grad():
        counts, _ = model(torch.from_numpy(frames).float())
    ref = run_snn(net, frames, keep_spikes=True)
    assert all(ref.spikes[l.name].any() for l in convs)
    np.testing.assert_array_equal(counts.numpy().astype(np.int64), ref.counts)


def test_a_model_whose_pooling_leaves_nothing_is_refused():
    from cimstack.errors import ConfigError
    from cimstack.quant.snn import SpikingCNN
    with pytest.raises(ConfigError, match="second pooling leaves 0x0 outputs"):
        SpikingCNN(8, (4, 6), 5, input_shape=(2, 12, 12), stride=3)
    with pytest.raises(ConfigError, match="stride 1..7"):
        SpikingCNN(8, (4, 6), 3, stride=9)
