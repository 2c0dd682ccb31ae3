"""``cimstack report RUN_DIR``: the report page, and its key numbers on the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..flags import FORCE_HELP
from .console import console, rich_table


def print_report(report) -> None:
    """The sections' key-number tables and what is missing, as rich tables."""
    for n, s in enumerate(report.sections, 1):
        console.rule(f"{n}. {s.title} [dim]({s.status})[/]")
        for t in s.tables:
            console.print(rich_table(t.title, t.columns, t.rows,
                                     [t.numeric(i) for i in range(len(t.columns))]))
        for m in s.missing:
            console.print(f"[yellow]{m}[/]")
        for m in s.more:
            console.print(f"[dim]{m}[/]")
    if report.incomplete:
        console.print("incomplete sections: "
                      + ", ".join(s.title for s in report.incomplete))
    console.print(f"report: {report.index}")


def report_command(
        run_dir: Path = typer.Argument(..., help="a run folder (`cimstack demo --out`), a "
                                       "sweep folder or a study folder"),
        out: Optional[Path] = typer.Option(None, help="report folder (default RUN_DIR/report); "
                                           "never one of the inputs"),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP)):
    """HTML and Markdown report with figures of a run, sweep or study folder."""
    from .build import write_report
    with console.status("drawing the report's figures"):
        report = write_report(run_dir, out, force)
    print_report(report)
