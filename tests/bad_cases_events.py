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
from cimstack.events.files import write_event_file
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


def _info(name: str, data: bytes):
    """``cimstack events info NAME`` of a file holding ``data``."""
    def setup(folder):
        (folder / name).write_bytes(data)
        return ["events", "info", name]
    return setup


def _cut(name: str, keep: float, drop: int = 0):
    """``events info`` of a cimstack-written file cut to ``keep`` of its bytes, less
    ``drop`` more bytes."""
    def setup(folder):
        path = write_event_file(folder / name, _events(400, 300, 3000), (640, 480))
        raw = path.read_bytes()
        path.write_bytes(raw[:int(len(raw) * keep) - drop])
        return ["events", "info", name]
    return setup


def _convert(*args: str, src: str = "a.es", sensor=(34, 34)):
    """``cimstack events convert`` of a good file ``src`` with ``args``."""
    def setup(folder):
        write_event_file(folder / src, _events(50, min(sensor)), sensor)
        (folder / "mine.raw").write_bytes(b"my own file")
        return ["events", "convert", src, *args]
    return setup


EVT3_HEAD = b"% evt 3.0\n% format EVT3;width=64;height=64\n"

CASES = [
    # ------------------------------------------- event-camera files (events CLI)
    Case("events-file-missing", lambda f: ["events", "info", "none.raw"],
         r"none\.raw: no such event file"),
    Case("events-file-empty", _info("e.es", b""), r"e\.es: the file is empty \(0 bytes\)"),
    Case("events-file-unknown-extension", _info("e.txt", b"1,2,3\n"),
         r"e\.txt: unknown event file extension '\.txt'; supported: \.aedat"),
    Case("events-file-aedat4-wrong-magic", _info("r.aedat4", b"PK\x03\x04 zip"),
         r"r\.aedat4: no '#!AER-DAT' magic at the start: not an AEDAT file"),
    Case("events-file-es-wrong-magic", _info("r.es", b"Event Strem\x02"),
         r"r\.es: no 'Event Stream' magic at the start"),
    Case("events-file-evt-no-version", _info("r.raw", b"% date 2020\n\x00\x80"),
         r"r\.raw: no '% evt <version>' or '% format EVT<version>' header line"),
    Case("events-file-evt21", _info("r.raw", b"% evt 2.1\n\x00\x00\x00\x00"),
         r"the unsupported version evt2\.1; cimstack reads EVT 2\.0 and EVT 3\.0"),
    Case("events-file-evt3-no-size", _info("r.raw", b"% evt 3.0\n\x00\x80"),
         r"r\.raw: the header states no sensor size"),
    Case("events-file-evt3-truncated", _cut("r.raw", 1.0, 1),
         r"not a whole number of 16-bit EVT 3\.0 words: the file is truncated"),
    Case("events-file-evt3-vector-first",
         _info("r.raw", EVT3_HEAD + np.array([0x8000, 0x0003, 0x4001], "<u2").tobytes()),
         r"EVT 3\.0 vector word 2 comes before any VECT_BASE_X word: corrupt data"),
    Case("events-file-evt3-x-first",
         _info("r.raw", EVT3_HEAD + np.array([0x8000, 0x2003], "<u2").tobytes()),
         r"EVT 3\.0 event word 1 comes before any ADDR_Y word: corrupt data"),
    Case("events-file-evt3-outside-sensor",
         _info("r.raw", EVT3_HEAD + np.array([0x8000, 0x0003, 0x2000 | 70], "<u2").tobytes()),
         r"event 0 at \(70, 3\) is outside the 64x64 sensor of its header"),
    Case("events-file-evt3-bad-t0",
         _info("r.raw", EVT3_HEAD + b"% T0 soon\n" + np.array([0x8000], "<u2").tobytes()),
         r"the header line 'T0 soon' is not a time in us"),
    Case("events-file-evt3-header-only", _info("r.raw", EVT3_HEAD),
         r"the EVT 3\.0 file holds no events"),
    Case("events-file-evt2-truncated",
         _info("r.raw", b"% evt 2.0\n% geometry 64x64\n\x00\x00\x00"),
         r"3 data bytes is not a whole number of 4-byte EVT 2\.0 records"),
    Case("events-file-dat-truncated", _cut("r.dat", 1.0, 3),
         r"r\.dat: \d+ data bytes is not a whole number of 8-byte DAT records"),
    Case("events-file-aedat4-truncated", _cut("r.aedat4", 0.5),
         r"r\.aedat4: unreadable \(.*\): the file is damaged or truncated.*replace it"),
    Case("events-convert-exists", _convert("mine.raw"),
         r"mine\.raw exists; pass --force to replace it"),
    Case("events-convert-unknown-extension", _convert("out.mp4"),
         r"out\.mp4: unknown event file extension '\.mp4'"),
    Case("events-convert-format-unknown", _convert("out.raw", "--format", "evt4"),
         r"unknown event format 'evt4'; choose one of nmnist, aedat3"),
    Case("events-convert-crop-too-big", _convert("out.raw", "--crop", "64x64"),
         r"cannot fit a 34x34 sensor to a 64x64 input: crop and downsample only shrink"),
    Case("events-convert-crop-and-downsample",
         _convert("out.raw", "--crop", "8x8", "--downsample", "8x8"),
         r"--crop and --downsample: choose one"),
    Case("events-convert-size-malformed", _convert("out.raw", "--crop", "34"),
         r"--crop '34': give the size as WIDTHxHEIGHT"),
    Case("events-convert-sensor-too-big", _convert("out.bin", src="big.es", sensor=(640, 480)),
         r"out\.bin: N-MNIST binary holds sensors up to 34x34, not 640x480; crop"),
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
