"""Shared fixtures: small random bundles that exercise every layer kind."""

from __future__ import annotations

import numpy as np
import pytest

from cimstack.bundle import Bundle, FlattenLayer, InputSpec, MacroLayer, PoolLayer, Requant
from cimstack.bundle import weight_range
from cimstack.config import DcimSpec


def random_weight(rng, shape, w_bits, rows_on=16, sparsity=0.0):
    """Integer weights of ``w_bits`` with whole (row group, channel) blocks pruned."""
    lo, hi = weight_range(w_bits)
    w = rng.integers(lo, hi + 1, shape)
    if w_bits == 1:
        w[w == 0] = 1
    mat = w.reshape(shape[0], -1)                    # [N, K] view
    groups = -(-mat.shape[1] // rows_on)
    pruned = rng.random((shape[0], groups)) < sparsity
    for n, g in zip(*np.nonzero(pruned)):
        mat[n, g * rows_on:(g + 1) * rows_on] = 0
    return w.astype(np.int8)


def random_requant(rng, n, out_bits=None, shift=16):
    lo, hi = (0, (1 << out_bits) - 1) if out_bits else (-(2**31), 2**31 - 1)
    return Requant(rng.integers(1, 1 << 12, n).astype(np.int64),
                   rng.integers(-(1 << 18), 1 << 18, n).astype(np.int64), shift, lo, hi)


def digits_like_bundle(seed=0, w_bits=(8, 4, 4), x_bits=(8, 4, 4), sparsity=0.0,
                       spec=None) -> Bundle:
    """conv-pool-conv-pool-flatten-fc on 1x8x8 inputs, as the demo network."""
    rng = np.random.default_rng(seed)
    spec = spec or DcimSpec()
    r = spec.rows_on
    layers = [
        MacroLayer("conv1", "conv2d", random_weight(rng, (16, 1, 3, 3), w_bits[0], r, sparsity),
                   w_bits[0], x_bits[0], random_requant(rng, 16, x_bits[1]),
                   (1, 8, 8), (16, 8, 8), padding=1),
        PoolLayer("pool1", (16, 8, 8), (16, 4, 4)),
        MacroLayer("conv2", "conv2d", random_weight(rng, (32, 16, 3, 3), w_bits[1], r, sparsity),
                   w_bits[1], x_bits[1], random_requant(rng, 32, x_bits[2]),
                   (16, 4, 4), (32, 4, 4), padding=1),
        PoolLayer("pool2", (32, 4, 4), (32, 2, 2)),
        FlattenLayer("flatten", (32, 2, 2), (128,)),
        MacroLayer("fc", "linear", random_weight(rng, (10, 128), w_bits[2], r, sparsity),
                   w_bits[2], x_bits[2], random_requant(rng, 10), (128,), (10,)),
    ]
    return Bundle("random-digits", InputSpec((1, 8, 8), x_bits[0], 1 / 255), layers, spec)


@pytest.fixture
def small_bundle():
    return digits_like_bundle()


class Doubler:
    """A stand-in kernel for the emulated HLS IP: consumes ``n_vec`` words, returns each
    doubled, TLAST on the last one; records the register values of every call."""

    def __init__(self):
        self.calls = []

    def words_needed(self, args):
        return args["n_vec"]

    def run(self, args, words, last):
        self.calls.append(dict(args))
        out_last = np.zeros(len(words), bool)
        if len(words):
            out_last[-1] = True
        return len(words), words * np.uint64(2), out_last


@pytest.fixture(scope="module")
def bitfile(tmp_path_factory):
    """The emulated overlay's .bit (with its .hwh) in a temporary folder."""
    from cimstack import emu
    return emu.install(folder=tmp_path_factory.mktemp("overlay"))
