"""The snn kernel's cycle and DMA model (cimstack.cost.fpga.snn_fpga_cost) against a
count made by walking the loops of hls/snn/snn_top.cpp for a tiny one-layer network,
its monotony in events, and `cimstack cost SNN_BUNDLE` printing it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from cimstack.config import SnnSpec
from cimstack.cost import FpgaTiming, snn_fpga_cost
from cimstack.cost.fpga import snn_layer_fpga
from cimstack.events.wire import packet_words32
from cimstack.hw.snn import ARRAY_BITS, conv_group, group_of, plan_slices
from cimstack.overlay_shape import SNN
from cimstack.ref.snn import LayerStats, SnnLayer, SnnNet, conv_out, run_snn
from cimstack.snn_bundle import save_snn_bundle

B, T, IN = 2, 3, (2, 3, 3)            # samples, timesteps, input shape
N_IN = int(np.prod(IN))
E = FpgaTiming().loop_entry_cycles


def one_layer(op: str, pad: int = 0, neurons: int = 600, stride: int = 1,
              out_c: int = 4, w_bits: int = 8) -> SnnNet:
    """fc: 18 inputs -> ``neurons`` (600 at 16 bits need two slices); conv: 2 ->
    ``out_c`` channels, k = 3, padding ``pad``, stride ``stride``."""
    rng = np.random.default_rng(0)
    if op == "fc":
        layer = SnnLayer("fc", "fc", IN, (neurons,), rng.integers(-9, 10, (neurons, N_IN)),
                         theta=20, w_bits=16, v_bits=16)
    else:
        o = conv_out(IN[1], 3, pad, stride)
        layer = SnnLayer("conv", "conv", IN, (out_c, o, o),
                         rng.integers(-9, 10, (out_c, 2, 3, 3)), padding=pad, stride=stride,
                         theta=20, w_bits=w_bits, v_bits=16)
    net = SnnNet("tiny", IN, [layer], SnnSpec())
    net.validate()
    return net


def hand_count(layer: SnnLayer, frames: np.ndarray, last: bool = True) -> tuple[int, int]:
    """(cycles, bytes in) of the driver's calls (per slice one load and one run of all
    samples), walking the kernel's loops: II = 1 loops cost their trip count + E, READ
    one cycle per 32-bit word; a conv event reads its channel's weights into its slot at
    the channel's first event (when every input channel has a slot), and adds one weight
    row of the slice's c_n channels per reached kernel position (rows and columns whose
    output is inside): the lane loop per position, or with c_n < ceil(k / stride) the
    column loop per lane and row."""
    cap = SNN.capacity
    cycles = beats = 0
    for lo, cnt in plan_slices(layer):
        part, first = group_of(layer, lo)               # the slice's channel group
        w_count = part.n_weights if layer.op == "conv" else N_IN * cnt
        cycles += -(-w_count // 4) * (4 + E)                     # LOAD_W
        cycles += 2 * (cap["MAX_SLOTS"] + E)                     # CLR_TAGS: load, run
        if layer.op == "conv":
            _, _, k, _ = part.weight.shape
            st, pad, oh = layer.stride, layer.padding, layer.out_shape[1]
            plane = oh * layer.out_shape[2]
            c_n = (lo - first + cnt - 1) // plane - (lo - first) // plane + 1
            cached = min(cap["SLICE_WORDS"] // (c_n * k * k), cap["MAX_SLOTS"]) >= IN[0]
            held = set()                                 # input channels in their slots
        for sample in frames:
            cycles += cnt + E                                    # CLR_V at the sample
            for t, frame in enumerate(sample):
                addrs = np.flatnonzero(frame)
                words = packet_words32(t, addrs).size
                beats += words // 2
                cycles += -(-N_IN // 64) + E + cnt + E + words   # CLR_SEEN, CLR_ACC, READ
                for a in addrs:                                  # integrate
                    if layer.op == "fc":
                        cycles += cnt + E
                        continue
                    c = a // (IN[1] * IN[2])
                    if cached and c not in held:                 # SLICE_N x SLICE_T
                        cycles += c_n * (k * k + E) + E
                        held.add(c)
                    qy, ry = divmod(a // IN[2] % IN[1] + pad, st)
                    qx, rx = divmod(a % IN[2] + pad, st)

                    def reached(r, q, out):  # dy = r + i * st < k, 0 <= q - i < out
                        return sum(r + i * st < k and 0 <= q - i < out for i in range(k))
                    rows = reached(ry, qy, oh)
                    cols = reached(rx, qx, layer.out_shape[2])
                    if c_n < -(-k // st):                        # LANE_ROWS x ROW_COLS
                        cycles += c_n * rows * (cols + E)
                    else:                                        # CONV_DY x CONV_DX x LANES
                        cycles += rows * cols * (c_n + E)
                cycles += cnt + E                                # FIRE
            if last:
                cycles += cnt + 1 + E                            # V_PACKET
    return cycles, beats * 8


def extra_beats(x: np.ndarray) -> int:
    """Beats the model counts beyond the packets' own: it takes floor(events / 2) + 1
    beats per timestep packet summed over the run, so each timestep with an odd count
    past the first adds half a beat."""
    per_step = x.reshape(B * T, -1).sum(1)
    return (int((per_step % 2).sum()) - int(per_step.sum()) % 2) // 2


def frames_of(events) -> np.ndarray:
    x = np.zeros((B, T, N_IN), bool)
    for b, t, i in events:
        x[b, t, i] = True
    return x.reshape(B, T, *IN)


EVENTS = st.sets(st.tuples(st.integers(0, B - 1), st.integers(0, T - 1),
                           st.integers(0, N_IN - 1)), max_size=40)


@settings(max_examples=30, deadline=None)
@given(events=EVENTS)
@example(events=set())                                       # no events
@example(events={(0, 1, 5)})                                 # one event
@example(events={(1, 2, i) for i in range(N_IN)})            # a full timestep
def test_fc_cycles_and_bytes_match_the_hand_count(events):
    net = one_layer("fc")
    layer, x = net.layers[0], frames_of(events)
    fig = snn_fpga_cost(net, run_snn(net, x), B)
    row, = fig["layers"]
    cycles, bytes_in = hand_count(layer, x)
    slices = len(plan_slices(layer))
    assert slices == row["slices"] == 2
    over = extra_beats(x)
    assert row["cycles"] == cycles + slices * 2 * over
    assert row["bytes_in"] == bytes_in + slices * 8 * over
    weights = sum(-(-N_IN * cnt // 4) for _, cnt in plan_slices(layer)) * 8   # once
    assert row["bytes_weights"] == weights
    assert row["bytes_membranes"] == B * sum((cnt + 2) // 2 for _, cnt in plan_slices(layer)) * 8
    assert fig["cycles"] == row["cycles"] and fig["samples"] == B
    assert fig["images_per_s"] == pytest.approx(B * 100e6 / row["cycles"])
    assert fig["bound_images_per_s"] == min(fig["images_per_s"], fig["dma_bound_images_per_s"])


@pytest.mark.parametrize("pad, stride", [(0, 1), (2, 1), (1, 2), (2, 2), (0, 3)])
def test_conv_fan_out_exact_when_every_row_is_inside_else_an_upper_bound(pad, stride):
    net = one_layer("conv", pad, stride=stride)
    x = frames_of({(0, 0, 4), (0, 1, 0), (0, 1, 8), (1, 2, 13), (1, 2, 17), (1, 0, 9)})
    row, = snn_fpga_cost(net, run_snn(net, x), B)["layers"]
    cycles, _ = hand_count(net.layers[0], x)
    cycles += 2 * extra_beats(x)                 # one slice, 2 words per beat
    # exact with padding k - 1 (every row in the output) and with stride = k and no
    # padding (one kernel row and column per event)
    if (pad, stride) in ((2, 1), (0, 3)):
        assert row["cycles"] == cycles
    else:
        assert row["cycles"] > cycles


def test_a_conv_larger_than_the_array_runs_in_channel_groups():
    """600 output channels of 2 x 3 x 3 16-bit weights (172,800 bits) do not fit the
    131,072-bit array: groups of 190 channels (their weights and their 25 membranes
    each), each slice loads its group's weights and enters its group's channels per
    event."""
    net = one_layer("conv", pad=2, out_c=600, w_bits=16)
    layer = net.layers[0]
    assert conv_group(layer) == ARRAY_BITS // (2 * 9 * 16 + 25 * 16) == 190
    assert len(plan_slices(layer)) == 4                 # 190, 190, 190, 30 channels
    slices = plan_slices(layer)
    assert sum(c for _, c in slices) == layer.n_neurons
    for lo, cnt in slices:
        part, first = group_of(layer, lo)
        assert first <= lo and lo + cnt <= first + part.n_neurons       # inside its group
        assert part.n_weights * 16 + cnt * 16 <= ARRAY_BITS
    x = frames_of({(0, 0, 4), (0, 1, 0), (0, 1, 8), (1, 2, 13), (1, 2, 17), (1, 0, 9)})
    row, = snn_fpga_cost(net, run_snn(net, x), B)["layers"]
    cycles, _ = hand_count(layer, x)
    assert row["slices"] == len(slices)
    assert row["cycles"] == cycles + len(slices) * 2 * extra_beats(x)
    assert row["bytes_weights"] == sum(-(-group_of(layer, lo)[0].n_weights // 4)
                                       for lo, _ in slices) * 8


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["fc", "conv"]), events=st.integers(0, 10_000),
       more=st.integers(0, 10_000), steps=st.integers(1, 100))
@example(op="fc", events=0, more=1, steps=1)
def test_monotone_in_events(op, events, more, steps):
    layer = one_layer(op).layers[0]
    t = FpgaTiming()
    figs = [snn_layer_fpga(layer, LayerStats("l", op, events_in=n, events_out=n, steps=steps),
                           1, n, t) for n in (events, events + more)]
    for key in ("cycles", "bytes_in", "bytes_out"):
        assert figs[0][key] <= figs[1][key]
    assert (figs[0]["cycles"] < figs[1]["cycles"]) == (more > 0)


def test_cli_prints_the_snn_kernel_figures(tmp_path):
    save_snn_bundle(one_layer("fc", neurons=10), tmp_path / "snn")
    r = subprocess.run([sys.executable, "-c", "from cimstack.cli import main; main()", "cost",
                        str(tmp_path / "snn"), "--samples", "2", "--json",
                        str(tmp_path / "s.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "snn kernel on pynq-z2" in r.stdout and "compute vs AXI DMA" in r.stdout
    fpga = json.loads((tmp_path / "s.json").read_text())["fpga"]
    assert [row["layer"] for row in fpga["layers"]] == ["fc"]
    assert fpga["bottleneck"] in ("compute", "dma") and fpga["resources"]["dsp"] > 0


def test_a_layer_over_the_kernels_input_limit_is_refused():
    """The kernel keeps MAX_IN input neurons per layer; the driver refuses more instead
    of letting the kernel skip the layer's timesteps."""
    from cimstack.mapping.snn import SnnMappingError
    from cimstack.overlay_shape import SNN
    side = 182                                    # 2 x 182 x 182 = 66,248 > 65,536 inputs
    layer = SnnLayer("big", "conv", (2, side, side), (1, side, side),
                     weight=np.ones((1, 2, 1, 1), np.int64), theta=4)
    assert 2 * side * side > SNN.capacity["MAX_IN"] == 65536
    with pytest.raises(SnnMappingError, match="exceed the snn kernel's MAX_IN = 65536"):
        plan_slices(layer)


def test_flexspims_network_runs_on_the_kernel_at_full_size():
    """FlexSpIM's 6-conv + 3-FC network on 2 x 128 x 128 events: conv4's 147,456 weight
    bits exceed the array (channel groups) and conv2 reads 65,536 inputs (MAX_IN)."""
    from cimstack.cost.snn import event_run
    from cimstack.models.flexspim import flexspim_net
    net = flexspim_net(1)
    conv4 = next(layer for layer in net.spiking_layers if layer.name == "conv4")
    assert conv4.n_weights * conv4.w_bits > ARRAY_BITS and conv_group(conv4) < 64
    assert max(layer.n_inputs for layer in net.spiking_layers) == 65536
    fig = snn_fpga_cost(net, event_run(net, 0.99, 1, 2, 0), 1)
    rows = {row["layer"]: row for row in fig["layers"]}
    assert rows["conv4"]["slices"] == len(plan_slices(conv4)) > 1
    assert fig["cycles"] > 0 and fig["images_per_s"] > 0


@pytest.mark.parametrize("out_c", [1, 2, 3])
def test_few_lanes_loop_over_lanes_and_rows(out_c):
    """A slice of fewer output channels than kernel columns reached (c < ceil(k /
    stride) = 3) pipelines the columns per lane and row: c * r * (r + E) cycles per
    event, exact with padding k - 1; from 3 channels on, the lane loop per position."""
    net = one_layer("conv", pad=2, out_c=out_c)
    x = frames_of({(0, 0, 4), (0, 1, 0), (0, 1, 8), (1, 2, 13), (1, 2, 17), (1, 0, 9)})
    row, = snn_fpga_cost(net, run_snn(net, x), B)["layers"]
    cycles, _ = hand_count(net.layers[0], x)
    assert row["cycles"] == cycles + 2 * extra_beats(x)
