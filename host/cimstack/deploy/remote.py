"""``cimstack deploy`` and ``cimstack run --board``: copy, install, run, verify.

    remote = connect("/dev/ttyUSB1")                 # or "192.168.2.99", "pynq.local"
    deploy(remote, bundle="cimstack-out/bundle")     # runtime + overlay + bundle
    result = run_on_board("cimstack-out/bundle", remote, x_int, labels=y)
    print(result.report.summary())                   # the VerifyReport of `cimstack verify`

Layout on the board (``BoardEnv.root``, relative to the login's home)::

    cimstack/runtime/host/cimstack   the package (no quant/), used via PYTHONPATH
    cimstack/runtime/boards          board facts;  cimstack/runtime/hls  kernel sources
    cimstack/overlay/<name>.bit|.hwh the overlay
    cimstack/bundles/<bundle>/       bundles
    cimstack/runs/<id>/              input.npy, out/ (outputs), out.tar.gz
    cimstack/.incoming/*.tar.gz      the transferred archives (kept: unchanged ones are
                                     not sent again)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ConfigError
from .console import ConsoleDisconnected, ConsoleError, ExecResult, SerialConsole
from .transfer import TransferInterrupted, TransferStats, get_file, put_file

q = shlex.quote
PYNQ_VENV_PYTHON = "/usr/local/share/pynq-venv/bin/python3"


@dataclass
class BoardEnv:
    """How to run cimstack's Python on the far side.

    The PYNQ 3.x image keeps pynq in a venv owned by root and needs root for
    /dev/mem and the FPGA manager, with ``XILINX_XRT=/usr`` set (as
    /etc/profile.d/pynq_venv.sh does), hence the defaults. :meth:`local` is the same
    machine's interpreter without sudo (tests, the pseudo-terminal "board").
    """

    root: str = "cimstack"
    python: str = PYNQ_VENV_PYTHON
    sudo: bool = True
    env: dict = field(default_factory=lambda: {"XILINX_XRT": "/usr"})

    @classmethod
    def local(cls, root: str = "cimstack", python: str = sys.executable) -> "BoardEnv":
        return cls(root=root, python=python, sudo=False, env={})

    def python_cmd(self, args: str, password: str = "xilinx", sudo: Optional[bool] = None) -> str:
        """Shell text that runs ``python <args>`` in the deployed runtime (cwd = root)."""
        env = {**self.env}
        parts = " ".join(f"{k}={q(v)}" for k, v in env.items())
        core = (f"env {parts} PYTHONPATH=\"$PWD/runtime/host\" CIMSTACK_HOME=\"$PWD/runtime\" "
                f"{q(self.python)} {args}")
        if self.sudo if sudo is None else sudo:
            core = f"printf '%s\\n' {q(password)} | sudo -S -p '' {core}"
        return f"cd {q(self.root)} && {core}"


# ------------------------------------------------------------------- remotes

def is_serial_target(target: str) -> bool:
    return target.startswith("/dev/") or "://" in target or bool(re.fullmatch(r"COM\d+", target))


class SerialRemote:
    """exec / put / get over a logged-in serial console, reconnecting and resuming
    after a disconnect (up to ``reconnects`` times)."""

    kind = "serial"

    def __init__(self, port: str, board: str = "pynq-z2", user: Optional[str] = None,
                 password: Optional[str] = None, chunk: int = 2048, reconnects: int = 2,
                 login_timeout: float = 30.0, console: Optional[SerialConsole] = None,
                 reopen_delay: float = 1.0):
        self.port, self.board, self.user, self.password = port, board, user, password
        self.chunk, self.reconnects, self.login_timeout = chunk, reconnects, login_timeout
        self.reopen_delay = reopen_delay         # seconds for the port to come back
        self.name = port
        self.console = console or self._open()

    def _open(self) -> SerialConsole:
        con = SerialConsole.open(self.port, self.board, self.user, self.password)
        con.login(self.login_timeout)
        return con

    def _reopen(self) -> None:
        try:
            self.console.close(logout=False)
        except Exception:
            pass
        time.sleep(self.reopen_delay)
        self.console = self._open()

    def _retrying(self, fn: Callable, what: str, held_at: str):
        """``fn()`` (a transfer, which resumes where it stopped); after a disconnect the
        port is reopened and ``fn`` called again, up to ``reconnects`` times. A port that
        cannot be reopened ends it: nothing is ever tried on a closed port."""
        for attempt in range(self.reconnects + 1):
            try:
                return fn()
            except (TransferInterrupted, ConsoleDisconnected) as exc:
                if attempt == self.reconnects:
                    raise
                try:
                    self._reopen()
                except ConsoleError as reopen:
                    done = getattr(exc, "done", 0)
                    total = getattr(exc, "total", -1)
                    held = f"{done} of {total} bytes" if total >= 0 else f"{done} bytes"
                    raise TransferInterrupted(
                        f"{self.port}: the serial link dropped during {what} ({held} are "
                        f"{held_at}) and the port could not be reopened ({reopen}); "
                        "reconnect the board and run the same command again: the transfer "
                        "resumes from there", done, total) from None
        raise ConsoleError(f"{what}: gave up")  # pragma: no cover

    @property
    def password_for_sudo(self) -> str:
        return self.console.password

    def exec(self, command: str, timeout: float = 60.0, check: bool = False) -> ExecResult:
        return self.console.exec(command, timeout=timeout, check=check)

    def put(self, local, remote: str, progress=None) -> TransferStats:
        return self._retrying(lambda: put_file(self.console, local, remote, chunk=self.chunk,
                                               progress=progress), f"put {remote}",
                               "on the board")

    def get(self, remote: str, local, progress=None) -> TransferStats:
        return self._retrying(lambda: get_file(self.console, remote, local,
                                               chunk=max(self.chunk, 8192),
                                               progress=progress), f"get {remote}",
                               "copied here")

    def ip_address(self) -> Optional[str]:
        return board_ip(self.console)

    def close(self) -> None:
        self.console.close()


def board_ip(con) -> Optional[str]:
    """The board's first IPv4 address (``hostname -I``), or None."""
    r = con.exec("hostname -I 2>/dev/null || ip -4 -o addr show scope global", timeout=15)
    for addr in re.findall(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b", r.output):
        if not addr.startswith("127."):
            return addr
    return None


def connect(target: str, board: str = "pynq-z2", via: str = "auto", user: Optional[str] = None,
            password: Optional[str] = None, chunk: int = 2048, login_timeout: float = 30.0,
            log: Optional[Callable[[str], None]] = None):
    """A remote for ``target`` (serial port or host name/address).

    ``via``: ``serial``, ``ssh`` or ``auto`` (a serial target switches to ssh when the
    board reports an address that answers key-based ssh)."""
    from ..config import load_board
    from .ssh import SshRemote, ssh_works
    if via not in ("auto", "serial", "ssh"):
        raise ConfigError(f"via = {via!r}: choose auto, serial or ssh")
    facts = load_board(board).serial
    if not is_serial_target(target):
        if via == "serial":
            raise ConfigError(f"{target} is not a serial port; pass /dev/ttyUSB1 or similar")
        return SshRemote(target, user or facts.user)
    remote = SerialRemote(target, board, user, password, chunk=chunk, login_timeout=login_timeout)
    if via == "auto":
        ip = remote.ip_address()
        if ip and ssh_works(ip, user or facts.user):
            if log:
                log(f"board at {ip} answers ssh: copying over the network")
            remote.close()
            return SshRemote(ip, user or facts.user)
        if log:
            log(f"copying over the serial console ({'no address' if not ip else ip + ' has no key-based ssh'})")
    return remote


# -------------------------------------------------------------------- deploy

@dataclass
class DeployResult:
    target: str
    via: str
    root: str
    transfers: dict
    python: str
    seconds: float
    overlay_kind: str

    def summary(self) -> str:
        lines = [f"deployed to {self.target} over {self.via} into ~/{self.root} "
                 f"in {self.seconds:.1f} s; board python: {self.python}"]
        for name, st in self.transfers.items():
            how = "unchanged, not sent" if st.skipped else (
                f"{st.sent} B sent in {st.seconds:.1f} s" +
                (f", resumed from {st.resumed_from}" if st.resumed_from else "") +
                (f", {st.retries} chunk retries" if st.retries else ""))
            lines.append(f"  {name:<16} {st.size:>9} B  sha256 {st.sha256[:12]}  {how}")
        lines.append(f"  overlay: {self.overlay_kind}")
        return "\n".join(lines)


def default_overlay(board: str = "pynq-z2") -> Optional[Path]:
    """``overlay/build/<board>/<name>.bit`` if ``make -C overlay`` built it."""
    from ..overlay_shape import overlay_shape
    from ..paths import project_root
    bit = project_root() / "overlay" / "build" / board / f"{overlay_shape(board).name}.bit"
    return bit if bit.is_file() and bit.with_suffix(".hwh").is_file() else None


def _unpack(remote, root: str, archive: str, dest: str) -> None:
    remote.exec(f"cd {q(root)} && rm -rf .unpack && mkdir -p .unpack && "
                f"tar -xzf .incoming/{archive} -C .unpack && mkdir -p \"$(dirname {q(dest)})\" && "
                f"rm -rf {q(dest)} && mv .unpack/{q(dest)} {q(dest)} && rm -rf .unpack",
                timeout=120, check=True)


def deploy(remote, bundle: Optional[str | os.PathLike] = None,
           overlay: Optional[str | os.PathLike] = None, board: str = "pynq-z2",
           env: Optional[BoardEnv] = None,
           progress: Optional[Callable[[str, int, int], None]] = None) -> DeployResult:
    """Copy the runtime, the overlay and optionally a bundle to ``remote`` (from
    :func:`connect`), unpack them, and check that the board's Python imports the
    runtime. Unchanged archives are not sent again."""
    from ..bundle import load_bundle
    from .package import bundle_archive, overlay_archive, runtime_archive
    env = env or BoardEnv()
    t0 = time.monotonic()
    root = env.root
    with tempfile.TemporaryDirectory(prefix="cimstack-deploy-") as tmp:
        tmp = Path(tmp)
        archives = [("runtime.tar.gz", runtime_archive(tmp / "runtime.tar.gz"), "runtime")]
        bit = Path(overlay) if overlay else default_overlay(board)
        if bit is None:
            from ..emu.hwh import write_overlay
            bit = write_overlay(board, tmp / "emu-overlay")
            kind = ("the emulation's handoff with a placeholder .bit (no built overlay: "
                    "`make -C overlay` makes one); good for --backend emu only")
        else:
            kind = f"{bit.name} + {bit.with_suffix('.hwh').name} from {bit.parent}"
        archives.append(("overlay.tar.gz", overlay_archive(bit, tmp / "overlay.tar.gz"),
                         "overlay"))
        if bundle is not None:
            b = load_bundle(bundle)
            archives.append((f"bundle-{b.name}.tar.gz",
                             bundle_archive(bundle, b.name, tmp / "bundle.tar.gz"),
                             f"bundles/{b.name}"))
        transfers = {}
        for name, path, dest in archives:
            cb = (lambda done, total, n=name: progress(n, done, total)) if progress else None
            transfers[name] = remote.put(path, f"{root}/.incoming/{name}", progress=cb)
            _unpack(remote, root, name, dest)
    check = remote.exec(env.python_cmd(
        "-c \"import sys, numpy, cimstack.bundle, cimstack.ref.network; "
        "print('CIMSTACK-PY', sys.version.split()[0], 'numpy', numpy.__version__)\"",
        sudo=False), timeout=120)
    m = re.search(r"CIMSTACK-PY (.*)", check.output)
    if not check.ok or not m:
        raise ConsoleError(f"the runtime does not import on the board's Python "
                           f"({env.python}):\n{check.output.strip()[-1500:]}")
    return DeployResult(target=remote.name, via=getattr(remote, "kind", "ssh"), root=root,
                        transfers=transfers, python=m.group(1).strip(),
                        seconds=time.monotonic() - t0, overlay_kind=kind)


# ----------------------------------------------------------------------- run

@dataclass
class BoardRun:
    report: object                 # cimstack.verify.compare.VerifyReport
    info: dict                     # run.json written on the board
    outputs: dict                  # layer name -> array brought back
    deploy: Optional[DeployResult]
    seconds: float


def run_on_board(bundle: str | os.PathLike, target, x_int: np.ndarray,
                 labels: Optional[np.ndarray] = None, backend: str = "board",
                 board: str = "pynq-z2", via: str = "auto", env: Optional[BoardEnv] = None,
                 overlay: Optional[str | os.PathLike] = None, deploy_first: bool = True,
                 timeout: float = 1800.0, report_dir: Optional[str | os.PathLike] = None,
                 keep: Optional[str | os.PathLike] = None,
                 progress: Optional[Callable[[str, int, int], None]] = None,
                 log: Optional[Callable[[str], None]] = None) -> BoardRun:
    """Run ``bundle`` on the board ``target`` (a serial port, a host, or a remote
    from :func:`connect`) with integer inputs ``x_int``, bring every layer's outputs
    back and compare them with the host reference: ``result.report`` is the
    :class:`~cimstack.verify.compare.VerifyReport` of ``cimstack verify``."""
    from ..bundle import load_bundle
    from ..ref.network import reference_engine, run_network
    from ..verify.compare import VerifyReport, compare_layer

    env = env or BoardEnv()
    t0 = time.monotonic()
    b = load_bundle(bundle)
    x_int = np.asarray(x_int)
    remote = connect(target, board, via, log=log) if isinstance(target, str) else target
    try:
        dep = deploy(remote, bundle, overlay, board, env, progress) if deploy_first else None
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        rdir = f"runs/{run_id}"
        with tempfile.TemporaryDirectory(prefix="cimstack-run-") as tmp:
            tmp = Path(tmp)
            np.save(tmp / "input.npy", x_int)
            remote.put(tmp / "input.npy", f"{env.root}/{rdir}/input.npy")
            from ..overlay_shape import overlay_shape
            name = overlay_shape(board).name
            args = (f"-m cimstack.deploy.runner --bundle bundles/{q(b.name)} "
                    f"--input {rdir}/input.npy --out {rdir}/out --overlay overlay/{name}.bit "
                    f"--backend {q(backend)} --board {q(board)}")
            if log:
                log(f"running {b.name} on {remote.name} ({backend}) ...")
            password = getattr(remote, "password_for_sudo", "xilinx")
            r = remote.exec(env.python_cmd(args, password=password), timeout=timeout)
            if r.status != 0 or "CIMSTACK-RUN-OK" not in r.output:
                raise ConsoleError(f"the run on the board failed (status {r.status}):\n"
                                   f"{r.output.strip()[-2000:]}")
            remote.get(f"{env.root}/{rdir}/out.tar.gz", tmp / "out.tar.gz")
            dest = Path(keep) if keep else tmp / "back"
            with tarfile.open(tmp / "out.tar.gz") as tar:
                for m in tar.getmembers():
                    if not m.isfile() or not re.fullmatch(r"out/[\w.\-]+", m.name):
                        raise ConsoleError(f"unexpected member {m.name!r} in the board's "
                                           "output archive")
                tar.extractall(dest)
            info = json.loads((dest / "out" / "run.json").read_text())
            outputs = {layer.name: np.load(dest / "out" / f"{layer.name}.npy")
                       for layer in b.layers}
    finally:
        if isinstance(target, str):
            remote.close()
    ref = run_network(b, x_int, reference_engine, keep_activations=True)
    layers = [compare_layer(layer.name, ref.activations[layer.name],
                            outputs[layer.name].astype(np.int64)) for layer in b.layers]
    logits = outputs[b.layers[-1].name].reshape(len(x_int), -1)
    got_pred = logits.argmax(axis=1)
    report = VerifyReport(bundle=b.name, backend=f"{info.get('backend', backend)}@{remote.name}",
                          images=int(len(x_int)), layers=layers,
                          prediction_agreement=float((ref.predictions == got_pred).mean()),
                          stages=info.get("stages", {}))
    if labels is not None:
        report.accuracy_reference = float((ref.predictions == labels).mean())
        report.accuracy_backend = float((got_pred == labels).mean())
    if report_dir is not None:
        report.write(report_dir)
    return BoardRun(report, info, outputs, dep, time.monotonic() - t0)
