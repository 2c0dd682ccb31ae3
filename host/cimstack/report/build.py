"""Build a report folder: ``index.html``, ``report.md`` and ``figures/*.png``, written
atomically (a crash leaves the previous report, or none, never half of one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .inputs import find_inputs
from .io import atomic_folder, write_text_atomic
from .render import to_html, to_markdown
from .sections import SECTIONS, Section


@dataclass
class Report:
    """A written report: where it came from, where it is, and its sections."""
    source: Path
    out: Path
    sections: list

    @property
    def incomplete(self) -> list[Section]:
        """Sections with some or all of their inputs missing."""
        return [s for s in self.sections if s.status != "complete"]

    @property
    def index(self) -> Path:
        """The HTML page."""
        return self.out / "index.html"


def write_report(folder: str | Path, out: str | Path | None = None) -> Report:
    """Report on a run, sweep or study ``folder`` into ``out`` (default ``folder/report``)."""
    inputs = find_inputs(folder)
    inputs.check()
    out = Path(out) if out is not None else inputs.root / "report"
    with atomic_folder(out) as tmp:
        sections = [build(inputs, tmp / "figures") for build in SECTIONS]
        title = f"cimstack report: {inputs.root.resolve().name}"
        intro = ("Written by `cimstack report` from the files found in the folder reported "
                 "on: " + ", ".join(f"`{inputs.rel(k)}`" for k in inputs.paths) + ".")
        write_text_atomic(tmp / "index.html", to_html(title, intro, sections))
        write_text_atomic(tmp / "report.md", to_markdown(title, intro, sections))
    return Report(inputs.root, out, sections)
