"""A serial link that misbehaves, and Dask cluster addresses that lead nowhere.

Serial cases drive the console and the chunked transfer (:mod:`cimstack.deploy`)
against :class:`ScriptedPort`, a pyserial stand-in whose "board" answers cimstack's
framed commands from a script (no pseudo-terminal, no bash): the link drops after a
number of chunks, answers every chunk BAD, keeps moving the offset, garbles answers,
or stays silent. The port path of the remote does not exist, so reopening it fails as
it does when the cable is gone. Cluster cases run ``cimstack sweep --cluster ADDRESS``
with addresses on 127.0.0.1 only."""

from __future__ import annotations

import base64
import hashlib
import re
import time

import serial

from badcase import Case
from cimstack.deploy.console import ConsoleDisconnected, LoginTimeout, SerialConsole
from cimstack.deploy.remote import SerialRemote
from cimstack.deploy.transfer import TransferError, get_file, put_file
from cimstack.errors import HardwareError

NO_PORT = "/dev/cimstack-no-such-tty"
FRAMED = re.compile(r"__CSB (\w+); [({] (.*)\n[)}] </dev/null", re.S)
PROBE = re.compile(r"__CSR (\w+)")


class ScriptedPort:
    """A pyserial ``Serial`` stand-in: each framed command gets ``shell(command)``'s
    ``(output, status)`` back. Like pyserial on a closed port, ``in_waiting`` then
    raises TypeError (the crash a retry on a closed port used to end in)."""

    def __init__(self, shell=None, drop_after_chunks: int | None = None):
        self.shell, self.drop_after = shell, drop_after_chunks
        self.port, self.is_open, self.chunks, self._out = NO_PORT, True, 0, b""

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise TypeError("argument must be an int, or have a fileno() method.")
        return len(self._out)

    def read(self, n: int = 1) -> bytes:
        if not self.is_open:
            raise serial.PortNotOpenError()
        data, self._out = self._out[:n], self._out[n:]
        if not data:
            time.sleep(0.001)                      # the port's read timeout
        return data

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        text = data.decode()
        if "__csrx " in text or "CSTX" in text:
            self.chunks += 1
            if self.drop_after is not None and self.chunks > self.drop_after:
                raise serial.SerialException("device disconnected")
        m = FRAMED.search(text)
        if m and self.shell is not None:
            output, status = self.shell(m.group(2))
            self._out += f"__CSB{m.group(1)}\n{output}\n__CSE{m.group(1)}:{status}\n".encode()
        elif (p := PROBE.search(text)) and self.shell is not None:
            self._out += f"__CSR{p.group(1)}\n".encode()
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False


class Board:
    """The far side of a transfer: one file ``part`` being received, one file ``held``
    to send; ``verdict`` answers each received chunk (OK appends)."""

    def __init__(self, verdict: str = "OK", held: bytes = b""):
        self.verdict, self.part, self.held = verdict, b"", held

    def __call__(self, command: str) -> tuple[str, int]:
        if command.startswith("__csrx "):
            if self.verdict == "GARBLED":
                return "CSR? ~~", 0
            _, _, offset, digest = command.split("<<")[0].split()
            data = base64.b64decode("".join(command.split("\n")[1:-1]))
            if self.verdict == "OK" and hashlib.sha256(data).hexdigest() == digest \
                    and int(offset) == len(self.part):
                self.part += data
                return f"CSRX OK {len(self.part)}", 0
            return f"CSRX {self.verdict} {0 if self.verdict == 'OFF' else len(self.part)}", 0
        if command.startswith("stat -c 'SIZE %s' ") and "sha256sum" in command:
            if not self.held:
                return "stat: cannot statx: No such file or directory", 1
            return f"SIZE {len(self.held)}\n{hashlib.sha256(self.held).hexdigest()}", 0
        if command.startswith("stat -c 'SIZE %s'"):
            return f"SIZE {len(self.part)}", 0
        if command.startswith("f="):                        # a chunk to download
            off, n = (int(v) for v in re.findall(r"off=(\d+); n=(\d+)", command)[0])
            data = self.held[off:off + n]
            return (f"CSTX {hashlib.sha256(data).hexdigest()} {len(data)}\n"
                    + base64.b64encode(data).decode()), 0
        return "", 0                       # mkdir, rm, mv, the receiver's definition, sha256sum


def _console(board=None, drop_after_chunks=None) -> SerialConsole:
    con = SerialConsole(ScriptedPort(board, drop_after_chunks), name=NO_PORT)
    con.ready = True                                    # logged in already
    return con


def _blob(folder, n=40_960):
    path = folder / "data.bin"
    path.write_bytes(bytes(range(256)) * (n // 256))
    return path


def _put_reopen_fails(folder):
    """The cable goes at 10 % (chunk 3 of 20) and the port does not come back."""
    src = _blob(folder)
    remote = SerialRemote(NO_PORT, console=_console(Board(), drop_after_chunks=2),
                          reopen_delay=0.0)
    return lambda: remote.put(src, "in/data.bin")


def _get_reopen_fails(folder):
    held = bytes(range(256)) * 128
    remote = SerialRemote(NO_PORT, console=_console(Board(held=held), drop_after_chunks=1),
                          reopen_delay=0.0, chunk=8192)
    return lambda: remote.get("out.bin", folder / "back" / "out.bin")


def _closed_console(folder):
    con = _console(Board())
    con.close()
    return lambda: con.exec("true", timeout=1)


def _put(folder, verdict):
    src = _blob(folder, 4096)
    return lambda: put_file(_console(Board(verdict)), src, "in/data.bin", chunk=2048,
                            retries=3, timeout=1)


def _silent(folder):
    con = SerialConsole(ScriptedPort(None), name=NO_PORT)
    return lambda: con.login(timeout=0.5)


def _sweep(folder, address):
    return ["sweep", "--quick", "--out", "sw", "--cluster", address, "--connect-timeout", "2"]


CASES = [
    Case("serial-put-reopen-fails", _put_reopen_fails,
         rf"{NO_PORT}: the serial link dropped during put in/data\.bin \(4096 of 40960 bytes "
         r"are on the board\) and the port could not be reopened \(cannot open serial port "
         r".*run the same command again: the transfer resumes", HardwareError),
    Case("serial-get-reopen-fails", _get_reopen_fails,
         rf"{NO_PORT}: the serial link dropped during get out\.bin \(8192 of 32768 bytes are "
         r"copied here\) and the port could not be reopened .*run the same command again",
         HardwareError),
    Case("serial-closed-console", _closed_console,
         rf"{NO_PORT}: the serial port is closed", ConsoleDisconnected),
    Case("serial-noisy-link", lambda f: _put(f, "BAD"),
         r"in/data\.bin: the chunk at 0 arrived corrupted 4 times in a row; the serial link "
         r"is too noisy", TransferError),
    Case("serial-offset-keeps-moving", lambda f: _put(f, "OFF"),
         r"partial file in/data\.bin\.\w+\.part changed size 4 times in a row", TransferError),
    Case("serial-garbled-answers", lambda f: _put(f, "GARBLED"),
         r"in/data\.bin: no valid answer for the chunk at 0 after 3 retries", TransferError),
    Case("serial-silent-board", _silent,
         rf"{NO_PORT}: no login prompt and no shell within 0\.5 s", LoginTimeout),
    Case("serial-download-missing",
         lambda f: lambda: get_file(_console(Board()), "none.bin", f / "none.bin", timeout=1),
         r"none\.bin is not readable on the board", TransferError),
    Case("serial-exec-no-port",
         lambda f: ["board", "exec", "--port", NO_PORT, "--login-timeout", "1", "true"],
         rf"cannot open serial port {NO_PORT}"),
    # ------------------------------------------- board address and options (no network)
    Case("board-address-port", lambda f: ["deploy", "--board", "xilinx@192.0.2.1:99999"],
         r"board address 'xilinx@192\.0\.2\.1:99999': port '99999' is not a number in "
         r"1\.\.65535; give host, user@host, user@host:port"),
    Case("board-address-option-like", lambda f: ["deploy", "--board=-oProxyCommand=x"],
         r"board address '-oProxyCommand=x': '-oProxyCommand=x' is not a host name"),
    Case("board-ssh-option", lambda f: ["deploy", "--board", "192.0.2.1",
                                        "--ssh-option", "IdentityFile"],
         r"ssh option 'IdentityFile' is not KEY=VALUE"),
    Case("board-user", lambda f: ["deploy", "--board", "192.0.2.1", "--user", "a b"],
         r"--user 'a b' is not a login name"),
    Case("board-via", lambda f: ["deploy", "--board", "192.0.2.1", "--via", "pigeon"],
         r"--via 'pigeon': choose one of auto, serial, ssh"),
    # ------------------------------------------------------------ Dask cluster
    Case("serial-cluster-dead", lambda f: _sweep(f, "tcp://127.0.0.1:1"),
         r"cannot reach a Dask scheduler at tcp://127\.0\.0\.1:1 .*Connection refused"),
    Case("serial-cluster-no-port", lambda f: _sweep(f, "foo"),
         r"--cluster 'foo' is not a Dask scheduler address: give tcp://HOST:PORT"),
    Case("serial-cluster-no-host", lambda f: _sweep(f, "tcp://"),
         r"--cluster 'tcp://' is not a Dask scheduler address"),
    Case("serial-cluster-scheme", lambda f: _sweep(f, "http://127.0.0.1:8786"),
         r"--cluster 'http://127\.0\.0\.1:8786' is not a Dask scheduler address"),
    Case("serial-cluster-port-range", lambda f: _sweep(f, "tcp://127.0.0.1:70000"),
         r"'tcp://127\.0\.0\.1:70000' is not a Dask .*port in 1\.\.65535"),
]
