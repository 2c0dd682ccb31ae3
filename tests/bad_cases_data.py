"""Bad ``--data`` inputs of ``cimstack run`` / ``cimstack verify`` (images for dcim and
acim bundles, event folders for SNN bundles) and of the checking API
(:mod:`cimstack.data`). Every case gets one line naming the problem."""

from __future__ import annotations

import numpy as np

from badcase import Case
from conftest import digits_like_bundle
from cimstack.bundle import save_bundle
from cimstack.data import check_images, check_labels

GOOD_X = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)   # in [0, 1]
GOOD_Y = np.arange(6) % 10


def _npz(folder, command="run", **arrays):
    """A valid bundle and an .npz of ``arrays``; the command line running it."""
    save_bundle(digits_like_bundle(), folder / "b")
    np.savez(folder / "d.npz", **arrays)
    return [command, "b", "--data", "d.npz"]


def _file(folder, content: bytes):
    save_bundle(digits_like_bundle(), folder / "b")
    (folder / "d.npz").write_bytes(content)
    return ["run", "b", "--data", "d.npz"]


def _damaged_zip(folder):
    """A valid .npz whose compressed member is corrupted after the zip header."""
    args = _npz(folder, x=GOOD_X, y=GOOD_Y)
    np.savez_compressed(folder / "d.npz", x=GOOD_X, y=GOOD_Y)
    raw = bytearray((folder / "d.npz").read_bytes())
    for i in range(60, 200):
        raw[i] ^= 0xFF
    (folder / "d.npz").write_bytes(bytes(raw))
    return args


def _npy(folder):
    save_bundle(digits_like_bundle(), folder / "b")
    np.save(folder / "d.npy", GOOD_X)
    return ["run", "b", "--data", "d.npy"]


def _snn_net(classes=10, size=34):
    """conv(2->2, k3)-fc(classes) on 2 x size x size events, weights all 1."""
    from cimstack.config import SnnSpec
    from cimstack.ref.snn import SnnLayer, SnnNet
    o = size - 2
    kw = dict(w_bits=8, v_bits=12, leak_shift=0, reset="subtract", overflow="saturate")
    layers = [SnnLayer("conv1", "conv", (2, size, size), (2, o, o),
                       np.ones((2, 2, 3, 3), np.int32), theta=3, **kw),
              SnnLayer("fc", "fc", (2, o, o), (classes,),
                       np.ones((classes, 2 * o * o), np.int32), theta=50, **kw)]
    return SnnNet("tiny", (2, size, size), layers, SnnSpec(), {"n_steps": 4})


def nmnist_folder(folder, labels=(0, 1, 2)):
    """A small N-MNIST-style folder: Test/<label>/<i>.bin, a few events each."""
    from cimstack.events.core import make_events
    from cimstack.events.formats import write_nmnist
    rng = np.random.default_rng(1)
    for i, label in enumerate(labels):
        n = 40
        ev = make_events(rng.integers(0, 34, n), rng.integers(0, 34, n),
                         np.sort(rng.integers(0, 100_000, n)), rng.random(n) < 0.5)
        write_nmnist(folder / "Test" / str(label) / f"{i:05d}.bin", ev)
    return folder


def _snn(folder, net, data=None, command="run"):
    from cimstack.snn_bundle import save_snn_bundle
    save_snn_bundle(net, folder / "s")
    return [command, "s"] + (["--data", str(data)] if data is not None else [])


CASES = [
    Case("data-missing-file", lambda f: _npz(f, x=GOOD_X) and ["run", "b", "--data", "no.npz"],
         r"no such file"),
    Case("data-plain-npy", _npy, r"plain \.npy array, not an \.npz"),
    Case("data-not-a-zip", lambda f: _file(f, b"x,y\n0.1,3\n"), r"not an \.npz \(zip\) file"),
    Case("data-damaged-zip", _damaged_zip, r"d\.npz: cannot read its arrays"),
    Case("data-wrong-keys", lambda f: _npz(f, images=GOOD_X, labels=GOOD_Y),
         r"no array 'x' \(found images, labels\)"),
    Case("data-extra-key", lambda f: _npz(f, x=GOOD_X, labels=GOOD_Y),
         r"unknown arrays labels"),
    Case("data-strings", lambda f: _npz(f, x=np.array([["a"] * 64] * 2).reshape(2, 1, 8, 8)),
         r"x is non-numeric"),
    Case("data-complex", lambda f: _npz(f, x=GOOD_X.astype(np.complex64)), r"x is complex"),
    Case("data-nan", lambda f: _npz(f, x=np.where(np.arange(64).reshape(8, 8) == 5, np.nan,
                                                  GOOD_X)), r"6 NaN or infinite values \(first in image 0\)"),
    Case("data-inf", lambda f: _npz(f, x=np.concatenate([GOOD_X, np.full((1, 1, 8, 8), np.inf)])),
         r"64 NaN or infinite values \(first in image 6\)"),
    Case("data-raw-digit-pixels", lambda f: _npz(f, x=np.round(GOOD_X * 16), y=GOOD_Y),
         r"x spans .*beyond twice 0\.\.1, .*raw digit pixels \(0\.\.16\)\? divide by 16"),
    Case("data-8bit-pixels", lambda f: _npz(f, "verify", x=np.round(GOOD_X * 255)),
         r"beyond twice 0\.\.1.*8-bit pixels \(0\.\.255\)\? divide by 255"),
    Case("data-negative", lambda f: _npz(f, x=(GOOD_X - 0.5) / 0.3),
         r"x spans -.*unsigned: undo a mean/std normalisation"),
    Case("data-wrong-shape", lambda f: _npz(f, x=GOOD_X.reshape(6, 64)),
         r"x has shape \(6, 64\); the bundle random-digits expects \(N, 1, 8, 8\)"),
    Case("data-zero-images", lambda f: _npz(f, x=np.zeros((0, 1, 8, 8), np.float32)),
         r"x holds no images"),
    Case("data-labels-2d", lambda f: _npz(f, x=GOOD_X, y=np.eye(10, dtype=int)[GOOD_Y]),
         r"y has shape \(6, 10\); expected 1-D .*one-hot\? use y\.argmax\(1\)"),
    Case("data-labels-float", lambda f: _npz(f, x=GOOD_X, y=GOOD_Y.astype(float)),
         r"y has dtype float64; labels must be integers 0\.\.9"),
    Case("data-labels-count", lambda f: _npz(f, "verify", x=GOOD_X, y=GOOD_Y[:4]),
         r"y has 4 labels for 6 images"),
    Case("data-labels-range", lambda f: _npz(f, x=GOOD_X, y=GOOD_Y + 5),
         r"labels 5\.\.10 are outside 0\.\.9 \(the bundle's 10 classes\)"),
    Case("data-api-check-images", lambda f: lambda: check_images(digits_like_bundle(),
                                                                 GOOD_X[:, :, :4]),
         r"x has shape \(6, 1, 4, 8\)"),
    Case("data-api-negative-labels", lambda f: lambda: check_labels(np.array([0, -1]), 2, 10),
         r"labels -1\.\.0 are outside 0\.\.9"),
    Case("data-snn-missing-folder", lambda f: _snn(f, _snn_net(), "no-such-dir"),
         r"--data no-such-dir: no such folder; expected the extracted N-MNIST"),
    Case("data-snn-file-not-folder", lambda f: (f / "d.npz").write_bytes(b"PK")
         and _snn(f, _snn_net(), "d.npz", "verify"), r"d\.npz: not a folder"),
    Case("data-snn-sensor-shape", lambda f: _snn(f, _snn_net(size=16), nmnist_folder(f / "n")),
         r"events of a 34x34 sensor with 2 polarities; the bundle tiny takes \(2, 16, 16\)"),
    Case("data-snn-label-range", lambda f: _snn(f, _snn_net(classes=2), nmnist_folder(f / "n")),
         r"labels 0\.\.2 are outside 0\.\.1 \(the bundle's 2 classes\)"),
]

CASES += [
    Case("data-data-and-random",
         lambda f: (save_bundle(digits_like_bundle(), f / "b"), np.savez(f / "d.npz", x=np.zeros((2, 1, 8, 8))),
                    ["run", "b", "--data", "d.npz", "--random", "4"])[2],
         r"--data and --random both give the inputs: choose one"),
]
