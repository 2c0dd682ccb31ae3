"""A shell on the board's serial console: log in, run commands, get output and status.

The PYNQ-Z2's PS UART0 reaches the host through the FTDI USB-UART on the PROG/UART
micro-USB port (115200 8N1). What comes back over that wire is a terminal's output,
not a protocol, so every command is framed by markers:

    printf '%s%s\\n' __CSB <token>; ( <command>
    ) </dev/null; printf '\\n%s%s:%s\\n' __CSE <token> "$?"

The markers are printed by ``printf`` from two pieces, so the echo of the typed line
never contains them; the token is random per command, so stale output of an earlier
command can never end this one. Before matching, the received text is cleaned of
terminal escape sequences (colours, bracketed paste, OSC titles), carriage returns,
and Linux kernel console messages (``[  123.456789] ...`` lines, also when they cut
into the middle of a line). The command runs in a subshell with stdin from
/dev/null, so ``exit 3`` gives status 3 and a command reading stdin cannot swallow
the next one.

After login the session is set up once (``stty -echo``, empty prompts, TERM=dumb, no
history expansion, no bracketed paste), which keeps the traffic small; the markers do
not depend on it. A command that outlives its timeout is interrupted with Ctrl-C and
the console is re-synchronised (:class:`CommandTimeout` carries the partial output).
A vanished port (cable pulled, board reset) raises :class:`ConsoleDisconnected` at
once instead of waiting for the timeout.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import HardwareError

try:                        # pyserial's POSIX backend lets termios.error (not an OSError)
    from termios import error as _TermiosError      # out of flush() on a hung-up port
except ImportError:         # pragma: no cover - Windows
    class _TermiosError(Exception):
        pass

ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
                  rb"|\x1b[()][A-Za-z0-9]|\x1b[@-Z\\-_=>78]")
KMSG = re.compile(rb"\[\s*\d+\.\d{6}\][^\r\n]*\r*\n")
CTRL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

LOGIN_RE = re.compile(r"(?:^|\n)[^\n]*login:[ \t]*$")
PASSWORD_RE = re.compile(r"(?i)password:[ \t]*$")
PROMPT_RE = re.compile(r"[$#][ \t]*$")
INCORRECT_RE = re.compile(r"(?i)login incorrect|authentication failure")

SETUP = ("stty -echo 2>/dev/null; export PS1='' PS2='' PROMPT_COMMAND='' TERM=dumb; "
         "set +H 2>/dev/null; bind 'set enable-bracketed-paste off' 2>/dev/null")


class ConsoleError(HardwareError):
    """The serial console did not behave as a shell on a board should."""


class LoginTimeout(ConsoleError, TimeoutError):
    """Neither a login prompt nor a shell answered in time."""


class LoginFailed(ConsoleError):
    """The board refused the user name or password."""


class CommandTimeout(ConsoleError, TimeoutError):
    """A command did not finish in time; ``output`` holds what it printed."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


class ConsoleDisconnected(ConsoleError, ConnectionError):
    """The serial port went away (cable, board reset, USB re-enumeration)."""


@dataclass
class ExecResult:
    command: str
    output: str
    status: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 0

    def check(self) -> "ExecResult":
        if self.status != 0:
            tail = "\n".join(self.output.strip().splitlines()[-15:])
            raise ConsoleError(f"board command failed with status {self.status}: "
                               f"{self.command.splitlines()[0][:200]}\n{tail}")
        return self


def clean(data: bytes, strip_kernel: bool = True) -> str:
    """Terminal output -> plain text: escapes, kernel messages, CR and controls removed."""
    data = ANSI.sub(b"", data)
    if strip_kernel:
        data = KMSG.sub(b"", data)
    data = data.replace(b"\r", b"")
    data = CTRL.sub(b"", data)
    return data.decode("utf-8", errors="replace")


def open_serial(port: str, board: str = "pynq-z2", baudrate: Optional[int] = None):
    """Open ``port`` (a device path or a pyserial URL) with the board's serial facts."""
    import serial

    from ..config import load_board
    facts = load_board(board).serial
    try:
        return serial.serial_for_url(
            port, baudrate=baudrate or facts.baudrate, bytesize=facts.bytesize,
            parity=facts.parity, stopbits=facts.stopbits, timeout=0.05, write_timeout=10,
            exclusive=True) if "://" not in port else serial.serial_for_url(
            port, baudrate=baudrate or facts.baudrate, timeout=0.05, write_timeout=10)
    except (serial.SerialException, OSError) as exc:
        raise ConsoleError(f"cannot open serial port {port}: {exc} (is another program such "
                           "as screen or minicom holding it? do you have permission, e.g. "
                           "membership of the dialout group?)") from None


class SerialConsole:
    """A logged-in shell on a serial line (a pyserial ``Serial`` or compatible).

        with SerialConsole.open("/dev/ttyUSB1") as con:
            con.login()
            r = con.exec("uname -a")
            print(r.output, r.status)
    """

    def __init__(self, ser, user: str = "xilinx", password: str = "xilinx",
                 name: str = "", strip_kernel: bool = True,
                 log: Optional[Callable[[bytes], None]] = None):
        self.ser = ser
        self.user = user
        self.password = password
        self.name = name or getattr(ser, "port", None) or "serial console"
        self.strip_kernel = strip_kernel
        self.log = log
        self.ready = False
        self.closed = False
        self._buf = b""
        self._counter = 0

    @classmethod
    def open(cls, port: str, board: str = "pynq-z2", user: Optional[str] = None,
             password: Optional[str] = None, baudrate: Optional[int] = None, **kw):
        from ..config import load_board
        facts = load_board(board).serial
        return cls(open_serial(port, board, baudrate), user=user or facts.user,
                   password=facts.password if password is None else password, name=port, **kw)

    # ------------------------------------------------------------------ raw I/O
    def _closed_error(self) -> "ConsoleDisconnected":
        return ConsoleDisconnected(f"{self.name}: the serial port is closed; open it again "
                                   "(re-run the command)")

    def _read_some(self) -> bytes:
        """What arrived (at most one read: the port's read timeout bounds it)."""
        import serial
        if self.closed:
            raise self._closed_error()
        try:
            n = self.ser.in_waiting
            data = self.ser.read(n or 1)
        except (serial.SerialException, OSError, _TermiosError) as exc:
            self.ready = False
            raise ConsoleDisconnected(f"{self.name}: the serial port went away ({exc}); "
                                      "check the cable and that the board is powered") from None
        if data and self.log:
            self.log(data)
        return data

    def _send(self, text: str) -> None:
        import serial
        if self.closed:
            raise self._closed_error()
        try:
            self.ser.write(text.encode())
            self.ser.flush()
        except (serial.SerialException, OSError, _TermiosError) as exc:
            self.ready = False
            raise ConsoleDisconnected(f"{self.name}: writing to the serial port failed ({exc})") \
                from None

    def drain(self, quiet_s: float = 0.0, limit_s: float = 5.0) -> bytes:
        """Read and discard what is pending (and what arrives within ``quiet_s``); a
        console that never stops talking is left after ``quiet_s + limit_s`` seconds."""
        got = self._buf
        self._buf = b""
        end = time.monotonic() + quiet_s
        while True:
            try:
                pending = self.ser.in_waiting
            except Exception:
                pending = 1            # let _read_some report the failure
            now = time.monotonic()
            if now >= end + limit_s or (not pending and now >= end):
                return got
            got += self._read_some()

    def _wait(self, matcher: Callable[[str], object], timeout: float):
        """Read until ``matcher(clean_text)`` is truthy; returns (match, text) or
        (None, text) on timeout. The buffer is kept; callers consume it."""
        deadline = time.monotonic() + timeout
        last_clean = 0.0
        text = clean(self._buf, self.strip_kernel)
        m = matcher(text)
        while not m:
            if time.monotonic() > deadline:
                return None, text
            data = self._read_some()
            if data:
                self._buf += data
            now = time.monotonic()
            # cleaning the whole buffer is O(n): do it when data came in, at most ~50/s
            # while a long output streams
            if data and (now - last_clean > 0.02 or len(self._buf) < 65536):
                text = clean(self._buf, self.strip_kernel)
                last_clean = now
                m = matcher(text)
            elif not data:
                text = clean(self._buf, self.strip_kernel)
                m = matcher(text)
        return m, text

    # -------------------------------------------------------------------- login
    def _token(self) -> str:
        self._counter += 1
        return f"{secrets.token_hex(4)}{self._counter:x}"

    def _probe_marker(self, timeout: float) -> bool:
        """Ask a shell to print a fresh marker; True if it did."""
        tok = self._token()
        self._buf = b""
        self._send(f"printf '%s%s\\n' __CSR {tok}\r")
        m, _ = self._wait(lambda t: (f"__CSR{tok}\n" in t) or LOGIN_RE.search(t)
                          or PASSWORD_RE.search(t), timeout)
        return bool(m) and m is True

    def login(self, timeout: float = 30.0) -> "SerialConsole":
        """Reach a shell: answer a login prompt (or take an autologin shell), then set
        the session up. Raises :class:`LoginTimeout` or :class:`LoginFailed`."""
        deadline = time.monotonic() + timeout
        self.ready = False
        self.drain()
        sent_user = sent_password = False
        pokes = 0
        self._send("\r")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LoginTimeout(
                    f"{self.name}: no login prompt and no shell within {timeout:g} s. Is the "
                    "board powered and booted (about 40 s after power-on), is this the "
                    "PROG/UART port, is the baud rate 115200?")

            def look(t):
                tail = t[-400:]
                if sent_password and INCORRECT_RE.search(tail):
                    return "incorrect"
                if PASSWORD_RE.search(tail):
                    return "password"
                if LOGIN_RE.search(tail):
                    return "login"
                if PROMPT_RE.search(tail):
                    return "prompt"
                return None
            what, _ = self._wait(look, min(left, 1.5))
            if what == "incorrect":
                raise LoginFailed(f"{self.name}: login as {self.user!r} was refused (wrong "
                                  "password? the PYNQ image default is xilinx / xilinx)")
            if what == "password":
                self._buf = b""
                if not sent_user:          # a stray line was taken as a user name
                    self._send("\r")
                    continue
                self._send(self.password + "\r")
                sent_password = True
                continue
            if what == "login":
                # our wake-up CR may make getty print the prompt twice: let it settle,
                # or the second prompt would take the password as a user name
                self._settle(0.3)
                self._buf = b""
                if sent_password:
                    raise LoginFailed(f"{self.name}: login as {self.user!r} was refused "
                                      "(wrong password? the PYNQ image default is xilinx / "
                                      "xilinx)")
                self._send(self.user + "\r")
                sent_user = True
                continue
            if what == "prompt":
                break
            # silence: maybe a configured shell with an empty prompt, maybe a running
            # program; ask for a marker, then interrupt and retry
            if self._probe_marker(min(max(deadline - time.monotonic(), 0.1), 1.5)):
                break
            pokes += 1
            self._send("\x03\r" if pokes % 2 == 0 else "\r")
        self._setup(max(deadline - time.monotonic(), 5.0))
        return self

    def _settle(self, quiet_s: float, limit_s: float = 3.0) -> None:
        """Keep reading into the buffer until nothing arrived for ``quiet_s``."""
        end = time.monotonic() + limit_s
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet_s:
            data = self._read_some()
            if data:
                self._buf += data
                last = time.monotonic()

    def _setup(self, timeout: float) -> None:
        tok = self._token()
        self._buf = b""
        self._send(f"{SETUP}; printf '%s%s\\n' __CSR {tok}\r")
        m, text = self._wait(lambda t: f"__CSR{tok}\n" in t, timeout)
        if not m:
            raise LoginTimeout(f"{self.name}: logged in, but the shell did not answer the "
                               f"session setup within {timeout:.0f} s: {text[-200:]!r}")
        self._buf = b""
        self.ready = True

    def resync(self, timeout: float = 5.0) -> bool:
        """Interrupt whatever runs and check that the shell answers again."""
        self._send("\x03")
        time.sleep(0.1)
        self.drain(0.1)
        ok = self._probe_marker(timeout)
        self.ready = ok
        return ok

    # --------------------------------------------------------------------- exec
    def exec(self, command: str, timeout: float = 60.0, check: bool = False,
             subshell: bool = True) -> ExecResult:
        """Run ``command`` (any shell text, may span lines and hold here-documents)
        in a subshell on the board; return its output (stdout and stderr, cleaned,
        without the newline the framing adds) and exit status. ``subshell=False`` runs
        it in the session's shell itself (for definitions that must persist; ``exit``
        then ends the session)."""
        if not self.ready:
            self.login()
        tok = self._token()
        begin, end = f"__CSB{tok}\n", re.compile(rf"\n__CSE{tok}:(\d+)\n")
        self.drain()
        grp = ("( ", ")") if subshell else ("{ ", "}")
        framed = (f"printf '%s%s\\n' __CSB {tok}; {grp[0]}{command}\n{grp[1]} </dev/null; "
                  f"printf '\\n%s%s:%s\\n' __CSE {tok} \"$?\"\r")
        t0 = time.monotonic()
        self._send(framed)
        m, text = self._wait(lambda t: begin in t and end.search(t, t.index(begin)), timeout)
        if not m:
            partial = text.split(begin, 1)[1] if begin in text else ""
            self.resync()
            raise CommandTimeout(f"{self.name}: command did not finish within {timeout:.0f} s "
                                 f"(interrupted with Ctrl-C): {command.splitlines()[0][:120]}",
                                 partial)
        start = text.index(begin) + len(begin)
        output = text[start:m.start()]
        self._buf = b""
        result = ExecResult(command, output, int(m.group(1)), time.monotonic() - t0)
        return result.check() if check else result

    def logout(self) -> None:
        """Leave the shell (an autologin getty starts a fresh one)."""
        if self.ready:
            try:
                self._send("exit\r")
            except ConsoleError:
                pass
        self.ready = False

    def close(self, logout: bool = True) -> None:
        """Log out (unless ``logout`` is False) and close the port; any later use of
        this console raises :class:`ConsoleDisconnected`."""
        if logout and not self.closed:
            self.logout()
        self.ready = False
        self.closed = True
        try:
            self.ser.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
