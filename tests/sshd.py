"""A real OpenSSH server on a free loopback port, for the board tests over ssh.

:func:`start_sshd` runs ``sshd -D -e -f CONFIG`` as the current user with a
throw-away host key, a throw-away user key in its own authorized_keys file, the
built-in sftp subsystem (scp speaks sftp), no PAM and no password login, listening on
127.0.0.1 only: no traffic leaves the loopback interface. The client side never
touches ``~/.ssh``: :attr:`Sshd.ssh_options` names the key and a temporary
known_hosts file, :meth:`Sshd.client_config` writes an ssh config with a Host alias
for ``ssh -F``. Sessions get ``CIMSTACK_CACHE`` and ``XDG_CACHE_HOME`` in the
server's folder (``SetEnv``), so the "board" compiles nothing into the real home.

Where sshd is missing or cannot start, :func:`start_sshd` skips the test with the
reason (install it with ``apt-get install openssh-server``; .ci/run does).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cimstack-test",
                    "-f", str(path)], check=True, capture_output=True)
    return path


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, grandchildren, ...), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parents.items() if parent == p]
        found += kids
        todo += kids
    return found


class Sshd:
    """One sshd in ``folder``; :meth:`cut` drops every open connection."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.user = getpass.getuser()
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.key = _keygen(folder / "user_key")
        self.wrong_key = _keygen(folder / "wrong_key")
        self.known_hosts = folder / "known_hosts"
        self.cache = folder / "board-cache"

    @property
    def address(self) -> str:
        """``user@127.0.0.1:port``."""
        return f"{self.user}@{self.host}:{self.port}"

    def ssh_options(self, key: Path | None = None) -> list[str]:
        """``KEY=VALUE`` options for the client: this key only, a private known_hosts."""
        return [f"IdentityFile={key or self.key}", "IdentitiesOnly=yes",
                f"UserKnownHostsFile={self.known_hosts}", "GlobalKnownHostsFile=/dev/null"]

    def client_config(self, alias: str = "cimstack-loopback") -> Path:
        """An ssh config file (for ``-F``) with a Host alias for this server."""
        path = self.folder / "ssh_config"
        lines = [f"Host {alias}", f"  HostName {self.host}", f"  Port {self.port}",
                 f"  User {self.user}"] + [f"  {o.replace('=', ' ', 1)}"
                                           for o in self.ssh_options()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def _config(self) -> Path:
        (self.folder / "authorized_keys").write_text(
            (self.folder / "user_key.pub").read_text())
        _keygen(self.folder / "host_key")
        self.cache.mkdir(exist_ok=True)
        path = self.folder / "sshd_config"
        path.write_text("\n".join([
            f"Port {self.port}", f"ListenAddress {self.host}",
            f"HostKey {self.folder / 'host_key'}", f"PidFile {self.folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
            "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}", "UsePAM no", "StrictModes no", "UseDNS no",
            "Subsystem sftp internal-sftp",
            f"SetEnv CIMSTACK_CACHE={self.cache} XDG_CACHE_HOME={self.cache}",
        ]) + "\n")
        return path

    def start(self, attempts: int = 3) -> "Sshd":
        sshd = shutil.which("sshd") or next((p for p in SSHD_PATHS if os.path.exists(p)), None)
        if sshd is None:
            pytest.skip("no OpenSSH server (sshd): apt-get install openssh-server")
        if os.geteuid() == 0:                      # root's sshd wants its privsep folder
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = ""
        for _ in range(attempts):                  # the free port may be taken meanwhile
            self.port = _free_port()
            config = self._config()
            err = open(self.folder / "sshd.log", "w")
            self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            err.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection((self.host, self.port), timeout=0.5).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
            log = (self.folder / "sshd.log").read_text().strip()
        pytest.skip(f"sshd did not start on 127.0.0.1: {log[-300:] or 'no output'}")

    def cut(self) -> None:
        """Kill every session process (the connections drop); keep listening."""
        for pid in descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.cut()
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sshd(folder: Path) -> Sshd:
    """A running :class:`Sshd` in ``folder`` (skips the test if there is none)."""
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("no OpenSSH client (ssh, ssh-keygen): apt-get install openssh-client")
    return Sshd(folder).start()
