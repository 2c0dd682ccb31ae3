"""Event-camera files of every supported format, read and written through one pair of
functions: :func:`read_event_file` and :func:`write_event_file`.

=========  ====================  =============================  ==========================
format     file name             read by                        written by
=========  ====================  =============================  ==========================
nmnist     ``*.bin``             :func:`.formats.read_nmnist`   :func:`.formats.encode_nmnist`
aedat3     ``*.aedat`` (3.x)     :func:`.formats.read_aedat`    :func:`.formats.encode_aedat`
aedat4     ``*.aedat4``          faery                          faery
evt2       ``*.raw``, ``*.evt``  faery                          faery
evt3       ``*.raw``, ``*.evt``  :func:`decode_evt3` (below)    faery
dat        ``*.dat``             faery                          faery (DAT 2)
es         ``*.es``              faery                          faery (DVS events)
=========  ====================  =============================  ==========================

A file's format comes from its first bytes where the format has a magic number
(``#!AER-DAT4``, ``#!AER-DAT3``, ``Event Stream``) and from the version line of the
``%`` header of EVT files (``% evt 3.0`` or ``% format EVT3;...``); otherwise from the
extension. Written files take the format of their extension (``.raw``/``.evt`` are EVT
3.0, ``.aedat`` is AEDAT 3.1 as in DVS128 Gesture) unless one is named.

EVT 3.0 is decoded here because faery 0.7's decoder loses time: it counts a wrap of the
24-bit EVT 3.0 clock only when TIME_HIGH drops by more than 4094 (one step from 4095 to 0
or 1), while faery's own encoder, like any encoder skipping idle time, advances
TIME_HIGH in steps of up to 1024; every wrap crossed by such a step is missed and the
timestamps after it come back short by multiples of 4096 us. Here every drop of
TIME_HIGH is a wrap (EVT 3.0 timestamps never go backwards).

Every format stores timestamps that never go backwards and coordinates inside the
sensor; the writers check both (one place: :func:`_check_writable`) and the readers
check what they return (:func:`.formats._check_times` and the sensor bounds).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_file, write_bytes_atomic
from .core import EVENT_DTYPE, EventFormatError, as_events, make_events
from .formats import (DVS128_SENSOR, NMNIST_SENSOR, _check_times, encode_aedat, encode_nmnist,
                      read_aedat, read_nmnist)

FORMATS = ("nmnist", "aedat3", "aedat4", "evt2", "evt3", "dat", "es")
"""Every event file format cimstack reads and writes."""

FORMAT_NAMES = {"nmnist": "N-MNIST binary", "aedat3": "AEDAT 3.1", "aedat4": "AEDAT 4",
                "evt2": "EVT 2.0", "evt3": "EVT 3.0", "dat": "DAT", "es": "Event Stream"}

EXTENSIONS = {".bin": "nmnist", ".aedat": "aedat3", ".aedat4": "aedat4", ".raw": "evt3",
              ".evt": "evt3", ".dat": "dat", ".es": "es"}
"""The format a file of each extension is written in (reading looks at the content)."""

_FAERY_TYPE = {"aedat4": ("aedat", None), "evt2": ("evt", "evt2"), "evt3": ("evt", "evt3"),
               "dat": ("dat", "dat2"), "es": ("es", None)}
"""faery's (file_type, version) of each format faery writes."""

COORD_MAX = {"nmnist": (NMNIST_SENSOR[0] - 1, NMNIST_SENSOR[1] - 1),
             "aedat3": (DVS128_SENSOR[0] - 1, DVS128_SENSOR[1] - 1), "evt2": (2047, 2047),
             "evt3": (2047, 2047), "dat": (0x3FFF, 0x3FFF), "aedat4": (0x7FFE, 0x7FFE),
             "es": (0x7FFE, 0x7FFE)}
"""Largest x and y each format stores: the bit fields of its event records (EVT: 11
bits, DAT 2: 14 bits), for N-MNIST and AEDAT 3.1, which store no sensor size, their
data set's sensor (34x34, 128x128), the size they are read back with, and otherwise a
sensor below 2^15 pixels a side (AEDAT 4's limit, and cimstack's int16 x and y)."""
SENSOR_MAX = 0x7FFF

DAT_GAP_MAX = (1 << 31) - 1
"""DAT keeps 32-bit timestamps: faery's decoder follows a wrap only when consecutive
events are less than 2^31 us apart, so a longer gap cannot be written."""
NMNIST_T_MAX = (1 << 23) - 1

_HEADER_LINE = re.compile(rb"%[^\n]*\n")


@dataclass
class EventFile:
    """The events of one file, its sensor ``(width, height)`` and its format."""

    events: np.ndarray
    sensor: tuple[int, int]
    format: str

    @property
    def duration_us(self) -> int:
        """Time from the first to the last event (0 for a single event)."""
        t = self.events["t"]
        return int(t[-1] - t[0]) if t.size else 0

    def summary(self) -> dict:
        """Format, resolution, event count, first and last timestamp, duration and
        rate (events per second over the duration; None for one instant)."""
        n, dur = int(self.events.size), self.duration_us
        t = self.events["t"]
        return {"format": self.format, "format_name": FORMAT_NAMES[self.format],
                "width": self.sensor[0], "height": self.sensor[1], "events": n,
                "on_events": int(self.events["p"].sum()),
                "t_first_us": int(t[0]) if n else None,
                "t_last_us": int(t[-1]) if n else None, "duration_us": dur,
                "rate_events_per_s": n / (dur * 1e-6) if dur else None}


# -------------------------------------------------------------------- format detection

def _evt_version(head: bytes) -> str | None:
    """``evt2`` / ``evt3`` / ``evt2.1`` from the ``%`` header lines of an EVT file."""
    for line in head.split(b"\n"):
        if not line.startswith(b"%"):
            break
        words = line[1:].replace(b";", b" ").split()
        if len(words) >= 2 and words[0] in (b"evt", b"format"):
            v = words[1].lower().removeprefix(b"evt").decode("ascii", "replace")
            return {"2": "evt2", "2.0": "evt2", "2.1": "evt2.1", "3": "evt3",
                    "3.0": "evt3"}.get(v, f"EVT '{v}'")
    return None


def detect_format(path: str | os.PathLike) -> str:
    """The format of the event file ``path`` (one of :data:`FORMATS`), from its magic
    number or header, else its extension; an error names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise EventFormatError(f"{path}: no such event file; check the path")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        raise EventFormatError(f"{path}: the file is empty (0 bytes); replace it with a "
                               "complete recording")
    ext = path.suffix.lower()
    if head.startswith(b"#!AER-DAT4"):
        return "aedat4"
    if head.startswith(b"#!AER-DAT"):
        return "aedat3"
    if head.startswith(b"Event Stream"):
        return "es"
    if ext in (".aedat", ".aedat4"):
        raise EventFormatError(f"{path}: no '#!AER-DAT' magic at the start: not an AEDAT "
                               "file (damaged, or another format under this extension)")
    if ext == ".es":
        raise EventFormatError(f"{path}: no 'Event Stream' magic at the start: not an ES "
                               "file (damaged, or another format under this extension)")
    if ext in (".raw", ".evt"):
        version = _evt_version(head)
        if version in ("evt2", "evt3"):
            return version
        what = ("no '% evt <version>' or '% format EVT<version>' header line"
                if version is None else f"the unsupported version {version}")
        raise EventFormatError(f"{path}: {what}; cimstack reads EVT 2.0 and EVT 3.0 files "
                               "(Prophesee .raw with their '%' header)")
    if ext == ".dat":
        if not head.startswith(b"%"):
            raise EventFormatError(f"{path}: no '%' header at the start: not a Prophesee "
                                   "DAT file (damaged, or another format)")
        return "dat"
    if ext == ".bin":
        return "nmnist"
    raise EventFormatError(f"{path}: unknown event file extension {ext or '(none)'!r}; "
                           f"supported: {', '.join(sorted(EXTENSIONS))}")


def format_of_name(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format a file written to ``path`` gets: ``fmt`` if given, else by extension."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise EventFormatError(f"unknown event format {fmt!r}; choose one of "
                                   f"{', '.join(FORMATS)}")
        return fmt
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        raise EventFormatError(f"{path}: unknown event file extension {ext or '(none)'!r}; "
                               f"use one of {', '.join(sorted(EXTENSIONS))} or name the "
                               "format")
    return EXTENSIONS[ext]


# ------------------------------------------------------------------------------ EVT 3.0

def _prophesee_header(raw: bytes) -> tuple[dict, int]:
    """(``{key: value}`` of the ``%`` header lines, offset of the first data byte)."""
    info, pos = {}, 0
    while True:
        m = _HEADER_LINE.match(raw, pos)
        if m is None:
            break
        pos = m.end()
        words = raw[m.start() + 1:pos].replace(b";", b" ").split()
        if words == [b"end"]:
            break
        if len(words) >= 2:
            info[words[0].decode("ascii", "replace")] = [w.decode("ascii", "replace")
                                                        for w in words[1:]]
    return info, pos


def _header_sensor(info: dict, path) -> tuple[int, int]:
    """(width, height) from ``geometry WxH``, ``format EVT3;width=W;height=H`` or
    ``Width W`` / ``Height H`` header lines."""
    try:
        if "geometry" in info:
            w, h = info["geometry"][0].split("x")
            return int(w), int(h)
        fields = dict(f.split("=", 1) for f in info.get("format", [])[1:] if "=" in f)
        if "width" in fields:
            return int(fields["width"]), int(fields["height"])
        if "Width" in info:
            return int(info["Width"][0]), int(info["Height"][0])
    except (ValueError, KeyError):
        pass
    raise EventFormatError(f"{path}: the header states no sensor size (a 'geometry WxH' "
                           "or 'format EVT3;width=W;height=H' line): damaged header")


def _last(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the last True of ``mask`` at or before it (-1)."""
    return np.maximum.accumulate(np.where(mask, np.arange(mask.size), -1))


def decode_evt3(words: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x, y, t, p) of the EVT 3.0 16-bit ``words`` (little-endian uint16).

    Word types (top 4 bits): 0x0 ADDR_Y (y in bits 0-10), 0x2 ADDR_X (one event at x =
    bits 0-10, polarity bit 11), 0x3 VECT_BASE_X (base x and polarity of the vectors
    that follow), 0x4 VECT_12 / 0x5 VECT_8 (events at base x + i for each set bit i of a
    12- / 8-bit mask; the base moves on by 12 / 8), 0x6 TIME_LOW (bits 0-11 of t), 0x8
    TIME_HIGH (bits 12-23 of t; it clears TIME_LOW; a TIME_HIGH below the one before
    is a wrap of the 24-bit clock). Other words (triggers, continuations) carry no
    events. An event before any ADDR_Y, or a vector before any VECT_BASE_X, is
    corrupt data."""
    words = np.asarray(words, np.uint16)
    if words.size == 0:
        return tuple(np.zeros(0, np.int64) for _ in range(4))
    kind = (words >> 12).astype(np.int64)
    val = (words & 0xFFF).astype(np.int64)
    high = kind == 0x8
    high_vals = val[high]
    wraps = np.concatenate([[0], np.cumsum(np.diff(high_vals) < 0)])
    high_full = np.concatenate([[0], (high_vals + (wraps << 12)) << 12])
    i_high, i_low = _last(high), _last(kind == 0x6)
    low = np.where(i_low > i_high, val[np.maximum(i_low, 0)], 0)
    t_word = high_full[np.cumsum(high)] + low
    i_y = _last(kind == 0x0)
    single = np.nonzero(kind == 0x2)[0]
    vec = np.nonzero((kind == 0x4) | (kind == 0x5))[0]
    width = np.where(kind == 0x4, 12, np.where(kind == 0x5, 8, 0))
    moved = np.cumsum(width)
    i_base = _last(kind == 0x3)
    if (i_base[vec] < 0).any():
        raise EventFormatError(f"EVT 3.0 vector word {int(vec[i_base[vec] < 0][0])} comes "
                               "before any VECT_BASE_X word: corrupt data")
    b = i_base[vec]
    x0 = (val[b] & 0x7FF) + moved[vec] - width[vec] - moved[b]
    bits = (val[vec, None] >> np.arange(12)) & 1
    bits[kind[vec] == 0x5, 8:] = 0
    row, bit = np.nonzero(bits)
    w_idx = np.concatenate([single, vec[row]])
    order = np.argsort(w_idx * 16 + np.concatenate([np.zeros(single.size, np.int64), bit]),
                       kind="stable")
    x = np.concatenate([val[single] & 0x7FF, x0[row] + bit])[order]
    p = np.concatenate([val[single] >> 11, val[b][row] >> 11])[order]
    w_idx = w_idx[order]
    if (i_y[w_idx] < 0).any():
        raise EventFormatError(f"EVT 3.0 event word {int(w_idx[i_y[w_idx] < 0][0])} comes "
                               "before any ADDR_Y word: corrupt data")
    return x, val[i_y[w_idx]] & 0x7FF, t_word[w_idx], p


def read_evt3(path: str | os.PathLike) -> tuple[np.ndarray, tuple[int, int]]:
    """Events and sensor (width, height) of an EVT 3.0 file; a ``T0`` header line (the
    offset some writers subtract) is added back."""
    raw = Path(path).read_bytes()
    info, pos = _prophesee_header(raw)
    sensor = _header_sensor(info, path)
    if (len(raw) - pos) % 2:
        raise EventFormatError(f"{path}: {len(raw) - pos} data bytes is not a whole number "
                               "of 16-bit EVT 3.0 words: the file is truncated; replace it "
                               "with a complete copy")
    try:
        x, y, t, p = decode_evt3(np.frombuffer(raw, "<u2", offset=pos))
    except EventFormatError as exc:
        raise EventFormatError(f"{path}: {exc}") from None
    t0 = info.get("T0", info.get("t0", ["0"]))[0]
    if not t0.isdigit():
        raise EventFormatError(f"{path}: the header line 'T0 {t0}' is not a time in us: "
                               "damaged header")
    return make_events(x, y, t + int(t0), p), sensor


# ------------------------------------------------------------------------------ reading

def _faery_error(path, exc: BaseException) -> EventFormatError:
    return EventFormatError(f"{path}: unreadable ({str(exc).strip() or type(exc).__name__}): "
                            "the file is damaged or truncated, or holds no polarity events; "
                            "replace it with a complete recording")


def _check_whole_records(path: Path, fmt: str) -> None:
    """EVT 2.0 (32-bit words) and DAT (records of the size its header's second byte
    after the ``%`` lines states) hold whole records; faery would drop a cut one."""
    raw = path.read_bytes()
    _, pos = _prophesee_header(raw)
    if fmt == "dat":
        if len(raw) < pos + 2 or raw[pos + 1] == 0:
            raise EventFormatError(f"{path}: the DAT header ends without its event type "
                                   "and size bytes: the file is truncated")
        size, pos = raw[pos + 1], pos + 2
    else:
        size = 4
    if (len(raw) - pos) % size:
        raise EventFormatError(f"{path}: {len(raw) - pos} data bytes is not a whole number "
                               f"of {size}-byte {FORMAT_NAMES[fmt]} records: the file is "
                               "truncated; replace it with a complete copy")


def _read_with_faery(path: Path, fmt: str) -> tuple[np.ndarray, tuple[int, int]]:
    import faery
    if fmt in ("evt2", "dat"):
        _check_whole_records(path, fmt)
    file_type, version = _FAERY_TYPE[fmt]
    try:
        stream = faery.events_stream_from_file(path, file_type=file_type,
                                               version_fallback=version)
        packets = [np.asarray(a) for a in stream]
        sensor = tuple(int(v) for v in stream.dimensions())
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:      # faery's decoders may raise or panic (pyo3)
        raise _faery_error(path, exc) from None
    if not packets:
        return np.empty(0, EVENT_DTYPE), sensor
    ev = np.concatenate(packets)
    return make_events(ev["x"], ev["y"], ev["t"].astype(np.int64), ev["p"]), sensor


def read_event_file(path: str | os.PathLike) -> EventFile:
    """The events of an event file of any format in :data:`FORMATS` (tonic-style
    structured array, sorted by time), checked: at least one event, timestamps that
    never go backwards, every event inside the sensor."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "nmnist":
        events, sensor = read_nmnist(path), NMNIST_SENSOR[:2]
    elif fmt == "aedat3":
        events, sensor = read_aedat(path), DVS128_SENSOR[:2]
    elif fmt == "evt3":
        events, sensor = read_evt3(path)
    else:
        events, sensor = _read_with_faery(path, fmt)
    if events.size == 0:
        raise EventFormatError(f"{path}: the {FORMAT_NAMES[fmt]} file holds no events (cut "
                               "short?); replace it with a complete recording")
    w, h = sensor
    if not (1 <= w <= SENSOR_MAX and 1 <= h <= SENSOR_MAX):
        raise EventFormatError(f"{path}: the header states a {w}x{h} sensor; cimstack reads "
                               f"sensors of 1..{SENSOR_MAX} pixels a side: damaged header?")
    out = (events["x"] < 0) | (events["x"] >= w) | (events["y"] < 0) | (events["y"] >= h)
    if out.any():
        i = int(np.argmax(out))
        raise EventFormatError(f"{path}: event {i} at ({int(events['x'][i])}, "
                               f"{int(events['y'][i])}) is outside the {w}x{h} sensor of "
                               "its header: corrupt file")
    _check_times(events, path)
    return EventFile(events, (int(w), int(h)), fmt)


# ------------------------------------------------------------------------------ writing

def _check_writable(events: np.ndarray, sensor: tuple[int, int], fmt: str, path) -> None:
    """``events`` fit the format ``fmt`` on a ``sensor``: inside it, times >= 0 and
    never going backwards, and the format's own limits."""
    w, h = sensor
    xmax, ymax = COORD_MAX[fmt]
    if not (1 <= w <= xmax + 1 and 1 <= h <= ymax + 1):
        raise EventFormatError(f"{path}: {FORMAT_NAMES[fmt]} holds sensors up to "
                               f"{xmax + 1}x{ymax + 1}, not {w}x{h}; crop or downsample "
                               "first, or choose another format")
    if events.size == 0:
        raise EventFormatError(f"{path}: no events to write")
    x, y, t = events["x"], events["y"], events["t"]
    if x.min() < 0 or y.min() < 0 or x.max() >= w or y.max() >= h:
        raise EventFormatError(f"{path}: events outside the {w}x{h} sensor; crop them or "
                               "give the sensor size they come from")
    if t.min() < 0 or (np.diff(t) < 0).any():
        raise EventFormatError(f"{path}: timestamps must be >= 0 and never go backwards; "
                               "sort the events by time first")
    if fmt == "nmnist" and t.max() > NMNIST_T_MAX:
        raise EventFormatError(f"{path}: N-MNIST stores timestamps up to {NMNIST_T_MAX} us "
                               f"(23 bits), the last event is at {int(t.max())} us; cut "
                               "the recording or choose another format")
    if fmt == "dat" and (np.diff(t) > DAT_GAP_MAX).any():
        raise EventFormatError(f"{path}: two events are more than 2^31 us apart, which DAT's "
                               "32-bit timestamps cannot span; choose another format")


def write_event_file(path: str | os.PathLike, events, sensor: tuple[int, int],
                     fmt: str | None = None) -> Path:
    """Write ``events`` (sorted by time, inside the ``(width, height)`` sensor) to
    ``path`` in the format ``fmt`` (default: by extension, :data:`EXTENSIONS`),
    atomically. N-MNIST and AEDAT 3.1 files do not store the sensor size (they are
    read back as 34x34 and 128x128)."""
    fmt = format_of_name(path, fmt)
    ev = as_events(events)
    sensor = (int(sensor[0]), int(sensor[1]))
    _check_writable(ev, sensor, fmt, path)
    if fmt == "nmnist":
        return write_bytes_atomic(path, encode_nmnist(ev))
    if fmt == "aedat3":
        return write_bytes_atomic(path, encode_aedat(ev))
    import faery
    out = np.empty(ev.size, faery.EVENTS_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = ev["t"], ev["x"], ev["y"], ev["p"]
    file_type, version = _FAERY_TYPE[fmt]
    with atomic_file(path) as tmp:
        stray = tmp.with_name(tmp.name + ".write")     # faery writes there, then renames
        try:
            # zero_t0 only for DAT, whose header keeps T0; faery's EVT and ES writers
            # would drop the offset
            faery.events_stream_from_array(out, sensor).to_file(
                tmp, file_type=file_type, version=version, zero_t0=fmt == "dat")
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:
            raise EventFormatError(f"{path}: faery could not write {FORMAT_NAMES[fmt]}: "
                                   f"{str(exc).strip()}") from None
        finally:
            stray.unlink(missing_ok=True)
    return Path(path)
