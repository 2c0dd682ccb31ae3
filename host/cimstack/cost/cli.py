"""``cimstack cost [BUNDLE]``: the cost models from the command line (mounted by the
main CLI).

- a bundle: per-layer energy and latency on the macros, the network's totals, and the
  FPGA overlay's throughput beside its AXI DMA bound (one line saying it is not
  available when a layer's macro family has no FPGA kernel);
- an SNN bundle: a short run on the built-in event test frames (or ``--data``), then
  per-layer dataflow, traffic against weight-stationary only, energy, and the snn
  kernel's FPGA throughput beside its AXI DMA bound;
- no bundle: the calibration, published figures against the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..report.console import console, rich_table
from .published import published_overlay


def _si(value: float, unit: str) -> str:
    """``value`` with an SI prefix: 12300 pJ -> '12.3 nJ', 4.2e-6 s -> '4.20 us'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
                          (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _energy(pj: float) -> str:
    return _si(pj * 1e-12, "J")


def _split(r: dict) -> str:
    """Where a row's energy goes: array / read-out / move on chip / DRAM, in % of the
    chip energy plus the DRAM energy."""
    parts = [r["energy_array_pj"], r["energy_readout_pj"], r["energy_move_pj"],
             r.get("energy_dram_pj", 0)]
    return " / ".join(f"{e / sum(parts):.0%}" for e in parts) if sum(parts) else "-"


def _mapping(r: dict) -> str:
    """Cores and macros a layer uses at once, and where its weights come from."""
    if "cores_used" not in r:
        return "-"
    return f"{r['cores_used']} / {r['macros_used']}, {r['weights_from']}"


def fpga_bound_rows(fpga: dict) -> list[list[str]]:
    """Compute bound beside AXI DMA bound of ``fpga_cost`` or ``snn_fpga_cost``."""
    return [["cycles per image", f"{fpga['cycles_per_image']:,.0f}"],
            ["compute bound", f"{fpga['images_per_s']:,.0f} images/s"],
            ["DMA bytes per image", f"{fpga['dma_bytes_per_image']:,.0f}"],
            ["DMA bound (HP port " + _si(fpga["hp_port_bytes_per_s"], "B/s") + ")",
             f"{fpga['dma_bound_images_per_s']:,.0f} images/s"],
            ["bound", f"{fpga['bound_images_per_s']:,.0f} images/s ({fpga['bottleneck']})"]]


def macro_tables(net: dict, fpga: dict | None) -> list[Table]:
    """Rich tables of ``network_cost(...).to_dict()`` and ``fpga_cost(...)`` (none for
    ``fpga`` None)."""
    layers = [[r["layer"], r["macro"], _mapping(r), f"{r['cycles']:,}",
               _si(r["latency_s"], "s"), _energy(r["energy_pj"]), _split(r),
               f"{r['tops_per_w']:.1f}"] for r in net["layers"]]
    t = net["totals"]
    dram_layers = [r["layer"] for r in net["layers"] if r.get("weights_from") == "dram"]
    totals = [["operations (2 per MAC, dense)", f"{t['ops']:,}"],
              ["cycles", f"{t['cycles']:,}"], ["latency", _si(t["latency_s"], "s")],
              ["energy on chip", _energy(t["energy_pj"])],
              ["efficiency (on chip)", f"{t['tops_per_w']:.1f} TOPS/W"],
              ["DRAM weights per image", f"{t['dram_bits'] // 8:,} bytes "
               f"({len(dram_layers)} layers streamed)"],
              ["DRAM energy (beside, not in, the chip energy)", _energy(t["energy_dram_pj"])],
              ["efficiency with DRAM", f"{t['tops_per_w_with_dram']:.1f} TOPS/W"],
              ["images/s", f"{t['images_per_s']:,.0f}"],
              ["macro area", f"{t['area_mm2']:.3f} mm^2"],
              ["density", f"{t['tops_per_mm2']:.3g} TOPS/mm^2"],
              ["weights resident", ", ".join(f"{m}: {'yes' if v else 'no'}"
                                             for m, v in t["resident"].items())]]
    tables = [
        rich_table(f"{net['name']}: per layer and image on the macros (batch {net['batch']})",
                   ["layer", "macro", "cores/macros, weights", "cycles", "latency",
                    "chip energy", "array / read-out / move / DRAM", "TOPS/W"], layers),
        rich_table("network per image", ["figure", "value"], totals)]
    if fpga is None:
        return tables
    fl = [[r["layer"], str(r["slices"]), f"{r['cycles']:,}", _si(r["seconds"], "s"),
           f"{r['bytes_in']:,}", f"{r['bytes_out']:,}", f"{r['bytes_weights']:,}"]
          for r in fpga["layers"]]
    fpga_rows = [*fpga_bound_rows(fpga),
                 [published_overlay()[0], f"{published_overlay()[1]:,.0f} images/s"]]
    return [
        *tables,
        rich_table(f"FPGA overlay on {fpga['board']} at {fpga['clock_mhz']:g} MHz "
                   f"(batch {fpga['batch']})", ["layer", "slices", "cycles", "time", "bytes in",
                                              "bytes out", "bytes weights"], fl),
        rich_table("FPGA throughput: compute vs AXI DMA", ["figure", "value"], fpga_rows),
    ]


HOST_NOTE = ("host nodes ({}): no macro energy or time; their tensors' movement is in "
             "the macro layers' move column (move = buffers <-> macros on chip; DRAM = "
             "weights streamed from DRAM).")


def published_table(net: dict) -> Table:
    """This bundle's modelled frames/s and TOPS/W beside the papers' published figures
    for the bundle's macro families (the papers' chips and networks, not this bundle)."""
    from .constants import PAPER_POINTS
    t = net["totals"]
    macro = t["energy_array_pj"] + t["energy_readout_pj"]
    mine = {"efficiency": f"{t['tops_per_w']:.1f} TOPS/W",
            "throughput": f"{t['images_per_s']:,.0f} frames/s",
            "macro efficiency": f"{t['ops'] / macro * 1e-3:.3g} POPS/W" if macro else "-"}
    rows = []
    for family in t["resident"]:
        for p in PAPER_POINTS.get(family, []):
            figure = {("acim", "efficiency"): "macro efficiency",
                      ("acim", "system_efficiency"): "efficiency"}.get((family, p["figure"]),
                                                                       p["figure"])
            if figure not in mine:
                continue
            at = p.get("network") or p.get("dataset") or f"{p['bits']} b"
            rows.append([family, figure, mine[figure], f"{p['value']:g} {p['unit']}"
                         + (" (over)" if "lower bound" in p.get("note", "") else ""),
                         at, p["source"].split(" (")[0]])
    return rich_table(f"{net['name']} (model) beside published figures",
                      ["family", "figure", "this bundle (model)", "published", "at",
                       "paper"], rows)


def _times(ratio: float) -> str:
    """A traffic ratio against weight-stationary only: 'x0.83 (17% less)'."""
    if ratio == float("inf"):
        return "ws-only moves none"
    change = "same" if abs(ratio - 1) < 5e-3 else \
        f"{abs(1 - ratio):.0%} {'less' if ratio < 1 else 'more'}"
    return f"x{ratio:.2f} ({change})"


def snn_tables(cost: dict, name: str, samples: int) -> list[Table]:
    """Rich tables of :func:`cimstack.cost.snn_cost` (every figure is the model's)."""
    layers = [[r["layer"], f"{r['dataflow']} ({r['policy']})", f"{r['traffic_bits']:,}",
               f"{r['ws_traffic_bits']:,}" + ("" if r["ws_fits"] else " (does not fit)"),
               _times(r["traffic_vs_ws"]), f"{r['sops']:,}", f"{r['cycles']:,}",
               _energy(r["energy_pj"])] for r in cost["layers"]]
    t = cost["totals"]
    totals = [["samples", str(samples)], ["SOPs", f"{t['sops']:,}"],
              ["energy per sample", _energy(t["energy_pj_per_sample"])],
              ["energy per SOP (all in)", f"{t['pj_per_sop']:.2f} pJ"],
              ["throughput", f"{t['gsop_per_s']:.3f} GSOP/s (peak {t['peak_gsop_per_s']:.2f})"],
              ["operand traffic / weight-stationary only", f"{t['traffic_bits']:,} / "
               f"{t['ws_traffic_bits']:,} bits = {_times(t['traffic_vs_ws'])}"],
              ["energy saved by unused columns in standby", f"{t['idle_saving']:.0%} "
               "(FlexSpIM: 87% per unused column)"]]
    return [rich_table(f"{name}: per layer over {samples} samples (model, one array per "
                       "layer)", ["layer", "dataflow (policy)", "traffic bits", "ws-only bits",
                                  "traffic / ws-only", "SOPs", "cycles", "energy"], layers),
            rich_table("spiking core totals (model)", ["figure", "value"], totals)]


def snn_fpga_tables(fpga: dict) -> list[Table]:
    """Rich tables of :func:`cimstack.cost.fpga.snn_fpga_cost`."""
    layers = [[r["layer"], str(r["slices"]), f"{r['events_in']:,}", f"{r['cycles']:,}",
               _si(r["seconds"], "s"), f"{r['bytes_in']:,}", f"{r['bytes_out']:,}",
               f"{r['bytes_weights']:,}", f"{r['bytes_membranes']:,}"] for r in fpga["layers"]]
    res = fpga["resources"]
    used = ", ".join(f"{res[k]:,.0f} / {res['budget'][k]:,.0f} {k.upper()}"
                     for k in ("lut", "ff", "bram36", "dsp"))
    rows = [*fpga_bound_rows(fpga), [f"{' + '.join(res['parts'])} (estimate)", used]]
    return [rich_table(f"snn kernel on {fpga['board']} at {fpga['clock_mhz']:g} MHz over "
                       f"{fpga['samples']} samples (model)",
                       ["layer", "slices", "events in", "cycles", "time", "bytes in",
                        "bytes out", "bytes weights", "bytes membranes"], layers),
            rich_table("snn kernel throughput: compute vs AXI DMA", ["figure", "value"], rows)]


def snn_plan_table(net, stats, reached: list, macros: int) -> tuple[Table, list[dict]]:
    """The policies of :mod:`cimstack.mapping.flexspim` on ``macros`` shared macros with
    a DRAM tier, for one run (table and rows)."""
    from ..mapping.flexspim import POLICIES, plan_network
    from .snn import plan_energy
    plans = {p: plan_network(net, stats, macros, p, reached) for p in POLICIES}
    ws = plans["ws"]
    rows, figs = [], []
    for p, plan in plans.items():
        e = plan_energy(plan, net, stats)
        flows = " ".join(f"{l.dataflow}{'' if l.resident else '*'}" for l in plan.layers)
        gain = plan.resident_bits / ws.resident_bits - 1 if ws.resident_bits else 0.0
        rows.append([p, flows, f"{plan.resident_bits:,} ({gain:+.0%})",
                     f"{plan.dram_bits:,}", _times(plan.dram_bits / ws.dram_bits
                                                   if ws.dram_bits else 1.0),
                     _energy(e["energy_pj"])])
        figs.append({**plan.to_dict(), **e})
    return rich_table(
        f"{net.name} on {macros} macros of {net.spec.rows} x {net.spec.cols} bits sharing one "
        "budget, DRAM for the rest (model; * = stationary operand in DRAM)",
        ["policy", "dataflow per layer", "resident bits (vs ws-only)", "DRAM bits",
         "DRAM / ws-only", "energy (SOPs + DRAM)"], rows), figs


def snn_figures(bundle: Path, data: Optional[Path], samples: int, macros: Optional[int],
                board: str = "pynq-z2") -> tuple[list[Table], dict, str]:
    """Tables, JSON figures and a note for ``cimstack cost SNN_BUNDLE``: a short run on
    ``data`` (else the built-in event digits when the input fits them, else seeded
    random events), the one-array-per-layer cost, the snn kernel on ``board``'s overlay,
    and with ``macros`` the dataflow policies on that many shared macros with DRAM."""
    from ..data import snn_inputs
    from ..errors import ConfigError
    from ..events.datasets import load_event_data
    from ..mapping.flexspim import reach_counts
    from ..mapping.snn import SnnMappingError
    from ..ref.snn import check_input, run_snn
    from ..snn_bundle import load_snn_bundle
    from .fpga import snn_fpga_cost
    from .snn import snn_cost
    net = load_snn_bundle(bundle)
    try:                        # the cost needs no labels: any event data set fits
        frames = load_event_data(data, "test", samples).frames(int(net.meta.get("n_steps", 16)))
        check_input(net, frames)
        source = "the built-in event digits" if data is None else f"--data {data}"
    except ConfigError:
        if data is not None:
            raise
        frames, _, source = snn_inputs(net, None, limit=samples)
    note = f"input: {source}"
    result = run_snn(net, frames, keep_spikes=macros is not None)
    try:
        cost = snn_cost(net, result, len(frames))
        tables = snn_tables(cost, net.name, len(frames))
    except SnnMappingError as e:
        if macros is None:
            raise SnnMappingError(f"{e}; give --macros M for the layers on M macros "
                                  "sharing one budget, with DRAM for the rest") from None
        cost, tables = None, []
        note += f"\none array per layer: not possible ({e})"
    try:
        fpga = snn_fpga_cost(net, result, len(frames), board)
        tables += snn_fpga_tables(fpga)
    except SnnMappingError as e:
        fpga = None
        note += f"\nsnn kernel on the FPGA: not possible ({e})"
    figs = {"bundle": str(bundle), "samples": len(frames), "snn": cost, "fpga": fpga}
    if macros is not None:
        table, figs["snn_plans"] = snn_plan_table(
            net, result.stats, reach_counts(net, frames, result), macros)
        tables.append(table)
    return tables, figs, note


def calibration_tables(rows: list[dict], curve: list[dict]) -> list[Table]:
    """Rich tables of the calibration and of the analog macro's curve."""
    cal = [[r["family"], r["figure"], r["at"], f"{r['published']:g} {r['unit']}",
            f"{r['model']:.4g}", f"{r['error']:+.2%}", r["role"]] for r in rows]
    cur = [[str(r["bits"]), f"{r['pops_per_w']:.3f}", f"{r['tops_per_mm2']:.1f}"]
           for r in curve]
    return [rich_table("published figures vs the cost models",
                       ["family", "figure", "at", "published", "model", "error", "role"], cal),
            rich_table("analog macro (IMAGINE): x_bits = w_bits = adc_bits",
                       ["bits", "POPS/W", "TOPS/mm^2"], cur)]


def with_dcim(bundle, **knobs):
    """``bundle`` with the given (not None) ``DcimSpec`` knobs replaced (validated)."""
    from dataclasses import replace
    given = {k: v for k, v in knobs.items() if v is not None}
    return replace(bundle, dcim=replace(bundle.dcim, **given)) if given else bundle


def cost_command(bundle: Optional[Path] = typer.Argument(
                     None, help="bundle or SNN bundle folder; none: calibration"),
                 json_out: Optional[Path] = typer.Option(None, "--json",
                                                         help="write the figures as JSON"),
                 batch: int = typer.Option(1, help="images per weight reload", min=1),
                 board: str = typer.Option("pynq-z2", help="board folder under boards/, or "
                                           "a board.toml path"),
                 samples: int = typer.Option(8, help="SNN bundle: test samples to run", min=1),
                 cores: Optional[int] = typer.Option(
                     None, help="dcim: cost on this many cores instead of the bundle's", min=1),
                 macros: Optional[int] = typer.Option(
                     None, help="dcim: macros per core instead of the bundle's; SNN bundle: "
                                "the dataflow policies on this many macros sharing one "
                                "budget, with DRAM for the rest", min=1),
                 weight_sram_kib: Optional[int] = typer.Option(
                     None, help="dcim: weight SRAM per core (KiB) instead of the bundle's; "
                                "layers without room stream from DRAM", min=1),
                 acim_split: bool = typer.Option(
                     False, "--acim-split", help="IMAGINE's channel-wise split of every "
                     "macro layer, not only the acim ones (no acim spec: the default)"),
                 data: Optional[Path] = typer.Option(
                     None, help="SNN bundle: extracted N-MNIST / DVS Gesture folder "
                                "instead of the built-in event digits")):
    """Energy, latency and area on the macros, FPGA throughput vs the DMA bound."""
    from ..fileio import write_json_atomic
    from ..snn_bundle import is_snn_bundle

    note = ""
    if bundle is None:
        from .acim import acim_macro_curve
        from .calibrate import calibration_table, held_out_table
        from .constants import PAPER_POINTS
        rows, curve = calibration_table() + held_out_table(), acim_macro_curve()
        tables = calibration_tables(rows, curve)
        figs = {"calibration": rows, "acim_curve": curve, "paper_points": PAPER_POINTS}
    elif is_snn_bundle(bundle):
        tables, figs, note = snn_figures(bundle, data, samples, macros, board)
    else:
        from ..bundle import load_bundle
        from .fpga import fpga_cost, without_kernel
        from .network import network_cost
        b = with_dcim(load_bundle(bundle), cores=cores, macros=macros,
                      weight_sram_kib=weight_sram_kib)
        missing = without_kernel(b)
        net = network_cost(b, batch=batch).to_dict()
        fpga = None if missing else fpga_cost(b, board, batch=batch)
        if missing:
            note = (f"FPGA overlay: not available (macro family {', '.join(missing)} has no "
                    "FPGA kernel)")
        tables = [*macro_tables(net, fpga), published_table(net)]
        hosted = ", ".join(f"{n} {op}" for op, n in net["totals"]["host_nodes"].items())
        note = "\n".join(filter(None, [note, HOST_NOTE.format(hosted) if hosted else ""]))
        figs = {"bundle": str(bundle), "network": net, "fpga": fpga}
        if b.acim or acim_split:
            from ..config import AcimSpec
            from ..mapping.imagine import SPLIT_COLUMNS, split_plan, split_rows
            spec = b.acim or AcimSpec()
            on = [x for x in b.layers if acim_split or getattr(x, "macro", "") == "acim"]
            plan = split_plan(on, spec)
            tables.append(rich_table(
                f"{b.name}: IMAGINE channel-wise split, {spec.segments} segments of "
                f"{spec.seg_rows} rows, swing {spec.swing}", SPLIT_COLUMNS, split_rows(plan),
                right=[0 < i < len(SPLIT_COLUMNS) - 1 for i in range(len(SPLIT_COLUMNS))]))
            figs["acim_split"] = [p.to_dict() for p in plan]
    for t in tables:
        console.print(t)
    if note:
        console.print(note)
    if json_out:
        write_json_atomic(json_out, figs)
        console.print(f"figures: {json_out}")
