"""Event data sets: the built-in event digits, and N-MNIST / DVS128 Gesture from disk.

Nothing here downloads. The built-in set is made by the simulated event camera
(:mod:`.camera`) from the scikit-learn digits (shipped with scikit-learn) with the
fixed train/test split of :func:`cimstack.quant.data.load_digits_split`. Each sample
is generated once, stored in the N-MNIST binary format under
``cache_dir()/events/digits-v1-seed<seed>/{Train,Test}/<label>/<index>.bin`` and read
back with the N-MNIST reader, so the files are interchangeable with real N-MNIST ones.
Sample i of a split is generated from seed ``(seed, split, i)``, so any subset is the
same as in the full set.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .camera import SENSOR, CameraConfig, simulate
from .core import EventFormatError, bin_events, fit_sensor
from .formats import (DVS128_SENSOR, NMNIST_SENSOR, read_aedat, read_gesture_labels,
                      read_nmnist, write_nmnist)

DIGITS_VERSION = 1
GESTURE_CLASSES = 11


@dataclass
class EventSet:
    """Event samples with labels: ``events[i]`` is a tonic-style structured array."""

    events: list
    labels: np.ndarray
    sensor_size: tuple          # tonic (W, H, P)
    duration_us: int | None     # fixed window for binning (None: each sample's span)
    name: str = ""

    def __len__(self) -> int:
        return len(self.events)

    def frames(self, n_steps: int) -> np.ndarray:
        """bool [N, T, P, H, W] spike frames (see :func:`bin_events`)."""
        w, h, p = self.sensor_size
        out = np.zeros((len(self.events), n_steps, p, h, w), bool)
        for i, ev in enumerate(self.events):
            t0 = 0 if self.duration_us is not None else None
            out[i] = bin_events(ev, self.sensor_size, n_steps, t_start=t0,
                                duration=self.duration_us)
        return out

    def fit(self, size: tuple[int, int], mode: str = "crop") -> "EventSet":
        """Every sample moved onto a ``(width, height)`` input by ``crop`` or
        ``downsample`` (:func:`.core.fit_sensor`)."""
        w, h, p = self.sensor_size
        events = [fit_sensor(ev, (w, h), size, mode) for ev in self.events]
        return EventSet(events, self.labels, (int(size[0]), int(size[1]), p),
                        self.duration_us, self.name)

    def subset(self, idx) -> "EventSet":
        idx = np.asarray(idx)
        return EventSet([self.events[i] for i in idx], self.labels[idx], self.sensor_size,
                        self.duration_us, self.name)


def _check_request(split: str, limit: int | None) -> None:
    """A split name and a sample limit a loader can serve (every loader checks these)."""
    if split not in ("train", "test"):
        raise ConfigError(f"split {split!r}: choose 'train' or 'test'")
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit of {limit} samples: ask for at least 1 sample (or none "
                          "for all), or there is nothing to run")


def _not_empty(events: np.ndarray, path: Path) -> np.ndarray:
    """``events`` of the recording ``path``; a recording without events is an error."""
    if events.size == 0:
        raise EventFormatError(f"{path}: the recording holds no events (an empty or cut "
                               "file?); replace it with a complete copy")
    return events


def digits_root(seed: int = 0, root: str | Path | None = None) -> Path:
    if root is not None:
        return Path(root)
    from ..paths import cache_dir
    return cache_dir() / "events" / f"digits-v{DIGITS_VERSION}-seed{seed}"


def _config_key(cfg: CameraConfig, seed: int) -> str:
    text = json.dumps({"version": DIGITS_VERSION, "seed": seed, "camera": cfg.to_dict()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def event_digits(split: str = "test", seed: int = 0, limit: int | None = None,
                 root: str | Path | None = None, cfg: CameraConfig = CameraConfig(),
                 progress=None) -> EventSet:
    """The built-in event digits (34x34, 2 polarities, 300 ms per sample).

    ``split`` is ``train`` or ``test``; ``limit`` takes the first samples only (only
    those are generated). Missing samples are generated and cached; the cache folder
    records the camera settings and is rebuilt when they change.
    """
    from ..quant.data import load_digits_split
    _check_request(split, limit)
    data = load_digits_split()
    images = data.x_train if split == "train" else data.x_test
    labels = data.y_train if split == "train" else data.y_test
    n = len(images) if limit is None else min(int(limit), len(images))
    folder = digits_root(seed, root)
    folder.mkdir(parents=True, exist_ok=True)
    key = _config_key(cfg, seed)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text()).get("key")
        except (json.JSONDecodeError, OSError):
            old = None
        if old != key:                       # other camera settings: start again
            for f in folder.rglob("*.bin"):
                f.unlink()
    if not manifest.is_file() or json.loads(manifest.read_text()).get("key") != key:
        from ..fileio import write_json_atomic
        write_json_atomic(manifest, {"key": key, "version": DIGITS_VERSION, "seed": seed,
                                     "camera": cfg.to_dict(), "format": "N-MNIST binary",
                                     "sensor_size": list(SENSOR)})
    sub = "Train" if split == "train" else "Test"
    split_id = 0 if split == "train" else 1
    events = []
    for i in range(n):
        path = folder / sub / str(int(labels[i])) / f"{i:05d}.bin"
        if not path.is_file():
            ev = simulate(images[i, 0], seed=int(np.random.SeedSequence(
                [seed, split_id, i]).generate_state(1)[0]), cfg=cfg)
            write_nmnist(path, ev)
        events.append(read_nmnist(path, SENSOR))
        if progress is not None:
            progress(i + 1, n)
    return EventSet(events, labels[:n].copy(), SENSOR, cfg.duration_us,
                    f"event-digits-{split}")


def load_nmnist(path: str | Path, split: str = "test", limit: int | None = None) -> EventSet:
    """N-MNIST from its extracted folder (``<path>/{Train,Test}/<label>/*.bin``)."""
    _check_request(split, limit)
    base = Path(path)
    folder = base / ("Train" if split == "train" else "Test")
    if not folder.is_dir():
        folder = base if any(base.glob("[0-9]/*.bin")) else folder
    files = sorted(folder.glob("[0-9]/*.bin"))
    if not files:
        raise EventFormatError(f"no N-MNIST files under {folder}: expected "
                               "<path>/Test/<label>/<id>.bin (the extracted N-MNIST archive)")
    if limit is not None:
        rng = np.random.default_rng(0)
        files = [files[i] for i in sorted(rng.permutation(len(files))[:int(limit)])]
    events = [_not_empty(read_nmnist(f, NMNIST_SENSOR), f) for f in files]
    labels = np.array([int(f.parent.name) for f in files], np.int64)
    return EventSet(events, labels, NMNIST_SENSOR, None, f"nmnist-{split}")


def load_dvs_gesture(path: str | Path, split: str = "test", limit: int | None = None,
                     sensor_downsample: int = 1) -> EventSet:
    """DVS128 Gesture from its extracted folder (``user*_*.aedat`` with
    ``*_labels.csv``; ``trials_to_test.txt`` / ``trials_to_train.txt`` pick the split).
    One sample per labelled gesture; labels 0..10. ``sensor_downsample`` divides x, y."""
    _check_request(split, limit)
    base = Path(path)
    listing = base / f"trials_to_{split}.txt"
    if listing.is_file():
        names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
        files = [base / n for n in names]
    else:
        files = sorted(base.glob("*.aedat"))
    if not files:
        raise EventFormatError(f"no DVS Gesture .aedat files under {base}")
    events, labels = [], []
    for f in files:
        ev = _not_empty(read_aedat(f, DVS128_SENSOR), f)
        csv = f.with_name(f.stem + "_labels.csv")
        if not csv.is_file():
            raise EventFormatError(f"{f}: its labels file {csv.name} is missing; DVS Gesture "
                                   "keeps each recording's gestures (class,startTime_usec,"
                                   "endTime_usec) in <recording>_labels.csv beside it")
        table = read_gesture_labels(csv, GESTURE_CLASSES)
        for cls, start, end in table:
            sl = ev[(ev["t"] >= start) & (ev["t"] < end)].copy()
            if sl.size == 0:
                raise EventFormatError(f"{csv}: the gesture {start}..{end} us holds no events "
                                       f"of {f.name}: the labels do not match the recording")
            sl["t"] -= start
            if sensor_downsample > 1:
                sl["x"] //= sensor_downsample
                sl["y"] //= sensor_downsample
            events.append(sl)
            labels.append(int(cls) - 1)
            if limit is not None and len(events) >= limit:
                break
        if limit is not None and len(events) >= limit:
            break
    w = DVS128_SENSOR[0] // sensor_downsample
    return EventSet(events, np.array(labels, np.int64), (w, w, 2), None, f"dvsgesture-{split}")


def load_event_data(data: str | Path | None, split: str = "test", limit: int | None = None,
                    seed: int = 0) -> EventSet:
    """``None``: the built-in event digits; a folder: N-MNIST or DVS Gesture, by content."""
    if data is None:
        return event_digits(split, seed=seed, limit=limit)
    p = Path(data)
    if any(p.glob("*.aedat")):
        return load_dvs_gesture(p, split, limit)
    return load_nmnist(p, split, limit)
