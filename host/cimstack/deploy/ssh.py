"""The board over the network: the system's ``ssh`` and ``scp``, key authentication.

The PYNQ image runs an ssh server (user xilinx). cimstack never asks for or stores a
password: install your key once with ``ssh-copy-id xilinx@<board>``. Commands run
with ``BatchMode=yes``, so a missing key fails at once with a clear message instead
of waiting at a password prompt; a reachable board without a key makes
``cimstack deploy --via auto`` fall back to the serial console.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .console import ConsoleError, ExecResult
from .transfer import TransferError, TransferStats, sha256_file


def tcp_reachable(host: str, port: int = 22, timeout: float = 2.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class SshRemote:
    """exec / put / get on the board through ssh and scp (paths relative to home)."""

    kind = "ssh"

    def __init__(self, host: str, user: str = "xilinx", port: int = 22,
                 ssh: str = "ssh", scp: str = "scp", connect_timeout: int = 5,
                 extra: tuple[str, ...] = ()):
        self.host, self.user, self.port = host, user, port
        self.ssh, self.scp = ssh, scp
        self.opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                     "-o", f"ConnectTimeout={connect_timeout}", *extra]
        self.name = f"{user}@{host}"
        for tool in (ssh, scp):
            if shutil.which(tool) is None:
                raise ConsoleError(f"{tool} is not installed: install OpenSSH's client, "
                                   "or deploy over the serial console (--via serial)")

    def exec(self, command: str, timeout: float = 60.0, check: bool = False) -> ExecResult:
        t0 = time.monotonic()
        try:
            p = subprocess.run([self.ssh, *self.opts, "-p", str(self.port), self.name,
                                command], capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ConsoleError(f"ssh {self.name}: command did not finish within {timeout} s") \
                from exc
        if p.returncode == 255:
            raise ConsoleError(f"ssh {self.name} failed: {p.stderr.strip()} (is your key "
                               f"installed? ssh-copy-id {self.name})")
        r = ExecResult(command, p.stdout + p.stderr, p.returncode, time.monotonic() - t0)
        return r.check() if check else r

    def _scp(self, src: str, dst: str, timeout: float) -> None:
        p = subprocess.run([self.scp, *self.opts, "-q", "-P", str(self.port), src, dst],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise TransferError(f"scp {src} -> {dst} failed: {p.stderr.strip()}")

    def put(self, local: str | os.PathLike, remote: str, timeout: float = 600.0,
            **_) -> TransferStats:
        local = Path(local)
        sha = sha256_file(local)
        stats = TransferStats(remote, local.stat().st_size, sha)
        t0 = time.monotonic()
        q = shlex.quote
        have = self.exec(f"sha256sum < {q(remote)} 2>/dev/null | cut -c1-64").output.strip()
        if have == sha:
            stats.skipped = True
            return stats
        self.exec(f"mkdir -p {q(os.path.dirname(remote) or '.')}", check=True)
        self._scp(str(local), f"{self.name}:{remote}.part", timeout)
        got = self.exec(f"sha256sum < {q(remote)}.part | cut -c1-64").output.strip()
        if got != sha:
            raise TransferError(f"{remote}: sha256 on the board {got!r} != {sha}")
        self.exec(f"mv -f {q(remote)}.part {q(remote)}", check=True)
        stats.sent = stats.size
        stats.seconds = time.monotonic() - t0
        return stats

    def get(self, remote: str, local: str | os.PathLike, timeout: float = 600.0,
            **_) -> TransferStats:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        sha = self.exec(f"sha256sum < {shlex.quote(remote)} | cut -c1-64", check=True)\
            .output.strip()
        t0 = time.monotonic()
        tmp = local.with_name(local.name + ".part")
        self._scp(f"{self.name}:{remote}", str(tmp), timeout)
        if sha256_file(tmp) != sha:
            tmp.unlink()
            raise TransferError(f"{remote}: the copy's sha256 does not match the board's")
        os.replace(tmp, local)
        return TransferStats(remote, local.stat().st_size, sha, sent=local.stat().st_size,
                             seconds=time.monotonic() - t0)

    def close(self) -> None:
        pass


def ssh_works(host: str, user: str = "xilinx", timeout: int = 5) -> bool:
    """True if key-based ssh to the board runs a command."""
    if shutil.which("ssh") is None or not tcp_reachable(host, 22, timeout):
        return False
    try:
        SshRemote(host, user, connect_timeout=timeout).exec("true", timeout=timeout + 5,
                                                             check=True)
        return True
    except Exception:
        return False
