"""The board path against a real OpenSSH server on 127.0.0.1 (tests/sshd.py): this
machine is the "board", its Python (``sys.executable``, no sudo) the board's, a
temporary folder the remote root. Deploy, run --board and verify --board go through
the CLI as a user
types them: the address form ``user@127.0.0.1:port`` with ``--ssh-option`` for the
key and known_hosts, and a Host alias in an ssh config given with ``--ssh-config``;
the run uses the remote emulated overlay (``--backend emu``) and verifies every layer
here. A connection cut mid-transfer resumes from the partial file; a wrong key or a
closed port is one clear line. Skipped with the reason where sshd is missing."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from badcase import run_cli
from cimstack.bundle import save_bundle
from cimstack.deploy.options import BoardOptions
from cimstack.deploy.remote import deploy
from cimstack.deploy.transfer import TransferInterrupted, sha256_file
from conftest import digits_like_bundle
from sshd import start_sshd

pytestmark = pytest.mark.sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def board_flags(root, ssh_options=()) -> list[str]:
    """The board options of a loopback "board": this Python, no sudo, ``root``."""
    return ["--root", str(root), "--python", sys.executable, "--no-sudo",
            *(f"--ssh-option={o}" for o in ssh_options)]


def test_deploy_and_run_on_the_remote_emulated_overlay(sshd, tmp_path):
    bundle = save_bundle(digits_like_bundle(seed=3, sparsity=0.3), tmp_path / "bundle")
    root = tmp_path / "board-root"
    deploy_args = ["deploy", "--board", sshd.address, "--bundle", str(bundle),
                   *board_flags(root, sshd.ssh_options())]
    code, out = run_cli(deploy_args, tmp_path)
    assert code == 0, out
    assert f"deployed to {sshd.address} over ssh into {root}" in " ".join(out.split())
    assert (root / "runtime" / "host" / "cimstack" / "deploy" / "runner.py").is_file()
    assert (root / "bundles" / "random-digits" / "bundle.json").is_file()

    # the same board through a Host alias of an ssh config (port, user, key from it)
    config = sshd.client_config("cimstack-loopback")
    code, out = run_cli(["run", str(bundle), "--board", "cimstack-loopback", "--ssh-config",
                         str(config), "--backend", "emu", "--random", "6",
                         *board_flags(root)], tmp_path)
    assert code == 0, out
    assert f"running random-digits on {sshd.user}@cimstack-loopback (emu)" in out
    # deployed again first: the bundle (and the runtime, unless this tree changed) not sent
    assert re.search(r"bundle-random-digits\.tar\.gz .* unchanged, not sent", out), out
    report = json.loads((tmp_path / "cimstack-out" / "verify-board" / "verify.json")
                        .read_text())
    assert report["backend"].startswith("emu@") and report["images"] == 6
    assert report["prediction_agreement"] == 1.0
    runs = list((root / "runs").iterdir())
    info = json.loads((runs[0] / "out" / "run.json").read_text())
    assert info["backend"] == "emu" and info["torch_imported"] is False

    # verify through the same board: the report in --report, every layer compared here
    code, out = run_cli(["verify", str(bundle), "--board", "cimstack-loopback",
                         "--ssh-config", str(config), "--backend", "emu", "--random", "4",
                         "--report", str(tmp_path / "checked"), *board_flags(root)], tmp_path)
    assert code == 0, out
    report = json.loads((tmp_path / "checked" / "verify.json").read_text())
    assert report["backend"].startswith("emu@") and report["images"] == 4 and report["ok"]
    assert [layer["name"] for layer in report["layers"]] == ["conv1", "pool1", "conv2",
                                                             "pool2", "flatten", "fc"]

    # --board defaults to --backend board: on a host without an FPGA, one clear line
    code, out = run_cli(["run", str(bundle), "--board", sshd.address, "--random", "2",
                         *board_flags(root, sshd.ssh_options())], tmp_path)
    last = out.strip().splitlines()[-1]
    assert code == 2 and last.startswith(f"error: the run on {sshd.address} (board) failed"), out
    assert "pynq found no device here (run on the board, or use --backend emu)" in last


def test_a_connection_cut_mid_transfer_resumes(sshd, tmp_path):
    root = tmp_path / "board-root"
    options = BoardOptions.local(root=str(root), via="ssh", ssh_options=sshd.ssh_options())
    remote = options.ssh_remote(sshd.address)
    held = []

    def cut_once(name, done, total):
        if name != "runtime.tar.gz" or held:
            return
        deadline = time.monotonic() + 10          # wait for bytes to land, then cut
        while time.monotonic() < deadline:
            parts = list((root / ".incoming").glob("runtime.tar.gz.*.part"))
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.01)
        sshd.cut()
        held.append(parts[0].stat().st_size)

    with pytest.raises(TransferInterrupted, match="run again to resume"):
        deploy(remote, options=options, progress=cut_once)
    part, = (root / ".incoming").glob("runtime.tar.gz.*.part")
    assert 0 < held[0] <= part.stat().st_size
    dep = deploy(options.ssh_remote(sshd.address), options=options)
    st = dep.transfers["runtime.tar.gz"]
    assert 0 < st.resumed_from < st.size and st.sent == st.size - st.resumed_from
    assert sha256_file(root / ".incoming" / "runtime.tar.gz") == st.sha256
    assert not list((root / ".incoming").glob("*.part"))


def test_reachability_asks_ssh_not_port_22(sshd):
    """``--via auto``'s check: the port comes from the address or the ssh config."""
    assert BoardOptions(ssh_options=sshd.ssh_options()).ssh_remote(sshd.address).works()
    alias = BoardOptions(ssh_config=str(sshd.client_config("lo"))).ssh_remote("lo")
    assert alias.works() and alias.resolved()["port"] == str(sshd.port)
    wrong = BoardOptions(ssh_options=sshd.ssh_options(sshd.wrong_key))
    assert not wrong.ssh_remote(sshd.address).works()


def test_wrong_key_or_closed_port_is_one_clear_line(sshd, tmp_path):
    code, out = run_cli(["deploy", "--board", sshd.address,
                         *board_flags(tmp_path / "r", sshd.ssh_options(sshd.wrong_key))],
                        tmp_path)
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in out, out
    assert "Permission denied (publickey)" in lines[0]
    assert f"ssh-copy-id -p {sshd.port} {sshd.user}@127.0.0.1" in lines[0]
    code, out = run_cli(["deploy", "--board", f"{sshd.user}@127.0.0.1:1",
                         *board_flags(tmp_path / "r", sshd.ssh_options())], tmp_path)
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1, out
    assert "Connection refused" in lines[0] and "check the address and port" in lines[0]
