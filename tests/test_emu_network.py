"""Whole networks on the emulated overlay (pynq + software Zynq + C-sim kernel)
against the reference, bit for bit; backend selection; board runs when present."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cimstack import emu
from cimstack.backends import open_backend
from cimstack.config import DcimSpec
from cimstack.errors import ConfigError, HardwareError
from cimstack.ref.network import run_network
from cimstack.verify.compare import verify

from conftest import digits_like_bundle


@pytest.fixture(scope="module")
def emu_backend():
    return open_backend("emu", timeout_s=5.0)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.tuples(*[st.integers(1, 8)] * 3), x=st.tuples(*[st.integers(1, 8)] * 3),
       sparsity=st.sampled_from([0.0, 0.5]), rows_on=st.sampled_from([4, 16]),
       psum_bits=st.sampled_from([None, 2, 3]), mode=st.sampled_from(["saturate", "quantize"]),
       seed=st.integers(0, 1000))
def test_random_networks_bit_exact(emu_backend, w, x, sparsity, rows_on, psum_bits, mode, seed):
    spec = DcimSpec(rows_on=rows_on, psum_bits=psum_bits, psum_mode=mode)
    bundle = digits_like_bundle(seed, w_bits=w, x_bits=x, sparsity=sparsity, spec=spec)
    images = np.random.default_rng(seed).integers(0, 1 << x[0], (7, 1, 8, 8))
    rep = verify(bundle, images, emu_backend.engine, "emu")
    assert rep.ok, rep.summary()


def test_batches_split_over_transfers_stay_exact(emu_backend):
    bundle = digits_like_bundle(3)
    runner_max = emu_backend.overlay.runner().max_vectors
    assert runner_max > 64
    backend = open_backend("emu")
    small = backend.overlay.runner(timeout_s=5.0)
    small.max_vectors = 50                     # conv1 has 64 vectors per image
    images = np.random.default_rng(3).integers(0, 256, (5, 1, 8, 8))
    got = run_network(bundle, images, engine=small.engine)
    np.testing.assert_array_equal(got.logits, run_network(bundle, images).logits)
    assert small.times.calls > 3 * 2 + 3       # weight+requant loads and split computes


def test_stage_times_are_reported(emu_backend):
    bundle = digits_like_bundle(4)
    run_network(bundle, np.zeros((3, 1, 8, 8), np.int64), engine=emu_backend.engine)
    times = emu_backend.stage_times()
    assert set(times["seconds"]) == {"pack", "dma_in", "compute", "dma_out", "unpack"}
    assert times["items"] > 0 and times["calls"] > 0
    assert all(v >= 0 for v in times["seconds"].values())


def test_auto_takes_emulation_without_a_board(capsys):
    from rich.console import Console
    console = Console(force_terminal=False)
    backend = open_backend("auto", console=console)
    assert backend.name == ("board" if emu.real_device_present() else "emu")
    assert "backend auto ->" in capsys.readouterr().out


def test_unknown_backend():
    with pytest.raises(ConfigError, match="unknown backend 'fpga'"):
        open_backend("fpga")


@pytest.mark.skipif(emu.real_device_present(), reason="a board is present")
def test_board_backend_without_board_is_a_clear_error():
    with pytest.raises(HardwareError, match="pynq found no device"):
        open_backend("board")


@pytest.mark.board
@pytest.mark.skipif(not emu.real_device_present(), reason="needs a PYNQ-Z2 (pynq found no device)")
def test_board_matches_reference():        # pragma: no cover - runs on the board
    import os
    bit = os.environ.get("CIMSTACK_BITFILE", "cimstack.bit")
    backend = open_backend("board", bitfile=bit)
    bundle = digits_like_bundle(5)
    images = np.random.default_rng(5).integers(0, 256, (32, 1, 8, 8))
    assert verify(bundle, images, backend.engine, "board").ok
