"""Real event file formats, read into tonic-style structured arrays.

N-MNIST binary (also N-Caltech101): 5 bytes per event, big-endian bit fields
``x[39:32] y[31:24] p[23] t[22:0]`` (t in microseconds). A record with y = 240 is a
timestamp-overflow marker, not an event. Decoding uses ``tonic.io.read_mnist_file``
after this module has checked the file as a whole (length a multiple of 5, events
inside the sensor, timestamps not going backwards), so a truncated or corrupt file
raises :class:`EventFormatError` instead of returning partial garbage.

AEDAT 3.1 (IBM DVS128 Gesture): ASCII header lines starting with ``#`` (the first is
``#!AER-DAT3.1``, the last ``#!END-HEADER``), then packets, each a 28-byte header of
little-endian int32 fields (eventType:int16, eventSource:int16, eventSize,
eventTSOffset, eventTSOverflow, eventCapacity, eventNumber, eventValid) followed by
``eventCapacity * eventSize`` bytes. Polarity events (type 1, 8 bytes) are
``data:uint32, timestamp:int32`` with bit 0 valid, bit 1 polarity, bits 2-16 y,
bits 17-31 x; the full time is ``eventTSOverflow << 31 | timestamp``. The whole file
is checked first; files of polarity packets only (the DVS Gesture recordings) are then
decoded with ``tonic.io.read_dvs_ibm``, anything else (other packet types, timestamp
overflow) by the same bit layout here, keeping only polarity events marked valid.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..report.io import write_bytes_atomic
from .core import EVENT_DTYPE, EventFormatError, as_events, make_events

NMNIST_SENSOR = (34, 34, 2)          # tonic sensor_size (W, H, P)
DVS128_SENSOR = (128, 128, 2)
_NMNIST_OVERFLOW_Y = 240
_NMNIST_T_MAX = (1 << 23) - 1
AEDAT_HEADER_MAX = 1 << 20
_PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_EVENT = 1


def _read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise EventFormatError(f"event file {path} does not exist")
    return path.read_bytes()


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
    ev = read_mnist_file(str(path), dtype=EVENT_DTYPE)
    if ev.size > 1 and np.any(np.diff(ev["t"]) < 0):
        i = int(np.nonzero(np.diff(ev["t"]) < 0)[0][0]) + 1
        raise EventFormatError(f"{path}: timestamps go backwards at event {i} "
                               f"({int(ev['t'][i - 1])} -> {int(ev['t'][i])} us): corrupt file")
    return as_events(ev)


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
    pos, version = 0, None
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
            break
    if version is None:
        raise EventFormatError(f"{path}: the header has no '#!AER-DAT<version>' line")
    if not 3.0 <= version < 4.0:
        raise EventFormatError(f"{path}: AEDAT version {version} is not supported; this "
                               "reader takes AEDAT 3.x (the DVS128 Gesture recordings)")
    return version, pos


def read_aedat(path: str | os.PathLike, sensor_size: tuple = DVS128_SENSOR) -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (IBM DVS128 Gesture), tonic-style."""
    raw = _read_bytes(path)
    _, pos = _aedat_header(raw, path)
    packets, polarity_only, overflow = [], True, False
    while pos < len(raw):
        if pos + _PACKET_HEADER.size > len(raw):
            raise EventFormatError(
                f"{path}: truncated packet header at byte {pos} ({len(raw) - pos} of "
                f"{_PACKET_HEADER.size} bytes)")
        etype, _src, esize, _tsoff, tsover, cap, number, _valid = _PACKET_HEADER.unpack_from(raw, pos)
        if esize <= 0 or cap < 0 or number < 0 or number > cap or etype < 0:
            raise EventFormatError(
                f"{path}: corrupt packet header at byte {pos} (type {etype}, size {esize}, "
                f"capacity {cap}, number {number})")
        if etype == POLARITY_EVENT and esize != 8:
            raise EventFormatError(f"{path}: polarity packet at byte {pos} declares "
                                   f"{esize}-byte events; AEDAT 3.1 polarity events are 8 bytes")
        body = pos + _PACKET_HEADER.size
        end = body + cap * esize
        if end > len(raw):
            raise EventFormatError(
                f"{path}: truncated packet at byte {pos}: it declares {cap} events of "
                f"{esize} bytes but only {len(raw) - body} bytes follow")
        packets.append((etype, body, cap, tsover))
        polarity_only &= etype == POLARITY_EVENT
        overflow |= tsover != 0
        pos = end
    if not packets:
        return np.empty(0, EVENT_DTYPE)
    if polarity_only and not overflow:
        # tonic 1.7's read_dvs_ibm unpacks the header reader's result wrongly; its two
        # building blocks are used directly, with read_dvs_ibm's bit layout.
        from tonic.io import get_aer_events_from_file, read_aedat_header_from_file
        version, start, _ = read_aedat_header_from_file(str(path))
        rec = get_aer_events_from_file(str(path), version, start)
        d = rec["address"].astype(np.uint32)
        keep = (d & 1) == 1                          # keep events marked valid
        d = d[keep]
        ev = make_events((d >> 17) & 0x1FFF, (d >> 2) & 0x1FFF,
                         rec["timeStamp"][keep].astype(np.int64), (d >> 1) & 1)
    else:
        parts = []
        for etype, body, cap, tsover in packets:
            if etype != POLARITY_EVENT:
                continue
            rec = np.frombuffer(raw, np.dtype([("d", "<u4"), ("t", "<i4")]), cap, body)
            rec = rec[(rec["d"] & 1) == 1]
            d = rec["d"]
            parts.append(make_events((d >> 17) & 0x1FFF, (d >> 2) & 0x1FFF,
                                     (np.int64(tsover) << 31) | rec["t"].astype(np.int64),
                                     (d >> 1) & 1))
        ev = np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)
    w, h = sensor_size[0], sensor_size[1]
    if ev.size and (ev["x"].max() >= w or ev["y"].max() >= h or ev["x"].min() < 0
                    or ev["y"].min() < 0):
        raise EventFormatError(f"{path}: events outside the {w}x{h} sensor: corrupt file "
                               "or another camera")
    return ev


def encode_aedat(events, packet_events: int = 4096, source: str = "DVS128") -> bytes:
    """An AEDAT 3.1 file holding ``events`` as polarity packets (for tests and tools)."""
    ev = as_events(events)
    out = [b"#!AER-DAT3.1\r\n", b"#Format: RAW\r\n", f"#Source 1: {source}\r\n".encode(),
           b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n", b"#!END-HEADER\r\n"]
    for i in range(0, ev.size, packet_events):
        chunk = ev[i:i + packet_events]
        t = chunk["t"].astype(np.int64)
        d = ((chunk["x"].astype(np.uint32) << 17) | (chunk["y"].astype(np.uint32) << 2)
             | (chunk["p"].astype(np.uint32) << 1) | 1)
        rec = np.empty(chunk.size, np.dtype([("d", "<u4"), ("t", "<i4")]))
        rec["d"], rec["t"] = d, (t & 0x7FFFFFFF)
        out.append(_PACKET_HEADER.pack(POLARITY_EVENT, 1, 8, 4, int(t[0] >> 31), chunk.size,
                                       chunk.size, chunk.size))
        out.append(rec.tobytes())
    return b"".join(out)


def read_gesture_labels(path: str | os.PathLike) -> np.ndarray:
    """A DVS Gesture ``*_labels.csv``: rows (class, startTime_usec, endTime_usec), int64
    [n, 3]; classes are 1..11 in the file."""
    text = Path(path).read_text().strip().splitlines()
    rows = []
    for i, line in enumerate(text):
        if i == 0 and not line[:1].isdigit():
            continue                                  # header line
        try:
            cls, start, end = (int(v) for v in line.split(","))
        except ValueError:
            raise EventFormatError(f"{path}:{i + 1}: expected 'class,start_us,end_us', got "
                                   f"{line!r}") from None
        rows.append((cls, start, end))
    return np.array(rows, np.int64).reshape(-1, 3)
