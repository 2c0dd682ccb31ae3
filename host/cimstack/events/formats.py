"""Real event file formats, read into tonic-style structured arrays.

N-MNIST binary (also N-Caltech101): 5 bytes per event, big-endian bit fields
``x[39:32] y[31:24] p[23] t[22:0]`` (t in microseconds). A record with y = 240 is a
timestamp-overflow marker, not an event. Decoding uses ``tonic.io.read_mnist_file``
after this module has checked the file as a whole (length a multiple of 5, events
inside the sensor, timestamps neither negative nor going backwards), so a truncated
or corrupt file raises :class:`EventFormatError` instead of returning partial garbage.

AEDAT 3.1 (IBM DVS128 Gesture): ASCII header lines starting with ``#`` (the first is
``#!AER-DAT3.1``, the last ``#!END-HEADER``, both required), then packets, each a
28-byte header of little-endian int32 fields (eventType:int16, eventSource:int16,
eventSize, eventTSOffset, eventTSOverflow, eventCapacity, eventNumber, eventValid)
followed by ``eventCapacity * eventSize`` bytes, of which the first ``eventNumber``
events are used. Polarity events (type 1, 8 bytes) are ``data:uint32,
timestamp:int32`` with bit 0 valid, bit 1 polarity, bits 2-16 y, bits 17-31 x; the
full time is ``eventTSOverflow << 31 | timestamp``. They are decoded here with that
bit layout (tonic 1.7's ``read_dvs_ibm`` unpacks its header reader's result wrongly
and ignores ``eventNumber``), keeping only events marked valid; other packet types
are skipped. The same checks as for N-MNIST apply to the result.

Gesture labels (``<recording>_labels.csv``): a header line, then rows
``class,startTime_usec,endTime_usec`` with classes 1..11 and start < end.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..fileio import write_bytes_atomic
from .core import EVENT_DTYPE, EventFormatError, as_events, make_events

NMNIST_SENSOR = (34, 34, 2)          # tonic sensor_size (W, H, P)
DVS128_SENSOR = (128, 128, 2)
_NMNIST_OVERFLOW_Y = 240
_NMNIST_T_MAX = (1 << 23) - 1
AEDAT_HEADER_MAX = 1 << 20
_PACKET_HEADER = struct.Struct("<hhiiiiii")
_POLARITY_RECORD = np.dtype([("d", "<u4"), ("t", "<i4")])
AEDAT_EVENT_TYPES = range(0, 13)     # 0 special, 1 polarity, 2 frame, ... 12 spike
POLARITY_EVENT = 1


def _read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise EventFormatError(f"event file {path} does not exist")
    return path.read_bytes()


def _check_times(ev: np.ndarray, path) -> None:
    """Recorded timestamps are never negative and never go backwards."""
    t = ev["t"]
    if t.size and t.min() < 0:
        i = int(np.argmax(t < 0))
        raise EventFormatError(f"{path}: event {i} has the negative timestamp {int(t[i])} us: "
                               "corrupt file")
    back = np.nonzero(np.diff(t) < 0)[0]
    if back.size:
        i = int(back[0]) + 1
        raise EventFormatError(f"{path}: timestamps go backwards at event {i} "
                               f"({int(t[i - 1])} -> {int(t[i])} us): corrupt file")


# ---------------------------------------------------------------------- N-MNIST

def read_nmnist(path: str | os.PathLike, sensor_size: tuple = NMNIST_SENSOR) -> np.ndarray:
    """Events of one N-MNIST binary file (tonic-style structured array)."""
    raw = _read_bytes(path)
    if len(raw) % 5:
        raise EventFormatError(
            f"{path}: {len(raw)} bytes is not a whole number of 5-byte N-MNIST events "
            f"({len(raw) // 5} events and {len(raw) % 5} stray bytes): the file is truncated")
    if not raw:
        return np.empty(0, EVENT_DTYPE)
    rec = np.frombuffer(raw, np.uint8).reshape(-1, 5)
    real = rec[:, 1] != _NMNIST_OVERFLOW_Y
    w, h = sensor_size[0], sensor_size[1]
    xs, ys = rec[real, 0], rec[real, 1]
    bad = np.nonzero((xs >= w) | (ys >= h))[0]
    if bad.size:
        i = int(np.nonzero(real)[0][bad[0]])
        raise EventFormatError(
            f"{path}: event {i} at byte {5 * i} has (x, y) = ({rec[i, 0]}, {rec[i, 1]}), "
            f"outside the {w}x{h} sensor: the file is corrupt or not N-MNIST")
    from tonic.io import read_mnist_file
    ev = as_events(read_mnist_file(str(path), dtype=EVENT_DTYPE))
    _check_times(ev, path)
    return ev


def encode_nmnist(events) -> bytes:
    """The N-MNIST binary encoding of ``events`` (sorted by time, t < 2^23 us)."""
    ev = as_events(events)
    if ev.size == 0:
        return b""
    x, y, t = ev["x"].astype(np.int64), ev["y"].astype(np.int64), ev["t"].astype(np.int64)
    if x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 239:
        raise ValueError("N-MNIST stores x in 0..255 and y in 0..239")
    if t.min() < 0 or t.max() > _NMNIST_T_MAX or np.any(np.diff(t) < 0):
        raise ValueError(f"N-MNIST needs non-decreasing timestamps in 0..{_NMNIST_T_MAX} us")
    rec = np.empty((ev.size, 5), np.uint8)
    rec[:, 0] = x
    rec[:, 1] = y
    rec[:, 2] = (ev["p"].astype(np.int64) << 7) | (t >> 16)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    return rec.tobytes()


def write_nmnist(path: str | os.PathLike, events) -> Path:
    """Write ``events`` as an N-MNIST binary file (atomically)."""
    return write_bytes_atomic(path, encode_nmnist(events))


# ------------------------------------------------------------------------ AEDAT

def _aedat_header(raw: bytes, path) -> tuple[float, int]:
    """(version, offset of the first packet)."""
    if not raw.startswith(b"#"):
        raise EventFormatError(f"{path}: no AEDAT header (the file must start with "
                               "'#!AER-DAT'): not an AEDAT file")
    pos, version, ended = 0, None, False
    while pos < len(raw) and raw[pos:pos + 1] == b"#":
        end = raw.find(b"\n", pos)
        if end < 0 or end > AEDAT_HEADER_MAX:
            raise EventFormatError(f"{path}: the AEDAT header never ends (truncated file)")
        line = raw[pos:end].rstrip(b"\r").decode("ascii", "replace")
        if line.startswith("#!AER-DAT"):
            try:
                version = float(line[len("#!AER-DAT"):])
            except ValueError:
                raise EventFormatError(f"{path}: unreadable AEDAT version line {line!r}") from None
        pos = end + 1
        if line.startswith("#!END-HEADER"):
            ended = True
            break
    if version is None:
        raise EventFormatError(f"{path}: the header has no '#!AER-DAT<version>' line")
    if not 3.0 <= version < 4.0:
        raise EventFormatError(f"{path}: AEDAT version {version} is not supported; this "
                               "reader takes AEDAT 3.x (the DVS128 Gesture recordings)")
    if not ended:
        raise EventFormatError(f"{path}: the AEDAT header has no '#!END-HEADER' line, so "
                               f"where the packets start is unknown (byte {pos}): the "
                               "header is damaged or the file truncated")
    return version, pos


def read_aedat(path: str | os.PathLike, sensor_size: tuple = DVS128_SENSOR) -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (IBM DVS128 Gesture), tonic-style. Each
    packet's first ``eventNumber`` events are read (the rest of its ``eventCapacity`` is
    unused room); packets of other types are skipped, and so are events marked invalid."""
    raw = _read_bytes(path)
    _, pos = _aedat_header(raw, path)
    parts = []
    while pos < len(raw):
        if pos + _PACKET_HEADER.size > len(raw):
            raise EventFormatError(
                f"{path}: truncated packet header at byte {pos} ({len(raw) - pos} of "
                f"{_PACKET_HEADER.size} bytes)")
        etype, _src, esize, _tsoff, tsover, cap, number, _valid = _PACKET_HEADER.unpack_from(raw, pos)
        if etype not in AEDAT_EVENT_TYPES:
            raise EventFormatError(
                f"{path}: packet at byte {pos} has event type {etype}; AEDAT 3.1 types are "
                f"{AEDAT_EVENT_TYPES.start}..{AEDAT_EVENT_TYPES.stop - 1}: corrupt file")
        if esize <= 0 or cap < 0 or number < 0 or tsover < 0:
            raise EventFormatError(
                f"{path}: corrupt packet header at byte {pos} (type {etype}, size {esize}, "
                f"capacity {cap}, number {number}, timestamp overflow {tsover})")
        if number > cap:
            raise EventFormatError(
                f"{path}: packet at byte {pos} declares {number} events (eventNumber) but "
                f"room for only {cap} (eventCapacity): corrupt packet header")
        if etype == POLARITY_EVENT and esize != 8:
            raise EventFormatError(f"{path}: polarity packet at byte {pos} declares "
                                   f"{esize}-byte events; AEDAT 3.1 polarity events are 8 bytes")
        body = pos + _PACKET_HEADER.size
        end = body + cap * esize
        if end > len(raw):
            raise EventFormatError(
                f"{path}: truncated packet at byte {pos}: it declares {cap} events of "
                f"{esize} bytes but only {len(raw) - body} bytes follow")
        if etype == POLARITY_EVENT:
            rec = np.frombuffer(raw, _POLARITY_RECORD, number, body)
            rec = rec[(rec["d"] & 1) == 1]               # keep events marked valid
            d = rec["d"]
            parts.append(make_events((d >> 17) & 0x1FFF, (d >> 2) & 0x1FFF,
                                     (np.int64(tsover) << 31) | rec["t"].astype(np.int64),
                                     (d >> 1) & 1))
        pos = end
    ev = np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)
    w, h = sensor_size[0], sensor_size[1]
    if ev.size and (ev["x"].max() >= w or ev["y"].max() >= h):
        raise EventFormatError(f"{path}: events outside the {w}x{h} sensor: corrupt file "
                               "or another camera")
    _check_times(ev, path)
    return ev


def encode_aedat(events, packet_events: int = 4096, source: str = "DVS128") -> bytes:
    """An AEDAT 3.1 file holding ``events`` (sorted by time) as polarity packets of up
    to ``packet_events`` events; a packet never spans two values of the timestamp
    overflow ``t >> 31``, which its header holds once for all its events."""
    ev = as_events(events)
    out = [b"#!AER-DAT3.1\r\n", b"#Format: RAW\r\n", f"#Source 1: {source}\r\n".encode(),
           b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n", b"#!END-HEADER\r\n"]
    over = ev["t"].astype(np.int64) >> 31
    cuts = np.flatnonzero(np.diff(over)) + 1
    starts = sorted(set(range(0, ev.size, packet_events)) | set(cuts.tolist()))
    for i, j in zip(starts, starts[1:] + [ev.size]):
        chunk = ev[i:j]
        t = chunk["t"].astype(np.int64)
        d = ((chunk["x"].astype(np.uint32) << 17) | (chunk["y"].astype(np.uint32) << 2)
             | (chunk["p"].astype(np.uint32) << 1) | 1)
        rec = np.empty(chunk.size, _POLARITY_RECORD)
        rec["d"], rec["t"] = d, (t & 0x7FFFFFFF)
        out.append(_PACKET_HEADER.pack(POLARITY_EVENT, 1, 8, 4, int(t[0] >> 31), chunk.size,
                                       chunk.size, chunk.size))
        out.append(rec.tobytes())
    return b"".join(out)


def read_gesture_labels(path: str | os.PathLike, classes: int = 11) -> np.ndarray:
    """A DVS Gesture ``*_labels.csv``: rows (class, startTime_usec, endTime_usec), int64
    [n, 3]; classes are 1..``classes`` in the file, and each gesture has 0 <= start < end."""
    try:
        text = _read_bytes(path).decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise EventFormatError(f"{path}: not a text file; expected the CSV rows "
                               "'class,startTime_usec,endTime_usec'") from None
    rows = []
    for i, line in enumerate(text):
        if i == 0 and not line[:1].isdigit():
            continue                                  # header line
        try:
            cls, start, end = (int(v) for v in line.split(","))
        except ValueError:
            raise EventFormatError(f"{path}:{i + 1}: expected 'class,start_us,end_us', got "
                                   f"{line!r}") from None
        if not 1 <= cls <= classes or not 0 <= start < end:
            raise EventFormatError(
                f"{path}:{i + 1}: gesture {line!r} needs a class in 1..{classes} and "
                "0 <= start_us < end_us")
        rows.append((cls, start, end))
    if not rows:
        raise EventFormatError(f"{path}: no gestures; expected rows "
                               "'class,startTime_usec,endTime_usec' after the header")
    return np.array(rows, np.int64).reshape(-1, 3)
