"""Block pruning of one dcim layer's integer weights (cimstack.study.sensitivity.
prune_layer): it reaches the requested block sparsity in every row tile the way the
macro skips blocks, only zeroes whole blocks, keeps the bundle valid and bit-exact on the
emulated overlay, and the cost model sees the skipped blocks."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from cimstack.backends import open_backend
from cimstack.config import AcimSpec, DcimSpec
from cimstack.cost.network import network_cost
from cimstack.errors import ConfigError
from cimstack.mapping.tiling import blocks_pruned_per_tile, kept_blocks, row_tile_spans
from cimstack.ref.network import run_network
from cimstack.study.sensitivity import block_sparsity, prune_layer, to_acim
from cimstack.verify.compare import verify

from conftest import digits_like_bundle

SPEC = DcimSpec(rows=32, rows_on=8)      # conv2 (K 144): row tiles of 4, 4, 4, 4, 2 groups


def _zero_blocks_per_tile(layer, spec) -> np.ndarray:
    """[N, tiles]: the all-zero blocks of every channel in every row tile."""
    zero = ~kept_blocks(layer.matrix(), spec.rows_on)                    # [G, N]
    return np.stack([zero[g0:g0 + t].sum(axis=0)
                     for g0, t in row_tile_spans(layer.k, spec.rows_on, spec.rows)], axis=1)


@pytest.fixture(scope="module")
def emu_backend():
    return open_backend("emu", timeout_s=5.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), name=st.sampled_from(["conv1", "conv2", "fc"]),
       sparsity=st.floats(0.0, 0.95), before=st.sampled_from([0.0, 0.3]))
@example(seed=0, name="conv2", sparsity=0.5, before=0.0)
@example(seed=1, name="fc", sparsity=0.75, before=0.3)      # zero blocks count first
@example(seed=2, name="conv1", sparsity=0.25, before=0.0)   # 2 groups: nothing to drop
def test_every_tile_reaches_the_sparsity_with_whole_blocks(seed, name, sparsity, before):
    bundle = digits_like_bundle(seed, sparsity=before, spec=SPEC)
    layer = next(lay for lay in bundle.macro_layers if lay.name == name)
    drops = np.array(blocks_pruned_per_tile(layer.k, SPEC.rows_on, sparsity, SPEC.rows))
    zeros = _zero_blocks_per_tile(layer, SPEC)
    want = np.maximum(zeros, drops[None, :])        # never un-pruned, else the drop count
    if np.array_equal(want, zeros):
        with pytest.raises(ConfigError, match="zeroes no further block"):
            prune_layer(bundle, name, sparsity)
        return
    out = prune_layer(bundle, name, sparsity)       # validates the bundle
    pruned = next(lay for lay in out.macro_layers if lay.name == name)
    assert np.array_equal(_zero_blocks_per_tile(pruned, SPEC), want)
    w0, w1 = layer.weight.astype(int), pruned.weight.astype(int)
    assert np.all((w1 == w0) | (w1 == 0))            # kept weights unchanged, none grows
    # the blocks dropped are the weakest of their channel and tile (L2 norm)
    norms = np.sqrt(np.add.reduceat(layer.matrix().astype(float) ** 2,
                                    np.arange(0, layer.k, SPEC.rows_on), axis=0))   # [G, N]
    dropped = kept_blocks(layer.matrix(), SPEC.rows_on) & ~kept_blocks(pruned.matrix(),
                                                                        SPEC.rows_on)
    kept = kept_blocks(pruned.matrix(), SPEC.rows_on)
    for g0, t in row_tile_spans(layer.k, SPEC.rows_on, SPEC.rows):
        for n in range(layer.channels):
            d, k = dropped[g0:g0 + t, n], kept[g0:g0 + t, n]
            if d.any() and k.any():
                assert norms[g0:g0 + t, n][d].max() <= norms[g0:g0 + t, n][k].min()
    others = [lay for lay in out.macro_layers if lay.name != name]
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(
        others, [lay for lay in bundle.macro_layers if lay.name != name]))
    assert block_sparsity(out, pruned) > block_sparsity(bundle, layer)
    # the cost model skips the zero blocks: fewer cycles and less energy for the layer
    c0 = {r["layer"]: r for r in network_cost(bundle).layers}[name]
    c1 = {r["layer"]: r for r in network_cost(out).layers}[name]
    assert c1["compute_cycles"] <= c0["compute_cycles"]
    assert c1["energy_array_pj"] < c0["energy_array_pj"]


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), sparsity=st.sampled_from([0.25, 0.5, 0.75]))
@example(seed=0, sparsity=0.75)
def test_pruned_bundle_is_bit_exact_on_the_emulated_overlay(emu_backend, seed, sparsity):
    bundle = prune_layer(prune_layer(digits_like_bundle(seed, spec=SPEC), "conv2", sparsity),
                         "fc", sparsity)
    x = np.random.default_rng(seed).integers(0, 256, (4, 1, 8, 8))
    report = verify(bundle, x, emu_backend.engine, "emu")
    assert report.ok, report.summary()
    ref = run_network(bundle, x)
    np.testing.assert_array_equal(run_network(bundle, x, emu_backend.engine).logits, ref.logits)


def test_a_dense_layer_loses_cycles_in_proportion():
    bundle = digits_like_bundle(0, spec=SPEC)
    out = prune_layer(bundle, "conv2", 0.5)        # every channel keeps 2 of 4 (1 of 2)
    c0 = {r["layer"]: r for r in network_cost(bundle).layers}["conv2"]
    c1 = {r["layer"]: r for r in network_cost(out).layers}["conv2"]
    assert c1["compute_cycles"] * 2 == c0["compute_cycles"]


def test_what_cannot_be_pruned_says_why():
    bundle = digits_like_bundle(0, spec=SPEC)
    analog = to_acim(replace(bundle, acim=AcimSpec()), "fc", AcimSpec())
    with pytest.raises(ConfigError, match="fc is on acim, which computes every row"):
        prune_layer(analog, "fc", 0.5)
    with pytest.raises(ConfigError, match=r"block sparsity 1.0 is out of range"):
        prune_layer(bundle, "fc", 1.0)
    with pytest.raises(ConfigError, match="no macro layer 'fc9'"):
        prune_layer(bundle, "fc9", 0.5)
