"""MARS multi-macro mapping (mapping/mars.py, docs/macros.md "MARS multi-macro
mapping"): column tiles over cores, row tiles over a core's macros in rounds, input
reuse within a core, weights in the cores' SRAM or streamed from DRAM, and their cost
(cycles, traffic, DRAM energy) on small hand-checkable layers and on the VGG16 /
ResNet18 shapes of the MARS calibration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cimstack.bundle import Bundle, InputSpec, MacroLayer, Requant
from cimstack.config import DcimSpec
from cimstack.cost import DcimConstants, network_cost
from cimstack.cost.calibrate import cifar_network
from cimstack.errors import ConfigError
from cimstack.mapping.mars import LayerMap, network_map, place, spread
from cimstack.mapping.tiling import layer_cost

SMALL = dict(rows=32, cols=64, rows_on=8)          # 4 groups per row tile


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def linear_bundle(w: np.ndarray, spec: DcimSpec, w_bits: int = 8, x_bits: int = 8) -> Bundle:
    """One linear dcim layer with weights ``w`` [N, K] (every weight of the layer as
    given; the requantizer is irrelevant to the cost)."""
    n, k = w.shape
    rq = Requant(np.ones(n, np.int64), np.zeros(n, np.int64), 0, 0, 255)
    layer = MacroLayer("fc", "linear", w.astype(np.int8), w_bits, x_bits, rq, (k,), (n,))
    return Bundle("one-layer", InputSpec((k,), x_bits, 1 / 255), [layer], spec)


# ------------------------------------------------------------------------ cycles

def schedule_cycles(tile_cost: np.ndarray, cores: int, macros: int) -> int:
    """The schedule written out: core j takes column tiles j, j + cores, ...; its tiles
    (row-major) run ``macros`` per round, a round as long as its longest tile; the
    layer waits for its slowest core."""
    rt, ct = tile_cost.shape
    slowest = 0
    for j in range(cores):
        tiles = [tile_cost[r, c] for r in range(rt) for c in range(j, ct, cores)]
        rounds = [max(tiles[i:i + macros]) for i in range(0, len(tiles), macros)]
        slowest = max(slowest, sum(rounds))
    return slowest


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 200), n=st.integers(1, 40), cores=st.integers(1, 6),
       macros=st.integers(1, 5), x_bits=st.integers(1, 8), seed=st.integers(0, 2**16))
@example(k=100, n=20, cores=1, macros=1, x_bits=3, seed=0)       # one macro
@example(k=64, n=8, cores=4, macros=2, x_bits=2, seed=1)         # more cores than tiles
@example(k=32, n=8, cores=1, macros=1, x_bits=1, seed=2)         # one tile
def test_cycles_follow_the_written_out_schedule(k, n, cores, macros, x_bits, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, (k, n)) * (rng.random((k, n)) < 0.3)
    spec = DcimSpec(**SMALL, cores=cores, macros=macros)
    # a tile's cycles per input bit: its busiest channel's kept blocks
    kept = np.add.reduceat((w != 0).astype(int), np.arange(0, k, 8), axis=0) > 0
    rt, ct = ceil_div(k, 32), ceil_div(n, 8)
    tile = np.array([[kept[4 * r:4 * r + 4, 8 * c:8 * c + 8].sum(axis=0).max()
                      for c in range(ct)] for r in range(rt)])
    assert layer_cost(w, 8, x_bits, spec).cycles == x_bits * schedule_cycles(tile, cores, macros)


@pytest.mark.parametrize("cores, macros, want", [
    (1, 1, 6 * 4), (1, 2, 3 * 4), (1, 6, 4), (2, 1, 4 * 4), (3, 2, 4), (4, 1, 2 * 4),
    (8, 1, 2 * 4)])
def test_dense_cycles_by_hand(cores, macros, want):
    """K = 64 (2 row tiles of 4 groups), N = 24 (3 column tiles of 8 channels): the
    busiest core has ceil(3 / cores) column tiles, 2 * that tiles, in
    ceil(tiles / macros) rounds of 4 cycles per input bit."""
    w = np.ones((64, 24), np.int64)
    cost = layer_cost(w, 8, 1, DcimSpec(**SMALL, cores=cores, macros=macros))
    assert cost.dense_cycles == cost.cycles == want
    assert want == 4 * ceil_div(2 * ceil_div(3, cores), macros)


def test_spread_deals_column_tiles_over_cores():
    w = np.zeros((64, 24), np.int64)
    w[:8, :] = 1                                       # one kept block per channel
    w[40, 8] = 1                                       # and one more (tile 1, row tile 1)
    m = spread("l", w, 8, DcimSpec(**SMALL, cores=2, macros=3))
    assert (m.row_tiles, m.col_tiles, m.cores_used) == (2, 3, 2)
    assert m.core_tiles == (4, 2)                      # core 0: column tiles 0 and 2
    assert m.macros_used == 3 + 2
    # kept rows * 8 bits: core 0 holds 16 channels x 8 rows, core 1 8 x 8 rows + 8
    assert m.core_weight_bits == (16 * 8 * 8, (8 * 8 + 8) * 8)
    assert (m.input_fetches, m.input_fetches_without_reuse) == (2, 3)


# ------------------------------------------------------------------ input reuse

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 80), cores=st.integers(1, 8), macros=st.integers(1, 4))
@example(n=80, cores=1, macros=1)                   # one macro: 10 column tiles, 1 fetch
@example(n=16, cores=8, macros=1)                   # more cores than column tiles
def test_input_reuse_saves_column_tiles_over_cores_used(n, cores, macros):
    """The input is fetched once per core used with reuse, once per column tile
    without: the saving is col_tiles / min(cores, col_tiles)."""
    w = np.ones((n, 40), np.int64)                      # [N, K]
    spec = DcimSpec(**SMALL, cores=cores, macros=macros)
    row = network_cost(linear_bundle(w, spec)).layers[0]
    col_tiles = ceil_div(n, 8)
    assert row["in_bits"] == 40 * 8 * min(cores, col_tiles)
    assert row["in_bits_without_reuse"] == 40 * 8 * col_tiles
    assert row["in_bits_without_reuse"] / row["in_bits"] == col_tiles / min(cores, col_tiles)
    assert row["cores_used"] == min(cores, col_tiles)


# ------------------------------------------------------------------- SRAM, DRAM

def _map(bytes_per_core: tuple[int, ...], name: str = "l") -> LayerMap:
    return LayerMap(name, 1, len(bytes_per_core), (1,) * len(bytes_per_core),
                    tuple(8 * b for b in bytes_per_core), macros=1)


@given(need=st.integers(1, 4096), kib=st.integers(1, 4))
@example(need=1024, kib=1)                          # exactly fills the SRAM
@example(need=1025, kib=1)                          # one byte over
def test_a_layer_stays_in_sram_exactly_when_it_fits(need, kib):
    (m,) = place([_map((need,))], DcimSpec(weight_sram_kib=kib, cores=1), resident=False)
    assert m.placement == ("sram" if need <= kib * 1024 else "dram")


def test_sram_is_given_in_layer_order_per_core():
    spec = DcimSpec(cores=2, weight_sram_kib=1)
    maps = [_map((600, 100), "a"), _map((500, 100), "b"), _map((400, 900), "c"),
            _map((24,), "d")]
    got = [m.placement for m in place(maps, spec, resident=False)]
    assert got == ["sram", "dram", "sram", "sram"]     # b: 600 + 500 > 1024 on core 0
    assert [m.placement for m in place(maps, spec, resident=True)] == ["macros"] * 4


def test_sram_corners_through_the_cost_model():
    """1024 one-row blocks (rows_on 1) of 8 bits fill 1 KiB exactly; one more byte
    streams the layer from DRAM: 1025 bytes per image at batch 1, 257 at batch 4."""
    spec = DcimSpec(rows_on=1, cores=1, macros=1, weight_sram_kib=1)
    w = np.zeros((64, 17), np.int64)                     # [N, K]: 2 column tiles
    w[:, :16] = 3
    fits = network_cost(linear_bundle(w, spec)).layers[0]
    assert (fits["weights_from"], fits["dram_bits"], fits["energy_dram_pj"]) == ("sram", 0, 0)
    w[5, 16] = -1
    c = DcimConstants()
    for batch, want in ((1, 1025 * 8), (4, ceil_div(1025 * 8, 4))):
        over = network_cost(linear_bundle(w, spec), batch=batch).layers[0]
        assert over["weights_from"] == "dram" and over["dram_bits"] == want
        assert over["energy_dram_pj"] == pytest.approx(want * c.e_dram_fj_per_bit * 1e-3)
        assert over["dram_cycles"] == ceil_div(want * c.clock_mhz, c.dram_gb_per_s * 8e3)
        # DRAM is beside the chip energy, not in it: the same layer with room in SRAM
        roomy = replace(spec, weight_sram_kib=None)
        on_chip = network_cost(linear_bundle(w, roomy), batch=batch).layers[0]
        assert on_chip["weights_from"] == "sram"
        assert over["energy_pj"] == on_chip["energy_pj"] and on_chip["energy_dram_pj"] == 0


def test_dram_stall_is_what_the_stream_adds_over_compute():
    spec = DcimSpec(rows_on=1, cores=1, macros=1, weight_sram_kib=1)
    w = np.full((64, 40), 2, np.int64)
    slow = DcimConstants(dram_gb_per_s=0.01)            # a very slow DRAM
    r = network_cost(linear_bundle(w, spec), dcim=slow).layers[0]
    assert r["dram_stall_cycles"] == r["dram_cycles"] - r["compute_cycles"] > 0
    assert r["cycles"] == r["compute_cycles"] + r["load_cycles"] + r["dram_stall_cycles"]


def test_a_resident_network_moves_no_weights():
    spec = DcimSpec(cores=2, macros=2, weight_sram_kib=1)
    w = np.ones((64, 256), np.int64)                    # 2 column tiles: fits 4 macros
    r = network_cost(linear_bundle(w, spec)).layers[0]
    assert (r["weights_from"], r["weight_bits"], r["dram_bits"], r["load_cycles"]) == \
        ("macros", 0, 0, 0)


# ------------------------------------------------------------- VGG16, ResNet18

@pytest.mark.parametrize("name", ["VGG16", "ResNet18"])
def test_a_network_larger_than_the_sram_streams_its_kept_weights(name):
    """MARS-like: four cores of four macros, 256 KiB of weight SRAM each. The layers
    without room stream their kept weights (every weight of these masks is kept and
    non-zero) from DRAM, once per batch; the ones kept fit every core's SRAM."""
    spec = DcimSpec(cores=4, macros=4, weight_sram_kib=256)
    bundle = replace(cifar_network(name), dcim=spec)
    cost = network_cost(bundle)
    maps = network_map(bundle, resident=False)
    by_name = {layer.name: layer for layer in bundle.macro_layers}
    streamed = [r for r in cost.layers if r["weights_from"] == "dram"]
    kept = [r for r in cost.layers if r["weights_from"] == "sram"]
    assert streamed and kept
    for r in streamed:
        layer = by_name[r["layer"]]
        assert r["dram_bits"] == np.count_nonzero(layer.weight) * layer.w_bits
    used = np.zeros(4, int)
    for r in kept:
        b = maps[r["layer"]].core_weight_bytes
        used[:len(b)] += b
    assert (used <= 256 * 1024).all()
    first = next(i for i, r in enumerate(cost.layers) if r["weights_from"] == "dram")
    need = maps[cost.layers[first]["layer"]].core_weight_bytes
    before = np.zeros(4, int)
    for r in cost.layers[:first]:
        b = maps[r["layer"]].core_weight_bytes
        before[:len(b)] += b
    assert any(before[j] + need[j] > 256 * 1024 for j in range(len(need)))
    t = cost.totals
    assert t["dram_bits"] == sum(r["dram_bits"] for r in streamed)
    assert t["tops_per_w_with_dram"] < t["tops_per_w"]
    c = DcimConstants()
    assert t["energy_dram_pj"] == pytest.approx(t["dram_bits"] * c.e_dram_fj_per_bit * 1e-3)
    at8 = network_cost(bundle, batch=8).totals
    assert at8["dram_bits"] == sum(ceil_div(r["dram_bits"], 8) for r in streamed)


@pytest.mark.parametrize("name", ["VGG16", "ResNet18"])
def test_defaults_keep_the_calibrated_model(name):
    """The defaults (one core of four macros, unbounded weight SRAM) are the model the
    MARS constants were fitted with: same cycles, energy and no DRAM."""
    bundle = cifar_network(name)
    t = network_cost(bundle).totals
    assert t["dram_bits"] == 0 and t["tops_per_w_with_dram"] == t["tops_per_w"]
    same = network_cost(replace(bundle, dcim=DcimSpec(cores=1, macros=4))).totals
    assert (same["cycles"], same["energy_pj"]) == (t["cycles"], t["energy_pj"])


def test_more_cores_run_vgg16_faster():
    bundle = cifar_network("VGG16")
    one, four = (network_cost(replace(bundle, dcim=DcimSpec(cores=c, macros=4))).totals
                 for c in (1, 4))
    assert four["cycles"] < 0.5 * one["cycles"]
    assert four["in_bits"] > one["in_bits"]              # one input fetch per core used


@pytest.mark.parametrize("knobs, match", [
    (dict(cores=0), r"DcimSpec.cores = 0 is out of range: allowed \[1, 64\]"),
    (dict(weight_sram_kib=0), r"DcimSpec.weight_sram_kib = 0 is out of range"),
    (dict(weight_sram_kib=1.5), r"weight_sram_kib = 1.5 must be an integer"),
    (dict(macros=True), r"macros = True must be an integer")])
def test_bad_mapping_knobs_are_one_clear_error(knobs, match):
    with pytest.raises(ConfigError, match=match):
        DcimSpec(**knobs)


# --------------------------------------------------------------------------- CLI

def test_cost_command_shows_the_mapping_and_dram(tmp_path):
    from typer.testing import CliRunner

    from cimstack.bundle import save_bundle
    from cimstack.cli import app
    w = np.zeros((64, 17), np.int64)
    w[:, :16], w[5, 16] = 3, -1                        # 1025 bytes of kept weights
    save_bundle(linear_bundle(w, DcimSpec(rows_on=1)), tmp_path / "b")
    args = ["cost", str(tmp_path / "b"), "--cores", "1", "--macros", "1"]
    out = CliRunner().invoke(app, [*args, "--weight-sram-kib", "1"], terminal_width=200)
    assert out.exit_code == 0, out.output
    for text in ("cores/macros, weights", "1 / 1, dram", "array / read-out / move / DRAM",
                 "DRAM weights per image", "1,025 bytes (1 layers streamed)",
                 "efficiency with DRAM"):
        assert text in out.output, text
    roomy = CliRunner().invoke(app, [*args, "--weight-sram-kib", "2"], terminal_width=200)
    assert "1 / 1, sram" in roomy.output and "0 bytes (0 layers streamed)" in roomy.output
    bad = CliRunner().invoke(app, [*args, "--macros", "65"], terminal_width=200)
    assert isinstance(bad.exception, ConfigError)      # `cimstack` prints it as one line
    assert "DcimSpec.macros = 65 is out of range: allowed [1, 64]" in str(bad.exception)
