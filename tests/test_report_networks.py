"""`cimstack report` on a folder of network costs: one section per network, with per-layer
cycles, utilization and energy breakdown taken from the cost files, and the papers'
points beside the model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cimstack.bundle import save_bundle
from cimstack.cli import app
from cimstack.cost import network_cost
from cimstack.cost.published import beside_published
from cimstack.errors import ConfigError
from cimstack.report.build import write_report
from conftest import digits_like_bundle, graph_bundle


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """A folder with two networks' cost files as `cimstack cost B --json` writes them."""
    root = tmp_path_factory.mktemp("nets")
    for name, bundle in (("graph", graph_bundle()), ("digits", digits_like_bundle())):
        save_bundle(bundle, root / "bundles" / name)
        r = CliRunner().invoke(app, ["cost", str(root / "bundles" / name), "--json",
                                     str(root / name / "cost.json")])
        assert r.exit_code == 0, r.output
    return root


@pytest.fixture(scope="module")
def report(networks, tmp_path_factory):
    return write_report(networks, tmp_path_factory.mktemp("report") / "r")


def section(report, name):
    hits = [s for s in report.sections if s.title.startswith(f"Network {name}:")]
    assert len(hits) == 1, [s.title for s in report.sections]
    return hits[0]


def test_one_section_per_network_with_its_figure(report):
    nets = [s for s in report.sections if s.key.startswith("network-")]
    assert len(nets) == 2 and len({s.key for s in nets}) == 2
    for s in nets:
        assert s.status == "complete" and (report.out / s.figure).is_file()
    page = report.index.read_text()
    assert page.count("per-layer cost on the macros") >= 2


@pytest.mark.parametrize("name", ["graph", "digits"])
def test_per_layer_rows_are_the_cost_files_numbers(networks, report, name):
    net = json.loads((networks / name / "cost.json").read_text())["network"]
    s = section(report, net["name"])
    layers = s.tables[0]
    assert [row[1] for row in layers.rows] == [r["layer"] for r in net["layers"]]
    assert [row[5] for row in layers.rows] == [f"{r['cycles']:,}" for r in net["layers"]]
    for row, r in zip(layers.rows, net["layers"]):
        assert 0 < r["utilization"] <= 1
        assert row[6] == f"{100 * r['utilization']:.1f}%"
        shares = [float(x.rstrip("%")) for x in row[8].split(" / ")]
        assert sum(shares) == pytest.approx(100, abs=0.2)


def test_utilization_is_the_share_of_the_peak_mac_rate():
    """A layer filling whole tiles with nothing pruned uses the macros fully in every
    compute cycle it has to itself; a 1-channel layer uses a sliver of the columns."""
    bundle = digits_like_bundle()
    rows = {r["layer"]: r for r in network_cost(bundle).layers}
    full = bundle.macro_layers[0]
    util = rows[full.name]["utilization"]
    assert 0 < util <= 1
    cols = bundle.dcim.cols // full.w_bits
    # a layer with fewer channels than a tile's columns cannot use more than that share
    assert util <= min(1.0, full.channels / cols) + 1e-12


def test_published_points_name_the_same_network():
    net = network_cost(digits_like_bundle()).to_dict()
    assert not any(p["same_network"] for p in beside_published(net))
    net["name"] = "my_vgg16_copy"
    same = [p for p in beside_published(net) if p["same_network"]]
    assert [(p["figure"], p["at"], p["published"]) for p in same] == [
        ("efficiency", "VGG16", "52.3 TOPS/W")]


def test_a_damaged_network_cost_is_one_clear_error(networks, tmp_path):
    bad = tmp_path / "bad"
    (bad / "n").mkdir(parents=True)
    (bad / "n" / "cost.json").write_text(json.dumps({"fpga": None, "network": {"name": "x"}}))
    with pytest.raises(ConfigError, match="lacks batch, layers, totals: rewrite it with"):
        write_report(bad)
    assert not (bad / "report").exists()


def test_snn_and_calibration_figures_are_not_networks(tmp_path):
    (tmp_path / "cost.json").write_text(json.dumps({"fpga": None, "calibration": []}))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "cost.json").write_text(json.dumps({"fpga": None, "snn": {}}))
    report = write_report(tmp_path)
    assert not [s for s in report.sections if s.key.startswith("network-")]


def test_a_digital_network_shows_the_held_out_prediction_errors(networks, report):
    from cimstack.cost.calibrate import held_out_mars
    net = json.loads((networks / "digits" / "cost.json").read_text())["network"]
    held = section(report, net["name"]).tables[-1]
    assert held.title.startswith("held-out check")
    h = held_out_mars("VGG16")
    row = next(r for r in held.rows if r[0] == "ResNet18 (fit: VGG16)")
    assert row[-1] == f"{h['tops_per_w_error']:+.1%}"
