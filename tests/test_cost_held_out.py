"""Held-out checks of the MARS cost model: constants fitted on one network predict the
other network's published efficiency, and models known to be wrong miss it; the cost
command on a graph bundle (host nodes, published figures beside the model)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cimstack.bundle import save_bundle
from cimstack.cli import app
from cimstack.cost import network_cost
from cimstack.cost.calibrate import MarsAssumptions, held_out_mars, held_out_table
from cimstack.errors import ConfigError

from conftest import graph_bundle

TOLERANCE = 0.10                      # relative error of a held-out TOPS/W prediction
PAIRS = [("VGG16", "ResNet18"), ("ResNet18", "VGG16")]


@pytest.mark.parametrize("fit_on, predicted", PAIRS)
def test_held_out_efficiency_within_10_percent(fit_on, predicted):
    """e_cell fitted on one network (e_move from IMAGINE) predicts the other's TOPS/W
    (52.3 / 88.2) within 10%: -4.9% for ResNet18, +3.1% for VGG16."""
    h = held_out_mars(fit_on)
    assert h["predicted"] == predicted
    assert abs(h["tops_per_w_error"]) < TOLERANCE, h


@pytest.mark.parametrize("fit_on, predicted", PAIRS)
def test_held_out_misses_for_a_model_without_the_weight_reload(fit_on, predicted):
    """Weights resident (one reload per 10^9 images): both networks cost the same per
    operation, so the fit predicts the other network at the fitted one's efficiency,
    over 40% off."""
    h = held_out_mars(fit_on, batch=10**9)
    assert abs(h["tops_per_w_error"]) > TOLERANCE + 0.3, h


@pytest.mark.parametrize("fit_on", ["VGG16", "ResNet18"])
def test_held_out_refuses_a_model_that_ignores_sparsity(fit_on):
    """Dense cycles and dense weights: the movement alone costs more than the published
    efficiency allows, so no positive e_cell fits."""
    with pytest.raises(ValueError, match="no positive solution"):
        held_out_mars(fit_on, MarsAssumptions(sparsity=0.0))


def test_held_out_misses_for_a_wrong_sparsity():
    """70% block sparsity instead of 50% misses the held-out point by more than 10%."""
    assert abs(held_out_mars("VGG16", MarsAssumptions(sparsity=0.7))["tops_per_w_error"]) \
        > TOLERANCE


def test_held_out_names_the_networks_it_knows():
    with pytest.raises(ConfigError, match="fit_on = 'AlexNet' must be one of VGG16, ResNet18"):
        held_out_mars("AlexNet")


def test_held_out_frame_rate_follows_the_cycle_ratio():
    """One clock, fitted on 700 frames/s of one network: the other runs at the ratio of
    their cycles. ResNet18 needs 1.71x VGG16's cycles, so only the fit on ResNet18 keeps
    both over the published 700 frames/s."""
    rows = {r["at"]: r for r in held_out_table() if r["figure"] == "throughput"}
    vgg = rows["VGG16 (fit: ResNet18) CIFAR-10"]["model"]
    res = rows["ResNet18 (fit: VGG16) CIFAR-10"]["model"]
    assert vgg > 700 > res
    assert vgg / 700 == pytest.approx(700 / res, rel=1e-9)
    assert vgg / 700 == pytest.approx(1.709, rel=0.01)


def test_graph_bundle_host_nodes_cost_nothing_and_are_counted():
    bundle = graph_bundle()
    t = network_cost(bundle).totals
    assert t["host_nodes"] == {"add": 1, "maxpool2d": 1, "avgpool2d": 2, "concat": 1,
                               "flatten": 1}
    rows = network_cost(bundle).layers
    assert [r["layer"] for r in rows] == [l.name for l in bundle.macro_layers]
    assert t["energy_pj"] == pytest.approx(sum(r["energy_pj"] for r in rows))


def test_cost_command_on_a_graph_bundle_prints_published_figures(tmp_path):
    save_bundle(graph_bundle(), tmp_path / "g")
    out = CliRunner().invoke(app, ["cost", str(tmp_path / "g")], terminal_width=200)
    assert out.exit_code == 0, out.output
    for text in ("beside published", "52.3 TOPS/W", "88.2 TOPS/W", "700 frames/s (over)",
                 "host nodes", "1 add", "1 concat", "2 avgpool2d", "DRAM"):
        assert text in out.output, text


def test_cost_command_without_bundle_lists_held_out_rows():
    out = CliRunner().invoke(app, ["cost"], terminal_width=200)
    assert out.exit_code == 0, out.output
    held_out = [line for line in out.output.splitlines() if "held-out" in line]
    assert len(held_out) == 4 and any("-4.89%" in line for line in held_out), out.output


def test_published_table_of_an_analog_bundle_compares_macro_efficiency():
    """IMAGINE's 0.15-8 POPS/W are macro figures: beside the bundle's array + ADC
    efficiency; its 40 TOPS/W system figure beside the all-in efficiency."""
    from cimstack.cost.cli import published_table
    from test_emu_acim import analog_bundle
    net = network_cost(analog_bundle()).to_dict()
    t = net["totals"]
    figure, model, published = (list(published_table(net).columns[i].cells) for i in (1, 2, 3))
    assert figure == ["macro efficiency", "macro efficiency", "efficiency"]
    assert published == ["0.15 POPS/W", "8 POPS/W", "40 TOPS/W"]
    macro = t["ops"] / (t["energy_array_pj"] + t["energy_readout_pj"]) * 1e-3
    assert model[0] == f"{macro:.3g} POPS/W" and model[2] == f"{t['tops_per_w']:.1f} TOPS/W"
