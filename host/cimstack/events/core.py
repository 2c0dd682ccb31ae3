"""Events as tonic-style structured arrays and their binning into timesteps.

An event array is a NumPy structured array with the fields of ``tonic.io.events_struct``:
``x`` (int16), ``y`` (int16), ``t`` (int64, microseconds) and ``p`` (bool, True = ON),
so arrays pass unchanged between cimstack and tonic's transforms.
"""

from __future__ import annotations

import numpy as np

from ..errors import CimstackError, ConfigError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


class EventFormatError(CimstackError, ValueError):
    """An event file or stream is truncated, corrupt or not in the expected format."""


def make_events(x, y, t, p) -> np.ndarray:
    """A structured event array from equal-length field arrays; polarities ``p`` are
    bool or 0/1 (0 = OFF, 1 = ON)."""
    x, y, t, p = (np.asarray(v) for v in (x, y, t, p))
    if not (x.shape == y.shape == t.shape == p.shape) or x.ndim != 1:
        raise EventFormatError(f"x, y, t, p must be 1-D arrays of one length, got shapes "
                               f"{x.shape}, {y.shape}, {t.shape}, {p.shape}")
    if p.dtype != bool and p.size and not np.isin(p, (0, 1)).all():
        bad = p[~np.isin(p, (0, 1))][0]
        raise EventFormatError(f"event polarity {bad!r}: polarities are 0 (OFF) and 1 (ON) "
                               "or bool; map a -1/+1 convention with p = (p > 0)")
    ev = np.empty(x.shape, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p.astype(bool)
    return ev


def empty_events() -> np.ndarray:
    return np.empty(0, EVENT_DTYPE)


def as_events(events) -> np.ndarray:
    """Accept any structured array with x, y, t fields and the polarity as ``p`` or
    ``on`` (tonic names it either way, faery's ``p`` carries the title ``on``)."""
    ev = np.asarray(events)
    names = ev.dtype.names or ()
    pol = "p" if "p" in names else "on"
    missing = [f for f in ("x", "y", "t", pol) if f not in names]
    if missing:
        raise EventFormatError(f"an event array needs the fields x, y, t and p (or on); "
                               f"missing {missing} (got dtype {ev.dtype})")
    if ev.dtype == EVENT_DTYPE:
        return ev
    return make_events(ev["x"], ev["y"], ev["t"], ev[pol])


def bin_events(events, sensor_size: tuple[int, int, int], n_time_bins: int,
               t_start: int | None = None, duration: int | None = None) -> np.ndarray:
    """Binary spike frames ``[T, P, H, W]`` (bool) from events.

    ``sensor_size`` is tonic's ``(W, H, P)``. Timestep of an event:
    ``(t - t_start) * T // duration`` with integer arithmetic; ``t_start`` defaults to
    the first event's time and ``duration`` to the span ``t_max - t_start + 1``. Events
    outside ``[t_start, t_start + duration)`` or outside the sensor are dropped. With
    P = 1 polarities are merged. Several events of one pixel in one bin are one spike.
    """
    w, h, npol = (int(v) for v in sensor_size)
    if n_time_bins < 1:
        raise ValueError(f"n_time_bins = {n_time_bins} must be >= 1")
    ev = as_events(events)
    frames = np.zeros((n_time_bins, npol, h, w), bool)
    if ev.size == 0:
        return frames
    t = ev["t"].astype(np.int64)
    t0 = int(t.min()) if t_start is None else int(t_start)
    dur = int(t.max()) - t0 + 1 if duration is None else int(duration)
    if dur <= 0:
        raise ValueError(f"duration = {dur} must be positive")
    b = (t - t0) * n_time_bins // dur
    x, y = ev["x"].astype(np.int64), ev["y"].astype(np.int64)
    pol = ev["p"].astype(np.int64) if npol > 1 else np.zeros_like(x)
    ok = (t >= t0) & (b < n_time_bins) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    frames[b[ok], pol[ok], y[ok], x[ok]] = True
    return frames


def frames_to_events(frames: np.ndarray, dt_us: int = 1) -> np.ndarray:
    """Events of binary frames ``[T, P, H, W]``: one event per spike, ``t = step * dt_us``,
    ordered by timestep, then by address (p, y, x)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be [T, P, H, W], got shape {frames.shape}")
    t, p, y, x = np.nonzero(frames)
    return make_events(x, y, t.astype(np.int64) * int(dt_us), p > 0)


FIT_MODES = ("crop", "downsample")


def fit_sensor(events, sensor: tuple[int, int], target: tuple[int, int],
               mode: str = "crop") -> np.ndarray:
    """Events of a ``sensor = (width, height)`` moved onto a smaller ``target`` input.

    ``crop``: the target-size window at the centre of the sensor (offset
    ``(W - w) // 2``, ``(H - h) // 2``); events outside it are dropped. ``downsample``:
    x and y divided (rounding down) by the largest integer factor ``k`` with
    ``W // k >= w`` and ``H // k >= h`` (one factor for both axes, so shapes keep their
    aspect), then the centre crop of what exceeds the target. Times and polarities are
    kept; events that land on one pixel stay separate events. The order is kept, so the
    result is sorted when the input is. A target larger than the sensor is an error.
    """
    if mode not in FIT_MODES:
        raise ConfigError(f"fit mode {mode!r}: choose one of {', '.join(FIT_MODES)}")
    sw, sh = (int(v) for v in sensor)
    w, h = (int(v) for v in target)
    if w < 1 or h < 1 or w > sw or h > sh:
        raise ConfigError(f"cannot fit a {sw}x{sh} sensor to a {w}x{h} input: crop and "
                          "downsample only shrink; give a target no larger than the sensor")
    ev = as_events(events).copy()
    k = min(sw // w, sh // h) if mode == "downsample" else 1
    x, y = ev["x"] // k, ev["y"] // k
    x0, y0 = (sw // k - w) // 2, (sh // k - h) // 2
    ev["x"], ev["y"] = x - x0, y - y0
    keep = (ev["x"] >= 0) & (ev["x"] < w) & (ev["y"] >= 0) & (ev["y"] < h)
    return ev[keep]
