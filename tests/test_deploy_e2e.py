"""End to end without a board: deploy to a pseudo-terminal "board" (a real bash
behind a login prompt in a temporary folder), run the bundle there on the emulated
overlay built from the deployed .hwh, bring the outputs back over the serial link
and verify them against the host reference."""

from __future__ import annotations

import json
import os
import tarfile

import numpy as np
import pytest

from cimstack.bundle import save_bundle
from cimstack.deploy.console import ConsoleError
from cimstack.deploy.fakeboard import FakeBoard
from cimstack.deploy.options import BoardOptions
from cimstack.deploy.remote import SerialRemote, deploy, run_on_board

from conftest import digits_like_bundle, graph_bundle


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """One pty board for the module, with the runtime, overlay and a bundle deployed.
    The board side gets its own C-sim cache: the cache key holds the absolute include
    paths, so sharing the host's would only add a library per run to it."""
    tmp = tmp_path_factory.mktemp("e2e")
    home = tmp / "home"
    board = FakeBoard(home, noise_s=0.5, env={"CIMSTACK_CACHE": str(tmp / "cache")}).start()
    bundle = save_bundle(digits_like_bundle(seed=3, sparsity=0.3), tmp / "bundle")
    options = BoardOptions.local()
    remote = SerialRemote(board.port, chunk=8192, login_timeout=10)
    dep = deploy(remote, bundle, options=options)
    yield tmp, home, bundle, remote, options, dep
    remote.close()
    board.stop()


def test_deploy_run_verify_on_the_pty_board(deployed):
    tmp, home, bundle, remote, options, dep = deployed
    root = home / "cimstack"
    assert (root / "runtime" / "host" / "cimstack" / "deploy" / "runner.py").is_file()
    assert not (root / "runtime" / "host" / "cimstack" / "quant").exists()
    assert (root / "runtime" / "boards" / "pynq-z2" / "board.toml").is_file()
    assert (root / "overlay" / "cimstack.hwh").is_file()
    assert (root / "bundles" / "random-digits" / "bundle.json").is_file()
    assert set(dep.transfers) >= {"runtime.tar.gz", "overlay.tar.gz"}
    assert not any(t.skipped for t in dep.transfers.values())

    x = np.random.default_rng(0).integers(0, 256, (12, 1, 8, 8)).astype(np.uint8)
    labels = np.arange(12) % 10
    res = run_on_board(bundle, remote, x, labels=labels, backend="emu", options=options,
                       report_dir=tmp / "report")
    rep = res.report
    assert rep.ok, rep.summary()
    assert rep.images == 12 and rep.prediction_agreement == 1.0
    assert rep.backend.startswith("emu@") and rep.accuracy_backend == rep.accuracy_reference
    assert res.info["backend"] == "emu" and res.info["torch_imported"] is False
    assert res.info["stages"]["calls"] > 0
    assert all(t.skipped for t in res.deploy.transfers.values())     # second deploy: nothing sent
    assert (tmp / "report" / "verify.json").is_file()
    runs = list((root / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "out" / "run.json").is_file()
    with tarfile.open(runs[0] / "out.tar.gz") as tar:
        assert "out/fc.npy" in tar.getnames()


def test_a_graph_bundle_runs_on_the_pty_board(deployed):
    """A schema-2 graph (signed input, depthwise and dilated conv, residual add, pools,
    concat, bipolar codes) deployed and run by the board runtime, every node's codes
    equal to the reference here."""
    tmp, home, _, remote, options, _ = deployed
    bundle = save_bundle(graph_bundle(seed=1), tmp / "graph")
    x = np.random.default_rng(1).integers(-8, 8, (6, 2, 9, 7)).astype(np.int8)
    res = run_on_board(bundle, remote, x, backend="emu", options=options)
    assert res.report.ok, res.report.summary()
    assert res.report.images == 6 and res.report.prediction_agreement == 1.0
    name = json.loads((bundle / "bundle.json").read_text())["name"]
    deployed_doc = home / "cimstack" / "bundles" / name / "bundle.json"
    assert json.loads(deployed_doc.read_text())["schema_version"] == 2


def test_a_failing_run_reports_the_board_side_error(deployed):
    tmp, home, bundle, remote, options, dep = deployed
    x = np.zeros((2, 1, 4, 4), np.uint8)                    # wrong input shape
    with pytest.raises(ConsoleError, match="CIMSTACK-RUN-FAILED.*shape"):
        run_on_board(bundle, remote, x, backend="reference", options=options,
                     deploy_first=False)


def test_board_env_commands():
    options = BoardOptions()
    cmd = options.python_cmd("-m cimstack.deploy.runner")
    assert cmd.startswith("cd cimstack && printf")
    assert "sudo -S" in cmd and "XILINX_XRT=/usr" in cmd and "pynq-venv" in cmd
    assert "PYTHONPATH=\"$PWD/runtime/host\"" in cmd
    assert "sudo" not in BoardOptions.local().python_cmd("-V")


@pytest.mark.board
def test_run_on_a_real_board(tmp_path):
    port = os.environ.get("CIMSTACK_BOARD_PORT") or os.environ.get("CIMSTACK_BOARD_HOST")
    if not port:
        pytest.skip("no PYNQ-Z2: set CIMSTACK_BOARD_PORT or CIMSTACK_BOARD_HOST")
    from cimstack.deploy.remote import default_overlay
    if default_overlay() is None:
        pytest.skip("no built overlay (make -C overlay)")
    bundle = save_bundle(digits_like_bundle(), tmp_path / "bundle")
    x = np.random.default_rng(0).integers(0, 256, (8, 1, 8, 8)).astype(np.uint8)
    assert run_on_board(bundle, port, x, backend="board").report.ok
