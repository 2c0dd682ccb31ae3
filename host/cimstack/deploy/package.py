"""What ``cimstack deploy`` copies to the board, as deterministic .tar.gz archives.

- ``runtime.tar.gz``: ``host/cimstack`` without ``quant/`` (the only part that needs
  torch/Brevitas) and without caches, ``boards/`` and the HLS kernel sources
  (``hls/`` without build products; the emulated backend on a board-less "board"
  compiles them, the real board never does);
- ``overlay.tar.gz``: ``<name>.bit`` and ``<name>.hwh`` side by side;
- ``bundle.tar.gz``: the bundle folder.

Archives are byte-for-byte reproducible (sorted members, zero mtimes/owners, gzip
without a timestamp), so an unchanged runtime has the same sha256 and is not sent
again, and an interrupted transfer can resume against the same bytes.

On the board the runtime is used from where it was unpacked, by putting
``<root>/runtime/host`` on ``PYTHONPATH`` (and ``CIMSTACK_HOME=<root>/runtime``) — not
``pip install``: the PYNQ image's Python already has numpy and pynq, the board has
no internet, and a non-editable install would separate the package from the
``boards/`` folder it reads its facts from. Nothing is compiled or downloaded.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import Iterable

from ..paths import project_root

EXCLUDE_DIRS = {"__pycache__", ".pytest_cache", ".hypothesis", "build", "quant"}
EXCLUDE_SUFFIXES = (".pyc", ".pyo", ".so", ".o", ".part", ".tmp")


def _members(base: Path, arc: str, exclude_dirs=EXCLUDE_DIRS) -> Iterable[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude_dirs
                             and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.endswith(EXCLUDE_SUFFIXES) or fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            yield p, f"{arc}/{p.relative_to(base).as_posix()}"


def write_archive(out: str | os.PathLike, members: Iterable[tuple[Path, str]]) -> Path:
    """A reproducible .tar.gz of ``(file, name in archive)`` pairs."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in sorted(members, key=lambda m: m[1]):
            info = tarfile.TarInfo(name)
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    tmp.replace(out)
    return out


def runtime_archive(out: str | os.PathLike) -> Path:
    """``runtime/host/cimstack``, ``runtime/boards``, ``runtime/hls`` (see module doc)."""
    root = project_root()
    pkg = Path(__file__).resolve().parents[1]
    members = list(_members(pkg, "runtime/host/cimstack"))
    members += _members(root / "boards", "runtime/boards")
    if (root / "hls").is_dir():
        members += _members(root / "hls", "runtime/hls")
    return write_archive(out, members)


def overlay_archive(bitfile: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``overlay/<name>.bit`` and ``overlay/<name>.hwh`` from a .bit with its .hwh."""
    bit = Path(bitfile)
    hwh = bit.with_suffix(".hwh")
    for p in (bit, hwh):
        if not p.is_file():
            from ..errors import ConfigError
            raise ConfigError(f"overlay file {p} is missing: build it with `make -C overlay` "
                              "(the .bit and .hwh must sit side by side with one base name)")
    return write_archive(out, [(bit, f"overlay/{bit.name}"), (hwh, f"overlay/{hwh.name}")])


def bundle_archive(bundle_dir: str | os.PathLike, name: str, out: str | os.PathLike) -> Path:
    return write_archive(out, _members(Path(bundle_dir), f"bundles/{name}", exclude_dirs=set()))
