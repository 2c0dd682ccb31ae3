"""File transfer over the serial console: checksummed base64 chunks, retry, resume.

Only the board's shell and coreutils are used (``base64``, ``sha256sum``, ``stat``,
``head``, ``tail``), so the transfer works before anything is installed there.

Upload (:func:`put_file`) of ``local`` to ``remote``:

1. if ``remote`` already has the file's sha256, nothing is sent;
2. the partial file ``remote.<sha16>.part`` (named after the content, so a partial
   of another version is never resumed) is checked: its length and the sha256 of its
   bytes against the same prefix of the local file; a good prefix is kept (resume),
   a bad one is discarded;
3. each chunk goes as a here-document of 76-column base64 lines (the board's tty
   takes lines of at most 4095 characters and buffers 4 KiB of unread input, so a
   chunk of 2 KiB keeps a whole command inside that buffer) together with its
   sha256 and offset; the board decodes it into a temporary file, checks the digest
   and the offset and only then appends it: ``OK <size>``, ``BAD <size>`` (digest
   differs: the chunk is sent again) or ``OFF <size>`` (the offset moved: continue
   from the board's size);
4. at the end the whole file's sha256 is checked on the board, and the partial file
   is renamed into place.

A lost answer, a timeout or a garbled line is retried after re-synchronising the
console; a disconnect raises :class:`TransferInterrupted` with the progress so far,
and calling :func:`put_file` again resumes from what the board holds.

Download (:func:`get_file`) mirrors it: the board prints each chunk's sha256 and
base64; the host appends verified chunks to ``local.part`` and resumes from its size.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import HardwareError
from .console import CommandTimeout, ConsoleDisconnected, ConsoleError, SerialConsole

CHUNK = 2048
LINE = 76

RX_FUNC = r"""__csrx() {
  c=$(mktemp) || return 1
  base64 -d > "$c" 2>/dev/null
  h=$(sha256sum < "$c" | cut -c1-64)
  s=$(stat -c %s "$1" 2>/dev/null || echo 0)
  if [ "$h" != "$3" ]; then rm -f "$c"; printf 'CSRX %s %s\n' BAD "$s"
  elif [ "$s" != "$2" ]; then rm -f "$c"; printf 'CSRX %s %s\n' OFF "$s"
  else cat "$c" >> "$1" && rm -f "$c"; printf 'CSRX %s %s\n' OK "$(stat -c %s "$1")"; fi
}"""
RX_ANSWER = re.compile(r"CSRX (OK|BAD|OFF) (\d+)")


class TransferError(HardwareError):
    """A file could not be transferred intact."""


class TransferInterrupted(TransferError, ConnectionError):
    """The link went away mid-transfer; calling again resumes. ``done`` bytes of
    ``total`` are already at the destination (``total`` is -1 when not known yet)."""

    def __init__(self, message: str, done: int, total: int):
        super().__init__(message)
        self.done, self.total = done, total


@dataclass
class TransferStats:
    path: str
    size: int
    sha256: str
    sent: int = 0              # payload bytes sent in this call
    resumed_from: int = 0      # bytes the far side already held
    chunks: int = 0
    retries: int = 0
    skipped: bool = False      # the far side already had the file
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def sha256_file(path: str | os.PathLike, limit: Optional[int] = None) -> str:
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while True:
            n = 1 << 20 if left is None else min(1 << 20, left)
            if n == 0:
                break
            block = f.read(n)
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


def q(path: str) -> str:
    return shlex.quote(path)


def _remote_sha(con: SerialConsole, path: str, timeout: float) -> str:
    r = con.exec(f"sha256sum < {q(path)} 2>/dev/null | cut -c1-64", timeout=timeout)
    m = re.search(r"\b[0-9a-f]{64}\b", r.output)
    return m.group(0) if (r.ok and m) else ""


def _part_size(con: SerialConsole, part: str, timeout: float) -> int:
    r = con.exec(f"stat -c 'SIZE %s' {q(part)} 2>/dev/null || echo 'SIZE 0'", timeout=timeout)
    m = re.search(r"SIZE (\d+)", r.output)
    if not m:
        raise ConsoleError(f"cannot read the size of {part} on the board: {r.output!r}")
    return int(m.group(1))


def _retry(con, stats, failures: int, retries: int, give_up: str) -> int:
    """Count one failed chunk: raise ``TransferError(give_up)`` past ``retries`` failures
    in a row, log in again if the console dropped; returns the new failure count."""
    failures += 1
    stats.retries += 1
    if failures > retries:
        raise TransferError(give_up)
    if not con.ready:
        con.login()
    return failures


def put_file(con: SerialConsole, local: str | os.PathLike, remote: str,
             chunk: int = CHUNK, retries: int = 5, timeout: float = 30.0,
             progress: Optional[Callable[[int, int], None]] = None) -> TransferStats:
    """Copy ``local`` to ``remote`` (a path on the board, relative to the login's home
    or absolute) over the console; see the module docstring for the protocol."""
    local = Path(local)
    size = local.stat().st_size
    sha = sha256_file(local)
    stats = TransferStats(remote, size, sha)
    t0 = time.monotonic()
    part = f"{remote}.{sha[:16]}.part"
    done = 0
    try:
        con.exec(f"mkdir -p {q(os.path.dirname(remote) or '.')}", timeout=timeout).check()
        if _remote_sha(con, remote, timeout + size / 2e4) == sha:
            stats.skipped = True
            stats.seconds = time.monotonic() - t0
            return stats
        con.exec(RX_FUNC, timeout=timeout, subshell=False).check()
        have = _part_size(con, part, timeout)
        if have > size or (have and _remote_sha(con, part, timeout) != sha256_file(local, have)):
            con.exec(f"rm -f {q(part)}", timeout=timeout).check()
            have = 0
        stats.resumed_from = done = have
        failures = 0
        with open(local, "rb") as f:
            while done < size:
                f.seek(done)
                data = f.read(chunk)
                b64 = base64.b64encode(data).decode()
                lines = "\n".join(b64[i:i + LINE] for i in range(0, len(b64), LINE))
                digest = hashlib.sha256(data).hexdigest()
                cmd = f"__csrx {q(part)} {done} {digest} <<'CSRX_EOF'\n{lines}\nCSRX_EOF"
                try:
                    r = con.exec(cmd, timeout=timeout)
                    m = RX_ANSWER.search(r.output)
                except CommandTimeout:
                    m = None
                if m is None:
                    # lost or garbled answer: the shell function may be gone (new login)
                    failures = _retry(con, stats, failures, retries,
                                      f"{remote}: no valid answer for the chunk at {done} "
                                      f"after {retries} retries")
                    con.exec(RX_FUNC, timeout=timeout, subshell=False).check()
                    done = _part_size(con, part, timeout)
                    continue
                verdict, board_size = m.group(1), int(m.group(2))
                if verdict == "OK":
                    stats.sent += len(data)
                    stats.chunks += 1
                    failures = 0
                    done = board_size
                elif verdict == "BAD":
                    failures = _retry(con, stats, failures, retries,
                                      f"{remote}: the chunk at {done} arrived corrupted "
                                      f"{failures + 1} times in a row; the serial link is too "
                                      "noisy (try a shorter cable or a smaller chunk)")
                else:                         # OFF: follow the board's size
                    failures = _retry(con, stats, failures, retries,
                                      f"{remote}: the board's partial file {part} changed "
                                      f"size {failures + 1} times in a row (another transfer "
                                      "to the same file running?)")
                    done = board_size if board_size <= size else 0
                    if board_size > size:
                        con.exec(f"rm -f {q(part)}", timeout=timeout).check()
                if progress:
                    progress(done, size)
        if _remote_sha(con, part, timeout + size / 2e4) != sha:
            con.exec(f"rm -f {q(part)}", timeout=timeout)
            raise TransferError(f"{remote}: sha256 on the board does not match after the "
                                "transfer; the partial file was removed, run again")
        con.exec(f"mv -f {q(part)} {q(remote)}", timeout=timeout).check()
    except ConsoleDisconnected as exc:
        raise TransferInterrupted(f"{remote}: transfer interrupted with {done} of {size} "
                                  f"bytes on the board ({exc}); run again to resume",
                                  done, size) from None
    finally:
        stats.seconds = time.monotonic() - t0
    return stats


GET_CMD = ("f={path}; off={off}; n={n}; c=$(mktemp) && "
           "tail -c +$((off+1)) \"$f\" | head -c \"$n\" > \"$c\" && "
           "printf 'CSTX %s %s\\n' \"$(sha256sum < \"$c\" | cut -c1-64)\" \"$(stat -c %s \"$c\")\" && "
           "base64 -w {line} < \"$c\"; rm -f \"$c\"")
TX_HEAD = re.compile(r"CSTX ([0-9a-f]{64}) (\d+)\n")


def get_file(con: SerialConsole, remote: str, local: str | os.PathLike, chunk: int = 8192,
             retries: int = 5, timeout: float = 60.0,
             progress: Optional[Callable[[int, int], None]] = None) -> TransferStats:
    """Copy ``remote`` from the board to ``local``; resumes from ``local.part``."""
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    done, size = 0, -1
    try:
        r = con.exec(f"stat -c 'SIZE %s' {q(remote)} && sha256sum < {q(remote)} | cut -c1-64",
                     timeout=timeout)
        m = re.search(r"SIZE (\d+)\n([0-9a-f]{64})", r.output)
        if not r.ok or not m:
            raise TransferError(f"{remote} is not readable on the board: {r.output.strip()}")
        size, sha = int(m.group(1)), m.group(2)
        stats = TransferStats(remote, size, sha)
        if local.is_file() and local.stat().st_size == size and sha256_file(local) == sha:
            stats.skipped = True
            return stats
        part = local.with_name(f"{local.name}.{sha[:16]}.part")
        done = part.stat().st_size if part.is_file() else 0
        if done > size or (done and sha256_file(part) != _remote_prefix_sha(con, remote, done,
                                                                           timeout)):
            part.unlink()
            done = 0
        stats.resumed_from = done
        failures = 0
        while done < size:
            n = min(chunk, size - done)
            try:
                r = con.exec(GET_CMD.format(path=q(remote), off=done, n=n, line=LINE),
                             timeout=timeout)
                h = TX_HEAD.search(r.output)
            except CommandTimeout:
                h = None
            data = b""
            if h:
                body = r.output[h.end():]
                try:
                    data = base64.b64decode("".join(body.split()), validate=True)
                except ValueError:
                    data = b""
            if not h or len(data) != int(h.group(2)) or \
                    hashlib.sha256(data).hexdigest() != h.group(1) or len(data) != n:
                failures = _retry(con, stats, failures, retries,
                                  f"{remote}: the chunk at {done} could not be read intact "
                                  f"after {retries} retries")
                continue
            failures = 0
            with open(part, "ab") as f:
                f.write(data)
            done += len(data)
            stats.sent += len(data)
            stats.chunks += 1
            if progress:
                progress(done, size)
        if sha256_file(part) != sha:
            part.unlink()
            raise TransferError(f"{remote}: sha256 of the copy does not match the board's; "
                                "the partial file was removed, run again")
        os.replace(part, local)
        stats.seconds = time.monotonic() - t0
        return stats
    except ConsoleDisconnected as exc:
        raise TransferInterrupted(f"{remote}: download interrupted with {done} bytes in "
                                  f"{local}.*.part ({exc}); run again to resume",
                                  done, size) from None


def _remote_prefix_sha(con: SerialConsole, remote: str, n: int, timeout: float) -> str:
    r = con.exec(f"head -c {n} {q(remote)} | sha256sum | cut -c1-64", timeout=timeout)
    m = re.search(r"\b[0-9a-f]{64}\b", r.output)
    return m.group(0) if m else ""
