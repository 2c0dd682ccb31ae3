"""Atomic output: a crash never leaves a half-written file or folder behind, and
nothing cimstack did not write is ever deleted or replaced.

Every folder cimstack writes as a whole (bundles, reports, training outputs) carries
a marker file, :data:`MARKER`. :func:`atomic_folder` replaces an existing folder only
when it is empty or carries that marker; anything else (a folder of the user's own
files, a file) is refused with :class:`OutputError` unless ``force=True`` (the
command lines' ``--force``), and a file is never turned into a folder or back.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import OutputError

MARKER = ".cimstack"
"""Name of the marker file in every folder cimstack wrote as a whole."""


def _temp_name(dest: Path) -> Path:
    """A fresh hidden name beside ``dest`` (created with O_EXCL / mkdir, so never reused)."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}")


def jsonable(obj: Any) -> Any:
    """``json.dumps`` default: NumPy scalars and arrays, paths."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _check_parents(path: Path) -> None:
    """The folders above ``path`` are folders (or do not exist yet), never files."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"cannot write {path}: {parent} is a file, not a folder; "
                                  "choose another output path")
            return


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` may be written as a file: it is not a folder (or a link to one)."""
    path = Path(path)
    _check_parents(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; cimstack writes a file there and never "
                          "replaces a folder with a file: give a file name")
    return path


def check_output_folder(path: str | os.PathLike, force: bool = False,
                        replace: bool = True) -> Path:
    """``path`` may be (re)written as a folder by cimstack: it does not exist, or is an
    empty folder, or a folder cimstack wrote (it holds :data:`MARKER`), or ``force``
    is set. Raises :class:`OutputError` naming the problem and the fix otherwise.
    A symbolic link to a folder is refused when the folder would be ``replace``d (the
    link, not its target, would go); a folder only written into may be one."""
    path = Path(path)
    _check_parents(path)
    if (replace and path.is_symlink()) or (path.exists() and not path.is_dir()):
        raise OutputError(f"{path} exists and is not a folder; cimstack never turns a file "
                          "(or a link) into a folder: choose another output folder")
    if path.is_dir() and not (path / MARKER).is_file() and any(path.iterdir()) and not force:
        raise OutputError(f"{path} is a folder cimstack did not write (it holds other files "
                          f"and no {MARKER} marker); choose another output folder, or pass "
                          "--force to replace it")
    return path


def claim_folder(path: str | os.PathLike, force: bool = False, kind: str = "output") -> Path:
    """Make ``path`` a folder cimstack writes files into (a run, a sweep, a study, a
    verification report): checked as :func:`check_output_folder` says, created, and
    marked. Nothing in it is deleted; files of cimstack's own names are rewritten."""
    path = check_output_folder(path, force, replace=False)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).is_file():
        write_text_atomic(path / MARKER, json.dumps({"written_by": "cimstack",
                                                     "kind": kind}) + "\n")
    return path


def is_inside(inner: str | os.PathLike, outer: str | os.PathLike) -> bool:
    """True when ``inner`` is ``outer`` or lies under it (after resolving links)."""
    inner, outer = Path(inner).resolve(), Path(outer).resolve()
    return inner == outer or outer in inner.parents


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success."""
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    # modes as open() gives them (0666 less the umask), not mkstemp's 0600
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, force: bool = False,
                  kind: str = "output") -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``.

    ``path`` is checked first (:func:`check_output_folder`): a folder cimstack did not
    write is refused unless ``force``. The new folder gets the :data:`MARKER` file
    (naming ``kind``), so a later run may replace it."""
    dest = check_output_folder(path, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest)
    tmp.mkdir(0o777)             # 0777 less the umask, so the folder can be served
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"written_by": "cimstack", "kind": kind}) + "\n")
        check_output_folder(dest, force)      # still ours: nothing moved in meanwhile
        old = None
        if dest.exists():
            old = _temp_name(dest)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, synced, then rename it."""
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """JSON (NumPy scalars and arrays allowed) written atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=jsonable) + "\n")


def write_csv_atomic(path: str | os.PathLike, rows: list[dict],
                     columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as CSV with a header (``columns``, default: the first row's keys)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns or rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())
