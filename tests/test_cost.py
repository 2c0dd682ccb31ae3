"""Cost models: energy / latency / area of dcim and acim bundles, the spiking core's
energy and traffic, the FPGA overlay's throughput against its DMA bound, the errors,
and `cimstack cost`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cimstack.bundle import Bundle, InputSpec, MacroLayer, save_bundle
from cimstack.config import DcimSpec
from cimstack.cost import (AcimConstants, DcimConstants, FpgaTiming, SnnConstants,
                           acim_macro_curve, fpga_cost, network_cost, snn_cost)
from cimstack.errors import ConfigError
from cimstack.ref.network import layer_stats
from cimstack.ref.snn import run_dataflow, run_snn
from cimstack.snn_bundle import save_snn_bundle

from conftest import digits_like_bundle, random_requant, random_weight
from test_emu_acim import analog_bundle
from test_ref_snn import random_net


def linear_bundle(n=300, k=200, w_bits=8, sparsity=0.0, seed=0, spec=None) -> Bundle:
    """One K x N linear layer: N > 128 makes the kernels slice it."""
    rng = np.random.default_rng(seed)
    spec = spec or DcimSpec()
    layer = MacroLayer("fc", "linear", random_weight(rng, (n, k), w_bits, spec.rows_on, sparsity),
                       w_bits, 8, random_requant(rng, n, 8), (k,), (n,))
    return Bundle("linear", InputSpec((k,), 8, 1 / 255), [layer], spec)


def test_network_totals_are_the_sums_of_the_layers():
    cost = network_cost(digits_like_bundle(sparsity=0.3))
    stats = layer_stats(digits_like_bundle(sparsity=0.3))
    assert [r["layer"] for r in cost.layers] == ["conv1", "conv2", "fc"]
    for key in ("ops", "cycles", "latency_s", "energy_pj", "energy_move_pj"):
        assert cost.totals[key] == pytest.approx(sum(r[key] for r in cost.layers))
    for row, s in zip(cost.layers, stats):
        assert row["ops"] == 2 * s.k * s.n * s.vectors
        assert row["cycles"] == s.cycles                          # 3 tiles on 4 macros: resident
        assert row["energy_pj"] == pytest.approx(row["energy_array_pj"] + row["energy_readout_pj"]
                                                 + row["energy_move_pj"])
        assert row["latency_s"] == pytest.approx(s.cycles / (DcimConstants().clock_mhz * 1e6))
    assert cost.totals["resident"] == {"dcim": True}
    assert cost.totals["tops_per_w"] == pytest.approx(cost.totals["ops"] / cost.totals["energy_pj"])
    assert cost.totals["images_per_s"] == pytest.approx(1 / cost.totals["latency_s"])
    doc = json.loads(json.dumps(cost.to_dict()))
    assert doc["totals"]["energy_pj"] == pytest.approx(cost.totals["energy_pj"])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), w_bits=st.sampled_from([1, 2, 4, 8]),
       rows_on=st.sampled_from([8, 16, 32]), psum_bits=st.sampled_from([None, 3]))
def test_pruning_a_block_never_costs_more(seed, w_bits, rows_on, psum_bits):
    """Zeroing one more kept block: array energy and read-outs strictly drop, cycles and
    total energy never grow, dense operations stay."""
    spec = DcimSpec(rows_on=rows_on, psum_bits=psum_bits)
    b = digits_like_bundle(seed, w_bits=(w_bits,) * 3, sparsity=0.3, spec=spec)
    before = network_cost(b)
    layer = b.macro_layers[1]
    w = layer.matrix()                                    # view on the weights: [K, N]
    g, n = np.argwhere(np.add.reduceat(w != 0, np.arange(0, w.shape[0], rows_on), axis=0))[0]
    w[g * rows_on:(g + 1) * rows_on, n] = 0
    after = network_cost(b)
    a, z = before.layers[1], after.layers[1]
    assert z["energy_array_pj"] < a["energy_array_pj"]
    assert z["column_reads"] < a["column_reads"]
    assert z["cycles"] <= a["cycles"] and z["energy_pj"] < a["energy_pj"]
    assert z["ops"] == a["ops"] and z["ops_performed"] < a["ops_performed"]


def test_weights_reload_when_the_tiles_do_not_fit():
    b = digits_like_bundle(spec=DcimSpec(macros=2))       # 3 tiles, 2 macros
    one, many = network_cost(b), network_cost(b, batch=10)
    assert one.totals["resident"] == {"dcim": False}
    for r1, r10 in zip(one.layers, many.layers):
        assert r1["weight_bits"] > 0 and r10["weight_bits"] == -(-r1["weight_bits"] // 10)
        assert r1["load_cycles"] > 0 and r1["cycles"] == r1["compute_cycles"] + r1["load_cycles"]
    assert many.totals["energy_pj"] < one.totals["energy_pj"]
    assert network_cost(digits_like_bundle()).totals["weight_bits"] == 0


def test_analog_layers_per_bit_mode_converts_every_input_bit():
    charge, per_bit = network_cost(analog_bundle()), network_cost(analog_bundle(per_bit=True))
    for c, p, layer in zip(charge.layers, per_bit.layers, analog_bundle().macro_layers):
        assert c["macro"] == "acim" and c["conversions"] == c["vectors"] * layer.channels
        assert p["conversions"] == layer.x_bits * c["conversions"]
        assert p["energy_readout_pj"] == pytest.approx(layer.x_bits * c["energy_readout_pj"])
        assert p["energy_array_pj"] == pytest.approx(c["energy_array_pj"])
    assert charge.totals["area_mm2"] == AcimConstants().macro_area_mm2


def test_mixed_bundle_costs_each_layer_on_its_macro():
    b = analog_bundle()
    b.layers[-1] = replace(b.layers[-1], macro="dcim", analog=None)
    cost = network_cost(b)
    assert [r["macro"] for r in cost.layers] == ["acim", "dcim"]
    assert cost.totals["area_mm2"] == pytest.approx(
        AcimConstants().macro_area_mm2 + b.dcim.macros * DcimConstants().macro_area_mm2)
    with pytest.raises(ConfigError, match="no acim configuration"):
        network_cost(replace(analog_bundle(), acim=None))


def test_acim_curve_is_linear_in_its_constants():
    """Doubling every energy constant halves the efficiency; doubling the times halves
    the density."""
    c = AcimConstants()
    slow = replace(c, t_input_ns=2 * c.t_input_ns, t_eval_ns=2 * c.t_eval_ns)
    hungry = replace(c, e_cell_fj=2 * c.e_cell_fj, e_sar_step_fj=2 * c.e_sar_step_fj)
    for base, s, h in zip(acim_macro_curve(), acim_macro_curve(constants=slow),
                          acim_macro_curve(constants=hungry)):
        assert s["tops_per_mm2"] == pytest.approx(base["tops_per_mm2"] / 2)
        assert h["pops_per_w"] == pytest.approx(base["pops_per_w"] / 2)


@pytest.mark.parametrize("make, match", [
    (lambda: network_cost(digits_like_bundle(), batch=0), "batch"),
    (lambda: AcimConstants(e_cell_fj=-1.0), "e_cell_fj"),
    (lambda: SnnConstants(idle_fraction=1.5), "idle_fraction"),
    (lambda: SnnConstants(clock_low_mhz=200.0), "clock_high_mhz"),
    (lambda: FpgaTiming(loop_entry_cycles=-1), "loop_entry_cycles"),
    (lambda: acim_macro_curve([9]), "bits"),
    (lambda: fpga_cost(linear_bundle(k=2400, n=4, spec=DcimSpec(rows=2048, rows_on=2048,
                                                               psum_bits=3))), "MAX_K"),
    (lambda: fpga_cost(digits_like_bundle(), batch=2.5), "positive integer"),
    (lambda: snn_cost(random_net(0), run_snn(random_net(0), np.zeros((1, 2, 2, 8, 8))), 0),
     "samples"),
])
def test_bad_input_is_a_clear_error(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


# ------------------------------------------------------------------------- FPGA

def test_fpga_bound_is_the_smaller_of_compute_and_dma():
    for bundle in (digits_like_bundle(), analog_bundle(), linear_bundle()):
        for batch in (1, 64):
            f = fpga_cost(bundle, batch=batch)
            assert f["clock_mhz"] == 100.0 and f["hp_port_bytes_per_s"] == 800e6
            assert f["cycles_per_image"] == sum(r["cycles"] for r in f["layers"])
            assert f["images_per_s"] == pytest.approx(100e6 / f["cycles_per_image"])
            assert f["dma_bytes_per_image"] == sum(r["bytes_in"] + r["bytes_out"]
                                                   + r["bytes_weights"] for r in f["layers"])
            assert f["dma_bound_images_per_s"] == pytest.approx(800e6 / f["dma_bytes_per_image"])
            bound = min(f["images_per_s"], f["dma_bound_images_per_s"])
            assert f["bound_images_per_s"] == bound
            assert f["bottleneck"] == ("compute" if bound == f["images_per_s"] else "dma")


def test_fpga_slices_wide_layers_and_resends_the_inputs():
    f = fpga_cost(linear_bundle(n=300, k=200), batch=1)
    (row,) = f["layers"]
    assert row["slices"] == 3                                  # 128 + 128 + 44 channels
    assert row["bytes_in"] == 3 * 25 * 8                       # 200 bytes = 25 words per slice
    assert row["bytes_out"] == (64 + 64 + 22) * 8              # two int32 per word
    assert row["bytes_weights"] == (3200 * 2 + 1100 + 2 * 300) * 8   # K*n bytes, 2n requant
    assert fpga_cost(linear_bundle(), batch=4)["layers"][0]["bytes_weights"] == \
        -(-row["bytes_weights"] // 4)


def test_fpga_skips_pruned_blocks_only_behind_a_column_adc():
    """The exact path reads whole words (no skipping); the ADC path skips pruned blocks."""
    exact, adc = DcimSpec(), DcimSpec(psum_bits=3)
    cyc = {(s, sp): fpga_cost(linear_bundle(sparsity=sp, spec=s), batch=1000)["cycles_per_image"]
           for s in (exact, adc) for sp in (0.0, 0.6)}
    assert cyc[exact, 0.0] == cyc[exact, 0.6]
    assert cyc[adc, 0.6] < 0.7 * cyc[adc, 0.0]


def test_fpga_acim_counts_its_loops():
    """The acim kernel per vector: read ceil(K/8) words, one row of every channel per
    cycle and one conversion per cycle per pass (x_bits passes per input bit), write."""
    bundle = analog_bundle()
    (layer, *_), e = bundle.macro_layers, 2
    k, n = layer.k, min(128, layer.channels)
    charge = fpga_cost(bundle, batch=1000)["layers"][0]
    assert charge["compute_cycles"] == layer.vectors * (
        -(-k // 8) + e + (k + e + n + e) + -(-n // 2) + e)
    row = fpga_cost(analog_bundle(per_bit=True), batch=1000)["layers"][0]
    assert row["compute_cycles"] == layer.vectors * (
        -(-k // 8) + e + layer.x_bits * (k + e + n + e) + n + e + -(-n // 2) + e)
    slow = fpga_cost(bundle, timing=FpgaTiming(loop_entry_cycles=20))
    assert slow["cycles_per_image"] > fpga_cost(bundle)["cycles_per_image"]


# -------------------------------------------------------------------------- SNN

@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), v_bits=st.sampled_from([8, 12, 16]),
       density=st.sampled_from([0.05, 0.3]), policy=st.sampled_from([None, "ws", "os"]))
def test_snn_energy_and_traffic(seed, v_bits, density, policy):
    net = random_net(seed, w_bits=8, v_bits=v_bits)
    frames = np.random.default_rng(seed).random((2, 4, 2, 8, 8)) < density
    res = run_snn(net, frames)
    cost = snn_cost(net, res, 2, policy)
    _, ws_sim = run_dataflow(net, frames, {s.name: "ws" for s in net.spiking_layers})
    e_bit = SnnConstants().e_bit_fj(net.spec.clock_mhz)
    for row, layer in zip(cost["layers"], net.spiking_layers):
        assert row["ws_traffic_bits"] == ws_sim[layer.name].total     # the simulation's count
        if row["ws_traffic_bits"]:
            assert row["traffic_vs_ws"] == pytest.approx(
                row["traffic_bits"] / row["ws_traffic_bits"])
        if row["dataflow"] == "ws":
            assert row["traffic_vs_ws"] == 1.0
        e_sop, e_col = e_bit * 8 * v_bits * 1e-3, e_bit * 8 * 1e-3
        assert row["energy_sop_pj"] == pytest.approx(row["sops"] * e_sop)
        # standby applies to the columns without a SOP in the compute cycles only
        unused = row["compute_cycles"] * 256 - row["sops"] * v_bits
        assert row["unused_column_cycles"] == unused >= 256 % v_bits * row["compute_cycles"]
        assert row["energy_idle_pj"] == pytest.approx(0.13 * unused * e_col)
        assert row["energy_ungated_pj"] - row["energy_pj"] == pytest.approx(
            0.87 * unused * e_col)
    t = cost["totals"]
    assert t["energy_pj"] == pytest.approx(sum(r["energy_pj"] for r in cost["layers"]))
    assert t["energy_pj_per_sample"] == pytest.approx(t["energy_pj"] / 2)
    assert 0 < t["gsop_per_s"] <= t["peak_gsop_per_s"] == (256 // v_bits) * 100 * 1e-3


# -------------------------------------------------------------------------- CLI

def cimstack(*args):
    return subprocess.run([sys.executable, "-c", "from cimstack.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_cost_of_a_bundle_and_the_calibration(tmp_path):
    save_bundle(digits_like_bundle(sparsity=0.5), tmp_path / "b")
    r = cimstack("cost", str(tmp_path / "b"), "--json", str(tmp_path / "c.json"), "--batch", "8")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "TOPS/W" in r.stdout and "DMA bound" in r.stdout
    figs = json.loads((tmp_path / "c.json").read_text())
    assert figs["network"]["batch"] == 8 and len(figs["network"]["layers"]) == 3
    assert figs["fpga"]["bottleneck"] in ("compute", "dma")
    r = cimstack("cost", "--json", str(tmp_path / "cal.json"))
    assert r.returncode == 0, r.stderr + r.stdout
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert {row["family"] for row in cal["calibration"]} == {"acim", "dcim", "snn"}
    assert [p["bits"] for p in cal["acim_curve"]] == list(range(1, 9))
    r = cimstack("cost", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "bundle.json is missing" in " ".join(r.stdout.split())


def test_cli_cost_of_an_snn_bundle(tmp_path):
    save_snn_bundle(random_net(4, size=34), tmp_path / "snn")   # the event digits' 2 x 34 x 34
    r = cimstack("cost", str(tmp_path / "snn"), "--samples", "2", "--json",
                 str(tmp_path / "s.json"))
    assert r.returncode == 0, r.stderr + r.stdout
    cost = json.loads((tmp_path / "s.json").read_text())["snn"]
    assert [row["layer"] for row in cost["layers"]] == ["conv1", "fc"]
    assert cost["totals"]["energy_pj_per_sample"] > 0 and "ws-only" in r.stdout
