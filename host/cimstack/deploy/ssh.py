"""The board over the network: the system's ``ssh`` and ``scp``, key authentication.

The PYNQ image runs an ssh server (user xilinx). cimstack never asks for or stores a
password: install your key once with ``ssh-copy-id xilinx@<board>``. Commands run
with ``BatchMode=yes``, so a missing key fails at once with a clear message instead
of waiting at a password prompt; a reachable board without a key makes
``cimstack deploy --via auto`` fall back to the serial console.

ssh's own configuration is honoured: cimstack passes no port and no user unless the
board address (``user@host:port``) or an option names them, so a Host alias of
``~/.ssh/config`` with its HostName, Port, User, IdentityFile and ProxyJump works as
it does for ``ssh`` itself. The one exception is the user: when the address names no
Host alias (ssh resolves it to itself) and neither the address, ``--user``,
``--ssh-option User=...`` nor the ssh configuration names a user other than your
local login name (the one ssh would use), the board's login user (``[serial] user``
of its board.toml, ``xilinx``) is used. What ssh resolves for a host is read from
``ssh -G``.

Uploads stream the file into ``<remote>.<sha16>.part`` through ``ssh ... cat >>``;
a connection cut mid-file leaves that partial behind, and the next upload checks its
bytes against the same prefix of the local file and sends only the rest. The file is
renamed into place only after its sha256 on the board matches.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import ConfigError
from .console import ConsoleError, ExecResult
from .transfer import TransferError, TransferInterrupted, TransferStats, sha256_file

ADDRESS_FORMS = ("host, user@host, user@host:port, [IPv6]:port or a Host alias from "
                 "~/.ssh/config")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]*")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.%-]*")
_OPTION = re.compile(r"([A-Za-z][A-Za-z0-9]*)=(\S(?:[^\n\r]*\S)?)")
STREAM_BLOCK = 1 << 16


@dataclass(frozen=True)
class BoardAddress:
    """A board's network address as given to ``--board``: a host (name, IPv4, IPv6 or
    ssh Host alias) with an optional user and port (None: ssh's configuration decides)."""

    host: str
    user: Optional[str] = None
    port: Optional[int] = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port is not None else self.host
        return (f"{self.user}@" if self.user else "") + host + \
            (f":{self.port}" if self.port is not None else "")


def parse_board_address(text: str) -> BoardAddress:
    """``host``, ``user@host``, ``host:port``, ``user@host:port``, ``[v6]:port`` or a
    bare IPv6 address; :class:`ConfigError` naming the problem otherwise."""
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"board address {text!r}: {problem}; give {ADDRESS_FORMS}")

    if not isinstance(text, str) or not text:
        raise bad("it is empty")
    user, at, rest = text.rpartition("@")
    if any(c.isspace() for c in rest):
        raise bad("the host contains white space")
    if at and not is_user_name(user):
        raise bad(f"{user!r} is not a user name")
    port_text = None
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or not _is_ipv6(host):
            raise bad("brackets hold an IPv6 address, as in [fe80::1]:22")
        if tail:
            if not tail.startswith(":"):
                raise bad(f"{tail!r} after the IPv6 address; write [address]:port")
            port_text = tail[1:]
    elif rest.count(":") > 1:
        host = rest
        if not _is_ipv6(host):
            raise bad("it is neither host:port nor an IPv6 address")
    else:
        host, colon, port_text = rest.partition(":")
        port_text = port_text if colon else None
        if not _HOST.fullmatch(host):
            raise bad(f"{host!r} is not a host name, address or alias" if host
                      else "the host is missing")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise bad(f"port {port_text!r} is not a number in 1..65535")
        port = int(port_text)
    return BoardAddress(host, user or None, port)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
        return True
    except ValueError:
        return False


def is_user_name(name: str) -> bool:
    """True for a login name: letters, digits, ``_ . - $``, not starting with ``-``."""
    return isinstance(name, str) and bool(_USER.fullmatch(name))


def parse_ssh_option(text: str) -> str:
    """``KEY=VALUE`` (an ssh_config option, passed as ``-o KEY=VALUE``), checked."""
    m = _OPTION.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise ConfigError(f"ssh option {text!r} is not KEY=VALUE (an ssh_config option such "
                          "as IdentityFile=~/.ssh/pynq or ProxyJump=gateway; see man "
                          "ssh_config)")
    return text


def tcp_reachable(host: str, port: int = 22, timeout: float = 2.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _local_login() -> Optional[str]:
    """The name ssh logs in under when nothing names a user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


class SshRemote:
    """exec / put / get on the board through ssh and scp (paths relative to the login's
    home, or absolute).

    ``target`` is a board address (see :func:`parse_board_address`); ``user``,
    ``ssh_options`` (``KEY=VALUE`` strings) and ``ssh_config`` (a file for ``-F``)
    come from the board options; ``default_user`` applies only when nothing else names
    a user (module docstring)."""

    kind = "ssh"

    def __init__(self, target: str | BoardAddress, user: Optional[str] = None,
                 default_user: Optional[str] = "xilinx", ssh_options: Sequence[str] = (),
                 ssh_config: Optional[str] = None, connect_timeout: int = 5,
                 ssh: str = "ssh", scp: str = "scp"):
        address = target if isinstance(target, BoardAddress) else parse_board_address(target)
        for tool in (ssh, scp):
            if shutil.which(tool) is None:
                raise ConsoleError(f"{tool} is not installed: install OpenSSH's client, "
                                   "or deploy over the serial console (--via serial)")
        self.ssh, self.scp, self.host = ssh, scp, address.host
        # ssh keeps the first value it gets for an option, and reads its configuration
        # file after the command line: the address's user and port come first, then
        # the user's --ssh-options, then cimstack's own settings
        given = [*(["-F", ssh_config] if ssh_config else [])]
        if address.port is not None:
            given += ["-o", f"Port={address.port}"]
        for opt in ssh_options:
            given += ["-o", parse_ssh_option(opt)]
        login = address.user or user
        if login is None:
            seen = self.resolved(given)
            login = seen.get("user")
            if login in (None, _local_login()) and seen.get("hostname") in (None, self.host):
                login = default_user          # ssh would use the local name: not an alias
        if login:
            given = ["-o", f"User={login}", *given]
        self.address = BoardAddress(address.host, login, address.port)
        self.args = [*given, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                     "-o", f"ConnectTimeout={connect_timeout}", "-o", "LogLevel=ERROR",
                     "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        self._control = None
        if os.name == "posix":             # one connection for all commands (see close)
            self._control = tempfile.mkdtemp(prefix="cimstack-ssh-")
            self.args += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self._control}/%C",
                          "-o", "ControlPersist=60"]
            weakref.finalize(self, _stop_master, self.ssh, list(self.args), self.host,
                             self._control)
        self.name = str(self.address)

    def resolved(self, args: Optional[list] = None) -> dict[str, str]:
        """What ssh makes of this host with ``args`` (default: all of cimstack's):
        ``ssh -G``'s settings, lower-case keys (hostname, port, user, proxyjump, ...);
        empty if ssh cannot tell."""
        try:
            p = subprocess.run([self.ssh, "-G", *(self.args if args is None else args),
                                "--", self.host], capture_output=True, text=True, timeout=10,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        pairs = (line.partition(" ") for line in p.stdout.splitlines())
        return {k: v.strip() for k, _, v in pairs} if p.returncode == 0 else {}

    def _failed(self, stderr: str) -> str:
        """One line for a failed ssh or scp: ssh's last line and what to check."""
        lines = [s for s in stderr.strip().splitlines() if s.strip()]
        why = lines[-1].strip() if lines else "no answer"
        a = self.address
        copy_id = " ".join([*(["-p", str(a.port)] if a.port else []),
                            f"{a.user}@{a.host}" if a.user else a.host])
        hint = (f"is your key installed? ssh-copy-id {copy_id}, or pass "
                "--ssh-option IdentityFile=KEY" if "denied" in why.lower() else
                f"check the address and port (ssh -G {self.host} shows what ssh uses)")
        return f"ssh {self.name} failed: {why} ({hint})"

    def exec(self, command: str, timeout: float = 60.0, check: bool = False) -> ExecResult:
        t0 = time.monotonic()
        try:
            p = subprocess.run([self.ssh, *self.args, "--", self.host, command],
                               capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ConsoleError(f"ssh {self.name}: command did not finish within {timeout} s") \
                from exc
        if p.returncode == 255:
            raise ConsoleError(self._failed(p.stderr))
        r = ExecResult(command, p.stdout + p.stderr, p.returncode, time.monotonic() - t0)
        return r.check() if check else r

    def works(self, timeout: float = 5.0) -> bool:
        """True if key-based ssh runs a command. Without a ProxyJump/ProxyCommand the
        address and port ssh resolves are first probed over TCP (fails fast)."""
        seen = self.resolved()
        direct = all(seen.get(k, "none") == "none" for k in ("proxyjump", "proxycommand"))
        port = seen.get("port", "22")
        if direct and not tcp_reachable(seen.get("hostname", self.host),
                                         int(port) if port.isdigit() else 22, timeout):
            return False
        try:
            self.exec("true", timeout=timeout + 5, check=True)
            return True
        except ConsoleError:
            return False

    def _sha(self, path: str) -> str:
        r = self.exec(f"sha256sum 2>/dev/null < {shlex.quote(path)} | cut -c1-64")
        m = re.search(r"\b[0-9a-f]{64}\b", r.output)
        return m.group(0) if r.ok and m else ""

    def _append(self, local: Path, part: str, done: int, size: int, timeout: float,
                progress: Optional[Callable[[int, int], None]]) -> int:
        """Stream ``local[done:]`` onto the end of ``part``; the new ``done``."""
        with tempfile.TemporaryFile() as err, open(local, "rb") as f:
            proc = subprocess.Popen([self.ssh, *self.args, "--", self.host,
                                     f"cat >> {shlex.quote(part)}"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=err)
            f.seek(done)
            try:
                while block := f.read(STREAM_BLOCK):
                    proc.stdin.write(block)
                    done += len(block)
                    if progress:
                        progress(done, size)
                proc.stdin.close()
                status = proc.wait(timeout)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                proc.kill()
                status = proc.wait()
            if status != 0:
                err.seek(0)
                raise TransferInterrupted(
                    f"{part}: {self._failed(err.read().decode(errors='replace'))}; "
                    f"{done} of {size} bytes were sent, run again to resume", done, size)
        return done

    def put(self, local: str | os.PathLike, remote: str, timeout: float = 600.0,
            progress: Optional[Callable[[int, int], None]] = None) -> TransferStats:
        """Copy ``local`` to ``remote`` (module docstring: resume, sha256, rename)."""
        local = Path(local)
        q = shlex.quote
        sha = sha256_file(local)
        stats = TransferStats(remote, local.stat().st_size, sha)
        t0 = time.monotonic()
        part = f"{remote}.{sha[:16]}.part"
        held = self.exec(f"if [ \"$(sha256sum 2>/dev/null < {q(remote)} | cut -c1-64)\" = "
                         f"{sha} ]; then echo SAME; else mkdir -p "
                         f"{q(os.path.dirname(remote) or '.')} && "
                         f"(stat -c %s {q(part)} 2>/dev/null || echo 0); fi", check=True)
        if held.output.split()[-1] == "SAME":
            stats.skipped = True
            return stats
        have = int(held.output.split()[-1])
        if have > stats.size or (have and self._sha(part) != sha256_file(local, have)):
            self.exec(f"rm -f {q(part)}", check=True)
            have = 0
        stats.resumed_from = have
        self._append(local, part, have, stats.size, timeout, progress)
        done = self.exec(f"if [ \"$(sha256sum 2>/dev/null < {q(part)} | cut -c1-64)\" = "
                         f"{sha} ]; then mv -f {q(part)} {q(remote)}; "
                         f"else rm -f {q(part)}; exit 3; fi")
        if done.status == 3:
            raise TransferError(f"{remote}: sha256 on the board does not match after the "
                                "transfer; the partial file was removed, run again")
        done.check()
        stats.sent = stats.size - have
        stats.seconds = time.monotonic() - t0
        return stats

    def get(self, remote: str, local: str | os.PathLike, timeout: float = 600.0,
            **_) -> TransferStats:
        """Copy ``remote`` here with scp, checked by sha256 before it is renamed."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        sha = self._sha(remote)
        if not sha:
            raise TransferError(f"{remote} is not readable on {self.name}")
        t0 = time.monotonic()
        tmp = local.with_name(local.name + ".part")
        host = f"[{self.host}]" if ":" in self.host else self.host
        p = subprocess.run([self.scp, *self.args, "-q", f"{host}:{remote}", str(tmp)],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise TransferError(f"scp {remote}: {self._failed(p.stderr)}")
        if sha256_file(tmp) != sha:
            tmp.unlink()
            raise TransferError(f"{remote}: the copy's sha256 does not match the board's")
        os.replace(tmp, local)
        return TransferStats(remote, local.stat().st_size, sha, sent=local.stat().st_size,
                             seconds=time.monotonic() - t0)

    def close(self) -> None:
        """End the shared connection (if any) and remove its socket folder."""
        if self._control:
            _stop_master(self.ssh, self.args, self.host, self._control)


def _stop_master(ssh: str, args: list, host: str, control: str) -> None:
    """``ssh -O exit`` for the shared connection in ``control``, then remove it."""
    if os.path.isdir(control):
        if os.listdir(control):
            subprocess.run([ssh, *args, "-O", "exit", "--", host], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=10)
        shutil.rmtree(control, ignore_errors=True)
