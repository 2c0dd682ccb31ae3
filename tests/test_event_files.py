"""Event-camera files (AEDAT 3.1 and 4, EVT 2.0 and 3.0, DAT, ES, N-MNIST): files written
by faery's own writers read back exactly (x, y, t, p), round trips through cimstack's
writers and ``cimstack events convert``, generated streams with their corners, crop
and downsample, tonic's ``on`` polarity field, and ``cimstack events info``. Bad files
are cases of the bad-input suite (tests/bad_cases_events.py)."""

from __future__ import annotations

import json

import faery
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from badcase import run_cli
from cimstack.errors import ConfigError
from cimstack.events import (EventFormatError, as_events, bin_events, fit_sensor, make_events,
                             read_event_file, write_event_file)
from cimstack.events.files import COORD_MAX, EXTENSIONS, FORMATS, decode_evt3

FAERY_FORMATS = ("aedat4", "evt2", "evt3", "dat", "es")
SUFFIX = {**{fmt: ext for ext, fmt in reversed(EXTENSIONS.items())}, "evt2": ".raw"}
WRAP = 1 << 24               # the EVT 3.0 clock wraps every 2^24 us


def events_with_gaps(rng, n, sensor, gaps):
    """``n`` events on ``sensor`` whose timestamps step by values drawn from ``gaps``."""
    t = np.cumsum(rng.choice(gaps, n)) - gaps[0]
    return make_events(rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n), t,
                       rng.random(n) < 0.5)


def write_with_faery(path, ev, sensor, fmt):
    """``ev`` written by faery's own writer (no cimstack code involved)."""
    out = np.empty(ev.size, faery.EVENTS_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = ev["t"], ev["x"], ev["y"], ev["p"]
    version = {"evt2": "evt2", "evt3": "evt3", "dat": "dat2"}.get(fmt)
    faery.events_stream_from_array(out, sensor).to_file(path, version=version,
                                                        zero_t0=fmt == "dat")


# --------------------------------------------------------- files written by faery

@pytest.mark.parametrize("fmt", FAERY_FORMATS)
def test_faery_written_files_read_back_exactly(fmt, tmp_path):
    rng = np.random.default_rng(1)
    # gaps of 0 (equal times), under and over one TIME_HIGH step (4096 us), and a few
    # longer than the 24-bit EVT 3.0 clock: t runs past 2^26 us
    gaps = np.array([0, 1, 37, 4095, 4096, 4097, 1_000_000, WRAP + 5])
    ev = events_with_gaps(rng, 3000, (640, 480), gaps)
    assert ev["t"].max() > 4 * WRAP
    path = tmp_path / f"rec{SUFFIX[fmt]}"
    write_with_faery(path, ev, (640, 480), fmt)
    got = read_event_file(path)
    assert (got.format, got.sensor) == (fmt, (640, 480))
    np.testing.assert_array_equal(got.events, ev)


def test_evt3_decoder_follows_every_clock_wrap(tmp_path):
    """faery 0.7's own EVT 3.0 reader misses the wraps its writer's 1024-step TIME_HIGH
    jumps cross (from 2^24 us on, its times come back short); cimstack's follows them."""
    t = np.arange(0, 100_000_000, 1_000_000)
    ev = make_events(t % 640, t % 480, t, t % 2)
    path = tmp_path / "r.raw"
    write_with_faery(path, ev, (640, 480), "evt3")
    np.testing.assert_array_equal(read_event_file(path).events["t"], t)


def test_evt3_vector_words_decode_by_hand():
    # TIME_HIGH 1, TIME_LOW 5, ADDR_Y 7, VECT_BASE_X 100 ON, VECT_12 bits 0 and 11,
    # VECT_8 bit 2, ADDR_X 3 OFF, TIME_HIGH 0 (a wrap), ADDR_X 9 ON
    words = [0x8001, 0x6005, 0x0007, 0x3000 | 0x800 | 100, 0x4000 | 0x801, 0x5004,
             0x2003, 0x8000, 0x2800 | 9]
    x, y, t, p = decode_evt3(np.array(words, np.uint16))
    assert x.tolist() == [100, 111, 114, 3, 9]
    assert y.tolist() == [7] * 5
    assert t.tolist() == [4096 + 5] * 4 + [1 << 24]
    assert p.tolist() == [1, 1, 1, 0, 1]


# ------------------------------------------------- cimstack's writers and convert

def _small(n=400, seed=0):
    """Events every format holds: 34x34 (N-MNIST's sensor), t < 2^23 us."""
    rng = np.random.default_rng(seed)
    return events_with_gaps(rng, n, (34, 34), np.array([0, 1, 50, 4096, 20_000]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_cimstack_writers_round_trip(fmt, tmp_path):
    ev = _small()
    path = write_event_file(tmp_path / f"e{SUFFIX[fmt]}", ev, (34, 34), fmt)
    got = read_event_file(path)
    assert got.format == fmt
    np.testing.assert_array_equal(got.events, ev)


def test_convert_through_every_format(tmp_path):
    ev = _small(300, seed=3)
    src = write_event_file(tmp_path / "start.aedat4", ev, (34, 34))
    for i, fmt in enumerate(("evt3", "dat", "es", "evt2", "nmnist", "aedat3", "aedat4")):
        out = tmp_path / f"step{i}_{fmt}{SUFFIX[fmt]}"
        code, text = run_cli(["events", "convert", str(src), str(out), "--format", fmt],
                             tmp_path)
        assert code == 0, text
        got = read_event_file(out)
        assert got.format == fmt
        np.testing.assert_array_equal(got.events, ev)
        src = out


def test_convert_keeps_existing_output_without_force(tmp_path):
    src = write_event_file(tmp_path / "a.es", _small(), (34, 34))
    out = tmp_path / "b.raw"
    out.write_bytes(b"mine")
    code, text = run_cli(["events", "convert", str(src), str(out)], tmp_path)
    assert code == 2 and "exists; pass --force" in text and out.read_bytes() == b"mine"
    code, text = run_cli(["events", "convert", str(src), str(out), "--force"], tmp_path)
    assert code == 0, text
    np.testing.assert_array_equal(read_event_file(out).events, _small())


def test_convert_downsamples(tmp_path):
    ev = events_with_gaps(np.random.default_rng(5), 500, (128, 128), np.array([0, 3, 100]))
    src = write_event_file(tmp_path / "g.aedat", ev, (128, 128))
    out = tmp_path / "d.raw"
    code, text = run_cli(["events", "convert", str(src), str(out), "--downsample", "32x32"],
                         tmp_path)
    assert code == 0, text
    got = read_event_file(out)
    assert got.sensor == (32, 32)
    np.testing.assert_array_equal(got.events["x"], ev["x"] // 4)
    np.testing.assert_array_equal(got.events["t"], ev["t"])


def test_info_prints_and_writes_figures(tmp_path):
    ev = make_events([0, 5, 9], [1, 2, 3], [1000, 1500, 3000], [1, 0, 1])
    path = write_event_file(tmp_path / "r.dat", ev, (10, 8))
    code, text = run_cli(["events", "info", str(path), "--json", "info.json"], tmp_path)
    assert code == 0, text
    for part in ("DAT (dat)", "10x8", "3 (2 ON)", "2,000 us", "1,500 ev/s"):
        assert part in text, (part, text)
    figures = json.loads((tmp_path / "info.json").read_text())
    assert figures["events"] == 3 and figures["duration_us"] == 2000
    assert figures["rate_events_per_s"] == pytest.approx(1500)


# ----------------------------------------------------- generated streams, corners

@st.composite
def streams(draw):
    """(events, sensor): up to 40 events, times from a start up to 2^33 us with gaps
    that include 0 (equal times) and the EVT 3.0 step and wrap sizes."""
    w, h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    n = draw(st.integers(1, 40))
    start = draw(st.sampled_from([0, 1, 4095, WRAP - 1, (1 << 31) - 1, (1 << 32) - 2]))
    gaps = draw(st.lists(st.sampled_from([0, 0, 1, 4095, 4096, 70_000, WRAP, WRAP + 1]),
                         min_size=n, max_size=n))
    xs = draw(st.lists(st.integers(0, w - 1), min_size=n, max_size=n))
    ys = draw(st.lists(st.integers(0, h - 1), min_size=n, max_size=n))
    ps = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    t = start + np.cumsum(gaps) - gaps[0]
    return make_events(xs, ys, t, ps), (w, h)


ONE = (make_events([0], [0], [0], [True]), (1, 1))
SAME_TIME = (make_events([1, 2, 3, 1], [0, 1, 2, 0], [77] * 4, [1, 0, 1, 1]), (4, 3))
MAX_XY = (make_events([639, 0, 639], [479, 479, 0], [5, 5, 6], [0, 1, 1]), (640, 480))
NEAR_2_32 = (make_events([3, 4, 5, 6], [1, 1, 2, 2],
                         [(1 << 32) - 2, (1 << 32) - 1, 1 << 32, (1 << 32) + 4096],
                         [1, 0, 1, 0]), (8, 8))


@pytest.mark.parametrize("fmt", ("aedat3", "aedat4", "evt2", "evt3", "dat", "es"))
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams())
@example(stream=ONE)
@example(stream=SAME_TIME)
@example(stream=MAX_XY)
@example(stream=NEAR_2_32)
def test_generated_streams_round_trip(fmt, stream, tmp_path):
    ev, sensor = stream
    xmax, ymax = COORD_MAX[fmt]
    if sensor[0] > xmax + 1 or sensor[1] > ymax + 1:      # AEDAT 3.1 is DVS128-only
        sensor = (min(sensor[0], xmax + 1), min(sensor[1], ymax + 1))
        ev = ev[(ev["x"] < sensor[0]) & (ev["y"] < sensor[1])]
        if ev.size == 0:
            return
    path = write_event_file(tmp_path / f"g{SUFFIX[fmt]}", ev, sensor, fmt)
    got = read_event_file(path)
    np.testing.assert_array_equal(got.events, ev)
    if fmt not in ("aedat3", "nmnist"):
        assert got.sensor == sensor


@pytest.mark.parametrize("fmt", ("evt2", "evt3", "dat", "aedat4", "es"))
def test_largest_sensor_of_each_format(fmt, tmp_path):
    w, h = (v + 1 for v in COORD_MAX[fmt])
    ev = make_events([w - 1, 0], [h - 1, 0], [0, 1], [1, 0])
    got = read_event_file(write_event_file(tmp_path / f"m{SUFFIX[fmt]}", ev, (w, h), fmt))
    np.testing.assert_array_equal(got.events, ev)
    assert got.sensor == (w, h)
    with pytest.raises(EventFormatError, match="holds sensors up to"):
        write_event_file(tmp_path / f"n{SUFFIX[fmt]}", ev, (w + 1, h), fmt)


def test_writers_refuse_what_formats_cannot_hold(tmp_path):
    back = make_events([1, 1], [1, 1], [10, 5], [1, 1])
    with pytest.raises(EventFormatError, match="never go backwards"):
        write_event_file(tmp_path / "a.raw", back, (4, 4))
    gap = make_events([1, 1], [1, 1], [0, 1 << 31], [1, 1])
    with pytest.raises(EventFormatError, match="2\\^31 us apart"):
        write_event_file(tmp_path / "a.dat", gap, (4, 4))
    late = make_events([1], [1], [1 << 23], [1])
    with pytest.raises(EventFormatError, match="N-MNIST stores timestamps up to"):
        write_event_file(tmp_path / "a.bin", late, (34, 34))
    with pytest.raises(EventFormatError, match="outside the 4x4 sensor"):
        write_event_file(tmp_path / "a.es", make_events([4], [0], [0], [1]), (4, 4))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------ crop and downsample

@settings(max_examples=60, deadline=None, derandomize=True)
@given(w=st.integers(1, 200), h=st.integers(1, 200), tw=st.integers(1, 200),
       th=st.integers(1, 200), seed=st.integers(0, 2**16))
@example(w=128, h=128, tw=32, th=32, seed=0)
@example(w=346, h=260, tw=34, th=34, seed=1)
@example(w=5, h=5, tw=5, th=5, seed=2)
def test_crop_and_downsample_properties(w, h, tw, th, seed):
    ev = events_with_gaps(np.random.default_rng(seed), 300, (w, h), np.array([0, 1, 9]))
    for mode in ("crop", "downsample"):
        if tw > w or th > h:
            with pytest.raises(ConfigError, match="crop and downsample only shrink"):
                fit_sensor(ev, (w, h), (tw, th), mode)
            continue
        got = fit_sensor(ev, (w, h), (tw, th), mode)
        np.testing.assert_array_equal(got, fit_sensor(ev, (w, h), (tw, th), mode))
        assert ((got["x"] >= 0) & (got["x"] < tw) & (got["y"] >= 0) & (got["y"] < th)).all()
        assert np.all(np.diff(got["t"]) >= 0)
        k = min(w // tw, h // th) if mode == "downsample" else 1
        x0, y0 = (w // k - tw) // 2, (h // k - th) // 2
        inside = ((ev["x"] // k - x0 >= 0) & (ev["x"] // k - x0 < tw)
                  & (ev["y"] // k - y0 >= 0) & (ev["y"] // k - y0 < th))
        np.testing.assert_array_equal(got["t"], ev["t"][inside])
        np.testing.assert_array_equal(got["x"], ev["x"][inside] // k - x0)
        np.testing.assert_array_equal(got["p"], ev["p"][inside])
        if (tw, th) == (w, h):
            np.testing.assert_array_equal(got, ev)


def test_downsampled_frames_are_pooled_frames():
    ev = events_with_gaps(np.random.default_rng(2), 800, (128, 128), np.array([0, 7, 300]))
    small = bin_events(fit_sensor(ev, (128, 128), (32, 32), "downsample"), (32, 32, 2), 8,
                       t_start=0, duration=int(ev["t"].max()) + 1)
    full = bin_events(ev, (128, 128, 2), 8, t_start=0, duration=int(ev["t"].max()) + 1)
    pooled = full.reshape(8, 2, 32, 4, 32, 4).any(axis=(3, 5))
    np.testing.assert_array_equal(small, pooled)


def test_fit_mode_unknown():
    with pytest.raises(ConfigError, match="fit mode 'resize'"):
        fit_sensor(make_events([0], [0], [0], [1]), (4, 4), (2, 2), "resize")


# -------------------------------------------------------------- tonic's fields

def test_tonic_arrays_with_an_on_field(tmp_path):
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("on", bool)])
    arr = np.zeros(3, dtype)
    arr["x"], arr["y"], arr["t"], arr["on"] = [1, 2, 3], [0, 1, 2], [5, 6, 9], [1, 0, 1]
    ev = as_events(arr)
    assert ev["p"].tolist() == [True, False, True]
    got = read_event_file(write_event_file(tmp_path / "t.es", arr, (4, 4))).events
    np.testing.assert_array_equal(got, ev)
    # faery's own dtype names it p with the title on: both ways work
    fa = np.zeros(2, faery.EVENTS_DTYPE)
    fa["on"] = [True, False]
    assert as_events(fa)["p"].tolist() == [True, False]


def test_load_events_fits_the_bundle_input():
    """``data.load_events(fit=...)``: the 34x34 event digits onto a 17x17 input."""
    from types import SimpleNamespace

    from cimstack.data import load_events
    from cimstack.events import event_digits
    net = SimpleNamespace(input_shape=(2, 17, 17), meta={"n_steps": 4}, name="t",
                          n_classes=10)
    with pytest.raises(ConfigError, match="34x34 sensor with 2 polarities"):
        load_events(net, limit=2)
    frames, labels = load_events(net, limit=2, fit="downsample")
    full = event_digits("test", limit=2).frames(4)
    np.testing.assert_array_equal(frames, full.reshape(2, 4, 2, 17, 2, 17, 2).any(axis=(4, 6)))
    assert labels.shape == (2,)


def test_evt3_header_offset_t0_is_added(tmp_path):
    head = b"% evt 3.0\n% geometry 64x64\n% T0 1000\n"
    words = np.array([0x8000, 0x6005, 0x0003, 0x2005], "<u2").tobytes()
    (tmp_path / "r.raw").write_bytes(head + words)
    assert read_event_file(tmp_path / "r.raw").events.tolist() == [(5, 3, 1005, False)]
