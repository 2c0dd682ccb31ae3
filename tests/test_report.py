"""`cimstack report`: every section of a demo run, notes for missing inputs, clear errors
for damaged ones, atomic output, and the page in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cimstack.cli import app
from cimstack.errors import ConfigError
from cimstack.report import build as report_build
from cimstack.report.build import write_report
from cimstack.report.inputs import _number, find_inputs
from cimstack.fileio import atomic_folder, write_csv_atomic, write_text_atomic
from cimstack.report.render import to_html, to_markdown
from cimstack.report.sections import NUMBER, Section, Table, _curves, _ranges, fmt
from cimstack.study.analog import run_analog_study

TITLES = ["Efficiency and density vs precision", "Accuracy vs noise and vs ADC bits",
          "Effective bits with and without adaptive swing", "Per-layer dataflow and traffic",
          "Per-layer mismatches from verification", "Overlay throughput vs the DMA bound"]


# ------------------------------------------------------------------ run folders

def snn_layer(name: str, dataflow: str, traffic: int, ws: int) -> dict:
    """A per-layer row as `cimstack.cost.snn_cost` / the SNN demo write it."""
    return {"layer": name, "dataflow": dataflow, "policy": "auto", "resident_bits": 4800,
            "weight_traffic_bits": traffic // 2, "membrane_traffic_bits": traffic // 2,
            "traffic_bits": traffic, "ws_traffic_bits": ws, "sops": 1000, "events_in": 100,
            "events_out": 50, "cycles": 700, "energy_pj": 5e4}


def write_sweep(folder: Path) -> Path:
    """A small results.json in the format `cimstack sweep` writes: acim points over
    adc_bits x sigma, snn points over dataflow."""
    points = []
    for adc in (2, 4, 8):
        for sigma in (0.0, 1.0, 2.0):
            points.append({"point": f"acim{adc}{sigma:g}", "macro": "acim", "w_bits": 8,
                           "x_bits": adc, "adc_bits": adc, "train_sigma": 0.0, "sigma": sigma,
                           "seed": 0, "accuracy": 0.98 - 0.2 * sigma / adc,
                           "fpga_images_per_s": 1000.0 * adc, "dma_bound_images_per_s": 9e4,
                           "model": "m", "layers": []})
    for dataflow, shares in (("ws", (1, 1)), ("auto", (1, 0.25))):
        layers = [snn_layer(f"conv{i + 1}", "os" if s < 1 else "ws", int(8000 * (i + 1) * s),
                            8000 * (i + 1)) for i, s in enumerate(shares)]
        points.append({"point": f"snn-{dataflow}", "macro": "snn", "w_bits": 8, "v_bits": 16,
                       "dataflow": dataflow, "seed": 0, "accuracy": 0.9,
                       "traffic_bits": sum(r["traffic_bits"] for r in layers) / 10,
                       "cycles": 1400.0, "model": "s", "layers": layers})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps({"grid": {}, "points": points, "failed": []}))
    return path


def write_study(folder: Path) -> None:
    """enob.csv from the real (quick) study; sigma.csv and adc_bits.csv in its format
    (training them takes minutes)."""
    run_analog_study(folder, ["enob"], quick=True)
    write_csv_atomic(folder / "sigma.csv", [
        {"model": m, "train_sigma": ts, "adc_bits": 4, "sigma": s, "accuracy": a,
         "accuracy_min": a, "noise_seeds": 1}
        for m, ts, accs in (("unaware", 0.0, (0.98, 0.85, 0.4)), ("aware", 2.0, (0.97, 0.9, 0.5)))
        for s, a in zip((0.0, 2.0, 4.0), accs)])
    write_csv_atomic(folder / "adc_bits.csv", [
        {"adc_bits": b, "train_sigma": 1.0, "accuracy_sigma0": a, "sigma_eval": 1.0,
         "accuracy_noisy": a - 0.1, "torch_accuracy": a}
        for b, a in ((2, 0.7), (4, 0.96), (8, 0.98))])


def snn_demo() -> dict:
    """snn_demo.json as `cimstack demo --snn` writes it (the fields the report reads)."""
    layers = [snn_layer("conv1", "ws", 2000, 2000), snn_layer("fc", "os", 300, 900)]
    return {"accuracy": 0.9, "cost": {"layers": layers, "traffic_bits": 2300},
            "verify": {"backend": "emu", "samples": 8, "ok": True, "membrane_mismatches": 0,
                       "layers": [{"layer": "conv1", "elements": 4096, "mismatches": 0},
                                  {"layer": "fc", "elements": 80, "mismatches": 3}]}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A demo run folder, as the real demo writes it (short dcim training; the demo's
    quick analog study and small sweep), with no report yet."""
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(app, ["demo", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for part in ("cost.json", "study-analog/enob.csv", "study-analog/sigma.csv",
                 "study-analog/adc_bits.csv", "sweep/results.json", "report/index.html"):
        assert (out / part).is_file(), part
    shutil.rmtree(out / "report")
    return out


@pytest.fixture(scope="module")
def report(run_dir):
    return write_report(run_dir)


class Page(HTMLParser):
    """The headings, image sources and table cells of a report page."""

    def __init__(self, text: str):
        super().__init__()
        self.h2, self.img, self.cells, self._tag = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "img":
            self.img.append(dict(attrs)["src"])
        if tag in ("h2", "td"):
            (self.h2 if tag == "h2" else self.cells).append("")

    def handle_endtag(self, tag):
        self._tag = None

    def handle_data(self, data):
        if self._tag in ("h2", "td", "code"):
            target = self.h2 if self._tag == "h2" else self.cells
            if target:
                target[-1] += data


# ---------------------------------------------------------------------- reports

@pytest.mark.slow
def test_demo_run_has_every_section_with_its_figure(run_dir, report):
    assert report.out == run_dir / "report" and not report.incomplete
    page = Page(report.index.read_text())
    assert page.h2[:-1] == [f"{n}. {t}" for n, t in enumerate(TITLES, 1)]
    net = json.loads((run_dir / "cost.json").read_text())["network"]      # the demo's network
    assert page.h2[-1] == f"7. Network {net['name']}: per-layer cost on the macros"
    assert page.img == [f"figures/{s.key}.png" for s in report.sections]
    for src in page.img:
        png = (report.out / src).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    text = report.index.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    md = (report.out / "report.md").read_text()
    assert all(f"## {n}. {t}" in md for n, t in enumerate(TITLES, 1))
    assert all(f"]({src})" in md for src in page.img)
    assert not list(run_dir.glob(".report*"))


@pytest.mark.slow
def test_key_numbers_come_from_the_inputs(run_dir, report):
    by = {s.key: s for s in report.sections}
    est = json.loads((run_dir / "cost.json").read_text())["fpga"]      # what the demo printed
    assert est["batch"] == 360
    overlay = dict(by["throughput"].tables[0].rows)
    assert overlay["overlay bound images/s"] == fmt(est["bound_images_per_s"])
    assert overlay["bottleneck"] == est["bottleneck"]
    verify = json.loads((run_dir / "verify" / "verify.json").read_text())
    rows = [r for r in by["mismatch"].tables[0].rows if r[0].startswith(verify["backend"])]
    assert [(r[1], r[3]) for r in rows] == [(l["name"], fmt(l["mismatches"]))
                                             for l in verify["layers"]]
    sweep = {p["point"]: p for p in json.loads(
        (run_dir / "sweep" / "results.json").read_text())["points"]}
    flows = by["dataflow"].tables[0].rows
    assert flows
    for source, layer, flow, traffic, ws, _ in flows:
        point = sweep[source.split()[2]]
        row = next(r for r in point["layers"] if r["layer"] == layer)
        assert [flow, traffic, ws] == [row["dataflow"], fmt(row["traffic_bits"]),
                                       fmt(row["ws_traffic_bits"])]
    enob = by["enob"].tables[0]
    assert enob.columns[1:4] == ["fixed", "adaptive", "adaptive+abn"]
    assert abs(float(enob.rows[-1][-1]) - 3.0) < 0.5           # 8 bits: log2(1152/144)


@pytest.mark.slow
def test_cli_prints_the_key_numbers(run_dir, tmp_path):
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    for title in TITLES + ["overlay bound images/s", "adaptive+abn", "index.html"]:
        assert title in result.output
    assert (tmp_path / "r" / "index.html").is_file()


def test_missing_inputs_say_which_command_writes_them(tmp_path):
    (tmp_path / "verify").mkdir()
    (tmp_path / "verify" / "verify.json").write_text(json.dumps({
        "backend": "emu", "images": 4, "ok": True,
        "layers": [{"name": "fc", "elements": 40, "mismatches": 0}]}))
    rep = write_report(tmp_path)
    status = {s.key: s.status for s in rep.sections}
    assert status == {"precision": "complete", "accuracy": "missing", "enob": "missing",
                      "dataflow": "missing", "mismatch": "complete", "throughput": "missing"}
    notes = {s.key: " ".join(s.missing) for s in rep.sections}
    assert "cimstack study analog" in notes["enob"] and "cimstack sweep" in notes["accuracy"]
    assert "cimstack demo --snn" in notes["dataflow"]
    assert "cimstack demo --out" in notes["throughput"]
    mismatch = next(s for s in rep.sections if s.key == "mismatch")
    assert "cimstack demo --snn" in " ".join(mismatch.more) and not mismatch.missing
    text = rep.index.read_text()
    assert text.count("Not available:") == 4 and "cimstack study analog" in text
    assert len(Page(text).img) == 2
    assert [s.key for s in rep.incomplete] == ["accuracy", "enob", "dataflow", "throughput"]


def test_snn_demo_rows(tmp_path):
    (tmp_path / "snn_demo.json").write_text(json.dumps(snn_demo()))
    by = {s.key: s for s in write_report(tmp_path).sections}
    snn = [r for r in by["mismatch"].tables[0].rows if r[0].startswith("SNN")]
    assert [r[3] for r in snn] == ["0", "3", "0"]                  # conv1, fc, membranes
    flows = [r[1:] for r in by["dataflow"].tables[0].rows]
    assert flows == [["conv1", "ws", "2,000", "2,000", "x1.00"],
                     ["fc", "os", "300", "900", "x0.33"]]


def test_a_sweep_folder_alone(tmp_path):
    write_sweep(tmp_path)
    rep = write_report(tmp_path)
    status = {s.key: s.status for s in rep.sections}
    assert status["accuracy"] == "complete" and status["dataflow"] == "complete"
    assert status["throughput"] == "partial" and status["enob"] == "missing"
    accuracy = next(s for s in rep.sections if s.key == "accuracy")
    assert "sigma.csv not found" in " ".join(accuracy.more)     # the study would add to it
    labels = [r[1] for r in accuracy.tables[0].rows]
    assert "sweep, 2-bit ADC, trained at sigma 0" in labels and "sweep, sigma 1" in " ".join(labels)
    throughput = next(s for s in rep.sections if s.key == "throughput")
    assert throughput.tables[0].rows[0][:2] == ["0-2", "acim"]


def test_a_study_folder_alone(tmp_path):
    run_analog_study(tmp_path, ["enob"], quick=True)
    rep = write_report(tmp_path)
    assert {s.key for s in rep.sections if s.figure} == {"precision", "enob"}
    assert (tmp_path / "report" / "figures" / "enob.png").is_file()


def test_inputs_in_the_folder_win_over_subfolders(tmp_path):
    write_sweep(tmp_path / "other")
    write_sweep(tmp_path / "sweep")
    assert find_inputs(tmp_path).rel("sweep") == "sweep/results.json"
    write_sweep(tmp_path)
    assert find_inputs(tmp_path).rel("sweep") == "results.json"


# ----------------------------------------------------------------------- errors

@pytest.mark.parametrize("name, text, message", [
    ("verify/verify.json", '{"layers": [', "is not valid JSON"),
    ("verify/verify.json", "[1, 2]", "not a JSON object"),
    ("verify/verify.json", '{"layers": []}', "lacks backend, images"),
    ("snn_demo.json", b"\xff\xfe", "is not valid JSON"),
    ("enob.csv", "adc_bits,config\n4,fixed\n", "lacks enob, active_rows, rows"),
    ("sigma.csv", "model,train_sigma,adc_bits,sigma,accuracy\n", "has no rows"),
])
def test_a_damaged_input_is_one_clear_error(tmp_path, name, text, message):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=message) as err:
        write_report(tmp_path)
    assert str(path) in str(err.value) and "rewrite it" in str(err.value)
    assert not (tmp_path / "report").exists() and not list(tmp_path.glob(".report*"))


def test_cli_error_is_one_line(tmp_path):
    (tmp_path / "snn_demo.json").write_text("{")
    r = subprocess.run([sys.executable, "-c", "from cimstack.cli import main; main()",
                        "report", str(tmp_path)], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert "snn_demo.json is not valid JSON" in " ".join(r.stdout.split())


def test_no_inputs_or_no_folder(tmp_path):
    with pytest.raises(ConfigError, match="holds none of the report's inputs"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="no folder"):
        write_report(tmp_path / "nope")


def test_a_failed_report_leaves_the_previous_one(tmp_path, monkeypatch):
    run_analog_study(tmp_path, ["enob"], quick=True)
    first = write_report(tmp_path).index.read_text()

    def broken(inputs, fig_dir):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report_build, "SECTIONS", report_build.SECTIONS + (broken,))
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_report(tmp_path)
    assert (tmp_path / "report" / "index.html").read_text() == first
    assert not list(tmp_path.glob(".report*"))


@pytest.mark.parametrize("mask, folder, file", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_outputs_get_the_usual_permissions(tmp_path, mask, folder, file):
    """The umask in force when writing applies (as open() and mkdir), not mkstemp's 0600."""
    old = os.umask(mask)
    try:
        with atomic_folder(tmp_path / "f") as tmp:
            write_text_atomic(tmp / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == folder
    assert (tmp_path / "f" / "a.txt").stat().st_mode & 0o777 == file


# ------------------------------------------------------------------- properties

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(st.one_of(st.integers(-10**12, 10**12), st.floats(allow_infinity=False), st.none()))
def test_formatted_numbers_align_as_numbers(value):
    assert NUMBER.match(fmt(value))


@given(st.one_of(st.integers(-10**9, 10**9), finite))
def test_csv_cells_read_back_as_numbers(value):
    got = _number(str(value))
    assert got == value and type(got) is type(value)


@given(st.sets(st.integers(0, 60), min_size=1))
def test_ranges_name_exactly_the_indices(idx):
    got = set()
    for part in _ranges(sorted(idx)).split(", "):
        a, _, b = part.partition("-")
        got |= set(range(int(a), int(b or a) + 1))
    assert got == idx


@given(st.lists(st.tuples(st.sampled_from([2, 10, "a", None]), st.integers(0, 4), finite),
                max_size=30))
def test_curves_average_per_x(rows):
    dicts = [{"g": g, "x": x, "y": y} for g, x, y in rows]
    curves = _curves(dicts, "x", "y", "g")
    order = [g for (g,) in curves]
    assert order == [g for g in (2, 10, "a", None) if g in order]   # numbers first, numerically
    for (g,), (xs, ys) in curves.items():
        assert xs == sorted({x for gg, x, _ in rows if gg == g})
        for x, y in zip(xs, ys):
            vals = [v for gg, xx, v in rows if gg == g and xx == x]
            assert y == pytest.approx(sum(vals) / len(vals), rel=1e-6, abs=1e-3)
    assert sum(len(xs) for xs, _ in curves.values()) == len({(g, x) for g, x, _ in rows})


cell = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


@given(st.lists(st.lists(cell, min_size=2, max_size=2), min_size=1, max_size=4), cell)
def test_tables_and_captions_survive_rendering(rows, caption):
    section = Section("k", "title", caption.replace("`", ""), "figures/k.png",
                      [Table("t", ["a", "b"], rows)])
    page = Page(to_html("r", "intro", [section]))
    assert page.cells[3:] == [c for row in rows for c in row]   # after the status row
    assert html.escape(caption.replace("`", "")) in to_html("r", "", [section])
    md = to_markdown("r", "intro", [section])
    assert all("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" in md
               for row in rows)


# ----------------------------------------------------------------------- browser

def _chrome():
    """A headless Chromium driven by the system chromedriver (nothing downloaded), or a
    skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install "
                    "chromium chromium-driver; .ci/run does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"):
        opts.add_argument(flag)
    return webdriver, opts, Service(executable_path=driver)


@pytest.mark.browser
@pytest.mark.slow
def test_page_loads_every_figure_in_chromium(report, tmp_path):
    webdriver, opts, service = _chrome()
    opts.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    served = shutil.copytree(report.out, tmp_path / "copied")    # the folder travels whole
    browser = webdriver.Chrome(service=service, options=opts)
    try:
        browser.set_page_load_timeout(60)
        browser.get(served.joinpath("index.html").as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map("
            "i => [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight])")
        headings = [h.text for h in browser.find_elements("tag name", "h2")]
    finally:
        browser.quit()
    assert [src for src, *_ in images] == [f"figures/{s.key}.png" for s in report.sections]
    assert all(done and w > 0 and h > 0 for _, done, w, h in images), images
    assert headings == [f"{n}. {s.title}" for n, s in enumerate(report.sections, 1)]
    assert headings[:len(TITLES)] == [f"{n}. {t}" for n, t in enumerate(TITLES, 1)]
