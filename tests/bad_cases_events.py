"""Bad event files and event folders: N-MNIST binaries, AEDAT 3.1 recordings and the
DVS Gesture labels CSV, written with cimstack's own writers and then damaged (or built
by hand from the formats' layouts, see :mod:`cimstack.events.formats`). API cases call
the readers and loaders; CLI cases go through ``cimstack snn verify --data``."""

from __future__ import annotations

import struct

import numpy as np

from badcase import Case
from cimstack.errors import ConfigError
from cimstack.events.core import EventFormatError, make_events
from cimstack.events.datasets import load_dvs_gesture, load_event_data, load_nmnist
from cimstack.events.formats import (encode_aedat, encode_nmnist, read_aedat,
                                     read_gesture_labels, read_nmnist)

HEADER = struct.Struct("<hhiiiiii")     # an AEDAT 3.1 packet header
END = b"#!END-HEADER\r\n"


def _events(n=6, size=34, t_step=1000):
    rng = np.random.default_rng(0)
    return make_events(rng.integers(0, size, n), rng.integers(0, size, n),
                       np.arange(n) * t_step, rng.random(n) < 0.5)


def _reader(path, data: bytes, read):
    """Write ``data`` to ``path``; the call reading it with ``read``."""
    path.write_bytes(data)
    return lambda: read(path)


def _aedat(n=6) -> bytearray:
    return bytearray(encode_aedat(_events(n, 128)))


def _first_packet(data: bytearray) -> int:
    return data.index(END) + len(END)


def _aedat_patch(folder, offset: int, fmt: str, value, n=6):
    """An AEDAT file whose field ``fmt`` at ``offset`` (from the first packet) is ``value``."""
    data = _aedat(n)
    struct.pack_into(fmt, data, _first_packet(data) + offset, value)
    return _reader(folder / "r.aedat", bytes(data), read_aedat)


def _nmnist_backwards(folder):
    rec = bytearray(encode_nmnist(make_events([1, 2], [1, 2], [0, 0], [True, False])))
    rec[2:5] = bytes([0x00, 0x10, 0x00])                 # event 0 at t = 4096 us, event 1 at 0
    return _reader(folder / "b.bin", bytes(rec), read_nmnist)


def _aedat_backwards(folder):
    data = _aedat(3)
    body = _first_packet(data) + HEADER.size
    struct.pack_into("<i", data, body + 8 + 4, 10_000)     # event 1 later than event 2
    return _reader(folder / "r.aedat", bytes(data), read_aedat)


def _aedat_no_end_header(folder):
    data = bytes(_aedat()).replace(END, b"")
    return _reader(folder / "r.aedat", data, read_aedat)


def _gesture_folder(folder, labels: str | None = "class,startTime_usec,endTime_usec\n1,0,5000\n",
                    events=None):
    """A DVS Gesture-style folder: user01_led.aedat and (unless None) its labels CSV."""
    d = folder / "g"
    d.mkdir()
    (d / "user01_led.aedat").write_bytes(encode_aedat(_events(6, 128) if events is None
                                                      else events))
    if labels is not None:
        (d / "user01_led_labels.csv").write_text(labels)
    return d


def _labels(folder, text: str | bytes):
    path = folder / "user01_led_labels.csv"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return lambda: read_gesture_labels(path)


def _snn_verify(folder, data):
    """A tiny SNN bundle (never run: the data fails first) and ``snn verify --data``."""
    from cimstack.config import SnnSpec
    from cimstack.ref.snn import SnnLayer, SnnNet
    from cimstack.snn_bundle import save_snn_bundle
    kw = dict(w_bits=8, v_bits=12, leak_shift=0, reset="subtract", overflow="saturate")
    net = SnnNet("tiny", (2, 34, 34), [
        SnnLayer("fc", "fc", (2, 34, 34), (10,), np.ones((10, 2 * 34 * 34), np.int32),
                 theta=50, **kw)], SnnSpec(), {"n_steps": 4})
    save_snn_bundle(net, folder / "s")
    return ["snn", "verify", "s", "--data", str(data)]


def _empty_nmnist_recording(folder):
    d = folder / "n" / "Test"
    (d / "3").mkdir(parents=True)
    (d / "3" / "00001.bin").write_bytes(encode_nmnist(_events()))
    (d / "3" / "00002.bin").write_bytes(b"")
    return _snn_verify(folder, folder / "n")


CASES = [
    # ------------------------------------------------------------------ N-MNIST
    Case("events-nmnist-stray-bytes",
         lambda f: _reader(f / "a.bin", encode_nmnist(_events())[:-2], read_nmnist),
         r"28 bytes is not a whole number of 5-byte N-MNIST events .*truncated", EventFormatError),
    Case("events-nmnist-outside-sensor",
         lambda f: _reader(f / "a.bin", bytes([40, 3, 0, 0, 9]), read_nmnist),
         r"event 0 at byte 0 has \(x, y\) = \(40, 3\), outside the 34x34 sensor",
         EventFormatError),
    Case("events-nmnist-backwards", _nmnist_backwards,
         r"timestamps go backwards at event 1 \(4096 -> 0 us\)", EventFormatError),
    Case("events-nmnist-missing-file", lambda f: lambda: read_nmnist(f / "none.bin"),
         r"none\.bin does not exist", EventFormatError),
    Case("events-empty-recording", _empty_nmnist_recording,
         r"00002\.bin: the recording holds no events"),
    # -------------------------------------------------------------------- AEDAT
    Case("events-aedat-not-aedat", lambda f: _reader(f / "r.aedat", b"\x01\x00garbage", read_aedat),
         r"no AEDAT header .*not an AEDAT file", EventFormatError),
    Case("events-aedat-version-2",
         lambda f: _reader(f / "r.aedat", b"#!AER-DAT2.0\r\n" + END, read_aedat),
         r"AEDAT version 2\.0 is not supported", EventFormatError),
    Case("events-aedat-no-end-header", _aedat_no_end_header,
         r"has no '#!END-HEADER' line", EventFormatError),
    Case("events-aedat-truncated-header",
         lambda f: _reader(f / "r.aedat", bytes(_aedat()[:_first_packet(_aedat()) + 10]),
                           read_aedat),
         r"truncated packet header at byte \d+ \(10 of 28 bytes\)", EventFormatError),
    Case("events-aedat-truncated-body",
         lambda f: _reader(f / "r.aedat", bytes(_aedat()[:-3]), read_aedat),
         r"truncated packet at byte \d+: it declares 6 events of 8 bytes but only 45 bytes",
         EventFormatError),
    Case("events-aedat-unknown-type", lambda f: _aedat_patch(f, 0, "<h", 77),
         r"event type 77; AEDAT 3\.1 types are 0\.\.12", EventFormatError),
    Case("events-aedat-event-size", lambda f: _aedat_patch(f, 4, "<i", 12),
         r"declares 12-byte events; AEDAT 3\.1 polarity events are 8 bytes", EventFormatError),
    Case("events-aedat-number-over-capacity", lambda f: _aedat_patch(f, 20, "<i", 7),
         r"declares 7 events \(eventNumber\) but room for only 6 \(eventCapacity\)",
         EventFormatError),
    Case("events-aedat-negative-capacity", lambda f: _aedat_patch(f, 16, "<i", -1),
         r"corrupt packet header at byte \d+ .*capacity -1", EventFormatError),
    Case("events-aedat-negative-time", lambda f: _aedat_patch(f, HEADER.size + 4, "<i", -5),
         r"event 0 has the negative timestamp -5 us", EventFormatError),
    Case("events-aedat-backwards", _aedat_backwards,
         r"timestamps go backwards at event 2 \(10000 -> 2000 us\)", EventFormatError),
    Case("events-aedat-outside-sensor",
         lambda f: _reader(f / "r.aedat", encode_aedat(make_events([200], [3], [0], [1])),
                           read_aedat),
         r"events outside the 128x128 sensor", EventFormatError),
    Case("events-aedat-empty-recording",
         lambda f: (lambda d: lambda: load_dvs_gesture(d))(
             _gesture_folder(f, events=make_events([], [], [], []))),
         r"user01_led\.aedat: the recording holds no events", EventFormatError),
    # ------------------------------------------------------- DVS Gesture labels
    Case("events-gesture-labels-missing",
         lambda f: _snn_verify(f, _gesture_folder(f, labels=None)),
         r"user01_led\.aedat: its labels file user01_led_labels\.csv is missing"),
    Case("events-gesture-labels-malformed", lambda f: _labels(f, "class,start,end\n1;0;5000\n"),
         r"labels\.csv:2: expected 'class,start_us,end_us', got '1;0;5000'", EventFormatError),
    Case("events-gesture-labels-class", lambda f: _labels(f, "class,start,end\n12,0,5000\n"),
         r"labels\.csv:2: gesture '12,0,5000' needs a class in 1\.\.11", EventFormatError),
    Case("events-gesture-labels-window", lambda f: _labels(f, "class,start,end\n3,5000,5000\n"),
         r"needs a class in 1\.\.11 and 0 <= start_us < end_us", EventFormatError),
    Case("events-gesture-labels-empty", lambda f: _labels(f, "class,startTime_usec,endTime_usec\n"),
         r"labels\.csv: no gestures", EventFormatError),
    Case("events-gesture-labels-binary", lambda f: _labels(f, b"\xff\xfe\x00\x81"),
         r"labels\.csv: not a text file", EventFormatError),
    Case("events-gesture-window-no-events",
         lambda f: _snn_verify(f, _gesture_folder(
             f, labels="class,startTime_usec,endTime_usec\n2,900000,990000\n")),
         r"the gesture 900000\.\.990000 us holds no events of user01_led\.aedat"),
    # ----------------------------------------------------- arrays and requests
    Case("events-polarity-range",
         lambda f: lambda: make_events([1, 2], [1, 2], [0, 5], [-1, 1]),
         r"event polarity -1: polarities are 0 \(OFF\) and 1 \(ON\)", EventFormatError),
    Case("events-limit-zero", lambda f: lambda: load_event_data(None, "test", 0),
         r"limit of 0 samples: ask for at least 1 sample", ConfigError),
    Case("events-split-unknown",
         lambda f: lambda: load_nmnist(f, "validation"),
         r"split 'validation': choose 'train' or 'test'", ConfigError),
]
