"""Layers larger than the kernel: dcim row tiles over K > MAX_K with partial sums added
on the host, column slices over N > MAX_N, weight reloads in the stage times; the
emulated overlay against the reference, bit for bit."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from cimstack.backends import open_backend
from cimstack.bundle import Bundle, FlattenLayer, InputSpec, MacroLayer
from cimstack.config import DcimSpec
from cimstack.cost import fpga_cost
from cimstack.errors import ConfigError
from cimstack.hw.streams import words_for
from cimstack.hw.tiles import (check_partial_sums, dcim_row_tiles, kernel_row_tiles, row_tiles,
                               tile_layer)
from cimstack.overlay_shape import ACIM, DCIM, STREAM_BYTES
from cimstack.ref.dcim import macro_matmul_bitserial
from cimstack.ref.network import run_network
from cimstack.verify.compare import verify

from conftest import random_requant, random_weight

MAX_K, MAX_N = DCIM.capacity["MAX_K"], DCIM.capacity["MAX_N"]


# ---------------------------------------------------------------- the tiling rule

@settings(max_examples=200)
@given(k=st.integers(1, 6 * MAX_K), rows_on=st.integers(1, MAX_K))
@example(k=MAX_K, rows_on=16)            # fits: one pass
@example(k=MAX_K + 1, rows_on=16)        # one row over
@example(k=2304, rows_on=16)             # CNV's conv: two full tiles
@example(k=2304, rows_on=100)            # rows_on does not divide MAX_K
@example(k=MAX_K + 1, rows_on=MAX_K)     # a group as large as the kernel
@example(k=3 * MAX_K, rows_on=7)
def test_row_tiles_cover_k_in_whole_groups(k, rows_on):
    tiles = row_tiles(k, rows_on, MAX_K)
    assert tiles[0][0] == 0 and tiles[-1][1] == k
    assert all(a < b for a, b in tiles)
    assert all(b == a2 for (_, b), (a2, _) in zip(tiles, tiles[1:]))       # no gap, no overlap
    assert all(b - a <= MAX_K for a, b in tiles)
    if k <= MAX_K:
        assert tiles == [(0, k)]
    else:
        assert all(a % rows_on == 0 for a, _ in tiles)                     # groups never split
        assert len(tiles) == -(-k // (MAX_K // rows_on * rows_on))          # as few as possible


def test_groups_larger_than_the_kernel_split_only_when_exact():
    with pytest.raises(ConfigError, match="rows_on = 2000 .* MAX_K = 1152"):
        row_tiles(2304, 2000, MAX_K)
    huge = DcimSpec(rows=2048, rows_on=2048)
    assert dcim_row_tiles(2400, huge, MAX_K) == [(0, 1152), (1152, 2304), (2304, 2400)]
    with pytest.raises(ConfigError, match="set the dcim rows_on to at most 1152"):
        dcim_row_tiles(2400, replace(huge, psum_bits=3), MAX_K)


@settings(max_examples=40)
@given(seed=st.integers(0, 10**6), k=st.integers(2, 90), rows_on=st.integers(1, 12),
       max_k=st.integers(12, 40), w_bits=st.sampled_from([1, 2, 4, 8]),
       psum_bits=st.sampled_from([None, 1, 2, 3]), mode=st.sampled_from(["saturate", "quantize"]))
@example(seed=1, k=80, rows_on=12, max_k=30, w_bits=1, psum_bits=2, mode="quantize")
def test_reference_tiles_add_up_to_the_whole_layer(seed, k, rows_on, max_k, w_bits,
                                                   psum_bits, mode):
    """The claim the driver relies on, on the bit-serial reference itself: ADC, binary
    reference column and pruned-block skip act per row group, so tiles of whole groups
    add up exactly."""
    rng = np.random.default_rng(seed)
    spec = DcimSpec(rows=rows_on * 8, rows_on=rows_on, psum_bits=psum_bits, psum_mode=mode)
    w = random_weight(rng, (5, k), w_bits, rows_on, sparsity=0.4).T           # [K, N]
    x = rng.integers(0, 16, (6, k))
    whole = macro_matmul_bitserial(x, w, w_bits, 4, spec)
    parts = sum(macro_matmul_bitserial(x[:, a:b], w[a:b], w_bits, 4, spec)
                for a, b in row_tiles(k, rows_on, max_k))
    np.testing.assert_array_equal(parts, whole)


def test_partial_sums_must_fit_the_kernel_output():
    layer = MacroLayer("fc", "linear", np.ones((2, 4), np.int8), 8, 8,
                       random_requant(np.random.default_rng(0), 2), (4,), (2,))
    check_partial_sums(layer, MAX_K)                          # the kernel's own tiles fit
    with pytest.raises(ConfigError, match="fc: a row tile of 1048576 rows .* int32"):
        check_partial_sums(layer, 1 << 20)


# ------------------------------------------------------------ on the emulated overlay

def big_bundle(seed=0, w_bits=(4, 4), x_bits=(4, 4), spec=None, sparsity=0.0,
               channels=MAX_N + 2) -> Bundle:
    """conv 256 -> ``channels`` 3x3 on 4x4 inputs (K = 2304 > MAX_K, N > MAX_N), then
    flatten and a linear layer with K = 16 * channels > MAX_K."""
    rng = np.random.default_rng(seed)
    spec = spec or DcimSpec()
    r, c = spec.rows_on, channels
    layers = [
        MacroLayer("conv", "conv2d", random_weight(rng, (c, 256, 3, 3), w_bits[0], r, sparsity),
                   w_bits[0], x_bits[0], random_requant(rng, c, x_bits[1], shift=20),
                   (256, 4, 4), (c, 4, 4), padding=1),
        FlattenLayer("flatten", (c, 4, 4), (16 * c,)),
        MacroLayer("fc", "linear", random_weight(rng, (10, 16 * c), w_bits[1], r, sparsity),
                   w_bits[1], x_bits[1], random_requant(rng, 10), (16 * c,), (10,)),
    ]
    return Bundle("big", InputSpec((256, 4, 4), x_bits[0], 1 / 15), layers, spec)


@pytest.fixture(scope="module")
def emu_backend():
    return open_backend("emu", timeout_s=5.0)


def images(bundle, n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 1 << bundle.input.bits,
                                                (n, *bundle.input.shape))


@pytest.mark.parametrize("w_bits, spec, sparsity", [
    ((4, 4), DcimSpec(), 0.0),                                              # exact psums
    ((8, 2), DcimSpec(rows_on=16, psum_bits=3, psum_mode="saturate"), 0.3),  # ADC saturates
    ((4, 4), DcimSpec(rows_on=32, psum_bits=4, psum_mode="quantize"), 0.0),  # ADC drops LSBs
    ((1, 1), DcimSpec(rows_on=16, psum_bits=2, psum_mode="quantize"), 0.3),  # binary, pruned
    ((1, 1), DcimSpec(rows_on=16), 0.3),                                    # binary, exact
])
def test_large_layers_bit_exact(emu_backend, w_bits, spec, sparsity):
    bundle = big_bundle(1, w_bits=w_bits, spec=spec, sparsity=sparsity)
    if sparsity:
        assert (bundle.layers[0].matrix() == 0).any()        # some blocks are pruned
    rep = verify(bundle, images(bundle), emu_backend.engine, "emu")
    assert rep.ok, rep.summary()


def test_rows_on_not_dividing_max_k(emu_backend):
    spec = DcimSpec(rows=400, rows_on=100, psum_bits=5, psum_mode="saturate")
    bundle = big_bundle(2, spec=spec, sparsity=0.2, channels=8)   # tiles 1100, 1100, 104
    rep = verify(bundle, images(bundle, seed=2), emu_backend.engine, "emu")
    assert rep.ok, rep.summary()


def test_reloads_appear_in_stage_times():
    backend = open_backend("emu", timeout_s=5.0)
    bundle = big_bundle(3, channels=MAX_N + 2)
    pieces = 2 * 2 + 2                          # conv: 2 row tiles x 2 column slices; fc: 2 tiles
    x = images(bundle, seed=3)
    got = run_network(bundle, x, engine=backend.engine)
    np.testing.assert_array_equal(got.logits, run_network(bundle, x).logits)
    times = backend.stage_times()
    assert times["weight_loads"] == pieces
    c = MAX_N + 2
    weight_words = (2 * words_for(MAX_K * MAX_N) + 2 * words_for(MAX_K * 2)   # conv tiles
                    + words_for(MAX_K * 10) + words_for((16 * c - MAX_K) * 10))   # fc tiles
    requant_words = 2 * 2 * c + 2 * 2 * 10                 # two words a channel, per tile
    assert times["weight_load_bytes"] == (weight_words + requant_words) * STREAM_BYTES
    run_network(bundle, x, engine=backend.engine)   # nothing stays resident between layers
    assert backend.stage_times()["weight_loads"] == 2 * pieces


def test_a_layer_that_fits_stays_resident():
    backend = open_backend("emu", timeout_s=5.0)
    spec = DcimSpec()
    rng = np.random.default_rng(4)
    layer = MacroLayer("fc", "linear", random_weight(rng, (10, 64), 4, spec.rows_on), 4, 4,
                       random_requant(rng, 10), (64,), (10,))
    bundle = Bundle("small", InputSpec((64,), 4, 1 / 15), [layer], spec)
    x = images(bundle, n=3)
    for _ in range(3):
        run_network(bundle, x, engine=backend.engine)
    assert backend.stage_times()["weight_loads"] == 1


def test_acim_layers_larger_than_the_kernel_are_refused():
    bundle = big_bundle(5, channels=4)
    with pytest.raises(ConfigError, match="conv has K = 2304 .* acim kernel .* MAX_K = 1152"):
        kernel_row_tiles(ACIM, bundle.layers[0], bundle)
    assert kernel_row_tiles(DCIM, bundle.layers[0], bundle) == [(0, 1152), (1152, 2304)]


@pytest.mark.parametrize("spec", [DcimSpec(), DcimSpec(psum_bits=3)])
def test_fpga_cost_counts_every_row_tile(spec):
    """A linear layer with K = 2080 costs what its tiles of 1152 and 928 rows cost as
    layers of their own."""
    fc = big_bundle(6, spec=spec, sparsity=0.3).layers[2]
    tiles = [replace(tile_layer(fc, a, b), name=f"tile{i}")
             for i, (a, b) in enumerate(row_tiles(fc.k, spec.rows_on, MAX_K))]
    whole = fpga_cost(Bundle("one", InputSpec((fc.k,), 4, 1), [fc], spec))["layers"][0]
    parts = fpga_cost(Bundle("two", InputSpec((MAX_K,), 4, 1), tiles, spec))["layers"]
    assert (whole["row_tiles"], len(parts)) == (2, 2)
    for key in ("cycles", "compute_cycles", "load_cycles", "bytes_in", "bytes_out",
                "bytes_weights"):
        assert whole[key] == sum(p[key] for p in parts), key
