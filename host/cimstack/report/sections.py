"""The report's sections. Each builder reads its inputs (:mod:`.inputs`), draws one
figure (:mod:`.figures`) and returns a :class:`Section` with a caption saying what is
plotted and where the numbers come from, and small tables of the key numbers. A section
whose inputs are missing has no figure and says which command writes them.

1. efficiency and density vs precision: cost model with the paper points (``cimstack.cost``)
2. accuracy vs noise sigma and vs ADC bits: sweep acim points, study sigma.csv / adc_bits.csv
3. effective bits with and without adaptive swing: study enob.csv
4. per-layer dataflow and traffic: sweep snn points, snn_demo.json; FlexSpIM's network
   at scale (only when the sweep has flexspim points): per-layer dataflow, resident
   bits, DRAM traffic per policy, the policies across input sparsity
5. per-layer mismatch counts: verify/verify.json, snn_demo.json
6. the overlay's estimated throughput against the DMA bound: ``fpga_cost`` of bundle/,
   sweep points
7. and on: one section per network cost found (``cost.json`` in the folder or a
   subfolder): per-layer cycles, utilization and energy breakdown, published points
8. the design search, when one is found (front.json, candidates.json,
   sensitivity.json): the Pareto front, per-layer sensitivities, the knee's assignment
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .figures import Bars, Lines, Series, plot
from .inputs import INPUT_KINDS, RunInputs

NUMBER = re.compile(r"^[-+]?[\d,.]+(e[-+]?\d+)?%?$|^-$")


@dataclass
class Table:
    """A small table of key numbers (cells already formatted)."""
    title: str
    columns: list
    rows: list

    def numeric(self, column: int) -> bool:
        """Whether every cell of ``column`` is a number (to align it right)."""
        return all(NUMBER.match(row[column]) for row in self.rows)


@dataclass
class Section:
    """One section of the report. ``figure`` is relative to the report folder.
    ``missing``: inputs the section needs that were not found, each with the command
    that writes it; ``more``: absent inputs that would add to a complete section."""
    key: str
    title: str
    caption: str = ""
    figure: str | None = None
    tables: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    more: list = field(default_factory=list)

    @property
    def status(self) -> str:
        """'complete', 'partial' (some inputs missing) or 'missing' (no figure)."""
        if self.figure is None:
            return "missing"
        return "partial" if self.missing else "complete"


def fmt(value) -> str:
    """A number for a table cell: thousands separated, three significant digits below."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def pct(value) -> str:
    """An accuracy (fraction) as a percentage."""
    return "-" if value is None else f"{100 * value:.1f}%"


def _absent(inputs: RunInputs, *names: str) -> list[str]:
    """A note for each input in ``names`` that was not found, naming its command."""
    return [f"{INPUT_KINDS[n].file} not found: `{inputs.producer(n)}` writes it"
            for n in names if not inputs.has(n)]


def _notes(section: Section, inputs: RunInputs, names: tuple, needed: set) -> Section:
    """Notes for the absent inputs among ``names``: those in ``needed`` make the section
    incomplete (``missing``), the others would only add to it (``more``)."""
    section.missing += _absent(inputs, *[n for n in names if n in needed])
    section.more += _absent(inputs, *[n for n in names if n not in needed])
    return section


def _no_points(section: Section, inputs: RunInputs, macro: str, points: list) -> None:
    """Say so when a sweep was found but holds no usable ``macro`` points."""
    if inputs.has("sweep") and not points:
        section.missing.append(f"{inputs.rel('sweep')} has no {macro} points: "
                               f"`{inputs.producer('sweep')} --set macro={macro}` adds them")


def _draw(section: Section, panels: list, fig_dir: Path) -> Section:
    """Plot ``panels`` (if any) as the section's figure."""
    if panels:
        plot(panels, fig_dir / f"{section.key}.png")
        section.figure = f"{fig_dir.name}/{section.key}.png"
    return section


def _curves(rows: list[dict], x: str, y: str, *by: str) -> dict:
    """{group: (xs, mean ys)} of ``rows`` grouped by the values of the keys ``by`` (a
    tuple), y averaged per x, x sorted."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get(x) is not None and r.get(y) is not None:
            acc[tuple(r.get(b) for b in by)][r[x]].append(r[y])
    return {g: (sorted(pts), [sum(pts[k]) / len(pts[k]) for k in sorted(pts)])
            for g, pts in sorted(acc.items(), key=lambda kv: _order(kv[0]))}


def _order(group: tuple) -> tuple:
    """Sort key of a group: numbers in numeric order, then text, then None."""
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1 if v is not None else 2,
                                                                  0, str(v)) for v in group)


def _sweep_points(inputs: RunInputs, macro: str) -> list[dict]:
    sweep = inputs.json("sweep")
    return [p for p in (sweep or {}).get("points", []) if p.get("macro") == macro]


# ---------------------------------------------------------------- 1. precision

def precision_section(inputs: RunInputs, fig_dir: Path) -> Section:
    """Macro efficiency (POPS/W) and density (TOPS/mm^2) vs precision, paper overlaid."""
    from ..cost import PAPER_POINTS, acim_macro_curve
    curve = acim_macro_curve()
    bits = [c["bits"] for c in curve]
    panels, columns, cols = [], ["bits"], []
    sources = set()
    for figure, key, unit in (("efficiency", "pops_per_w", "POPS/W"),
                              ("density", "tops_per_mm2", "TOPS/mm^2")):
        model = [c[key] for c in curve]
        series = [Series("cost model", bits, model)]
        paper: dict = {}
        for family, points in PAPER_POINTS.items():
            same = [p for p in points if p["figure"] == figure and p["unit"] == unit
                    and p.get("bits") is not None]
            if same:
                pts = sorted((p["bits"], p["value"]) for p in same)
                series.append(Series(f"{family}, published", *map(list, zip(*pts)), "s"))
                paper.update(pts)
                sources.update(p["source"] for p in same)
        panels.append(Lines(f"macro {figure}", "precision (bits)", unit, series, log_y=True))
        columns += [f"model {unit}", f"paper {unit}"]
        cols += [model, [paper.get(b) for b in bits]]
    section = Section(
        "precision", "Efficiency and density vs precision",
        "The analog macro's energy efficiency and area density over operand precision: "
        "the cost model (`cimstack.cost.acim_macro_curve`) as lines, the published figures "
        f"(`cimstack.cost.PAPER_POINTS`; {'; '.join(sorted(sources)) or 'none'}) as "
        "squares. Log scale.",
        tables=[Table("macro efficiency and density", columns,
                      [[str(b)] + [fmt(c[i]) for c in cols] for i, b in enumerate(bits)])])
    return _draw(section, panels, fig_dir)


# ----------------------------------------------------------------- 2. accuracy

def accuracy_section(inputs: RunInputs, fig_dir: Path) -> Section:
    """Accuracy vs ADC noise sigma and vs ADC bits, from a sweep and/or the study."""
    section = Section("accuracy", "Accuracy vs noise and vs ADC bits")
    vs_sigma, vs_bits, sources = [], [], []
    acim = [p for p in _sweep_points(inputs, "acim") if p.get("accuracy") is not None]
    if acim:
        sources.append(f"the acim points of {inputs.rel('sweep')}")
        vs_sigma += [Series(f"sweep, {a}-bit ADC{_trained(ts)}", *c) for (a, ts), c
                     in _curves(acim, "sigma", "accuracy", "adc_bits", "train_sigma").items()]
        vs_bits += [Series(f"sweep, sigma {s:g}{_trained(ts)}", *c) for (s, ts), c
                    in _curves(acim, "adc_bits", "accuracy", "sigma", "train_sigma").items()]
    sigma = inputs.csv("sigma")
    if sigma:
        sources.append(f"{inputs.rel('sigma')} (noise-aware vs unaware training)")
        vs_sigma += [Series(f"study, noise-{m}, {a}-bit ADC{_trained(ts)}", *c, "s--")
                     for (m, a, ts), c in _curves(sigma, "sigma", "accuracy", "model",
                                                  "adc_bits", "train_sigma").items()]
    bits = inputs.csv("adc_bits")
    if bits:
        sources.append(f"{inputs.rel('adc_bits')} (one noise-aware model per resolution)")
        xs = [r["adc_bits"] for r in bits]
        vs_bits += [Series("study, sigma 0", xs, [r["accuracy_sigma0"] for r in bits], "s--"),
                    Series(f"study, sigma {bits[0]['sigma_eval']:g}", xs,
                           [r["accuracy_noisy"] for r in bits], "s--")]
    _no_points(section, inputs, "acim", acim)
    _notes(section, inputs, ("sweep", "sigma", "adc_bits"),
           ({"sweep", "sigma"} if not vs_sigma else set())
           | ({"sweep", "adc_bits"} if not vs_bits else set()))
    if not sources:
        return section
    rows = []
    for panel, series in (("vs sigma", vs_sigma), ("vs ADC bits", vs_bits)):
        rows += [[panel, s.label, f"{s.x[0]:g} to {s.x[-1]:g}",
                  f"{pct(s.y[0])} to {pct(s.y[-1])}"] for s in series]
    section.caption = ("Digits test accuracy of the analog macro against the ADC noise sigma "
                       "(LSB) and against the ADC resolution, averaged over seeds; from "
                       + "; ".join(sources) + ".")
    section.tables = [Table("accuracy at both ends of each curve",
                            ["panel", "series", "range", "accuracy"], rows)]
    panels = [Lines("accuracy vs ADC noise", "ADC noise sigma (LSB)", "test accuracy",
                    _percent(vs_sigma)),
              Lines("accuracy vs ADC resolution", "ADC bits", "test accuracy",
                    _percent(vs_bits))]
    return _draw(section, [p for p in panels if p.series], fig_dir)


def _trained(train_sigma) -> str:
    return "" if train_sigma is None else f", trained at sigma {train_sigma:g}"


def _percent(series: list[Series]) -> list[Series]:
    return [s._replace(y=[100 * v for v in s.y]) for s in series]


# --------------------------------------------------------------------- 3. enob

def enob_section(inputs: RunInputs, fig_dir: Path) -> Section:
    """Effective ADC bits of fixed vs adaptive swing (with and without in-ADC BN gain)."""
    section = _notes(Section("enob", "Effective bits with and without adaptive swing"),
                     inputs, ("enob",), {"enob"})
    rows = inputs.csv("enob")
    if not rows:
        return section
    from ..study.analog import SWING_CONFIGS
    curves = {c: xy for (c,), xy in _curves(rows, "adc_bits", "enob", "config").items()}
    configs = [c for c in SWING_CONFIGS if c in curves] + [c for c in curves
                                                            if c not in SWING_CONFIGS]
    bits = sorted({r["adc_bits"] for r in rows})
    series = [Series("ideal (ADC bits)", bits, bits, "k:")]
    series += [Series(str(c), *curves[c]) for c in configs]
    r0 = rows[0]
    gain = math.log2(r0["rows"] / r0["active_rows"])
    by = {c: dict(zip(*curves[c])) for c in configs}
    best = configs[-1]
    table = [[str(b)] + [fmt(by[c].get(b)) for c in configs]
             + [fmt(by[best].get(b, math.nan) - by["fixed"].get(b, math.nan))
                if "fixed" in by else "-"] for b in bits]
    section.caption = (f"Effective bits (from the SQNR of a full-swing test signal) of the "
                       f"analog macro's ADC with {r0['active_rows']} of {r0['rows']} rows "
                       f"active: fixed swing, adaptive swing (array split) and adaptive swing "
                       f"with the in-ADC batch-norm gain; log2({r0['rows']}/"
                       f"{r0['active_rows']}) = {gain:.2f} bits can be recovered. From "
                       f"{inputs.rel('enob')}.")
    section.tables = [Table("effective bits per ADC resolution",
                            ["ADC bits"] + [str(c) for c in configs]
                            + [f"recovered ({best} - fixed)"], table)]
    return _draw(section, [Lines(f"{r0['active_rows']} of {r0['rows']} rows active",
                                 "ADC bits", "effective bits (SQNR)", series)], fig_dir)


# ------------------------------------------------------------------ 4. dataflow

def _traffic_panel(title: str, layers: list[dict]) -> Bars:
    bars = {"chosen dataflow": [r["traffic_bits"] for r in layers]}
    if all(r.get("ws_traffic_bits") is not None for r in layers):
        bars["weight-stationary only"] = [r["ws_traffic_bits"] for r in layers]
    return Bars(title, "operand traffic (bits)", [r["layer"] for r in layers], bars,
                tuple(r["dataflow"] for r in layers), log_y=True)


def _traffic_rows(source: str, layers: list[dict]) -> list[list[str]]:
    rows = []
    for r in layers:
        ws = r.get("ws_traffic_bits")
        ratio = f"x{r['traffic_bits'] / ws:.2f}" if ws else "-"
        rows.append([source, r["layer"], r["dataflow"], fmt(r["traffic_bits"]), fmt(ws),
                     ratio])
    return rows


def dataflow_section(inputs: RunInputs, fig_dir: Path) -> Section:
    """Per-layer weight- vs output-stationary choice and operand traffic (SNN)."""
    section = Section("dataflow", "Per-layer dataflow and traffic")
    panels, rows, tables, sources = [], [], [], []
    snn = [p for p in _sweep_points(inputs, "snn") if p.get("layers")]
    if snn:
        # the mapper's own per-layer choice (dataflow auto), widest membranes first
        shown = min(snn, key=lambda p: (p.get("dataflow") != "auto", -(p.get("v_bits") or 0)))
        name = (f"sweep point {shown.get('point', snn.index(shown))} "
                f"({shown.get('dataflow')}, {shown.get('v_bits')}-bit membranes)")
        sources.append(f"the snn points of {inputs.rel('sweep')} (drawn: {name})")
        panels.append(_traffic_panel(name, shown["layers"]))
        rows += _traffic_rows(name, shown["layers"])
        tables.append(Table("sweep: traffic per dataflow setting",
                            ["point", "dataflow", "membrane bits", "traffic bits per sample",
                             "cycles per sample", "accuracy"],
                            [[str(p.get("point", i)), str(p.get("dataflow")), fmt(p.get("v_bits")),
                              fmt(p.get("traffic_bits")), fmt(p.get("cycles")),
                              pct(p.get("accuracy"))] for i, p in enumerate(snn)]))
    demo = inputs.json("snn_demo")
    if demo:
        layers = demo["cost"]["layers"]
        sources.append(inputs.rel("snn_demo"))
        panels.append(_traffic_panel("SNN demo", layers))
        rows += _traffic_rows("SNN demo", layers)
    _no_points(section, inputs, "snn", snn)
    _notes(section, inputs, ("sweep", "snn_demo"), set() if panels else {"sweep", "snn_demo"})
    if not panels:
        return section
    section.caption = ("Operand traffic (weights and membrane potentials moved in and out "
                       "of the array, summed over the test samples) per spiking layer under "
                       "the dataflow the mapper chose (ws: weight-stationary, os: "
                       "output-stationary, written above each layer), against keeping every "
                       "layer weight-stationary where the input gives that figure. Log "
                       "scale. From " + "; ".join(sources) + ".")
    section.tables = [Table("per-layer dataflow and traffic",
                            ["source", "layer", "dataflow", "traffic bits",
                             "weight-stationary only", "traffic / ws-only"], rows)] + tables
    return _draw(section, panels, fig_dir)


# ------------------------------------------------- 4b. FlexSpIM's network at scale

FLEXSPIM_SETTING = ("downsample", "macros", "input_sparsity", "steps", "samples", "seed")


def _policies(points: list[dict]) -> list[str]:
    """The policies of ``points`` in :data:`~cimstack.mapping.flexspim.POLICIES` order."""
    from ..mapping.flexspim import POLICIES
    present = {p["policy"] for p in points}
    return [p for p in POLICIES if p in present]


def _flow_letter(layer: dict) -> str:
    """``W``/``O``: weight-/output-stationary, resident; ``w``/``o``: spilled to DRAM."""
    letter = layer["dataflow"][0]
    return letter.upper() if layer["resident"] else letter


def _vs_sparsity(points: list[dict], key: str, policies: list[str]) -> list[Series]:
    """One series per policy: ``key`` (a change against ws-only) in % over input
    sparsity (%)."""
    curves = {g[0]: xy for g, xy in _curves(points, "input_sparsity", key, "policy").items()}
    return [Series(q, [100 * x for x in curves[q][0]], [100 * y for y in curves[q][1]])
            for q in policies if q in curves]


def _paper_table(points: list[dict]) -> Table:
    """The paper's two figures beside the model's, where the sweep has the setting."""
    from ..cost.constants import PAPER_POINTS
    paper = {p["figure"]: p for p in PAPER_POINTS["snn"]}
    two = sorted(p["resident_vs_ws"] for p in points
                 if p["policy"] == "hs-min" and p["macros"] == 2)
    large = [p for p in points if p["policy"] != "ws" and p["macros"] >= 16
             and 0.85 <= p["input_sparsity"] <= 0.99]
    best = min(large, key=lambda p: p["energy_vs_ws"], default=None)
    gain, saving = paper["resident_operand_gain"], paper["large_system_energy_saving"]
    none = "not in this sweep"
    return Table("the paper's figures (FlexSpIM, its network) beside the model's (this "
                 "network, these points)", ["figure", "paper", "model"], [
        ["stationary operand bits vs ws-only, hs-min on 2 macros (the paper's metric)",
         f"{gain['value']:+.0%}", none if not two else f"{two[0]:+.0%}" if two[0] == two[-1]
         else f"{two[0]:+.0%} to {two[-1]:+.0%}"],
        ["energy saved vs ws-only on 16-18 macros, 85-99% input sparsity",
         f"up to {saving['value']:.0%} (extrapolated)", none if best is None else
         f"up to {-best['energy_vs_ws']:.0%} ({best['policy']}, {best['macros']} macros, "
         f"{pct(best['input_sparsity'])} input sparsity)"]])


def flexspim_sections(inputs: RunInputs, fig_dir: Path) -> list[Section]:
    """FlexSpIM's network on macros sharing one budget with a DRAM tier (the flexspim
    points of a sweep): per layer, the dataflow, resident bits and DRAM traffic of each
    policy at one setting, and the policies against weight-stationary only across input
    sparsity; no section when the sweep has no flexspim points."""
    points = [p for p in _sweep_points(inputs, "flexspim") if p.get("layers")]
    if not points:
        return []
    section = Section("flexspim", "FlexSpIM's network at scale: dataflow policies, "
                                  "resident bits and DRAM traffic")
    settings: dict = defaultdict(list)
    for p in points:
        settings[tuple(p.get(k) for k in FLEXSPIM_SETTING)].append(p)
    setting, shown = max(settings.items(), key=lambda kv: len(_policies(kv[1])))
    drawn = ", ".join(f"{k} {v}" for k, v in zip(FLEXSPIM_SETTING, setting))
    policies = _policies(shown)
    by = {p["policy"]: p for p in shown}
    names = [r["layer"] for r in by[policies[0]]["layers"]]
    notes = tuple("".join(_flow_letter(by[q]["layers"][i]) for q in policies)
                  for i in range(len(names)))
    panels = [Bars("DRAM traffic per layer", "DRAM bits per sample", names,
                   {q: [r["dram_bits"] for r in by[q]["layers"]] for q in policies}, notes,
                   log_y=True),
              Bars("stationary operand in the macros", "kbit", names,
                   {q: [r["stationary_bits"] / 1e3 if r["resident"] else 0.0
                        for r in by[q]["layers"]] for q in policies})]
    same = [p for p in points if all(p.get(k) == v for k, v in zip(FLEXSPIM_SETTING, setting)
                                     if k != "input_sparsity")]
    others = [q for q in _policies(same) if q != "ws"]
    if others:
        metric = _vs_sparsity(same, "resident_vs_ws", others)
        if setting[1] == 2 and "hs-min" in others:          # the paper's figure: 2 macros
            from ..cost.constants import paper_value
            xs = metric[0].x
            metric.append(Series("hs-min, FlexSpIM paper (its network)", [xs[0], xs[-1]],
                                 [100 * paper_value("snn", "resident_operand_gain")] * 2,
                                 "k--"))
        panels += [Lines(f"the paper's metric ({setting[1]} macros)", "input sparsity (%)",
                         "stationary bits vs ws-only (%)", metric),
                   Lines(f"energy (SOPs + DRAM), {setting[1]} macros", "input sparsity (%)",
                         "energy vs ws-only (%)", _vs_sparsity(same, "energy_vs_ws", others))]
    section.tables = [
        Table(f"per layer ({drawn})", ["policy", "layer", "dataflow", "stationary in",
                                      "stationary bits", "rows", "DRAM bits per sample",
                                      "spikes per neuron and step"],
              [[q, r["layer"], r["dataflow"], "macros" if r["resident"] else "DRAM",
                fmt(r["stationary_bits"]), fmt(r["rows"]), fmt(r["dram_bits"]),
                fmt(r.get("spike_rate"))] for q in policies for r in by[q]["layers"]]),
        Table("the policies compared (the model)",
              ["input sparsity", "macros", "downsample", "policy", "resident bits vs ws-only",
               "DRAM Mbit per sample", "DRAM / ws-only", "energy uJ per sample",
               "energy vs ws-only"],
              [[pct(p["input_sparsity"]), fmt(p["macros"]), fmt(p["downsample"]), p["policy"],
                f"{p['resident_vs_ws']:+.0%}", fmt(p["dram_bits"] / 1e6),
                f"x{p['dram_vs_ws']:.2f}", fmt(p["energy_pj"] / 1e6),
                f"{p['energy_vs_ws']:+.0%}"] for p in points]),
        _paper_table(points)]
    section.caption = (
        "FlexSpIM's 6-conv + 3-FC network (`cimstack.models.flexspim`, seeded random "
        "weights) on macros of 512x256 bits sharing one capacity budget, with a DRAM tier "
        "for what does not fit (docs/macros.md, docs/cost.md), run on seeded random events; "
        "every figure here is the model's, except the 'paper' column of the last table, "
        "which is FlexSpIM's on its own network. Left: DRAM bits per layer and sample "
        f"under each policy at one setting ({drawn}); above each layer, its dataflow "
        f"under {', '.join(policies)} in that order (W/O: weight-/output-stationary with "
        "the stationary operand resident in the macros; w/o: spilled to DRAM). Log scale. "
        "Then the stationary operand bits each policy keeps in the macros"
        + (", and, across input sparsity on the same macros, the paper's metric "
           "(stationary operand bits against weight-stationary only) and the energy "
           "against weight-stationary only" if others else "")
        + f". From the flexspim points of {inputs.rel('sweep')}.")
    return [_draw(section, panels, fig_dir)]


# ------------------------------------------------------------------ 5. mismatch

def _mismatch_panel(title: str, names: list, counts: list, elements: list) -> Bars:
    return Bars(title, "mismatching elements", names, {"mismatches": counts},
                tuple(f"{m:,} / {e:,}" for m, e in zip(counts, elements)))


def mismatch_section(inputs: RunInputs, fig_dir: Path) -> Section:
    """Per-layer mismatch counts of the backend against the reference."""
    section = Section("mismatch", "Per-layer mismatches from verification")
    panels, rows, sources = [], [], []
    rep = inputs.json("verify")
    if rep:
        layers = rep["layers"]
        title = f"{rep['backend']} vs reference, {rep['images']} images"
        sources.append(inputs.rel("verify"))
        panels.append(_mismatch_panel(title, [r["name"] for r in layers],
                                      [r["mismatches"] for r in layers],
                                      [r["elements"] for r in layers]))
        rows += [[title, r["name"], fmt(r["elements"]), fmt(r["mismatches"])] for r in layers]
    snn = (inputs.json("snn_demo") or {}).get("verify")
    if snn:
        layers = snn["layers"] + [{"layer": "membranes", "elements": None,
                                   "mismatches": snn["membrane_mismatches"]}]
        title = f"SNN: {snn['backend']} vs reference, {snn['samples']} samples"
        sources.append(f"{inputs.rel('snn_demo')} (spikes of every layer, final membranes)")
        panels.append(_mismatch_panel(title, [r["layer"] for r in snn["layers"]],
                                      [r["mismatches"] for r in snn["layers"]],
                                      [r["elements"] for r in snn["layers"]]))
        rows += [[title, r["layer"], fmt(r["elements"]), fmt(r["mismatches"])] for r in layers]
    _notes(section, inputs, ("verify", "snn_demo"), set() if panels else {"verify", "snn_demo"})
    if not panels:
        return section
    section.caption = ("Elements of each layer's output where the backend differs from the "
                       "bit-accurate reference (0 everywhere = bit-exact); each bar is "
                       "labelled with mismatches / elements. From " + "; ".join(sources) + ".")
    section.tables = [Table("per-layer mismatches", ["run", "layer", "elements", "mismatches"],
                            rows)]
    return _draw(section, panels, fig_dir)


# ---------------------------------------------------------------- 6. throughput

def _bundle_throughput(inputs: RunInputs) -> tuple[list, list, str]:
    """Panels, tables and source of the FPGA estimate of the run's bundle: the one the
    run wrote in cost.json (at its batch), else ``fpga_cost`` of the bundle (batch 1)."""
    from ..cost.published import published_overlay
    cost = inputs.json("cost")
    if cost:
        est, source = cost["fpga"], f"the fpga figures of {inputs.rel('cost')}"
    else:
        from ..bundle import load_bundle
        from ..cost import fpga_cost
        est = fpga_cost(load_bundle(inputs.paths["bundle"].parent))
        source = f"`cimstack.cost.fpga_cost` of {inputs.paths['bundle'].parent.name}/"
    layers = est["layers"]
    dma_bytes = [r["bytes_in"] + r["bytes_out"] + r["bytes_weights"] for r in layers]
    dma_us = [1e6 * b / est["hp_port_bytes_per_s"] for b in dma_bytes]
    names = [r["layer"] for r in layers]
    panels = [
        Bars(f"{inputs.json('bundle')['name']} at {est['clock_mhz']:g} MHz, batch "
             f"{est['batch']}", "images/s",
             ["compute bound", "DMA bound", "overlay"],
             {"images/s": [est["images_per_s"], est["dma_bound_images_per_s"],
                           est["bound_images_per_s"]]},
             (fmt(est["images_per_s"]), fmt(est["dma_bound_images_per_s"]),
              f"{fmt(est['bound_images_per_s'])} ({est['bottleneck']})"), log_y=True),
        Bars("per layer, one image", "microseconds", names,
             {"compute": [1e6 * r["seconds"] for r in layers], "DMA": dma_us})]
    tables = [
        Table("overlay estimate", ["figure", "value"], [
            ["clock", f"{est['clock_mhz']:g} MHz"],
            ["batch", fmt(est["batch"])],
            ["cycles per image", fmt(est["cycles_per_image"])],
            ["compute images/s", fmt(est["images_per_s"])],
            ["DMA bytes per image", fmt(est["dma_bytes_per_image"])],
            ["DMA bound images/s", fmt(est["dma_bound_images_per_s"])],
            ["overlay bound images/s", fmt(est["bound_images_per_s"])],
            ["bottleneck", str(est["bottleneck"])],
            list(map(fmt, published_overlay()))]),
        Table("per layer", ["layer", "cycles", "compute us", "DMA bytes", "DMA us"],
              [[r["layer"], fmt(r["cycles"]), fmt(1e6 * r["seconds"]), fmt(b), fmt(us)]
               for r, b, us in zip(layers, dma_bytes, dma_us)])]
    return panels, tables, source


def throughput_section(inputs: RunInputs, fig_dir: Path) -> Section:
    """The overlay's estimated images/s against the DMA bound (bundle and sweep points)."""
    section = Section("throughput", "Overlay throughput vs the DMA bound")
    panels, sources = [], []
    if inputs.has("bundle"):
        panels, section.tables, source = _bundle_throughput(inputs)
        sources.append(source)
    points = [p for p in (inputs.json("sweep") or {}).get("points", [])
              if p.get("fpga_images_per_s") is not None]
    if points:
        xs = list(range(len(points)))
        panels.append(Lines("sweep points", "sweep point", "images/s", [
            Series("estimate", xs, [p["fpga_images_per_s"] for p in points]),
            Series("DMA bound", xs, [p["dma_bound_images_per_s"] for p in points], "k--")],
            log_y=True))
        sources.append(f"the fpga_images_per_s and dma_bound_images_per_s of "
                       f"{inputs.rel('sweep')}")
        same = defaultdict(list)
        for i, p in enumerate(points):
            same[(p.get("macro"), p["fpga_images_per_s"], p["dma_bound_images_per_s"])].append(i)
        section.tables.append(Table("sweep: estimate vs DMA bound",
                                    ["sweep points", "macro", "images/s", "DMA bound images/s"],
                                    [[_ranges(idx), str(m), fmt(est), fmt(dma)]
                                     for (m, est, dma), idx in same.items()]))
    _notes(section, inputs, ("bundle", "sweep"), {"bundle"} | (set() if panels else {"sweep"}))
    if not panels:
        return section
    section.caption = ("Images per second the overlay could reach: the kernels' cycle count "
                       "at the fabric clock (compute), the AXI DMA's bandwidth over the bytes "
                       "moved per image (DMA), and the lower of the two (overlay); per layer, "
                       "the compute time against the time its bytes take on the DMA. Log "
                       "scale. From " + "; ".join(sources) + ".")
    return _draw(section, panels, fig_dir)


def _ranges(idx: list[int]) -> str:
    """Sorted indices as ranges: [0, 1, 2, 5] -> '0-2, 5'."""
    runs: list = []
    for i in idx:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# ---------------------------------------------------------------- 7+. one per network

ENERGY_PARTS = (("array", "energy_array_pj"), ("read-out", "energy_readout_pj"),
                ("data movement", "energy_move_pj"), ("DRAM", "energy_dram_pj"))


def _share(row: dict, key: str) -> str:
    """``row[key]``'s share of the row's energy on chip plus its DRAM energy (reported
    beside, not in, ``energy_pj``)."""
    total = row["energy_pj"] + row.get("energy_dram_pj", 0.0)
    return pct(row.get(key, 0.0) / total) if total else "-"


def network_section(source: str, net: dict, fig_dir: Path) -> Section:
    """Per-layer cycles, macro utilization and energy breakdown of one network's cost
    (``net``: the ``network`` of a cost.json), with the papers' published points beside
    the model's totals."""
    from ..cost.published import beside_published
    folder = Path(source).parent.as_posix()
    key = "network-" + re.sub(r"[^a-z0-9]+", "-", (net["name"] if folder == "."
                                                   else folder).lower()).strip("-")
    section = Section(key, f"Network {net['name']}: per-layer cost on the macros")
    layers, t = net["layers"], net["totals"]
    idx = [str(i) for i in range(1, len(layers) + 1)]
    parts = [(label, k) for label, k in ENERGY_PARTS if any(r.get(k) for r in layers)]
    util = [r.get("utilization") for r in layers]
    panels = [Bars("energy per layer and image", "pJ", idx,
                   {label: [r.get(k, 0.0) for r in layers] for label, k in parts}, log_y=True),
              Bars("cycles per layer and image", "cycles", idx,
                   {"cycles": [r["cycles"] for r in layers]}, log_y=True)]
    if all(u is not None for u in util):
        panels.append(Bars("macro utilization", "% of peak MAC rate", idx,
                           {"utilization": [100 * u for u in util]}))
    section.tables = [
        Table("per layer and image", ["#", "layer", "macro", "K x N", "vectors", "cycles",
                                      "utilization", "chip energy pJ",
                                      " / ".join(label for label, _ in parts), "TOPS/W"],
              [[i, r["layer"], r["macro"], f"{r['k']} x {r['n']}", fmt(r["vectors"]),
                fmt(r["cycles"]), pct(u), fmt(r["energy_pj"]),
                " / ".join(_share(r, k) for _, k in parts), fmt(r["tops_per_w"])]
               for i, r, u in zip(idx, layers, util)]),
        Table("network per image (model)", ["figure", "value"], [
            ["operations (2 per MAC, dense)", fmt(t["ops"])],
            ["cycles", fmt(t["cycles"])], ["images/s", fmt(t["images_per_s"])],
            ["energy on chip pJ", fmt(t["energy_pj"])], ["TOPS/W (on chip)", fmt(t["tops_per_w"])],
            *([["DRAM energy pJ", fmt(t["energy_dram_pj"])],
               ["TOPS/W with DRAM", fmt(t["tops_per_w_with_dram"])]]
              if t.get("energy_dram_pj") else []),
            *[[f"energy: {label}", _share(t, k)] for label, k in parts],
            ["weights resident", ", ".join(f"{m}: {'yes' if v else 'no'}"
                                           for m, v in t["resident"].items())]])]
    published = beside_published(net)
    if published:
        section.tables.append(Table(
            "the model beside the published figures", ["family", "figure", "model",
                                                       "published", "at", "paper"],
            [[p["family"], p["figure"], p["model"], p["published"],
              p["at"] + (" (this network)" if p["same_network"] else ""), p["paper"]]
             for p in published]))
    if "dcim" in t["resident"]:
        from ..cost.calibrate import held_out_table
        section.tables.append(Table(
            "held-out check: MARS's constants fitted on one network predict the other",
            ["predicted", "figure", "published", "model", "error"],
            [[r["at"], r["figure"], f"{r['published']:g} {r['unit']}", fmt(r["model"]),
              f"{r['error']:+.1%}"] for r in held_out_table()]))
    section.caption = (
        f"The cost model's figures for one image of {net['name']} (batch {net['batch']}: "
        "images per weight reload), per macro layer numbered as in the table: energy by "
        "where it goes, cycles, and utilization (MACs performed over the macros' peak MAC "
        "rate during the layer's compute cycles). Log scale for energy and cycles. "
        "Published figures are the papers' chips on the papers' networks, shown beside "
        "the model, not fitted to it (except where docs/cost.md says a constant was "
        "calibrated on them); for the digital macro, the held-out check fits MARS's "
        "energy constant and clock on one of its networks and predicts the other's "
        "published figures (docs/cost.md, the paper's own configuration, not this "
        f"bundle's). From {source} (`cimstack cost BUNDLE --json {source}`).")
    return _draw(section, panels, fig_dir)


def network_sections(inputs: RunInputs, fig_dir: Path) -> list[Section]:
    """One :func:`network_section` per network cost found in the folder."""
    return [network_section(source, net, fig_dir) for source, net in inputs.network_costs()]


SECTIONS: tuple[Callable[[RunInputs, Path], Section], ...] = (
    precision_section, accuracy_section, enob_section, dataflow_section, mismatch_section,
    throughput_section)


# ---------------------------------------------------------------- design search

CHANGE_LABELS = {"acim": "to acim", "w_bits": "w_bits lowered", "x_bits": "x_bits lowered",
                 "sparsity": "sparsity raised", "adc_bits": "ADC bits lowered"}


def _change_value(change: dict) -> str:
    """A sensitivity change's new value: ``50%`` (block sparsity) or ``6b`` (bits)."""
    v = change["value"]
    return f"{100 * v:.0f}%" if change["change"] == "sparsity" else f"{v}b"


def _sensitivity_panel(sens: dict) -> tuple[Bars, Table]:
    """Per-layer accuracy change bars (points) of a ``sensitivity.json``."""
    layers = list(dict.fromkeys(c["layer"] for c in sens["changes"]))
    by = {(c["layer"], c["change"]): c for c in sens["changes"]}
    kinds = [k for k in CHANGE_LABELS if any(key[1] == k for key in by)]
    bars = {CHANGE_LABELS[k]: [100 * (by[(n, k)].get("delta") or 0.0) if (n, k) in by else 0.0
                               for n in layers] for k in kinds}
    rows = [[n, *(("-" if (n, k) not in by else "n/a" if by[(n, k)].get("delta") is None
                   else f"{_change_value(by[(n, k)])}: {100 * by[(n, k)]['delta']:+.1f}")
                  for k in kinds)] for n in layers]
    return (Bars("per-layer sensitivity", "accuracy change (points)", layers, bars),
            Table(f"sensitivity: accuracy change in points (baseline {pct(sens['baseline'])} "
                  f"on {sens['images']} images; n/a: the layer cannot take it)",
                  ["layer", *(CHANGE_LABELS[k] for k in kinds)], rows))


def search_sections(inputs: RunInputs, fig_dir: Path) -> list[Section]:
    """The design search (``cimstack search``): the Pareto front of accuracy against
    energy per inference, the per-layer sensitivities and the knee point's assignment,
    layer by layer; no section when neither a search nor a sensitivity study is found."""
    if not (inputs.has("search") or inputs.has("sensitivity")):
        return []
    section = Section("search", "Design search: which layers go analog, at which precision")
    panels, sources = [], []
    front = inputs.json("search")
    if front is not None:
        pts = front["front"]
        every = [c for c in (inputs.json("search_candidates") or {}).get("candidates", [])
                 if c.get("accuracy") is not None]
        knee = front["knee"]
        panels.append(Lines("accuracy vs energy per inference", "energy per inference (nJ)",
                            "accuracy (%)", [
            Series(f"{len(every)} candidates", [c["energy_pj"] / 1e3 for c in every],
                   [100 * c["accuracy"] for c in every], "."),
            Series("Pareto front", [c["energy_pj"] / 1e3 for c in pts],
                   [100 * c["accuracy"] for c in pts], "o-"),
            Series("knee", [knee["energy_pj"] / 1e3], [100 * knee["accuracy"]], "r*")]))
        layers = knee["layers"]
        panels.append(Bars("knee point, layer by layer", "bits",
                           [r["layer"] for r in layers],
                           {"w_bits": [r["w_bits"] for r in layers],
                            "x_bits": [r["x_bits"] for r in layers],
                            "adc_bits": [r["adc_bits"] or 0 for r in layers]},
                           notes=tuple(r["family"] for r in layers)))
        held = (front.get("held_out") or {}).get("images", 0)
        section.tables += [
            Table("Pareto front (cheapest first)" + (
                f"; held-out: accuracy on {held} images the search did not see" if held
                else ""), ["#", "accuracy", *(("held-out",) if held else ()), "energy pJ",
                           "latency s", "area mm^2", "assignment"],
                  [[str(c["index"]) + (" (knee)" if c["knee"] else ""), pct(c["accuracy"]),
                    *((pct(c["held_out_accuracy"]),) if held else ()),
                    fmt(c["energy_pj"]), fmt(c["latency_s"]), fmt(c["area_mm2"]),
                    c["assignment"]] for c in pts]),
            Table("knee point", ["layer", "family", "w_bits", "x_bits", "adc_bits",
                                 "block sparsity"],
                  [[r["layer"], r["family"], str(r["w_bits"]), str(r["x_bits"]),
                    fmt(r["adc_bits"]), pct(r.get("sparsity", 0.0))] for r in layers])]
        sources.append(f"{inputs.rel('search')} ({front['evaluated']} candidates of "
                       f"{front['bundle']}, objectives {', '.join(front['objectives'])}, "
                       f"{front['source'] or 'given images'})")
    if inputs.has("sensitivity"):
        panel, table = _sensitivity_panel(inputs.json("sensitivity"))
        panels.insert(1 if front is not None else 0, panel)
        section.tables.append(table)
        sources.append(inputs.rel("sensitivity"))
    _notes(section, inputs, ("search", "sensitivity"), {"search"})
    section.caption = (
        "Per-layer assignments of a bundle to the digital (dcim) or analog (acim) macro at "
        "lowered weight, input and ADC precision and raised dcim block sparsity, each "
        "evaluated for accuracy on the integer reference and energy per inference with the "
        "cost model. Left: every candidate (dots), the Pareto front (no other candidate as "
        "accurate for less energy) and its knee (the front point farthest from the line "
        "between its ends, both axes scaled to [0, 1]); middle: each layer's accuracy "
        "change when only it moves to acim, loses a bit or is block-pruned; right: the "
        "knee's bits per layer, its family above. The accuracies are on the images that "
        "guided the search (optimistic by selection); the front table's held-out column, "
        "where there is one, is on images that chose nothing. From " + "; ".join(sources) + ".")
    return [_draw(section, panels, fig_dir)]
