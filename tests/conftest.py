"""Shared fixtures (small random bundles that exercise every layer kind) and the
settings that make the suite deterministic on any x86 machine:

- float kernels: before torch is imported, MKL, oneDNN and ATen are capped at their
  AVX2 code paths (``MKL_CBWR=AVX2,STRICT`` also makes MKL's results independent of
  the thread count), so an AVX-512 or an AMD machine computes the same float32 bits
  as an AVX2 one; only set where the CPU has AVX2, and an existing value wins;
- torch runs on :data:`TORCH_THREADS` intra-op thread(s) and one inter-op thread, not
  on "all cores" (the float32 sums, and so the trained models, depend on the split);
- every test starts from the same seeds (python ``random``, NumPy's global generator,
  torch), so a test gives the same result alone, with ``-k`` or in the whole run;
- hypothesis uses the ``cimstack`` profile: ``derandomize=True`` (the same examples on
  every run, chosen from a hash of the test), no example database (no ``.hypothesis``
  folder, no replay of earlier runs' failures), ``deadline=None`` and no ``too_slow``
  health check (wall-clock limits fail at random on a loaded machine; the tests bound
  their work with ``max_examples`` instead). ``--hypothesis-profile=explore`` draws new
  random examples (with the database) to look for bugs;
- test files holding ``slow`` tests (training, the demo, sweeps) are handed out first,
  so the two worker processes (pyproject's ``-n 2 --dist loadfile``) finish together
  instead of one waiting on a long file picked up last.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from cimstack.bundle import Bundle, FlattenLayer, InputSpec, MacroLayer, PoolLayer, Requant
from cimstack.bundle import (INT32, AddLayer, AvgPoolLayer, ConcatLayer, TensorFormat,
                             weight_range)
from cimstack.config import DcimSpec
from cimstack.ref.network import quantize_input
from cimstack.ref.requant import make_requant

TORCH_THREADS = 1
SEED = 0


def _cap_float_kernels_at_avx2() -> None:
    """Pin torch's float kernels to their AVX2 versions (see the module docstring)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    flags = next((line.split(":", 1)[1].split() for line in lines
                  if line.startswith("flags")), [])
    if "avx2" in flags:
        os.environ.setdefault("MKL_CBWR", "AVX2,STRICT")
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")


_cap_float_kernels_at_avx2()    # before any test module imports torch (none above does)

settings.register_profile("cimstack", derandomize=True, database=None, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cimstack")    # --hypothesis-profile=NAME overrides this


def pytest_collection_modifyitems(items):
    """Files with ``slow`` tests first (stable: the order inside a file is kept)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(autouse=True)
def _deterministic_start():
    """Same seeds and torch threads before every test (torch only if a test imported it)."""
    random.seed(SEED)
    np.random.seed(SEED)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(SEED)
        torch.set_num_threads(TORCH_THREADS)
        if torch.get_num_interop_threads() != 1:
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:        # only possible before torch's first parallel work
                pass


def snn_weights(rng, shape, w_bits):
    """Integer weights of a spiking layer, uniform over the ``w_bits`` range (binary:
    -1 or +1), as int32."""
    from cimstack.ref.snn import w_range
    lo, hi = w_range(w_bits)
    w = rng.integers(lo, hi + 1, shape)
    if w_bits == 1:
        w[w == 0] = 1
    return w.astype(np.int32)


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


def _fold_signed_input(rq: Requant, weight: np.ndarray, offset: int) -> Requant:
    """``rq`` for signed codes: the macro reads ``code + offset``, so the bias takes away
    ``M * offset * colsum(W)`` (the output is that of ``rq`` on the signed product)."""
    colsum = weight.astype(np.int64).reshape(weight.shape[0], -1).sum(axis=1)
    return Requant(rq.multiplier, rq.bias - rq.multiplier * offset * colsum, rq.shift,
                   rq.lo, rq.hi)


def graph_bundle(seed=0) -> Bundle:
    """A graph bundle with every node kind, on signed 4-bit 2x9x7 inputs::

        input -> dw (depthwise 3x3, dilation 2, padding 2) -> pw (1x1) -> res = dw + pw
        res -> mp (maxpool 2) ; res -> ap (avgpool 3x3 / 2) ; cat = [mp, ap]
        cat -> gap (global avgpool 4x3 to bipolar {0, 1}) -> flat -> fc (linear, 3)

    The requantizers of dw (signed input) and fc (bipolar input) fold their input's
    offset: ``dw``'s output is ``rq(signed conv)``, ``fc``'s logits are ``W @ (2c - 1)``.
    """
    rng = np.random.default_rng(seed)

    def rq(n, m_lo, m_hi, shift, centre=8):        # to 4-bit codes
        return Requant(rng.integers(m_lo, m_hi, n).astype(np.int64),
                       rng.integers((centre - 2) << shift, (centre + 2) << shift, n)
                       .astype(np.int64), shift, 0, 15)

    w_dw = random_weight(rng, (4, 1, 3, 3), 4)
    w_pw = random_weight(rng, (4, 4, 1, 1), 8)
    w_fc = random_weight(rng, (3, 8), 3)
    fc_colsum = w_fc.astype(np.int64).sum(axis=1)
    layers = [
        MacroLayer("dw", "conv2d", w_dw, 4, 4, _fold_signed_input(rq(4, 20, 40, 9), w_dw, 8),
                   (2, 9, 7), (4, 9, 7), padding=2, groups=2, dilation=2),
        MacroLayer("pw", "conv2d", w_pw, 8, 4, rq(4, 4, 8, 10), (4, 9, 7), (4, 9, 7)),
        AddLayer("res", (4, 9, 7), (4, 9, 7), rq(4, 1, 3, 3, centre=2),
                 rng.integers(1, 4, 4).astype(np.int64), inputs=("dw", "pw")),
        PoolLayer("mp", (4, 9, 7), (4, 4, 3), inputs=("res",)),
        AvgPoolLayer("ap", (4, 9, 7), (4, 4, 3), (3, 3), (2, 2), rq(4, 50, 64, 9, centre=2),
                     inputs=("res",)),
        ConcatLayer("cat", ((4, 4, 3), (4, 4, 3)), (8, 4, 3), inputs=("mp", "ap")),
        AvgPoolLayer("gap", (8, 4, 3), (8, 1, 1), (4, 3), (1, 1),
                     Requant(np.ones(8, np.int64), -rng.integers(60, 120, 8).astype(np.int64),
                             0, 0, 1)),
        FlattenLayer("flat", (8, 1, 1), (8,)),
        MacroLayer("fc", "linear", w_fc, 3, 1,
                   Requant(np.full(3, 2, np.int64), -fc_colsum, 0, -(2**31), 2**31 - 1),
                   (8,), (3,)),
    ]
    tensors = {"dw": TensorFormat(4, scale=0.05), "gap": TensorFormat(1, bipolar=True, scale=1.0)}
    return Bundle("graph", InputSpec((2, 9, 7), 4, 0.125, signed=True), layers,
                  tensors=tensors)


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


@pytest.fixture
def doubler_device():
    """An emulated device whose first overlay slot's kernel is a :class:`Doubler`
    (unset again afterwards)."""
    from cimstack import emu
    from cimstack.overlay_shape import overlay_shape
    slot = overlay_shape("pynq-z2").slots[0]
    device = emu.device()
    device.set_kernels({slot.ip_name: Doubler})
    yield device
    device.set_kernels({slot.ip_name: None})


@pytest.fixture(scope="module")
def bitfile(tmp_path_factory):
    """The emulated overlay's .bit (with its .hwh) in a temporary folder."""
    from cimstack import emu
    return emu.install(folder=tmp_path_factory.mktemp("overlay"))


@contextlib.contextmanager
def console_output():
    """Send the CLI's rich console to a StringIO (not a terminal) for a while; then back
    to following sys.stdout, so pytest's and CliRunner's captures see it again."""
    from cimstack.report.console import console
    buf = io.StringIO()
    console.file = buf
    try:
        yield buf
    finally:
        console.file = None                   # rich: None = whatever sys.stdout is


def _quantize(w: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    scale = float(np.abs(w).max()) / ((1 << (bits - 1)) - 1)
    return np.round(w / scale).astype(np.int8), scale


def lstsq_bundle(digits) -> Bundle:
    """flatten -> fc1 (64 -> 32, W8 X8, ReLU to 6 bits) -> fc2 (32 -> 10, W6 X6): a
    random projection and a least-squares read-out on the digits train split (no
    training loop; 0.81 accuracy)."""
    rng = np.random.default_rng(0)
    inp = InputSpec((1, 8, 8), 8, 1 / 255)
    w1, _ = _quantize(rng.normal(size=(32, 64)), 8)
    x_tr = quantize_input(Bundle("x", inp, [FlattenLayer("f", (1, 8, 8), (64,))]),
                          digits.x_train).reshape(len(digits.x_train), -1).astype(np.int64)
    acc1 = x_tr @ w1.T.astype(np.int64)
    real_m = np.full(32, 63 / np.percentile(np.abs(acc1), 99))
    rq1 = make_requant(real_m, np.zeros(32), 64 * 255 * 127, 0, 63)
    h = np.clip(np.floor(acc1 * real_m + 0.5), 0, 63)
    design = np.hstack([h, np.ones((len(h), 1))])
    sol = np.linalg.lstsq(design, np.eye(10)[digits.y_train], rcond=None)[0]
    w2, s2 = _quantize(sol[:-1].T, 6)
    rq2 = Requant(np.ones(10, np.int64), np.round(sol[-1] / s2).astype(np.int64), 0, *INT32)
    layers = [FlattenLayer("flat", (1, 8, 8), (64,)),
              MacroLayer("fc1", "linear", w1, 8, 8, rq1, (64,), (32,)),
              MacroLayer("fc2", "linear", w2, 6, 6, rq2, (32,), (10,))]
    return Bundle("lstsq", inp, layers)
