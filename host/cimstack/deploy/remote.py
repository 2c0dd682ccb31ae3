"""``cimstack deploy`` and ``cimstack run --board``: copy, install, run, verify.

    remote = connect("/dev/ttyUSB1")                 # or "192.168.2.99", "pynq.local"
    deploy(remote, bundle="cimstack-out/bundle")     # runtime + overlay + bundle
    result = run_on_board("cimstack-out/bundle", remote, x_int, labels=y)
    print(result.report.summary())                   # the VerifyReport of `cimstack verify`

Layout on the board (``BoardOptions.root``, relative to the login's home or absolute)::

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
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ConfigError
from .console import ConsoleDisconnected, ConsoleError, ExecResult, SerialConsole
from .options import BoardOptions
from .transfer import TransferInterrupted, TransferStats, get_file, put_file

q = shlex.quote


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


def connect(target: str, options: Optional[BoardOptions] = None,
            password: Optional[str] = None, chunk: int = 2048, login_timeout: float = 30.0,
            log: Optional[Callable[[str], None]] = None):
    """A remote for ``target``: a serial port, or a board address for ssh (``host``,
    ``user@host:port``, an ~/.ssh/config alias).

    ``options.via``: ``serial``, ``ssh`` or ``auto`` (a serial target switches to ssh
    when the board reports an address that answers key-based ssh)."""
    options = options or BoardOptions()
    if not is_serial_target(target):
        if options.via == "serial":
            raise ConfigError(f"{target} is not a serial port; pass /dev/ttyUSB1 or similar")
        return options.ssh_remote(target)
    remote = SerialRemote(target, options.board, options.user, password, chunk=chunk,
                          login_timeout=login_timeout)
    if options.via == "auto":
        ip = remote.ip_address()
        if ip and options.ssh_remote(ip).works():
            if log:
                log(f"board at {ip} answers ssh: copying over the network")
            remote.close()
            return options.ssh_remote(ip)
        if log:
            why = f"{ip} has no key-based ssh" if ip else "no address"
            log(f"copying over the serial console ({why})")
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
        shown = self.root if self.root.startswith("/") else f"~/{self.root}"
        lines = [f"deployed to {self.target} over {self.via} into {shown} "
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


def _unpack(archives: list[tuple[str, str]]) -> str:
    """Shell text (run in the root) that unpacks each ``(archive, dest)`` of
    ``.incoming/`` into ``dest``, replacing it whole; one command for all of them
    (one round trip over ssh)."""
    return " && ".join(
        f"rm -rf .unpack && mkdir -p .unpack && tar -xzf .incoming/{q(archive)} -C .unpack && "
        f"mkdir -p \"$(dirname {q(dest)})\" && rm -rf {q(dest)} && "
        f"mv .unpack/{q(dest)} {q(dest)} && rm -rf .unpack" for archive, dest in archives)


def deploy(remote, bundle: Optional[str | os.PathLike] = None,
           overlay: Optional[str | os.PathLike] = None,
           options: Optional[BoardOptions] = None,
           progress: Optional[Callable[[str, int, int], None]] = None) -> DeployResult:
    """Copy the runtime, the overlay and optionally a bundle to ``remote`` (from
    :func:`connect`), unpack them, and check that the board's Python imports the
    runtime. Unchanged archives are not sent again."""
    from ..bundle import load_bundle
    from .package import bundle_archive, overlay_archive, runtime_archive
    options = options or BoardOptions()
    board = options.board
    t0 = time.monotonic()
    root = options.root
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
        remote.exec(f"cd {q(root)} && " + _unpack([(n, d) for n, _, d in archives]),
                    timeout=120, check=True)
    check = remote.exec(options.python_cmd(
        "-c \"import sys, numpy, cimstack.bundle, cimstack.ref.network; "
        "print('CIMSTACK-PY', sys.version.split()[0], 'numpy', numpy.__version__)\"",
        sudo=False), timeout=120)
    m = re.search(r"CIMSTACK-PY (.*)", check.output)
    if not check.ok or not m:
        raise ConsoleError(f"the runtime does not import on the board's Python "
                           f"({options.python}):\n{check.output.strip()[-1500:]}")
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
                 options: Optional[BoardOptions] = None,
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

    options = options or BoardOptions()
    board = options.board
    t0 = time.monotonic()
    b = load_bundle(bundle)
    x_int = np.asarray(x_int)
    remote = connect(target, options, log=log) if isinstance(target, str) else target
    try:
        dep = deploy(remote, bundle, overlay, options, progress) if deploy_first else None
        run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        rdir = f"runs/{run_id}"
        with tempfile.TemporaryDirectory(prefix="cimstack-run-") as tmp:
            tmp = Path(tmp)
            np.save(tmp / "input.npy", x_int)
            remote.put(tmp / "input.npy", f"{options.root}/{rdir}/input.npy")
            from ..overlay_shape import overlay_shape
            name = overlay_shape(board).name
            args = (f"-m cimstack.deploy.runner --bundle bundles/{q(b.name)} "
                    f"--input {rdir}/input.npy --out {rdir}/out --overlay overlay/{name}.bit "
                    f"--backend {q(backend)} --board {q(board)}")
            if log:
                log(f"running {b.name} on {remote.name} ({backend}) ...")
            password = getattr(remote, "password_for_sudo", "xilinx")
            r = remote.exec(options.python_cmd(args, password=password), timeout=timeout)
            if r.status != 0 or "CIMSTACK-RUN-OK" not in r.output:
                failed = re.search(r"CIMSTACK-RUN-FAILED .*", r.output)
                if failed:                   # the runner's one line says what went wrong
                    raise ConsoleError(f"the run on {remote.name} ({backend}) failed: "
                                       f"{failed.group(0).strip()}")
                raise ConsoleError(f"the run on the board failed (status {r.status}):\n"
                                   f"{r.output.strip()[-2000:]}")
            remote.get(f"{options.root}/{rdir}/out.tar.gz", tmp / "out.tar.gz")
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
