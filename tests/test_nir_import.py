"""NIR import (cimstack.importer.nir_import, `cimstack snn import`) and the neuron options
it needs: small spiking CNNs built in snnTorch and in Norse, exported with their own NIR
exporters and imported; spike for spike against an integer simulation of each
framework's update rule (Norse's IF runs itself: exact in floating point here), bit-exact
on the emulated overlay; bad graphs give one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cimstack.cli import main
from cimstack.hw.snn import csim_runner
from cimstack.ref.snn import run_snn
from cimstack.snn_bundle import META_FILE, load_snn_bundle, save_snn_bundle

from test_ref_snn import random_net

import nir
import torch

T = 6                     # timesteps: small nets, few steps


def frames_for(shape, seed=0, n=3, rate=0.3):
    return np.random.default_rng(seed).random((n, T, *shape)) < rate


def cli(args, capsys):
    """``cimstack ARGS`` in this process: (exit code, output)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


# ----------------------------------------------------------- neuron options, all engines

@pytest.fixture(scope="module")
def kernel():
    return csim_runner()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), fire=st.sampled_from(["ge", "gt"]),
       order=st.sampled_from(["after", "before"]), reset=st.sampled_from(["subtract", "zero", "step"]),
       leak=st.sampled_from([0, 1, 3]), v_init=st.integers(-40, 40),
       mode=st.sampled_from(["saturate", "wrap"]))
@example(seed=1, fire="gt", order="before", reset="zero", leak=1, v_init=0, mode="saturate")
@example(seed=2, fire="ge", order="after", reset="step", leak=0, v_init=-40, mode="wrap")
def test_neuron_options_agree_in_every_engine(kernel, seed, fire, order, reset, leak, v_init,
                                              mode):
    """The options in the dense reference, the numba engine and the HLS kernel (C-sim):
    the same spikes and final membranes."""
    net = random_net(seed, w_bits=6, v_bits=8, leak=leak, reset=reset, mode=mode)
    for layer in net.spiking_layers:
        layer.fire, layer.leak_order, layer.v_init = fire, order, v_init
        layer.theta = min(layer.theta, 60)
        layer.validate()
    frames = frames_for((2, 8, 8), seed, n=2)
    dense = run_snn(net, frames, keep_spikes=True, engine="numpy")
    events = run_snn(net, frames, keep_spikes=True, engine="auto")
    hw = kernel.run(net, frames)
    for name in hw.spikes:
        np.testing.assert_array_equal(events.spikes[name], dense.spikes[name], err_msg=name)
        np.testing.assert_array_equal(hw.spikes[name], dense.spikes[name], err_msg=name)
    np.testing.assert_array_equal(hw.v_final, dense.v_final)
    np.testing.assert_array_equal(events.v_final, dense.v_final)


def test_neuron_option_arithmetic():
    from cimstack.ref.snn import neuron_update
    layer = random_net(0).layers[0]
    layer.theta, layer.leak_shift, layer.reset = 10, 1, "subtract"
    v, i = np.array([10, 20, 7, -3]), np.array([0, 1, 4, 0])
    layer.fire, layer.leak_order = "gt", "before"       # u = v - (v >> 1) + I
    u, s = neuron_update(v, i, layer)
    assert s.tolist() == [False, True, False, False] and u.tolist() == [5, 1, 8, -1]
    layer.fire, layer.leak_order = "ge", "after"        # u = (v + I) - ((v + I) >> 1)
    u, s = neuron_update(v, i, layer)
    assert s.tolist() == [False, True, False, False] and u.tolist() == [5, 1, 6, -1]
    layer.reset = "step"
    u, s = neuron_update(v, i, layer)
    assert u.tolist() == [0, 0, 0, 0] and s.tolist() == [False, True, False, False]


def test_old_bundle_without_options_loads_with_the_old_behaviour(tmp_path):
    net = random_net(3, leak=2)
    save_snn_bundle(net, tmp_path / "b")
    doc = json.loads((tmp_path / "b" / META_FILE).read_text())
    for d in doc["layers"]:
        for k in ("fire", "leak_order", "v_init"):
            d.pop(k, None)
    (tmp_path / "b" / META_FILE).write_text(json.dumps(doc))
    old = load_snn_bundle(tmp_path / "b")
    assert all((l.fire, l.leak_order, l.v_init) == ("ge", "after", 0) for l in old.spiking_layers)
    frames = frames_for((2, 8, 8))
    np.testing.assert_array_equal(run_snn(old, frames).counts, run_snn(net, frames).counts)


# ------------------------------------------------------------------------- helpers

def conv_int(x, w, pad, stride=1):
    """Integer conv: x [C, H, W], w [N, C, k, k] -> [N, Ho, Wo]."""
    x = np.pad(x.astype(np.int64), ((0, 0), (pad, pad), (pad, pad)))
    n, c, k, _ = w.shape
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))   # C, Ho, Wo, k, k
    win = win[:, ::stride, ::stride]
    return np.einsum("chwij,ncij->nhw", win, w.astype(np.int64))


def quantize(w, w_bits=8):
    s = np.abs(w).max() / ((1 << (w_bits - 1)) - 1)
    return np.rint(w / s).astype(np.int64), s


def check_emulated_overlay(net, frames):
    from cimstack.snn_cli import verify_snn
    rep = verify_snn(net, frames, "emu")
    assert rep["ok"], rep


# ----------------------------------------------------------------------- snnTorch

@pytest.fixture(scope="module", params=[1, 2], ids=["stride1", "stride2"])
def snntorch_graph(request, tmp_path_factory):
    """conv(2->4, k3, padding 1, stride 1 or 2) LIF avgpool2 flatten linear(5) LIF on
    2x8x8, exported by snnTorch."""
    import snntorch as snn
    from snntorch.export_nir import export_to_nir
    torch.manual_seed(0)

    def leaky(beta, shape):      # per-neuron tensors: NIR's type check needs the shape
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, 1.0),
                         init_hidden=True)

    stride = request.param
    side = 8 // stride
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, stride=stride, padding=1, bias=False),
        leaky(0.5, (4, side, side)),
        torch.nn.AvgPool2d((2, 2), stride=(2, 2)), torch.nn.Flatten(start_dim=0),
        torch.nn.Linear(4 * (side // 2) ** 2, 5, bias=False), leaky(0.75, (5,)))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[4].weight.mul_(12.0)
    path = tmp_path_factory.mktemp("snntorch") / "net.nir"
    nir.write(path, export_to_nir(model, torch.zeros(2, 8, 8)))
    return path, model


def snntorch_integer_sim(model, frames):
    """snnTorch's Leaky as NIR and snnTorch's own import state it (reset_delay False,
    reset to zero, fire strictly), in integers: U[t] = beta U[t-1] + W X[t] with beta
    U as U - (U >> k) (beta = 1 - 2^-k), S = U > U_thr, U = 0 where S; weights
    quantized to 8 bits per layer with the threshold in weight steps, floor (exact for
    v > thr); AvgPool2d then Linear = the window sums times W / 4."""
    stride = model[0].stride[0]
    side = 8 // stride
    w1, s1 = quantize(model[0].weight.detach().double().numpy())
    w2, s2 = quantize(model[4].weight.detach().double().numpy() / 4)
    th1, th2 = int(np.floor(1.0 / s1)), int(np.floor(1.0 / s2))
    spikes1, spikes2 = [], []
    for x in frames:
        u1, u2 = np.zeros((4, side, side), np.int64), np.zeros(5, np.int64)
        o1, o2 = [], []
        for t in range(len(x)):
            u1 = u1 - (u1 >> 1) + conv_int(x[t], w1, 1, stride)
            z1 = u1 > th1
            u1[z1] = 0
            pooled = z1.reshape(4, side // 2, 2, side // 2, 2).sum(axis=(2, 4))
            u2 = u2 - (u2 >> 2) + w2 @ pooled.reshape(-1)
            z2 = u2 > th2
            u2[z2] = 0
            o1.append(z1)
            o2.append(z2)
        spikes1.append(o1)
        spikes2.append(o2)
    return np.array(spikes1), np.array(spikes2)


def test_snntorch_cnn_spike_for_spike(snntorch_graph, tmp_path, capsys):
    path, model = snntorch_graph
    code, out = cli(["snn", "import", path, "--out", tmp_path / "b"], capsys)
    assert code == 0, out
    net = load_snn_bundle(tmp_path / "b")
    assert [l.op for l in net.layers] == ["conv", "fc"]
    assert [l.leak_shift for l in net.layers] == [1, 2]
    assert net.layers[0].stride == model[0].stride[0]
    frames = frames_for((2, 8, 8), seed=1)
    res = run_snn(net, frames, keep_spikes=True)
    z1, z2 = snntorch_integer_sim(model, frames)
    assert z1.any() and z2.any() and not z2.all()        # the test can fail
    np.testing.assert_array_equal(res.spikes["conv1"], z1)
    np.testing.assert_array_equal(res.spikes["fc2"], z2)
    check_emulated_overlay(net, frames[:2])


# -------------------------------------------------------------------------- Norse

def norse_model(strided=False):
    """conv(2->3, k3) IAF conv(3->4, k6) IAF on 2x8x8; ``strided``: conv(2->3, k3,
    stride 2, padding 1) IAF conv(3->4, k2, stride 2) IAF."""
    import norse.torch as norse
    torch.manual_seed(1)
    convs = ((torch.nn.Conv2d(2, 3, 3, stride=2, padding=1), torch.nn.Conv2d(3, 4, 2, stride=2))
             if strided else (torch.nn.Conv2d(2, 3, 3), torch.nn.Conv2d(3, 4, 6)))
    model = norse.SequentialState(
        convs[0], norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(2.0))),
        convs[1], norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(2.0))))
    rng = np.random.default_rng(1)
    with torch.no_grad():                  # multiples of 1/16 with the peak at 127/16: the
        for conv in (model[0], model[2]):  # 8-bit scale is 1/16 exactly, float32 is exact
            w = rng.integers(-127, 128, conv.weight.shape).astype(np.float32)
            w.reshape(-1)[0] = 127
            conv.weight.copy_(torch.from_numpy(w / 16))
            conv.bias.zero_()              # Norse's exporter needs a bias tensor
    return model


@pytest.mark.parametrize("strided", [False, True])
def test_norse_cnn_spike_for_spike_with_norse_itself(tmp_path, strided):
    import norse.torch as norse
    model = norse_model(strided)
    from cimstack.importer.nir_import import NirOptions, import_nir
    # Norse 1.1 leaves the Conv2d types of its graph undefined, which nir.write cannot
    # store: the graph object goes to the importer's Python API (as `snn import` does)
    graph = norse.to_nir(model, torch.zeros(1, 2, 8, 8))
    net = import_nir(graph, NirOptions(dt=1e-3), name="norse").net
    save_snn_bundle(net, tmp_path / "b")
    net = load_snn_bundle(tmp_path / "b")
    assert [l.theta for l in net.layers] == [32, 32]       # 2.0 / (1/16)
    assert [l.stride for l in net.layers] == ([2, 2] if strided else [1, 1])
    frames = frames_for((2, 8, 8), seed=2, rate=0.4)
    res = run_snn(net, frames, keep_spikes=True)
    x = torch.from_numpy(frames.astype(np.float32))
    with torch.no_grad():                  # Norse's own IAF: v += I; z = v > v_th; v = 0
        s1 = s2 = None
        z1s, z2s = [], []
        for t in range(T):
            z1, s1 = model[1](model[0](x[:, t]), s1)
            z2, s2 = model[3](model[2](z1), s2)
            z1s.append(z1.numpy() > 0)
            z2s.append(z2.numpy() > 0)
    z1s, z2s = np.stack(z1s, 1), np.stack(z2s, 1)
    assert z1s.any() and z2s.any() and not z2s.all()
    np.testing.assert_array_equal(res.spikes["conv1"], z1s)
    np.testing.assert_array_equal(res.spikes["conv2"], z2s)
    check_emulated_overlay(net, frames[:2])


# ----------------------------------------------------------------------- bad graphs

def graph(*middle, input_shape=(2, 8, 8)):
    nodes = {"input": nir.Input(input_type=np.array(input_shape))}
    edges, prev = [], "input"
    for i, node in enumerate(middle):
        nodes[f"n{i}"] = node
        edges.append((prev, f"n{i}"))
        prev = f"n{i}"
    nodes["output"] = nir.Output(output_type=np.array([1]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def conv(n=3, c=2, k=3, stride=1, groups=1, bias=0.0):
    rng = np.random.default_rng(0)
    return nir.Conv2d(input_shape=np.array([8, 8]), weight=rng.normal(size=(n, c // groups, k, k)),
                      stride=stride, padding=0, dilation=1, groups=groups,
                      bias=np.full(n, bias))


def lif(beta, shape=(3, 6, 6), dt=1e-4):
    one = np.ones(shape)
    tau = dt / (1 - beta)
    return nir.LIF(tau=one * tau, r=one * tau / dt, v_leak=0 * one, v_threshold=one)


def write(tmp_path, g):
    path = tmp_path / "g.nir"
    nir.write(path, g)
    return path


@pytest.mark.parametrize("make, match", [
    (lambda: graph(conv(), nir.Delay(delay=np.ones(3))), r"'n1' \(Delay\): not supported; "
                                                        r"supported: Input, Output, Conv2d"),
    (lambda: graph(conv(n=4, groups=2), lif(0.5)), r"'n0' \(Conv2d\): groups = 2"),
    (lambda: graph(conv(stride=8), lif(0.5)), r"'n0' \(Conv2d\): stride 8; the core takes "
                                               r"1\.\.7"),
    (lambda: graph(conv(stride=np.array([2, 1])), lif(0.5)), r"'n0' \(Conv2d\): stride "
                                                             r"\(2, 1\): the core takes equal"),
    (lambda: graph(conv(bias=0.5), lif(0.5)), r"'n0' \(Conv2d\): nonzero bias"),
    (lambda: graph(conv(), lif(0.9)), r"'n1' \(LIF\): decay beta = 0.9 is not 1 - 2\^-k; pass "
                                      r"--approx-leak to use beta = 0.875"),
    (lambda: graph(conv(), conv(c=3), lif(0.5, (3, 4, 4))), r"'n1' \(Conv2d\): follows the "
                                                             r"synapse 'n0' before a neuron"),
    (lambda: graph(conv(), lif(0.5), nir.SumPool2d(kernel_size=np.array([2, 2]),
                                                    stride=np.array([2, 2]),
                                                    padding=np.array([0, 0])),
                   conv(c=3, k=1), lif(0.5, (3, 3, 3))), r"'n3' \(Conv2d\): follows the pool "
                                                          r"'n2'.*--or-pool"),
])
def test_bad_graph_gives_one_line(tmp_path, capsys, make, match):
    import re
    code, out = cli(["snn", "import", write(tmp_path, make()), "--out", tmp_path / "b"], capsys)
    assert code == 2 and "Traceback" not in out
    assert re.search(match, " ".join(out.split())), out
    assert not (tmp_path / "b").exists()


def test_approx_leak_states_the_error(tmp_path, capsys):
    code, out = cli(["snn", "import", write(tmp_path, graph(conv(), lif(0.9))), "--out",
                     tmp_path / "b", "--approx-leak"], capsys)
    assert code == 0, out
    assert "1 - 2^-3 = 0.875 (error -0.025)" in " ".join(out.split())
    assert load_snn_bundle(tmp_path / "b").layers[0].leak_shift == 3


def test_run_says_which_inputs(tmp_path, capsys):
    """A bundle whose input is not the event digits' runs on seeded random events and
    says so; the event digits' shape would take the digits."""
    code, _ = cli(["snn", "import", write(tmp_path, graph(conv(), lif(0.5))), "--out",
                   tmp_path / "b"], capsys)
    assert code == 0
    code, out = cli(["run", tmp_path / "b", "--backend", "reference"], capsys)
    assert code == 0, out
    assert "seeded random event samples" in out and "n/a (random events)" in out
    from cimstack.data import snn_inputs
    net = load_snn_bundle(tmp_path / "b")
    a, labels, _ = snn_inputs(net, limit=4)
    b, _, _ = snn_inputs(net, limit=4)
    assert labels is None and a.shape == (4, 16, 2, 8, 8) and np.array_equal(a, b)


def test_scale_threshold_sumpool_affine_if_against_nir_equations():
    """Scale on spikes, a 1x1 Conv2d, a Threshold, SumPool2d + Flatten folded into an
    Affine, an IF: the imported bundle against NIR's equations run in float64 (exact:
    weights are multiples of 1/16 with the 8-bit peak 127/16)."""
    from cimstack.importer.nir_import import import_nir
    rng = np.random.default_rng(4)
    w1 = rng.integers(-127, 128, (2, 2, 1, 1)) / 8.0
    w1.reshape(-1)[0] = 127 / 8.0                   # x 0.5 (Scale): peak 127/16
    w2 = rng.integers(-127, 128, (3, 8)) / 16.0
    w2.reshape(-1)[0] = 127 / 16.0
    g = graph(nir.Scale(scale=np.array([0.5])),
              nir.Conv2d(input_shape=np.array([4, 4]), weight=w1, stride=1, padding=0,
                         dilation=1, groups=1, bias=np.zeros(2)),
              nir.Threshold(threshold=np.full((2, 4, 4), 0.5)),
              nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                            padding=np.array([0, 0])),
              nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
              nir.Affine(weight=w2, bias=np.zeros(3)),
              nir.IF(r=np.ones(3), v_threshold=np.full(3, 3.0)), input_shape=(2, 4, 4))
    net = import_nir(g).net
    assert [l.op for l in net.layers] == ["conv", "fc"]
    assert [l.reset for l in net.layers] == ["step", "zero"]
    assert [l.theta for l in net.layers] == [8, 48]
    frames = frames_for((2, 4, 4), seed=4, n=4, rate=0.5)
    res = run_snn(net, frames, keep_spikes=True)
    for b, x in enumerate(frames.astype(np.float64)):
        v = np.zeros(3)
        for t in range(T):
            i1 = np.einsum("nc,chw->nhw", w1[:, :, 0, 0], 0.5 * x[t])
            z1 = i1 > 0.5
            pooled = z1.reshape(2, 2, 2, 2, 2).sum(axis=(2, 4))
            v = v + w2 @ pooled.reshape(-1)
            z2 = v > 3.0
            v[z2] = 0
            np.testing.assert_array_equal(res.spikes["conv1"][b, t], z1)
            np.testing.assert_array_equal(res.spikes["fc2"][b, t], z2)
    assert res.spikes["fc2"].any() and res.spikes["conv1"].any()
