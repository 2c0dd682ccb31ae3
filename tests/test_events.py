"""Events: real file formats (N-MNIST binary, AEDAT 3.1 of DVS128 Gesture) on crafted
files, binning, the wire format, and the simulated event camera / built-in data set."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cimstack.events import (EVENT_DTYPE, EventFormatError, bin_events, encode_aedat,
                             encode_nmnist, frames_to_events, make_events, pack_stream,
                             read_aedat, read_gesture_labels, read_nmnist, simulate,
                             unpack_stream, write_nmnist)
from cimstack.events.camera import CameraConfig, render
from cimstack.events.datasets import event_digits, load_dvs_gesture, load_nmnist
from cimstack.events.wire import (MARKER, PAD, events_to_beats, frames_to_beats,
                                  frames_to_packets,
                                  packet_ends, packets_to_frames, unpack_events)


def random_events(rng, n, w=34, h=34, t_max=300_000):
    t = np.sort(rng.integers(0, t_max, n))
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), t, rng.random(n) < 0.5)


# ---------------------------------------------------------------------- N-MNIST

def test_nmnist_round_trip_and_tonic_agree(tmp_path):
    import tonic.io
    ev = random_events(np.random.default_rng(0), 500)
    path = write_nmnist(tmp_path / "00001.bin", ev)
    assert path.stat().st_size == 5 * 500
    got = read_nmnist(path)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, ev)
    theirs = tonic.io.read_mnist_file(str(path), dtype=tonic.io.events_struct)
    np.testing.assert_array_equal(theirs["x"], ev["x"])
    np.testing.assert_array_equal(theirs["t"], ev["t"])


def test_nmnist_known_bytes(tmp_path):
    # x=3, y=5, ON, t = 0x012345 us
    (tmp_path / "a.bin").write_bytes(bytes([3, 5, 0x80 | 0x01, 0x23, 0x45]))
    ev = read_nmnist(tmp_path / "a.bin")
    assert ev.tolist() == [(3, 5, 0x012345, True)]


def test_nmnist_zero_events(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    ev = read_nmnist(tmp_path / "empty.bin")
    assert ev.size == 0 and ev.dtype == EVENT_DTYPE


def test_nmnist_truncated_is_an_error(tmp_path):
    data = encode_nmnist(random_events(np.random.default_rng(1), 10))
    (tmp_path / "cut.bin").write_bytes(data[:-2])
    with pytest.raises(EventFormatError, match="truncated"):
        read_nmnist(tmp_path / "cut.bin")


def test_nmnist_corrupt_is_an_error(tmp_path):
    data = bytearray(encode_nmnist(random_events(np.random.default_rng(2), 10)))
    data[5 * 4] = 200                          # x of event 4 outside the 34x34 sensor
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    with pytest.raises(EventFormatError, match="event 4 .*outside the 34x34 sensor"):
        read_nmnist(tmp_path / "bad.bin")
    rev = encode_nmnist(make_events([1, 2], [1, 2], [0, 0], [True, False]))
    rev = rev[:2] + bytes([0x00, 0x10, 0x00]) + rev[5:]          # t = 4096 then 0
    (tmp_path / "back.bin").write_bytes(rev)
    with pytest.raises(EventFormatError, match="backwards"):
        read_nmnist(tmp_path / "back.bin")


def test_nmnist_missing_file(tmp_path):
    with pytest.raises(EventFormatError, match="does not exist"):
        read_nmnist(tmp_path / "nope.bin")


def test_nmnist_folder_layout(tmp_path):
    rng = np.random.default_rng(3)
    for label in (0, 7):
        write_nmnist(tmp_path / "Test" / str(label) / "00001.bin", random_events(rng, 20))
    ds = load_nmnist(tmp_path, "test")
    assert sorted(ds.labels.tolist()) == [0, 7] and ds.frames(4).shape == (2, 4, 2, 34, 34)
    with pytest.raises(EventFormatError, match="no N-MNIST files"):
        load_nmnist(tmp_path / "Test" / "0", "train")


# ------------------------------------------------------------------------ AEDAT

def test_aedat_round_trip(tmp_path):
    ev = random_events(np.random.default_rng(4), 1000, 128, 128, 6_000_000)
    (tmp_path / "user01_led.aedat").write_bytes(encode_aedat(ev, packet_events=300))
    np.testing.assert_array_equal(read_aedat(tmp_path / "user01_led.aedat"), ev)


def test_aedat_zero_events_and_empty_packets(tmp_path):
    header_only = encode_aedat(make_events([], [], [], []))
    (tmp_path / "h.aedat").write_bytes(header_only)
    assert read_aedat(tmp_path / "h.aedat").size == 0
    empty_packet = header_only + struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 0, 0, 0)
    (tmp_path / "p.aedat").write_bytes(empty_packet)
    assert read_aedat(tmp_path / "p.aedat").size == 0


def test_aedat_truncated_is_an_error(tmp_path):
    data = encode_aedat(random_events(np.random.default_rng(5), 100, 128, 128))
    (tmp_path / "body.aedat").write_bytes(data[:-3])
    with pytest.raises(EventFormatError, match="truncated packet at byte"):
        read_aedat(tmp_path / "body.aedat")
    head_end = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    (tmp_path / "head.aedat").write_bytes(data[:head_end + 10])
    with pytest.raises(EventFormatError, match="truncated packet header"):
        read_aedat(tmp_path / "head.aedat")
    (tmp_path / "hdr.aedat").write_bytes(b"#!AER-DAT3.1\r\n#Format: RA")
    with pytest.raises(EventFormatError, match="header never ends"):
        read_aedat(tmp_path / "hdr.aedat")


def test_aedat_corrupt_is_an_error(tmp_path):
    (tmp_path / "x.aedat").write_bytes(b"\x00\x01garbage")
    with pytest.raises(EventFormatError, match="not an AEDAT file"):
        read_aedat(tmp_path / "x.aedat")
    (tmp_path / "v2.aedat").write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 8)
    with pytest.raises(EventFormatError, match="version 2.0 is not supported"):
        read_aedat(tmp_path / "v2.aedat")
    data = bytearray(encode_aedat(random_events(np.random.default_rng(6), 10, 128, 128)))
    head_end = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    struct.pack_into("<i", data, head_end + 4, 12)                 # eventSize 12
    (tmp_path / "size.aedat").write_bytes(bytes(data))
    with pytest.raises(EventFormatError, match="8 bytes"):
        read_aedat(tmp_path / "size.aedat")
    big = random_events(np.random.default_rng(7), 5, 300, 300)
    (tmp_path / "big.aedat").write_bytes(encode_aedat(big))
    with pytest.raises(EventFormatError, match="outside the 128x128 sensor"):
        read_aedat(tmp_path / "big.aedat")


def test_aedat_other_packets_and_invalid_events_are_skipped(tmp_path):
    ev = random_events(np.random.default_rng(8), 6, 128, 128)
    data = bytearray(encode_aedat(ev))
    head_end = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    special = struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 2, 2, 2) + b"\x01" * 16
    body = head_end + 28
    struct.pack_into("<I", data, body, struct.unpack_from("<I", data, body)[0] & ~1)  # invalid
    out = bytes(data[:head_end]) + special + bytes(data[head_end:])
    (tmp_path / "mixed.aedat").write_bytes(out)
    np.testing.assert_array_equal(read_aedat(tmp_path / "mixed.aedat"), ev[1:])


def test_gesture_labels(tmp_path):
    (tmp_path / "l.csv").write_text("class,startTime_usec,endTime_usec\n1,100,200\n11,300,400\n")
    np.testing.assert_array_equal(read_gesture_labels(tmp_path / "l.csv"),
                                  [[1, 100, 200], [11, 300, 400]])
    (tmp_path / "b.csv").write_text("class,start,end\n1;2;3\n")
    with pytest.raises(EventFormatError, match="b.csv:2"):
        read_gesture_labels(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("class,start,end\n0,2,3\n")
    with pytest.raises(EventFormatError, match="c.csv:2: .*class in 1..11"):
        read_gesture_labels(tmp_path / "c.csv")
    with pytest.raises(EventFormatError, match="does not exist"):
        read_gesture_labels(tmp_path / "none.csv")


def test_aedat_event_number_below_capacity_is_honoured(tmp_path):
    ev = random_events(np.random.default_rng(9), 6, 128, 128)
    data = bytearray(encode_aedat(ev))
    head_end = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    struct.pack_into("<i", data, head_end + 20, 4)                # eventNumber 4 of 6
    body = head_end + 28
    data[body + 4 * 8:body + 6 * 8] = b"\xff" * 16                 # the unused room: garbage
    (tmp_path / "n.aedat").write_bytes(bytes(data))
    np.testing.assert_array_equal(read_aedat(tmp_path / "n.aedat"), ev[:4])


def test_aedat_needs_end_header_and_ordered_times(tmp_path):
    ev = random_events(np.random.default_rng(10), 4, 128, 128)
    data = encode_aedat(ev)
    (tmp_path / "h.aedat").write_bytes(data.replace(b"#!END-HEADER\r\n", b""))
    with pytest.raises(EventFormatError, match="no '#!END-HEADER' line"):
        read_aedat(tmp_path / "h.aedat")
    head_end = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    for t, match in ((-7, "negative timestamp -7"), (ev["t"][2] + 1, "go backwards at event 2")):
        bad = bytearray(data)
        struct.pack_into("<i", bad, head_end + 28 + 8 + 4, int(t))  # the time of event 1
        (tmp_path / "t.aedat").write_bytes(bytes(bad))
        with pytest.raises(EventFormatError, match=match):
            read_aedat(tmp_path / "t.aedat")


def test_dvs_gesture_folder(tmp_path):
    ev = make_events([1, 2, 3, 4], [5, 6, 7, 8], [100, 200, 1100, 1200], [1, 0, 1, 0])
    (tmp_path / "user01_led.aedat").write_bytes(encode_aedat(ev))
    (tmp_path / "user01_led_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n3,100,1000\n11,1000,1300\n")
    ds = load_dvs_gesture(tmp_path, "test")
    assert ds.labels.tolist() == [2, 10]
    assert ds.events[0]["t"].tolist() == [0, 100] and ds.events[1]["x"].tolist() == [3, 4]
    (tmp_path / "user01_led_labels.csv").unlink()
    with pytest.raises(EventFormatError, match="user01_led_labels.csv is missing"):
        load_dvs_gesture(tmp_path, "test")
    (tmp_path / "user01_led.aedat").write_bytes(encode_aedat(ev[:0]))
    with pytest.raises(EventFormatError, match="holds no events"):
        load_dvs_gesture(tmp_path, "test")


def test_polarity_must_be_0_or_1():
    assert make_events([0], [0], [0], [1])["p"].tolist() == [True]
    with pytest.raises(EventFormatError, match="polarity -1"):
        make_events([0, 1], [0, 0], [0, 1], [-1, 1])


# --------------------------------------------------------------------- binning

def test_binning():
    ev = make_events([0, 1, 1, 2], [0, 0, 0, 3], [0, 10, 12, 99], [True, False, False, True])
    f = bin_events(ev, (4, 4, 2), 10, t_start=0, duration=100)
    assert f.shape == (10, 2, 4, 4) and f.sum() == 3           # the duplicate is one spike
    assert f[0, 1, 0, 0] and f[1, 0, 0, 1] and f[9, 1, 3, 2]
    assert bin_events(ev, (4, 4, 1), 2).sum() == 3             # polarities merged
    assert bin_events(make_events([], [], [], []), (4, 4, 2), 3).sum() == 0


def test_frames_events_round_trip():
    frames = np.random.default_rng(9).random((5, 2, 6, 7)) < 0.2
    ev = frames_to_events(frames, dt_us=10)
    np.testing.assert_array_equal(bin_events(ev, (7, 6, 2), 5, t_start=0, duration=50), frames)


# ------------------------------------------------------------------------- wire

@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5000), max_size=9), max_size=6))
def test_wire_round_trip(steps):
    packets = [(t, np.array(sorted(set(a)), np.int64)) for t, a in enumerate(steps)]
    beats, last = pack_stream(packets)
    assert last.sum() == len(packets)                          # TLAST per timestep
    got = unpack_stream(beats, last)
    assert [t for t, _ in got] == [t for t, _ in packets]
    for (_, a), (_, b) in zip(got, packets):
        np.testing.assert_array_equal(a, b)


def test_wire_words():
    beats, last = pack_stream([(3, [7, 1]), (4, [])])
    words = beats.view("<u4")
    assert words.tolist() == [MARKER | 3, 1, 7, PAD, MARKER | 4, PAD]
    assert last.tolist() == [False, True, True]


def test_wire_errors():
    beats, last = pack_stream([(0, [1, 2, 3])])
    with pytest.raises(EventFormatError, match="does not end with TLAST"):
        unpack_stream(beats, np.zeros_like(last))
    no_marker = beats.copy().view("<u4")
    no_marker[0] = 5
    with pytest.raises(EventFormatError, match="timestep marker"):
        unpack_stream(no_marker.view("<u8"), last)
    two, _ = pack_stream([(0, [1]), (1, [2])])
    with pytest.raises(EventFormatError, match="second marker"):
        unpack_stream(two, np.array([False, True]))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.floats(0, 1), st.integers(0, 10_000))
@example(1, 1, 0.0, 0)                       # one empty timestep: a marker and a pad
@example(3, 5, 1.0, 0)                       # every neuron every timestep
@example(2, 2, 1.0, 0)                       # one event: marker + event fill one beat
def test_frames_to_beats_is_the_packets_back_to_back(t_steps, n, density, seed):
    """All timesteps packed in one pass: the beats of pack_stream on every packet, its
    packets' beat counts, and unpack_events gives back the markers and the events."""
    frames = np.random.default_rng(seed).random((t_steps, n)) < density
    beats, per_packet = frames_to_beats(frames)
    want, last = pack_stream(frames_to_packets(frames))
    np.testing.assert_array_equal(beats, want)
    assert per_packet.tolist() == np.diff(np.flatnonzero(np.r_[True, last])).tolist()
    assert (packet_ends(beats) == last).all()
    marks, t_of, addr = unpack_events(beats)
    assert marks.tolist() == list(range(t_steps))
    back = np.zeros_like(frames)
    back[t_of, addr] = True
    np.testing.assert_array_equal(back, frames)


def test_events_to_beats_marks_each_samples_timesteps():
    """Frames of 2 samples x 3 timesteps: the packets are marked 0, 1, 2, 0, 1, 2 and
    hold the same words as each sample packed alone."""
    frames = np.random.default_rng(3).random((2, 3, 10)) < 0.4
    flat = np.flatnonzero(frames)
    beats, per_frame = events_to_beats(flat // 10, flat % 10, 6, steps=3)
    np.testing.assert_array_equal(
        beats, np.concatenate([frames_to_beats(frames[0])[0], frames_to_beats(frames[1])[0]]))
    assert unpack_events(beats)[0].tolist() == [0, 1, 2, 0, 1, 2]
    assert per_frame.sum() == beats.size


def test_unpack_events_errors():
    no_marker = pack_stream([(0, [1, 2, 3])])[0].view("<u4").copy()
    no_marker[0] = 5
    with pytest.raises(EventFormatError, match="beat 0 does not start with a timestep marker"):
        unpack_events(no_marker.view("<u8"))
    inside = np.array([MARKER | 0, MARKER | 1], np.uint32).view("<u8")
    with pytest.raises(EventFormatError, match="second marker"):
        unpack_events(inside)
    assert [a.size for a in unpack_events(np.zeros(0, np.uint64))] == [0, 0, 0]


def test_frames_packets_round_trip():
    frames = np.random.default_rng(10).random((4, 3, 5, 5)) < 0.3
    back = packets_to_frames(frames_to_packets(frames), 4, 75)
    np.testing.assert_array_equal(back, frames.reshape(4, -1))


# ----------------------------------------------------------------------- camera

def digit():
    img = np.zeros((8, 8))
    img[1:7, 3:5] = 1.0                                        # a "1"
    return img


def test_camera_is_reproducible():
    a, b = simulate(digit(), seed=5), simulate(digit(), seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.size > 100
    assert not np.array_equal(a, simulate(digit(), seed=6))
    assert np.all(np.diff(a["t"]) >= 0) and a["t"].max() < CameraConfig().duration_us


def test_camera_events_where_the_image_changes():
    cfg = CameraConfig()
    ev = simulate(digit(), seed=1, cfg=cfg)
    frames = render(digit(), cfg, np.arange(0, cfg.duration_us + 1, cfg.step_us))
    logi = np.log(frames + cfg.eps)
    change = logi.max(0) - logi.min(0)
    hit = np.zeros((34, 34), bool)
    hit[ev["y"], ev["x"]] = True
    assert hit.any()
    assert np.all(change[hit] >= 0.5 * cfg.threshold)          # events only where it changes
    assert hit[change > 3 * cfg.threshold].mean() > 0.9        # and (almost) wherever it does
    assert ev["p"].any() and (~ev["p"]).any()                  # ON and OFF
    assert simulate(np.zeros((8, 8)), seed=1).size == 0        # a blank scene: no events
    for x, y in {(int(a), int(b)) for a, b in zip(ev["x"], ev["y"])}:
        t = ev["t"][(ev["x"] == x) & (ev["y"] == y)]
        assert np.all(np.diff(t) >= cfg.refractory_us // 2)    # refractory (minus jitter)


def test_builtin_dataset_is_cached_nmnist(tmp_path):
    ds = event_digits("test", limit=3, root=tmp_path)
    files = sorted(tmp_path.glob("Test/*/*.bin"))
    assert len(files) == 3 and len(ds) == 3
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = event_digits("test", limit=3, root=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == mtimes     # read back, not regenerated
    for a, b in zip(ds.events, again.events):
        np.testing.assert_array_equal(a, b)
    assert sum(f.stat().st_size for f in files) == 5 * sum(e.size for e in ds.events)
    assert ds.frames(8).shape == (3, 8, 2, 34, 34)
    other = event_digits("test", limit=1, root=tmp_path / "other")
    np.testing.assert_array_equal(other.events[0], ds.events[0])   # same seed, same data
