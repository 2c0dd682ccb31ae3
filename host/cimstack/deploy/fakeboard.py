"""A local stand-in for a PYNQ-Z2's serial console: a pseudo-terminal whose far end
is a real ``bash`` behind a small login prompt, running in a folder of your choice.

    board = FakeBoard(workdir).start()     # board.port is a /dev/pts/N path
    con = SerialConsole.open(board.port)   # exactly as for /dev/ttyUSB1
    ...
    board.stop()

or from a shell: ``python -m cimstack.deploy.fakeboard --dir /tmp/board`` prints the
port and serves until Ctrl-C, so ``cimstack board exec --port /dev/pts/N 'uname -a'``
can be tried without a board.

The wire (outer pty) is put in raw mode before anything is written, so nothing is
echoed back by the host-side line discipline. Behind the login, bash runs on an inner
pty in its default cooked mode with echo, as on the board's ttyPS0, with
TERM=xterm-256color so bash sends its bracketed-paste escapes. Options reproduce what
a real console does wrong: ``noise_s`` injects fake kernel messages (at arbitrary
byte positions of the output), ``silent`` never answers, ``input_filter`` alters
what the host sends (a corrupted character), ``disconnect()`` and
``disconnect_after_input`` pull the cable.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import signal
import subprocess
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Callable, Optional

BANNER = b"\r\nPYNQ Linux, based on Ubuntu 22.04 pynq ttyPS0\r\n\r\n"
KERNEL_MESSAGES = (
    b"random: crng init done",
    b"usb 1-1: new high-speed USB device number 3 using ci_hdrc",
    b"xilinx-vdma 43000000.dma: Xilinx AXI VDMA Engine Driver Probed!!",
    b"EXT4-fs (mmcblk0p2): re-mounted. Opts: (null)",
)


class FakeBoard:
    def __init__(self, workdir: str | os.PathLike, user: str = "xilinx",
                 password: str = "xilinx", hostname: str = "pynq", autologin: bool = False,
                 silent: bool = False, noise_s: Optional[float] = None,
                 input_filter: Optional[Callable[[bytes], bytes]] = None,
                 disconnect_after_input: Optional[int] = None,
                 env: Optional[dict] = None):
        self.workdir = Path(workdir)
        self.user, self.password, self.hostname = user, password, hostname
        self.autologin, self.silent, self.noise_s = autologin, silent, noise_s
        self.input_filter = input_filter
        self.disconnect_after_input = disconnect_after_input
        self.extra_env = env or {}
        self.port = ""
        self.bytes_in = 0
        self.logins = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._master: Optional[int] = None
        self._slave: Optional[int] = None
        self._line = bytearray()
        self._lines: list[bytes] = []
        self._cond = threading.Condition()
        self._inner: Optional[int] = None
        self._proc: Optional[subprocess.Popen] = None
        self._threads: list[threading.Thread] = []
        self._t0 = time.monotonic()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "FakeBoard":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)               # before anything writes (no echo back)
        self.port = os.ttyname(self._slave)
        for target in (self._reader, self._session) + ((self._noise,) if self.noise_s else ()):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Pull the cable: end the shell and close the pty. Safe to call from several
        threads at once (``disconnect_after_input`` calls it from the wire's reader
        while the owner's ``with`` block ends): the first caller does the work and the
        others wait for it, so a descriptor is closed exactly once and never after its
        number was handed to the next board's pty."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stop.set()
            self._kill_shell()
            with self._cond:
                self._cond.notify_all()
            me = threading.current_thread()
            for t in self._threads:            # each polls _stop at least every 0.1 s
                if t is not me:
                    t.join(timeout=2)
            with self._lock:                   # no _write is between its check and write
                for fd in ("_master", "_slave"):
                    f = getattr(self, fd, None)
                    setattr(self, fd, None)
                    if f is not None:
                        try:
                            os.close(f)
                        except OSError:
                            pass
            self._stopped = True

    disconnect = stop

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ the wire
    def _write(self, data: bytes) -> None:
        with self._lock:
            fd = getattr(self, "_master", None)
            if fd is None or self._stop.is_set():
                return
            try:
                while data:
                    n = os.write(fd, data)
                    data = data[n:]
            except OSError:
                pass

    def _reader(self) -> None:
        """Everything the host sends: to the shell when one runs, else to the login."""
        master = self._master          # stop() closes it only after this thread ended
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([master], [], [], 0.1)
                if not r:
                    continue
                data = os.read(master, 4096)
            except (OSError, TypeError, ValueError):
                return
            if not data:
                return
            self.bytes_in += len(data)
            if self.disconnect_after_input is not None and \
                    self.bytes_in >= self.disconnect_after_input:
                threading.Thread(target=self.stop, daemon=True).start()
                return
            if self.silent:
                continue
            if self.input_filter:
                data = self.input_filter(data)
            inner = self._inner
            if inner is not None:
                try:
                    while data:
                        n = os.write(inner, data)
                        data = data[n:]
                except OSError:
                    pass
                continue
            with self._cond:
                for b in data:
                    if b in (13, 10):
                        self._lines.append(bytes(self._line))
                        self._line.clear()
                    elif b == 3:
                        self._line.clear()
                        self._lines.append(b"\x03")
                    else:
                        self._line.append(b)
                self._cond.notify_all()

    def _noise(self) -> None:
        i = 0
        while not self._stop.wait(self.noise_s):
            stamp = time.monotonic() - self._t0 + 10
            msg = KERNEL_MESSAGES[i % len(KERNEL_MESSAGES)]
            self._write(b"[%5d.%06d] " % (int(stamp), int(stamp * 1e6) % 1000000) + msg + b"\r\n")
            i += 1

    # ------------------------------------------------------------------- login
    def _readline(self, echo: bool) -> Optional[bytes]:
        with self._cond:
            while not self._lines:
                if self._stop.is_set():
                    return None
                self._cond.wait(0.1)
            line = self._lines.pop(0)
        if echo and line != b"\x03":
            self._write(line + b"\r\n")
        elif not echo:
            self._write(b"\r\n")
        return line

    def _session(self) -> None:
        if self.silent:
            return
        self._write(BANNER)
        while not self._stop.is_set():
            if not self.autologin:
                self._write(self.hostname.encode() + b" login: ")
                user = self._readline(echo=True)
                if user is None:
                    return
                if user in (b"", b"\x03"):
                    continue
                self._write(b"Password: ")
                pw = self._readline(echo=False)
                if pw is None:
                    return
                if user.decode(errors="replace") != self.user or \
                        pw.decode(errors="replace") != self.password:
                    time.sleep(0.2)
                    self._write(b"\r\nLogin incorrect\r\n")
                    continue
            self.logins += 1
            self._run_shell()
            if self._stop.is_set():
                return
            self._write(b"\r\n")

    def _run_shell(self) -> None:
        m, s = os.openpty()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir),
               "USER": self.user, "LOGNAME": self.user, "SHELL": "/bin/bash",
               "TERM": "xterm-256color", "LANG": "C.UTF-8",
               "PS1": f"{self.user}@{self.hostname}:\\w\\$ "}
        for key in ("CIMSTACK_CACHE", "XDG_CACHE_HOME", "TMPDIR"):
            if key in os.environ:
                env[key] = os.environ[key]
        env.update(self.extra_env)

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self._proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile", "-i"], stdin=s, stdout=s, stderr=s,
            cwd=str(self.workdir), env=env, start_new_session=True, preexec_fn=ctty,
            close_fds=True)
        os.close(s)
        with self._cond:
            pending = b"".join(line + b"\r" for line in self._lines if line != b"\x03")
            self._lines.clear()
            pending += bytes(self._line)
            self._line.clear()
        self._inner = m
        if pending:
            os.write(m, pending)
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([m], [], [], 0.1)
                if not r:
                    if self._proc.poll() is not None:
                        break
                    continue
                data = os.read(m, 4096)
            except OSError:
                break
            if not data:
                break
            self._write(data)
        self._inner = None
        try:
            os.close(m)
        except OSError:
            pass
        self._kill_shell()

    def _kill_shell(self) -> None:
        p = self._proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cimstack.deploy.fakeboard",
                                 description="Serve a local pseudo-terminal 'board' console.")
    ap.add_argument("--dir", required=True, type=Path, help="the board's home folder")
    ap.add_argument("--autologin", action="store_true")
    ap.add_argument("--noise", type=float, default=None, help="kernel message every N s")
    args = ap.parse_args(argv)
    board = FakeBoard(args.dir, autologin=args.autologin, noise_s=args.noise).start()
    print(f"fake board console on {board.port} (user xilinx, password xilinx); Ctrl-C ends",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
