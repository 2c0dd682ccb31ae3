"""Atomic output: a crash never leaves a half-written file or folder behind."""

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


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success."""
    path = Path(path)
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
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest)
    tmp.mkdir(0o777)             # 0777 less the umask, so the folder can be served
    try:
        yield tmp
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
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
