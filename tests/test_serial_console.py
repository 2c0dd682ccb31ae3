"""The serial console client against a pseudo-terminal whose far end is a real bash
behind a login prompt (cimstack.deploy.fakeboard), running in a temporary folder."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest

from cimstack.deploy.console import (CommandTimeout, ConsoleDisconnected, LoginFailed,
                                     LoginTimeout, SerialConsole, clean)
from cimstack.deploy.fakeboard import FakeBoard


@pytest.fixture
def board(tmp_path):
    b = FakeBoard(tmp_path / "home").start()
    yield b
    b.stop()


@pytest.fixture
def con(board):
    c = SerialConsole.open(board.port)
    c.login(timeout=10)
    yield c
    c.close()


def test_login_and_exec_with_exit_codes(board, con, tmp_path):
    assert board.logins == 1
    r = con.exec("echo hello; pwd")
    assert r.output == f"hello\n{tmp_path / 'home'}\n" and r.status == 0
    assert con.exec("exit 3").status == 3
    r = con.exec("ls /definitely/not/here")
    assert r.status != 0 and "No such file" in r.output
    assert con.exec("printf 'no newline'").output == "no newline"
    con.exec("echo made-on-the-board > proof.txt").check()
    assert (tmp_path / "home" / "proof.txt").read_text() == "made-on-the-board\n"
    r = con.exec("cat <<'EOF'\nline one\n  line two with 'quotes' and \"bang!\" $HOME\nEOF")
    assert r.output == "line one\n  line two with 'quotes' and \"bang!\" $HOME\n"
    r = con.exec("seq 1 3000")
    assert r.output.split() == [str(i) for i in range(1, 3001)]


def test_exec_check_raises_with_output(con):
    with pytest.raises(Exception, match="status 4"):
        con.exec("echo oops; exit 4", check=True)


def test_autologin_shell(tmp_path):
    with FakeBoard(tmp_path, autologin=True) as b:
        with SerialConsole.open(b.port) as c:
            c.login(timeout=10)
            assert c.exec("echo $USER").output == "xilinx\n"


def test_kernel_messages_and_escapes_are_removed(tmp_path):
    with FakeBoard(tmp_path, noise_s=0.003) as b, SerialConsole.open(b.port) as c:
        c.login(timeout=10)
        for _ in range(3):
            r = c.exec("for i in $(seq 1 400); do echo \"row $i\"; done; sleep 0.05")
            assert r.output.splitlines() == [f"row {i}" for i in range(1, 401)]
        assert c.exec(r"printf '\033[1;31mred\033[0m \033]0;title\007done\n'").output == "red done\n"


def test_clean_removes_a_kernel_message_cut_into_a_line():
    raw = (b"\x1b[?2004hab[  123.456789] usb 1-1: new device\r\ncd\r\n"
           b"[   12.000001] random: crng init done\r\n__CSE")
    assert clean(raw) == "abcd\n__CSE"


def test_wrong_password(board):
    with SerialConsole.open(board.port, password="not-the-password") as c:
        t0 = time.monotonic()
        with pytest.raises(LoginFailed, match="refused"):
            c.login(timeout=10)
        assert time.monotonic() - t0 < 5


def test_no_prompt_times_out(tmp_path):
    with FakeBoard(tmp_path, silent=True) as b, SerialConsole.open(b.port) as c:
        t0 = time.monotonic()
        with pytest.raises(LoginTimeout, match="no login prompt"):
            c.login(timeout=2)
        assert time.monotonic() - t0 < 4


def test_command_timeout_interrupts_and_recovers(con):
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout) as exc:
        con.exec("echo started; sleep 30", timeout=1)
    assert time.monotonic() - t0 < 15          # interrupted: well before the 30 s sleep ends
    assert "started" in exc.value.output
    assert con.exec("echo still here").output == "still here\n"


def test_disconnect_mid_command(board, con):
    threading.Timer(0.5, board.disconnect).start()
    t0 = time.monotonic()
    with pytest.raises(ConsoleDisconnected):
        con.exec("sleep 20", timeout=30)
    assert time.monotonic() - t0 < 5


def test_a_port_hung_up_while_flushing_is_a_disconnect():
    """pyserial's flush() on a hung-up pty raises termios.error, which is no OSError:
    it must end as ConsoleDisconnected (the transfer then says "run again to resume")."""
    import termios

    class HungUp:
        port = "/dev/pts/hung"

        def write(self, data):
            return len(data)

        def flush(self):
            raise termios.error(5, "Input/output error")

    with pytest.raises(ConsoleDisconnected, match="writing to the serial port failed"):
        SerialConsole(HungUp())._send("echo hi\n")


def test_board_exec_cli(board):
    from typer.testing import CliRunner

    from cimstack.deploy.cli import board_app
    r = CliRunner().invoke(board_app, ["exec", "echo from-cli; exit 5", "--port", board.port,
                                       "--login-timeout", "10"])
    assert r.exit_code == 5 and "from-cli" in r.output


def test_board_ip_over_console(con):
    from cimstack.deploy.remote import board_ip
    con.exec("mkdir -p bin && printf '#!/bin/sh\\necho 192.168.2.99 fe80::1\\n' > bin/hostname"
             " && chmod +x bin/hostname").check()
    con.exec("true")
    r = con.exec("PATH=$PWD/bin:$PATH hostname -I")
    assert "192.168.2.99" in r.output
    assert board_ip(SimpleNamespace(exec=lambda cmd, timeout: con.exec(
        "PATH=$PWD/bin:$PATH; " + cmd, timeout=timeout))) == "192.168.2.99"


def test_port_discovery_by_vid_pid():
    from cimstack.deploy.ports import candidate_ports

    def port(dev, vid, pid, loc):
        return SimpleNamespace(device=dev, description="Dual RS232-HS", vid=vid, pid=pid,
                               serial_number="1234", location=loc)
    ports = [port("/dev/ttyUSB0", 0x0403, 0x6010, "1-2:1.0"),
             port("/dev/ttyUSB1", 0x0403, 0x6010, "1-2:1.1"),
             port("/dev/ttyACM0", 0x2341, 0x0043, "1-3:1.0")]
    found = candidate_ports("pynq-z2", ports)
    assert [f.device for f in found] == ["/dev/ttyUSB1", "/dev/ttyUSB0"]   # UART interface first
    assert found[0].interface == 1


@pytest.mark.board
def test_real_board_console():
    port = os.environ.get("CIMSTACK_BOARD_PORT")
    if not port:
        pytest.skip("no PYNQ-Z2: set CIMSTACK_BOARD_PORT=/dev/ttyUSB1 to run on a board")
    with SerialConsole.open(port) as c:
        c.login(timeout=60)
        assert c.exec("uname -m").output.strip() == "armv7l"
