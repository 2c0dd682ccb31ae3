"""A simulated event camera and the built-in event data set made with it.

The camera looks at a scikit-learn digit (8x8, upscaled bilinearly to 28x28 and
centred in a 34x34 field, as N-MNIST) while it moves through three saccades along a
triangle, as N-MNIST was recorded with a moving ATIS sensor. Each pixel compares its
log intensity ``L = log(I + eps)`` with the level at its last event; every crossing of
its contrast threshold ``C_pix`` (``threshold`` plus a fixed per-pixel mismatch) is an
ON (brighter) or OFF (darker) event and moves the reference level by ``C_pix``. After
an event a pixel is blind for ``refractory_us``. The scene is rendered every
``step_us``; the events of one step get evenly spaced timestamps inside it plus a
seeded jitter. Every random draw comes from ``numpy.random.default_rng(seed)`` keyed
by the sample index, so the same seed gives the same events, byte for byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .core import EVENT_DTYPE, make_events

SENSOR = (34, 34, 2)


@dataclass(frozen=True)
class CameraConfig:
    size: int = 34                 # sensor width = height
    digit_size: int = 28           # the 8x8 digit is upscaled to this
    threshold: float = 0.25        # contrast threshold in log-intensity units
    threshold_sigma: float = 0.02  # per-pixel threshold mismatch (std)
    eps: float = 0.1               # log(I + eps): dark pixels are not infinitely sensitive
    refractory_us: int = 500
    step_us: int = 2000            # rendering interval
    saccade_us: int = 100_000      # three saccades: 300 ms per sample, as N-MNIST
    amplitude: float = 3.0         # triangle vertices at this many pixels from the centre
    jitter: float = 0.25           # timestamp jitter as a fraction of the event spacing

    @property
    def duration_us(self) -> int:
        return 3 * self.saccade_us

    def to_dict(self) -> dict:
        return asdict(self)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upscaling of a square image to ``size x size`` (pixel centres aligned)."""
    n = image.shape[0]
    c = (np.arange(size) + 0.5) * n / size - 0.5
    c = np.clip(c, 0, n - 1)
    i0 = np.floor(c).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    f = c - i0
    rows = image[i0] * (1 - f)[:, None] + image[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def saccade_path(cfg: CameraConfig, times_us: np.ndarray) -> np.ndarray:
    """Displacement (dx, dy) in pixels at each time: a triangle, one edge per saccade."""
    a = cfg.amplitude
    verts = np.array([[-a, -a * 0.6], [0.0, a], [a, -a * 0.6], [-a, -a * 0.6]])
    s = np.clip(times_us / cfg.saccade_us, 0, 3 - 1e-9)
    k = np.floor(s).astype(int)
    f = (s - k)[:, None]
    return verts[k] * (1 - f) + verts[k + 1] * f


def render(image: np.ndarray, cfg: CameraConfig, times_us: np.ndarray) -> np.ndarray:
    """Intensity frames [F, size, size] in [0, 1] seen by the sensor at ``times_us``."""
    digit = upscale(np.asarray(image, np.float64), cfg.digit_size)
    n, m = cfg.size, cfg.digit_size
    margin = n + int(np.ceil(cfg.amplitude)) + 2
    canvas = np.zeros((m + 2 * margin, m + 2 * margin))
    canvas[margin:margin + m, margin:margin + m] = digit
    off = (n - m) / 2
    d = saccade_path(cfg, times_us)
    out = np.empty((len(times_us), n, n))
    # The shift is the same for every pixel of a frame: sensor pixel (y, x) sees the
    # digit at (y - off - dy, x - off - dx), a bilinear mix of four shifted copies.
    for k, (dx, dy) in enumerate(d):
        sy, sx = -off - dy, -off - dx
        iy, ix = int(np.floor(sy)), int(np.floor(sx))
        fy, fx = sy - iy, sx - ix
        y0, x0 = margin + iy, margin + ix
        a = canvas[y0:y0 + n + 1, x0:x0 + n + 1]
        out[k] = ((1 - fy) * ((1 - fx) * a[:n, :n] + fx * a[:n, 1:])
                  + fy * ((1 - fx) * a[1:, :n] + fx * a[1:, 1:]))
    return out


def simulate(image: np.ndarray, seed: int = 0, cfg: CameraConfig = CameraConfig()) -> np.ndarray:
    """Events (tonic-style, sorted by time) of the camera watching ``image`` (2-D,
    values in [0, 1]) through three saccades."""
    rng = np.random.default_rng(seed)
    n = cfg.size
    c_pix = np.maximum(cfg.threshold + cfg.threshold_sigma * rng.standard_normal((n, n)),
                       0.05 * cfg.threshold)
    steps = cfg.duration_us // cfg.step_us
    times = np.arange(steps + 1) * cfg.step_us
    logi = np.log(render(image, cfg, times) + cfg.eps)
    ref = logi[0].copy()
    max_per_step = max(1, cfg.step_us // max(1, cfg.refractory_us))
    xs, ys, ts, ps = [], [], [], []
    for k in range(1, steps + 1):
        d = logi[k] - ref
        cnt = np.minimum(np.floor(np.abs(d) / c_pix).astype(np.int64), max_per_step)
        iy, ix = np.nonzero(cnt)
        if iy.size == 0:
            continue
        c = cnt[iy, ix]
        sign = np.sign(d[iy, ix])
        ref[iy, ix] += sign * c * c_pix[iy, ix]
        rep = np.repeat(np.arange(iy.size), c)
        m = np.arange(rep.size) - np.repeat(np.cumsum(c) - c, c)     # 0..c-1 per pixel
        spacing = cfg.step_us / (c[rep] + 1)
        jitter = (rng.random(rep.size) - 0.5) * cfg.jitter * spacing
        t = times[k - 1] + (m + 1) * spacing + jitter
        xs.append(ix[rep]); ys.append(iy[rep]); ps.append(sign[rep] > 0)
        ts.append(np.floor(t).astype(np.int64))
    if not xs:
        return np.empty(0, EVENT_DTYPE)
    ev = make_events(np.concatenate(xs), np.concatenate(ys), np.concatenate(ts),
                     np.concatenate(ps))
    return ev[np.argsort(ev["t"], kind="stable")]
