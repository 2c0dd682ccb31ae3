"""The demo's stages after the dcim run, all into the demo's run folder:

1. ``cost.json``: the cost model of the demo bundle (energy and latency on the macros)
   and the FPGA overlay's throughput beside its AXI DMA bound (:mod:`cimstack.cost`);
2. ``study-analog/``: the analog macro's quick study (effective bits with fixed and
   adaptive swing, accuracy vs noise and vs ADC bits; :mod:`cimstack.study.analog`);
3. ``sweep/``: the built-in small design-space sweep over the three macro families
   (:mod:`cimstack.sweep`), on the local process pool;
4. ``report/``: the HTML and Markdown report of the whole folder (:mod:`cimstack.report`).

Each stage reuses what an earlier demo left in the folder where it can (the sweep
resumes), and is timed.
"""

from __future__ import annotations

import time
from pathlib import Path

from .bundle import Bundle
from .report.console import console, long_step
from .fileio import write_json_atomic


def cost_stage(bundle: Bundle, batch: int, out: Path) -> dict:
    """Write ``out/cost.json`` (network cost per image, FPGA throughput at ``batch``)."""
    from .cost import fpga_cost, network_cost
    from .cost.cli import macro_tables
    figs = {"network": network_cost(bundle).to_dict(), "fpga": fpga_cost(bundle, batch=batch)}
    write_json_atomic(out / "cost.json", figs)
    for table in macro_tables(figs["network"], figs["fpga"])[1:]:
        console.print(table)
    return figs


def study_stage(out: Path, seed: int, force: bool = False) -> dict:
    """The quick analog study into ``out/study-analog`` with a progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .study.analog import PARTS, run_analog_study, study_steps
    with long_step("analog study", live=False) as step, \
            Progress(TextColumn("{task.description}"), BarColumn(),
                     TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                     console=console, transient=True) as bar:
        task = bar.add_task("analog study", total=study_steps(PARTS, True))

        def progress(desc, steps=1):
            bar.update(task, advance=steps, description=desc)
            step.update(f"analog study: {desc}")
        return run_analog_study(out / "study-analog", PARTS, quick=True, seed=seed,
                                progress=progress, force=force)


def sweep_stage(out: Path, force: bool = False):
    """The built-in small sweep (quick training) into ``out/sweep``; resumes."""
    from .sweep import run_sweep
    from .sweep.grid import DEFAULT_GRID
    with long_step("sweep: training and evaluating the built-in grid") as status:
        result = run_sweep(DEFAULT_GRID, out / "sweep", quick=True, force=force,
                           progress=lambda ev: status.update(
                               f"sweep: {ev.done}/{ev.total} points, models "
                               f"{ev.models_done}/{ev.models_total}"))
    if result.failed:
        bad = ", ".join(f"{f['point']}: {f['error']}" for f in result.failed)
        console.print(f"[red]sweep points failed[/]: {bad}")
    return result


def report_stage(out: Path, force: bool = False):
    """The report of the run folder; returns :class:`cimstack.report.build.Report`."""
    from .report.build import write_report
    with long_step("report: drawing the figures"):
        return write_report(out, force=force)


def run_study_stages(bundle: Bundle, batch: int, out: Path, seed: int,
                     force: bool = False) -> dict:
    """All four stages; returns their wall times and what the sweep and report left.
    ``force``: the run folder's subfolders may hold files cimstack did not write."""
    stages = {"cost": lambda: cost_stage(bundle, batch, out),
              "analog_study": lambda: study_stage(out, seed, force),
              "sweep": lambda: sweep_stage(out, force),
              "report": lambda: report_stage(out, force)}
    times, results = {}, {}
    for name, stage in stages.items():
        t0 = time.perf_counter()
        results[name] = stage()
        times[name] = time.perf_counter() - t0
    report, sweep = results["report"], results["sweep"]
    incomplete = [s.title for s in report.incomplete]
    console.print("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    console.print(f"report: {report.index}" + (f" (incomplete: {', '.join(incomplete)})"
                                               if incomplete else ""))
    return {"seconds": times, "report": str(report.index), "sweep_failed": len(sweep.failed),
            "report_incomplete": incomplete}
