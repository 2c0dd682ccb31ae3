"""``cimstack study ...``: the typer sub-app (mounted by the main CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import AcimSpec
from ..flags import EPOCHS_MAX, FORCE_WRITE_HELP, SEED_MAX, finite, knob_limits, knob_range
from ..report.console import console, long_step

study_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Parameter sweeps with CSV tables and PNG plots.")


@study_app.callback()
def _study() -> None:
    """Parameter sweeps with CSV tables and PNG plots."""


@study_app.command("analog")
def analog(out: Path = typer.Option(Path("cimstack-out/study-analog"), help="output folder"),
           parts: str = typer.Option("enob,sigma,bits",
                                     help="comma-separated: enob, sigma, bits"),
           quick: bool = typer.Option(False, help="small sweeps (smoke test)"),
           active_rows: int = typer.Option(144, help="rows the effective-bits layer uses",
                                           **knob_limits(AcimSpec, "rows")),
           adc_bits: int = typer.Option(4, help="ADC bits of the accuracy-vs-sigma study",
                                        **knob_limits(AcimSpec, "adc_bits")),
           train_sigma: float = typer.Option(2.0, help="noise (LSB) of noise-aware training",
                                             callback=finite(*knob_range(AcimSpec, "sigma"))),
           epochs: Optional[int] = typer.Option(None, help="analog fine-tuning epochs",
                                                min=1, max=EPOCHS_MAX),
           seed: int = typer.Option(0, min=0, max=SEED_MAX),
           force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """Analog macro: effective ADC bits (fixed vs adaptive swing), accuracy vs noise
    sigma (noise-aware vs unaware), accuracy vs ADC bits."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .analog import run_analog_study, study_steps
    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    with long_step("analog study", live=False) as step, \
            Progress(TextColumn("{task.description}"), BarColumn(),
                     TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                     console=console) as bar:
        task = bar.add_task("analog study", total=study_steps(chosen, quick))

        def progress(desc: str, steps: int = 1) -> None:
            bar.update(task, advance=steps, description=desc)
            step.update(f"analog study: {desc}")      # plain lines when piped

        summary = run_analog_study(out, chosen, quick=quick, active_rows=active_rows,
                                   sigma_adc_bits=adc_bits, train_sigma=train_sigma,
                                   epochs=epochs, seed=seed, progress=progress, force=force)
    if "enob" in summary:
        rec = summary["enob"]["recovered_bits_at"]
        console.print(f"bits recovered by split + ABN (expected "
                      f"{summary['enob']['expected_gain_bits']:.2f}): "
                      + ", ".join(f"{a}b: {v:.2f}" for a, v in rec.items()))
    console.print(f"results in {out}")
