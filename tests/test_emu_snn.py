"""The snn kernel on the emulated overlay (real pynq API, AXI DMA model, C-sim kernel)
against the reference, and the driver's time limits.

"""

from __future__ import annotations

import numpy as np
import pytest


from cimstack.errors import DmaTimeout  # noqa: E402
from cimstack.backends import open_snn_runner  # noqa: E402
from cimstack.hw.snn import SnnKernelRunner, layer_args  # noqa: E402
from cimstack.overlay_shape import overlay_shape  # noqa: E402
from cimstack.ref.snn import run_snn  # noqa: E402
from cimstack.snn_cli import verify_snn  # noqa: E402

from test_ref_snn import random_net  # noqa: E402


@pytest.fixture(scope="module")
def emu_runner(tmp_path_factory) -> SnnKernelRunner:
    return open_snn_runner("emu", timeout_s=5.0)[0]


def test_shape_has_an_snn_slot():
    shape = overlay_shape()
    assert shape.slot("snn").kernel.vlnv == "cimstack.org:hls:snn_top:1.0"
    bases = [s.base for s in shape.slots] + [s.dma.base for s in shape.slots]
    assert len(set(bases)) == len(bases)


@pytest.mark.parametrize("seed,mode,leak", [(0, "saturate", 0), (1, "wrap", 2)])
def test_network_bit_exact_on_the_emulated_overlay(emu_runner, seed, mode, leak):
    net = random_net(seed, w_bits=8, v_bits=12, leak=leak, mode=mode)
    frames = np.random.default_rng(seed).random((2, 4, 2, 8, 8)) < 0.2
    ref = run_snn(net, frames, keep_spikes=True)
    got = emu_runner.run(net, frames)
    for name in got.spikes:
        np.testing.assert_array_equal(got.spikes[name], ref.spikes[name])
    np.testing.assert_array_equal(got.v_final, ref.v_final)
    times = emu_runner.times.to_dict()
    assert times["calls"] > 0 and times["items"] >= 2 * 4 * 2


def test_verify_report():
    net = random_net(4)
    frames = np.random.default_rng(4).random((1, 3, 2, 8, 8)) < 0.2
    rep = verify_snn(net, frames, "emu", timeout_s=5.0)
    assert rep["ok"] and rep["layers"][0]["mismatches"] == 0
    assert set(rep["stages"]["seconds"]) == {"pack", "dma_in", "compute", "dma_out", "unpack"}
    assert rep["stages"]["weight_loads"] > 0 and rep["stages"]["weight_load_bytes"] > 0


def test_short_input_times_out_and_recovers(emu_runner):
    """n_words larger than the packet: the kernel waits, the driver times out, resets
    the DMA, and the next call works."""
    net = random_net(5)
    layer = net.layers[0]
    tx = emu_runner.transact
    old = tx.timeout_s
    tx.timeout_s = 0.3
    args = {**layer_args(layer, (2, 8, 8), 1, 0, layer.n_neurons), "mode": 2, "n_words": 50}
    try:
        with pytest.raises(DmaTimeout):
            tx(args, np.array([1 << 31], np.uint64), 64, "short input")
    finally:
        tx.timeout_s = old
    runner, _ = open_snn_runner("emu", timeout_s=5.0)   # a fresh download clears the kernel
    frames = np.random.default_rng(5).random((1, 3, 2, 8, 8)) < 0.2
    np.testing.assert_array_equal(runner.run(net, frames).counts, run_snn(net, frames).counts)
