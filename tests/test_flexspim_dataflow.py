"""FlexSpIM's dataflow at scale: weight-slice reuse, reached membranes, the shared
macro budget with its DRAM tier, the policies, the 6-conv + 3-FC network and the cost
command's wording."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cimstack.cli import app
from cimstack.config import SnnSpec
from cimstack.cost import DcimConstants, SnnConstants
from cimstack.cost.snn import plan_energy, policy_study
from cimstack.errors import ConfigError
from cimstack.mapping.flexspim import (POLICIES, layer_options, plan_network, reach_counts,
                                       reached_neurons, working_rows)
from cimstack.mapping.snn import buffer_bits, layer_cost, map_layer
from cimstack.models.flexspim import flexspim_net, random_events
from cimstack.ref.snn import (SnnLayer, SnnNet, conv_out, run_dataflow, run_snn,
                              weight_slices)
from cimstack.snn_bundle import save_snn_bundle


def conv(c=2, n=3, size=4, k=3, pad=1, w_bits=8, v_bits=16, leak=0, seed=0, stride=1):
    rng = np.random.default_rng(seed)
    o = conv_out(size, k, pad, stride)
    return SnnLayer("conv", "conv", (c, size, size), (n, o, o),
                    rng.integers(-8, 8, (n, c, k, k)).astype(np.int32), padding=pad,
                    stride=stride, theta=20, w_bits=w_bits, v_bits=v_bits, leak_shift=leak)


def cimstack(*args):
    """The CLI in a subprocess (for the one-line error without a traceback)."""
    return subprocess.run([sys.executable, "-c", "from cimstack.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def cimstack_here(*args):
    """The CLI in this process (faster; for successful runs): (exit code, output)."""
    r = CliRunner().invoke(app, list(args), terminal_width=200)
    return r.exit_code, r.output


def one_layer_net(layer, spec=None):
    net = SnnNet("one", tuple(layer.in_shape), [layer], spec or SnnSpec())
    net.validate()
    return net


# --------------------------------------------------------- weight-slice reuse

def test_a_weight_slice_is_fetched_once_per_channel_and_timestep():
    """Timestep 0: two events of channel 0 and one of channel 1 -> 2 slices; timestep
    1: one event of channel 0 -> 1 more (no reuse across timesteps); each slice is the
    3 x 3 x 3 weights of its channel."""
    layer = conv()
    frames = np.zeros((1, 2, 2, 4, 4), bool)
    frames[0, 0, 0, 0, 0] = frames[0, 0, 0, 1, 1] = frames[0, 0, 1, 2, 2] = True
    frames[0, 1, 0, 3, 3] = True
    net = one_layer_net(layer)
    res, traffic = run_dataflow(net, frames, {"conv": "os"})
    assert res.stats[0].slices_in == 3 == run_snn(net, frames).stats[0].slices_in
    assert traffic["conv"].weight_bits == 3 * (3 * 3 * 3) * 8
    assert res.stats[0].events_in == 4          # per-event fetching would move 4 slices


def test_fc_events_each_fetch_their_own_column():
    layer = SnnLayer("fc", "fc", (1, 2, 3), (5,), np.ones((5, 6), np.int32), theta=3)
    frames = np.zeros((1, 1, 1, 2, 3), bool)
    frames[0, 0, 0, 0, :2] = frames[0, 0, 0, 1, 1] = True
    net = one_layer_net(layer)
    _, traffic = run_dataflow(net, frames, {"fc": "os"})
    assert traffic["fc"].weight_bits == 3 * 5 * 8


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), density=st.sampled_from([0.0, 0.02, 0.2, 1.0]),
       c=st.integers(1, 3), pad=st.integers(0, 1))
@example(seed=0, density=0.0, c=1, pad=0)            # no events: nothing streamed
@example(seed=0, density=1.0, c=3, pad=1)            # every address: one slice per channel
def test_simulated_slice_traffic_equals_the_formula(seed, density, c, pad):
    """``run_dataflow`` walks the events in wire order and fetches a slice when it
    changes; the cost model counts ``weight_slices``: the same bits."""
    layer = conv(c=c, pad=pad, seed=seed)
    net = one_layer_net(layer)
    frames = np.random.default_rng(seed).random((2, 3, c, 4, 4)) < density
    res, traffic = run_dataflow(net, frames, {"conv": "os"})
    per_frame = frames.reshape(6, c, -1).any(axis=2).sum()
    assert res.stats[0].slices_in == per_frame == weight_slices(layer, frames.reshape(6, -1))
    m = map_layer(layer, net.spec, "os")
    row = layer_cost(layer, m, run_snn(net, frames).stats[0], net.spec, samples=2)
    assert row["weight_traffic_bits"] == traffic["conv"].weight_bits \
        == per_frame * 3 * 9 * layer.w_bits


def test_the_output_stationary_buffer_holds_one_slice_in_whole_rows():
    layer = conv(c=2, n=12, k=5, size=34, pad=0)          # slice 12 x 5 x 5 x 8 = 2400 bits
    assert buffer_bits(layer, "os", 256) == 10 * 256
    assert buffer_bits(layer, "ws", 256) == 256
    small = SnnLayer("fc", "fc", (4,), (2,), np.ones((2, 4), np.int32))
    assert buffer_bits(small, "os", 256) == 256           # at least one row


# ------------------------------------------------------------- reached membranes

def test_reached_rows_by_hand():
    """One event at (0, 0) of a 3x3 conv with padding 1 on 4x4: it reaches outputs
    (0..1, 0..1) of the 3 channels; 16 neurons per row of 256 columns -> every channel
    is one row of 16 neurons: 3 rows, 48 membranes. Leaky layers move them all."""
    layer = conv()
    x = np.zeros((1, 2, 4, 4), bool)
    x[0, 1, 0, 0] = True
    assert reached_neurons(layer, x, 256) == 3 * 16
    assert reached_neurons(layer, x, 64) == 3 * 2 * 4          # 4 per row: rows y=0, y=1
    assert reached_neurons(layer, np.zeros_like(x), 256) == 0
    assert reached_neurons(conv(leak=2), np.zeros_like(x), 256) == 48
    fc = SnnLayer("fc", "fc", (8,), (40,), np.ones((40, 8), np.int32))
    hit = np.zeros((3, 8), bool)
    hit[1, 5] = True
    assert reached_neurons(fc, hit, 256) == 40                     # one frame, all 40


@pytest.mark.parametrize("size, k, pad, stride", [(7, 3, 1, 2), (9, 3, 0, 3), (8, 2, 0, 3),
                                                  (11, 5, 2, 2)])
def test_reached_rows_with_stride(size, k, pad, stride):
    """A strided conv reaches the outputs whose window (rows yo * stride - pad ..
    + k - 1, columns alike) holds an event: counted here output by output."""
    layer = conv(size=size, k=k, pad=pad, stride=stride, seed=size)
    x = np.random.default_rng(size).random((5, 2, size, size)) < 0.08
    _, ho, wo = layer.out_shape
    hit = np.zeros((5, ho, wo), bool)
    for yo in range(ho):
        for xo in range(wo):
            y0, x0 = yo * stride - pad, xo * stride - pad
            win = x[:, :, max(0, y0):y0 + k, max(0, x0):x0 + k]
            hit[:, yo, xo] = win.reshape(5, -1).any(axis=1)
    assert hit.any() and not hit.all()
    for cols in (32, 256):
        slots = cols // 16
        flat = np.broadcast_to(hit[:, None], (5, *layer.out_shape)).reshape(5, -1)
        want = sum(int(frame[r:r + slots].any()) * len(frame[r:r + slots])
                   for frame in flat for r in range(0, flat.shape[1], slots))
        assert reached_neurons(layer, x, cols) == want


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), density=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
       cols=st.sampled_from([32, 64, 256]))
@example(seed=0, density=1.0, cols=256)              # every row of every frame
def test_reached_membranes_are_a_subset_of_the_full_pass(seed, density, cols):
    layer = conv(seed=seed)
    x = np.random.default_rng(seed).random((4, 2, 4, 4)) < density
    active = int(x.reshape(4, -1).any(axis=1).sum())
    reach = reached_neurons(layer, x, cols)
    assert reach <= active * layer.n_neurons
    if density == 1.0:
        assert reach == 4 * layer.n_neurons


# ----------------------------------------------------- shared budget and DRAM tier

def two_layer_net():
    rng = np.random.default_rng(1)
    layers = [conv(c=2, n=4, size=8, seed=1),
              SnnLayer("fc", "fc", (4, 8, 8), (10,),
                       rng.integers(-8, 8, (10, 256)).astype(np.int32), theta=30)]
    layers[0].name = "conv"
    net = SnnNet("two", (2, 8, 8), layers, SnnSpec(rows=64, cols=64))
    net.validate()
    return net


def test_the_dram_tier_by_hand():
    """conv: 72 weights (576 bits), 256 membranes (4096 bits); fc: 2560 weights (20480
    bits), 10 membranes (160 bits). Arrays of 64 x 64 bits."""
    net = two_layer_net()
    frames = random_events(net, 1, 3, 0.8, seed=2)
    result = run_snn(net, frames, keep_spikes=True)
    reached = reach_counts(net, frames, result)
    conv_l, fc = net.spiking_layers
    st0 = result.stats[0]
    opts = layer_options(conv_l, st0, net.spec, reached[0])
    moved = 2 * reached[0] * 16
    assert opts["ws", True] == (576, -(-(576 + 64) // 64), 576 + moved)
    assert opts["ws", False] == (576, 0, 576 * st0.active_steps + moved)
    assert opts["os", True][2] == st0.slices_in * 4 * 9 * 8
    assert opts["os", False][2] == moved + st0.slices_in * 4 * 9 * 8
    work = working_rows(net.spiking_layers, net.spec)
    assert work == max(buffer_bits(l, f, 64) for l in (conv_l, fc) for f in ("ws", "os")) \
        // 64 + 1
    for macros in (1, 2, 8):
        for policy in POLICIES:
            plan = plan_network(net, result.stats, macros, policy, reached)
            assert plan.rows_used <= plan.budget_rows == macros * 64 - work
            assert plan.resident_bits == sum(l.stationary_bits for l in plan.layers
                                             if l.resident)
            assert all((l.rows > 0) == l.resident for l in plan.layers)
    # one macro holds neither fc's weights (320 rows) nor conv's membranes (64 + rows)
    ws1 = plan_network(net, result.stats, 1, "ws", reached)
    assert [(l.dataflow, l.resident) for l in ws1.layers] == [("ws", True), ("ws", False)]
    big = plan_network(net, result.stats, 8, "hs-min", reached)
    assert [(l.dataflow, l.resident) for l in big.layers] == [("ws", True), ("os", True)]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 500), sparsity=st.sampled_from([0.5, 0.9, 0.99]),
       macros=st.integers(1, 6))
@example(seed=0, sparsity=0.99, macros=1)
def test_min_traffic_moves_no_more_than_any_policy(seed, sparsity, macros):
    net = two_layer_net()
    frames = random_events(net, 2, 3, sparsity, seed=seed)
    result = run_snn(net, frames, keep_spikes=True)
    reached = reach_counts(net, frames, result)
    plans = {p: plan_network(net, result.stats, macros, p, reached) for p in POLICIES}
    for p in POLICIES:
        assert plans["min-traffic"].dram_bits <= plans[p].dram_bits
        assert plans[p].dram_bits <= plan_network(net, result.stats, macros, p).dram_bits
    # more macros never move more
    more = plan_network(net, result.stats, macros + 1, "min-traffic", reached)
    assert more.dram_bits <= plans["min-traffic"].dram_bits


def test_policy_and_budget_errors():
    net = two_layer_net()
    stats = run_snn(net, random_events(net, 1, 2, 0.9)).stats
    with pytest.raises(ConfigError, match="policy 'fast': use one of hs-min, ws, os"):
        plan_network(net, stats, 2, "fast")
    with pytest.raises(ConfigError, match="macros = 0"):
        plan_network(net, stats, 0, "ws")
    with pytest.raises(ConfigError, match="1 layer statistics for 2 spiking layers"):
        plan_network(net, stats[:1], 2, "ws")
    tiny = SnnNet("t", (2, 8, 8), net.layers, SnnSpec(rows=4, cols=64))
    with pytest.raises(ConfigError, match="working region"):
        plan_network(tiny, stats, 1, "ws")


def test_one_dram_figure_for_every_family():
    assert SnnConstants().e_dram_fj_per_bit == DcimConstants().e_dram_fj_per_bit == 20310.0


# -------------------------------------------------------- the network at scale

def test_the_flexspim_network_shapes_and_downsampling():
    net = flexspim_net()
    assert net.input_shape == (2, 128, 128) and net.n_classes == 11
    ops = [l.op for l in net.spiking_layers]
    assert ops == ["conv"] * 6 + ["fc"] * 3
    assert {(l.w_bits, l.v_bits) for l in net.spiking_layers} == {(8, 16)}
    small = flexspim_net(downsample=4)
    assert small.input_shape == (2, 32, 32)
    for a, b in zip(net.spiking_layers, small.spiking_layers):
        assert a.weight.shape == b.weight.shape                  # same weights, fewer pixels
    assert net.spiking_layers[6].in_shape == small.spiking_layers[6].in_shape == (128, 2, 2)
    np.testing.assert_array_equal(flexspim_net(seed=3).layers[0].weight,
                                  flexspim_net(seed=3).layers[0].weight)
    with pytest.raises(ConfigError, match="downsample = 3: use one of"):
        flexspim_net(downsample=3)
    with pytest.raises(ConfigError, match="sparsity = 1.5"):
        random_events(net, 1, 1, 1.5)


def test_the_full_network_runs_and_maps_in_seconds():
    """2 x 128 x 128, one sample of 4 timesteps at 95% input sparsity (seeded random
    events) through the reference, then every policy on 2 and 16 macros."""
    net = flexspim_net()
    frames = random_events(net, 1, 4, 0.95, seed=0)
    result = run_snn(net, frames, keep_spikes=True, engine="numpy")
    rates = [s.events_out / (s.steps * l.n_neurons)
             for s, l in zip(result.stats, net.spiking_layers)]
    assert all(0.005 < r < 0.5 for r in rates[:-1]), rates           # every layer spikes
    reached = reach_counts(net, frames, result)
    for macros in (2, 16):
        plans = {p: plan_network(net, result.stats, macros, p, reached) for p in POLICIES}
        assert plans["min-traffic"].dram_bits == min(p.dram_bits for p in plans.values())
        hs = plans["hs-min"]
        assert [l.dataflow for l in hs.layers] == ["ws"] * 4 + ["os"] * 5   # smaller operand
        e = plan_energy(plans["ws"], net, result.stats)
        assert e["energy_dram_pj"] == pytest.approx(
            plans["ws"].dram_bits * (20310 + SnnConstants().e_bit_fj(100.0)) * 1e-3)


def test_policy_study_rows():
    net = flexspim_net(downsample=8)
    rows = policy_study(net, [0.9, 0.99], [2, 4], steps=3)
    assert len(rows) == 2 * 2 * len(POLICIES)
    for r in rows:
        if r["policy"] == "ws":
            assert r["resident_vs_ws"] == 0 and r["dram_vs_ws"] == 1 and r["energy_vs_ws"] == 0
        assert len(r["flows"]) == 9
    by = {(r["sparsity"], r["macros"], r["policy"]): r for r in rows}
    assert by[0.99, 2, "hs-min"]["input_events"] < by[0.9, 2, "hs-min"]["input_events"]
    for s in (0.9, 0.99):
        for m in (2, 4):
            assert by[s, m, "min-traffic"]["dram_vs_ws"] <= min(
                by[s, m, p]["dram_vs_ws"] for p in POLICIES)


# ------------------------------------------------------------------- the command

def test_cost_command_states_traffic_as_a_ratio_and_plans_the_macros(tmp_path):
    net = flexspim_net(downsample=4, n_steps=4)
    save_snn_bundle(net, tmp_path / "snn")
    code, out = cimstack_here("cost", str(tmp_path / "snn"), "--samples", "1", "--macros",
                              "2", "--json", str(tmp_path / "c.json"))
    assert code == 0, out
    assert "DRAM / ws-only" in out and "saved)" not in out
    assert "min-traffic" in out and "model" in out
    assert "seeded random event samples" in out        # not the event digits' shape
    assert "one array per layer: not possible (layer conv4" in " ".join(out.split())
    figs = json.loads((tmp_path / "c.json").read_text())
    assert [p["policy"] for p in figs["snn_plans"]] == list(POLICIES)
    assert figs["snn"] is None
    r = cimstack("cost", str(tmp_path / "snn"), "--samples", "1")
    assert r.returncode != 0 and "give --macros M" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_cost_command_on_a_one_array_network_shows_the_ratio(tmp_path):
    net = two_layer_net()
    net.meta = {"n_steps": 3}
    save_snn_bundle(net, tmp_path / "snn")
    code, out = cimstack_here("cost", str(tmp_path / "snn"), "--samples", "2", "--json",
                              str(tmp_path / "c.json"))
    assert code == 0, out
    totals = json.loads((tmp_path / "c.json").read_text())["snn"]["totals"]
    text = " ".join(out.split())
    assert f"= x{totals['traffic_vs_ws']:.2f}" in text and "saved)" not in text
    assert "operand traffic / weight-stationary only" in text
