"""File transfer over the serial console (pseudo-terminal board running bash):
integrity, a corrupted chunk detected and re-sent, an interrupted transfer resumed;
and the ssh/scp path with stand-in ssh and scp programs (no network)."""

from __future__ import annotations

import hashlib
import os
import re
import stat

import pytest

from cimstack.deploy.console import SerialConsole
from cimstack.deploy.fakeboard import FakeBoard
from cimstack.deploy.transfer import TransferInterrupted, get_file, put_file


def blob(path, n, seed=0):
    import random
    path.write_bytes(random.Random(seed).randbytes(n))
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def session(board):
    c = SerialConsole.open(board.port)
    c.login(timeout=10)
    return c


def test_put_and_get_keep_integrity(tmp_path, home):
    src = blob(tmp_path / "data.bin", 100_000)
    with FakeBoard(home, noise_s=0.05) as b:
        c = session(b)
        st = put_file(c, src, "in/data.bin", chunk=8192)
        assert sha(home / "in" / "data.bin") == sha(src) == st.sha256
        assert st.chunks == -(-100_000 // 8192) and st.retries == 0 and not st.skipped
        assert put_file(c, src, "in/data.bin").skipped          # same content: not resent
        back = tmp_path / "back.bin"
        st = get_file(c, "in/data.bin", back, chunk=16384)
        assert sha(back) == sha(src) and st.size == 100_000
        assert not list(home.rglob("*.part")) and not list(tmp_path.glob("*.part"))
        c.close()


def test_corrupted_chunk_is_detected_and_resent(tmp_path, home):
    src = blob(tmp_path / "data.bin", 40_000, seed=1)
    state = {"done": False}

    def corrupt(data: bytes) -> bytes:
        m = re.search(rb"[A-Za-z0-9+/]{76}", data)
        if state["done"] or not m:
            return data
        state["done"] = True
        i = m.start() + 10
        flipped = b"B" if data[i:i + 1] != b"B" else b"C"
        return data[:i] + flipped + data[i + 1:]

    with FakeBoard(home, input_filter=corrupt) as b:
        c = session(b)
        st = put_file(c, src, "x/data.bin", chunk=4096)
        c.close()
    assert state["done"] and st.retries == 1
    assert sha(home / "x" / "data.bin") == sha(src)


def test_interrupted_transfer_resumes(tmp_path, home):
    src = blob(tmp_path / "data.bin", 120_000, seed=2)
    with FakeBoard(home, disconnect_after_input=60_000) as b:
        c = session(b)
        with pytest.raises(TransferInterrupted) as exc:
            put_file(c, src, "y/data.bin", chunk=4096)
        c.close(logout=False)
    assert 0 < exc.value.done < 120_000
    parts = list((home / "y").glob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size > 0
    held = parts[0].stat().st_size
    with FakeBoard(home) as b:                      # the cable is back
        c = session(b)
        st = put_file(c, src, "y/data.bin", chunk=4096)
        c.close()
    assert st.resumed_from == held and st.sent == 120_000 - held
    assert sha(home / "y" / "data.bin") == sha(src)


def test_failed_reopen_ends_the_transfer_with_one_line(tmp_path, home):
    # the cable goes at about 10 % and the port does not come back: one clear error,
    # never a retry on the closed port (a TypeError from pyserial used to end it)
    from cimstack.deploy.remote import SerialRemote
    from cimstack.errors import HardwareError
    src = blob(tmp_path / "data.bin", 100_000, seed=5)
    with FakeBoard(home, disconnect_after_input=20_000) as b:
        remote = SerialRemote(b.port, login_timeout=10, reopen_delay=0.1)
        with pytest.raises(HardwareError) as exc:
            remote.put(src, "v/data.bin")
        remote.close()
    held = next((home / "v").glob("*.part")).stat().st_size
    message = str(exc.value)
    assert "\n" not in message and 0 < held < 100_000
    assert message.startswith(f"{b.port}: the serial link dropped during put v/data.bin "
                              f"({held} of 100000 bytes are on the board) and the port could "
                              "not be reopened")
    assert "run the same command again: the transfer resumes" in message
    assert isinstance(exc.value, TransferInterrupted) and exc.value.done == held


def test_bad_partial_is_discarded(tmp_path, home):
    src = blob(tmp_path / "data.bin", 20_000, seed=3)
    digest = sha(src)
    (home / "z").mkdir(parents=True)
    (home / "z" / f"data.bin.{digest[:16]}.part").write_bytes(b"garbage" * 100)
    with FakeBoard(home) as b:
        c = session(b)
        st = put_file(c, src, "z/data.bin", chunk=8192)
        c.close()
    assert st.resumed_from == 0 and sha(home / "z" / "data.bin") == digest


def test_download_resumes_from_local_part(tmp_path, home):
    (home / "w").mkdir(parents=True)
    src = blob(home / "w" / "out.bin", 50_000, seed=4)
    digest = sha(src)
    local = tmp_path / "out.bin"
    (tmp_path / f"out.bin.{digest[:16]}.part").write_bytes(src.read_bytes()[:20_000])
    with FakeBoard(home) as b:
        c = session(b)
        st = get_file(c, "w/out.bin", local, chunk=8192)
        c.close()
    assert st.resumed_from == 20_000 and sha(local) == digest


FAKE_SSH = """#!/usr/bin/env python3
import os, subprocess, sys
args = sys.argv[1:]
while args and args[0].startswith("-"):
    flag = args.pop(0)
    if flag in ("-o", "-p", "-P"):
        args.pop(0)
home = os.environ["FAKE_SSH_HOME"]
if os.path.basename(sys.argv[0]) == "ssh":
    host, cmd = args[0], args[1]
    sys.exit(subprocess.call(["bash", "-c", cmd], cwd=home))
src, dst = args
fix = lambda p: os.path.join(home, p.split(":", 1)[1]) if ":" in p else p
sys.exit(subprocess.call(["cp", fix(src), fix(dst)]))
"""


def test_ssh_path_with_stand_in_tools(tmp_path, monkeypatch):
    bindir, home = tmp_path / "bin", tmp_path / "sshhome"
    bindir.mkdir()
    home.mkdir()
    for tool in ("ssh", "scp"):
        p = bindir / tool
        p.write_text(FAKE_SSH)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_HOME", str(home))
    from cimstack.deploy.ssh import SshRemote
    r = SshRemote("board.invalid")
    assert r.exec("echo hi; exit 2").status == 2
    src = blob(tmp_path / "f.bin", 10_000)
    st = r.put(src, "d/f.bin")
    assert sha(home / "d" / "f.bin") == sha(src) and not st.skipped
    assert r.put(src, "d/f.bin").skipped
    r.get("d/f.bin", tmp_path / "g.bin")
    assert sha(tmp_path / "g.bin") == sha(src)
