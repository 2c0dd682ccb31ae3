"""``cimstack sweep [GRID.toml] --out OUT``: the sweep from the command line, with a
progress bar and the results as a table."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..flags import EPOCHS_MAX, FORCE_WRITE_HELP, seconds
from ..report.console import console, long_step, rich_table
from .points import point_type
from .runner import POINT_TIMEOUT, SweepProgress, SweepResult, run_sweep

TABLE_ROWS = 40


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


# the metrics shown, as (column, header, scale, format): of a macro family's points
_MACRO_METRICS = [("accuracy", "accuracy", 1, ".4f"), ("energy_pj", "nJ/image", 1e-3, ",.2f"),
                  ("latency_s", "latency us", 1e6, ",.2f"), ("tops_per_w", "TOPS/W", 1, ".1f"),
                  ("fpga_images_per_s", "FPGA images/s", 1, ",.0f"),
                  ("dma_bound_images_per_s", "DMA bound", 1, ",.0f")]
# ... and of the spiking network's
_SNN_METRICS = [("accuracy", "accuracy", 1, ".4f"), ("energy_pj", "nJ/sample", 1e-3, ",.1f"),
                ("latency_s", "latency us", 1e6, ",.1f"),
                ("traffic_bits", "traffic kbit", 1e-3, ",.1f"),
                ("traffic_vs_ws", "traffic / ws-only", 1, ".2f")]
# ... and of FlexSpIM's network (a dataflow model: no accuracy)
_FLEXSPIM_METRICS = [("resident_vs_ws", "resident bits vs ws-only", 1, "+.0%"),
                     ("dram_bits", "DRAM Mbit/sample", 1e-6, ",.2f"),
                     ("dram_vs_ws", "DRAM / ws-only", 1, ".2f"),
                     ("energy_pj", "uJ/sample", 1e-6, ",.1f"),
                     ("energy_vs_ws", "energy vs ws-only", 1, "+.0%"),
                     ("fpga_samples_per_s", "FPGA samples/s", 1, ",.1f")]


def results_tables(result: SweepResult) -> list[Table]:
    """One table per macro: the knobs that vary, the key metrics (first rows)."""
    tables = []
    for macro in dict.fromkeys(r["macro"] for r in result.rows):
        rows = [r for r in result.rows if r["macro"] == macro]
        metrics = {"snn": _SNN_METRICS, "flexspim": _FLEXSPIM_METRICS}.get(macro,
                                                                          _MACRO_METRICS)
        knobs = [k for k in point_type(macro).knob_names()
                 if len({r.get(k) for r in rows}) > 1]
        tables.append(rich_table(
            f"{macro}: {len(rows)} points", ["point", *knobs, *(m[1] for m in metrics)],
            [[r["point"], *(str(r[k]) for k in knobs),
              *(_fmt(None if r[c] is None else r[c] * scale, spec)
                for c, _, scale, spec in metrics)] for r in rows[:TABLE_ROWS]],
            caption=(f"first {TABLE_ROWS} of {len(rows)}; all in {result.results_csv}"
                     if len(rows) > TABLE_ROWS else None)))
    return tables


def sweep_command(
        grid: Optional[Path] = typer.Argument(
            None, help="grid TOML file (docs/sweep.md, sweeps/example.toml); without it and "
                       "without --set, the built-in small grid"),
        out: Path = typer.Option(Path("cimstack-out/sweep"),
                                 help="output folder; points already in it are skipped"),
        sets: List[str] = typer.Option([], "--set", help="KNOB=V1,V2,... (a list sweeps); "
                                       "macro=M (dcim, acim, snn, flexspim, a registered macro "
                                       "family) "
                                       "selects or makes the tables"),
        workers: Optional[int] = typer.Option(None, help="local pool processes (default: "
                                              "one per core; 0: run in this process)",
                                              min=0),
        cluster: Optional[str] = typer.Option(None, help="a running Dask scheduler, "
                                              "tcp://HOST:PORT: run the tasks on its workers"),
        quick: bool = typer.Option(False, help="short training (seconds per model)"),
        epochs: Optional[int] = typer.Option(None, help="training epochs of every model",
                                             min=1, max=EPOCHS_MAX),
        point_timeout: float = typer.Option(POINT_TIMEOUT, help="stop when no task has "
                                            "finished for this many seconds",
                                            callback=seconds()),
        connect_timeout: float = typer.Option(10.0, help="seconds to reach the Dask "
                                              "scheduler and find a worker",
                                              callback=seconds()),
        force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """Design-space sweep: train each distinct model once, evaluate every point
    (reference accuracy, cost), write OUT/results.csv, results.json and layers.csv."""
    from .grid import DEFAULT_GRID, load_grid, merge_sets, parse_sets
    spec = load_grid(grid) if grid else None
    if sets:
        spec = merge_sets(spec, parse_sets(sets))
    spec = spec if spec is not None else DEFAULT_GRID
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total} points"),
               TextColumn("{task.fields[note]}"), TimeElapsedColumn())
    bar = Progress(*columns, console=console)
    task = bar.add_task("sweep", total=None, note="")

    def progress(ev: SweepProgress) -> None:
        bar.start()                       # at the first event: after the checks passed
        note = f"skipped {ev.skipped}, models {ev.models_done}/{ev.models_total}" + (
            f", [red]failed {ev.failed}[/]" if ev.failed else "")
        bar.update(task, total=ev.total, completed=ev.done + ev.failed, note=note,
                   description=ev.current[:60])
        step.update(f"sweep: {ev.done}/{ev.total} points, {ev.failed} failed, models "
                    f"{ev.models_done}/{ev.models_total}")

    try:
        with long_step("sweep", live=False) as step:      # plain lines when piped
            result = run_sweep(spec, out, workers=workers, cluster=cluster, quick=quick,
                               epochs=epochs, progress=progress, point_timeout=point_timeout,
                               connect_timeout=connect_timeout, force=force)
    except KeyboardInterrupt:
        console.print(f"interrupted: finished points are kept in {out / 'points'}; run the "
                      "same command again to resume")
        raise typer.Exit(130)
    finally:
        if bar.live.is_started:
            bar.stop()
    for table in results_tables(result):
        console.print(table)
    ran = (f"{result.computed} points computed on the {result.engine}" if result.engine
           else "nothing to compute")
    console.print(f"{ran}, {result.skipped} skipped (already in {result.points_dir}), "
                  f"{result.models_trained} models trained; tables: {result.results_csv}, "
                  f"{result.results_json}, {result.layers_csv}")
    if result.failed:
        for f in result.failed:
            console.print(f"[red]failed[/] {f['point']} {f['params']}: {f['error']}")
        raise typer.Exit(1)
