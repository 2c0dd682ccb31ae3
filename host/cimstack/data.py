"""Input data of ``cimstack run`` and ``cimstack verify`` (``--data``): loading and checking.

Images, for dcim and acim bundles: an ``.npz`` file (``numpy.savez``) with

- ``x``: real numbers (any integer or float dtype), shape ``(N, *input shape)``, e.g.
  ``(N, 1, 8, 8)`` for the digits bundles; a one-channel input also takes ``(N, H, W)``.
  Values lie in the range the bundle's input quantizer maps onto its codes,
  ``0 .. scale * (2^bits - 1)``: ``x_int = clip(round(x / scale), 0, 2^bits - 1)``.
  The digits bundles were trained on pixels / 16, i.e. [0, 1] (the raw UCI pixels are
  0..16): divide raw pixels by 16 (or 8-bit pixels by 255).
- ``y`` (optional): 1-D integer labels ``0 .. classes - 1``, one per image; with them
  the commands report accuracy.

Without ``--data``: the digits test split when the bundle takes the digits' 1x8x8
input, else (or with ``--random N``) seeded random images whose codes cover the input
quantizer's range, without labels; the commands say which they used.

No other arrays. Values more than half a quantizer step outside the range are an
error, not a warning: the quantizer would clip them and the run would report a wrong
accuracy without saying why (raw 0..16 digit pixels give 46 %, 0..255 pixels 29 %).

Events, for SNN bundles: ``--data`` is a folder with the extracted N-MNIST
(``Test/<label>/*.bin``) or DVS128 Gesture (``*.aedat``); without it, the built-in
event digits. Its frames must have the bundle's input shape and its labels must be
classes of the bundle.

Every problem is one :class:`~cimstack.errors.ConfigError` naming the file, the
problem and the fix.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from .bundle import Bundle
from .errors import ConfigError

DIGITS_SHAPE = (1, 8, 8)       # the built-in digits' input (C, H, W)
RANDOM_IMAGES = 64             # random images when a bundle takes no digits and no --data
FORMAT = ("expected an .npz (numpy.savez) with 'x' (float images) and optionally 'y' "
          "(integer labels)")


def bundle_classes(bundle: Bundle) -> int:
    """Number of classes: the outputs of the bundle's last layer."""
    return int(np.prod(bundle.layers[-1].out_shape))


def input_range(bundle: Bundle) -> tuple[float, float]:
    """The smallest and largest values the bundle's input quantizer maps onto a code
    without clipping."""
    lo, hi = bundle.input.values(np.array(bundle.input.format.codes))
    return float(lo), float(hi)


def read_npz(path: Path, flag: str = "--data") -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``x`` and ``y`` (or None) of an .npz file, without pickles; no checks of values.
    ``flag`` names the option that gave it in messages."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file; {FORMAT}")
    try:
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] if n.endswith(".npy") else n for n in z.namelist()]
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        kind = "a plain .npy array, not an .npz" if npy else "not an .npz (zip) file"
        raise ConfigError(f"{flag} {path}: {kind}; {FORMAT}, e.g. "
                          "numpy.savez(path, x=images, y=labels)") from None
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    if "x" not in names:
        raise ConfigError(f"{flag} {path}: no array 'x' (found {', '.join(names) or 'none'}); "
                          + FORMAT)
    unknown = sorted(set(names) - {"x", "y"})
    if unknown:
        raise ConfigError(f"{flag} {path}: unknown arrays {', '.join(unknown)}; " + FORMAT)
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["x"], (f["y"] if "y" in names else None)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{flag} {path}: cannot read its arrays ({detail}); {FORMAT}") from None


def _range_hint(lo: float, hi: float, signed: bool) -> str:
    if lo < 0 and not signed:
        return "the input quantizer is unsigned: undo a mean/std normalisation"
    if 15 < hi <= 16:
        return "raw digit pixels (0..16)? divide by 16"
    if 16 < hi <= 255:
        return "8-bit pixels (0..255)? divide by 255"
    return "scale x into that range"


def check_images(bundle: Bundle, x, y=None, source: str = "x"
                 ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Check images ``x`` (and labels ``y``) for ``bundle``; return them as float32
    ``(N, *input shape)`` and int64 ``(N,)``. ``source`` names them in messages."""
    x = np.asarray(x)
    shape = tuple(bundle.input.shape)
    want = f"(N, {', '.join(map(str, shape))})"
    if x.dtype.kind not in "biuf":
        what = "complex" if x.dtype.kind == "c" else f"non-numeric ({x.dtype})"
        raise ConfigError(f"{source}: x is {what}; expected real images {want}")
    if shape[0] == 1 and x.ndim == len(shape) and tuple(x.shape[1:]) == shape[1:]:
        x = x[:, None]                              # (N, H, W) for a one-channel input
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ConfigError(f"{source}: x has shape {tuple(x.shape)}; the bundle "
                          f"{bundle.name} expects {want}")
    if len(x) == 0:
        raise ConfigError(f"{source}: x holds no images")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise ConfigError(f"{source}: x has {int(bad.sum())} NaN or infinite values "
                          f"(first in image {first}); every pixel must be a finite number")
    # The quantizer clips, as the trained model's does (a learned scale may clip the
    # largest pixels); data beyond twice its range are scaled wrongly, not clipped.
    lo, hi, half = float(x.min()), float(x.max()), bundle.input.scale / 2
    q_lo, q_hi = input_range(bundle)
    if lo < q_lo - abs(q_lo) - half or hi > q_hi + abs(q_hi) + half:
        raise ConfigError(
            f"{source}: x spans {lo:.3g}..{hi:.3g}, beyond twice {q_lo:.3g}..{q_hi:.3g}, the "
            f"range of the bundle's input quantizer ({bundle.input.bits} bits"
            f"{', signed' if bundle.input.signed else ''}, scale {bundle.input.scale:.3g}; "
            f"it clips what lies between): {_range_hint(lo, hi, bundle.input.signed)}")
    return x, (None if y is None else check_labels(y, len(x), bundle_classes(bundle), source))


def check_labels(y, n: int, classes: int, source: str = "y") -> np.ndarray:
    """Labels ``y``: 1-D integers ``0 .. classes - 1``, ``n`` of them; returned as int64."""
    y = np.asarray(y)
    if y.ndim != 1:
        hint = " (one-hot? use y.argmax(1))" if y.ndim == 2 else ""
        raise ConfigError(f"{source}: y has shape {tuple(y.shape)}; expected 1-D integer "
                          f"labels, one per image{hint}")
    if y.dtype.kind not in "iu":
        raise ConfigError(f"{source}: y has dtype {y.dtype}; labels must be integers "
                          f"0..{classes - 1} (save y.astype(int))")
    if len(y) != n:
        raise ConfigError(f"{source}: y has {len(y)} labels for {n} images; give one per image")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise ConfigError(f"{source}: labels {y.min()}..{y.max()} are outside "
                          f"0..{classes - 1} (the bundle's {classes} classes)")
    return y.astype(np.int64)


def random_images(bundle: Bundle, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded random images for ``bundle``: every pixel's code drawn uniformly from
    the input quantizer's codes and given as the value it quantizes to
    (:meth:`~cimstack.bundle.InputSpec.values`, so the quantizer gives back exactly
    those codes). No labels: they test agreement between
    backends, not accuracy."""
    rng = np.random.default_rng(seed)
    lo, hi = bundle.input.format.codes
    return bundle.input.values(rng.integers(lo, hi + 1, (n, *bundle.input.shape)))


def load_images(bundle: Bundle, path: Optional[Path] = None, random: Optional[int] = None,
                seed: int = 0, flag: str = "--data"
                ) -> tuple[np.ndarray, Optional[np.ndarray], str]:
    """Checked images, labels and a line saying where they came from, for ``bundle``:
    the ``.npz`` at ``path``; else ``random`` seeded random images
    (:func:`random_images`); else the digits test split (360 images, pixels / 16) when
    the bundle takes the digits' 1x8x8 input, and :data:`RANDOM_IMAGES` random images
    when it does not. ``flag`` names the option that gave ``path`` in messages."""
    if path is not None and random is not None:
        raise ConfigError("--data and --random both give the inputs: choose one")
    if path is not None:
        x, y = read_npz(Path(path), flag)
        return (*check_images(bundle, x, y, f"{flag} {path}"), f"{flag} {path}")
    if random is None and tuple(bundle.input.shape) == DIGITS_SHAPE:
        from .quant.data import load_digits_split
        split = load_digits_split()
        source = "the digits test split (no --data)"
        return (*check_images(bundle, split.x_test, split.y_test, source), source)
    n = RANDOM_IMAGES if random is None else random
    why = "" if random is not None else (f" (no --data, and the input "
                                         f"{tuple(bundle.input.shape)} is not the digits')")
    source = (f"{n} seeded random images (seed {seed}) across the input quantizer's range"
              f"{why}; no labels, so no accuracy")
    x, _ = check_images(bundle, random_images(bundle, n, seed), None, source)
    return x, None, source


def load_events(net, path: Optional[Path] = None, n_steps: Optional[int] = None,
                limit: Optional[int] = None, seed: int = 0,
                fit: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """Checked spike frames ``bool [N, T, *input shape]`` and labels for the SNN ``net``:
    the event data set in the folder ``path``, or the built-in event digits test split;
    ``n_steps`` timesteps per sample (default: the bundle's). ``fit`` (``crop`` or
    ``downsample``, :func:`cimstack.events.fit_sensor`) moves a larger sensor's events
    onto the bundle's input."""
    from .events.datasets import load_event_data
    source = "the built-in event digits" if path is None else f"--data {path}"
    if path is not None and not Path(path).is_dir():
        what = "no such folder" if not Path(path).exists() else "not a folder"
        raise ConfigError(f"{source}: {what}; expected the extracted N-MNIST "
                          "(Test/<label>/*.bin) or DVS128 Gesture (*.aedat) folder")
    n_steps = n_steps or int(net.meta.get("n_steps", 16))
    ds = load_event_data(path, "test", limit, seed)
    if len(ds) == 0:
        raise ConfigError(f"{source}: no samples")
    w, h, p = ds.sensor_size
    if fit is not None and (p, h, w) != tuple(net.input_shape):
        ds = ds.fit((net.input_shape[2], net.input_shape[1]), fit)
        w, h, p = ds.sensor_size
    if (p, h, w) != tuple(net.input_shape):
        raise ConfigError(f"{source}: events of a {w}x{h} sensor with {p} polarities; the "
                          f"bundle {net.name} takes {tuple(net.input_shape)} (P, H, W) frames"
                          + ("; --fit crop or --fit downsample moves them onto it"
                             if fit is None and p == net.input_shape[0]
                             and w >= net.input_shape[2] and h >= net.input_shape[1] else ""))
    return ds.frames(n_steps), check_labels(ds.labels, len(ds), net.n_classes, source)


RANDOM_EVENT_RATE = 0.05     # spike probability per input and timestep of random events


def snn_inputs(net, path: Optional[Path] = None, n_steps: Optional[int] = None,
               limit: Optional[int] = None, seed: int = 0, fit: Optional[str] = None):
    """``(frames, labels, source)`` to run the SNN ``net`` on: ``--data`` when given,
    else the built-in event digits when the bundle takes their (2, 34, 34) maps or
    ``fit`` moves them onto its input (:func:`load_events`), else
    seeded random events (labels None; ``limit`` or 64 samples). ``source`` says which."""
    from .events.camera import SENSOR
    w, h, p = SENSOR
    if path is not None or fit is not None or tuple(net.input_shape) == (p, h, w):
        frames, labels = load_events(net, path, n_steps, limit, seed, fit)
        return frames, labels, "the built-in event digits" if path is None else f"--data {path}"
    n_steps = n_steps or int(net.meta.get("n_steps", 16))
    n = limit or 64
    frames = np.random.default_rng(seed).random((n, n_steps, *net.input_shape)) < RANDOM_EVENT_RATE
    return frames, None, (f"{n} seeded random event samples (seed {seed}, "
                          f"{RANDOM_EVENT_RATE:.0%} of the inputs spike per timestep): the "
                          f"input {tuple(net.input_shape)} is not the built-in event digits' "
                          f"{(p, h, w)}")
