"""``cimstack study ...``: the typer sub-app (mounted by the main CLI)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..report.console import console

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
           active_rows: int = typer.Option(144, help="rows the effective-bits layer uses"),
           adc_bits: int = typer.Option(4, help="ADC bits of the accuracy-vs-sigma study"),
           train_sigma: float = typer.Option(2.0, help="noise (LSB) of noise-aware training"),
           epochs: int = typer.Option(None, help="analog fine-tuning epochs"),
           seed: int = typer.Option(0)):
    """Analog macro: effective ADC bits (fixed vs adaptive swing), accuracy vs noise
    sigma (noise-aware vs unaware), accuracy vs ADC bits."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .analog import run_analog_study, study_steps
    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("analog study", total=study_steps(chosen, quick))

        def progress(desc: str, steps: int = 1) -> None:
            bar.update(task, advance=steps, description=desc)

        try:
            summary = run_analog_study(out, chosen, quick=quick, active_rows=active_rows,
                                       sigma_adc_bits=adc_bits, train_sigma=train_sigma,
                                       epochs=epochs, seed=seed, progress=progress)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    if "enob" in summary:
        rec = summary["enob"]["recovered_bits_at"]
        console.print(f"bits recovered by split + ABN (expected "
                      f"{summary['enob']['expected_gain_bits']:.2f}): "
                      + ", ".join(f"{a}b: {v:.2f}" for a, v in rec.items()))
    console.print(f"results in {out}")
