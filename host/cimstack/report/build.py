"""Build a report folder: ``index.html``, ``report.md`` and ``figures/*.png``, written
atomically (a crash leaves the previous report, or none, never half of one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .inputs import find_inputs
from ..errors import OutputError
from ..fileio import atomic_folder, check_output_folder, is_inside, write_text_atomic
from .render import to_html, to_markdown
from .sections import (SECTIONS, Section, flexspim_sections, network_sections,
                       search_sections)


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


def report_folder(inputs, out: str | Path | None = None, force: bool = False) -> Path:
    """Where the report of ``inputs`` goes (default ``RUN/report``), checked: it may not
    hold or lie inside any input (a report never overwrites what it reports on), and a
    folder cimstack did not write is replaced only with ``force``."""
    out = Path(out) if out is not None else inputs.root / "report"
    for path in inputs.paths.values():
        if is_inside(path, out) or (is_inside(out, path.parent) and path.parent != inputs.root):
            raise OutputError(f"--out {out} would overwrite the report's own input {path}: "
                              "choose a folder outside the inputs (default RUN_DIR/report)")
    if is_inside(inputs.root, out):
        raise OutputError(f"--out {out} would replace the folder reported on, "
                          f"{inputs.root}: choose another folder (default RUN_DIR/report)")
    return check_output_folder(out, force)


def write_report(folder: str | Path, out: str | Path | None = None,
                 force: bool = False) -> Report:
    """Report on a run, sweep or study ``folder`` into ``out`` (default ``folder/report``);
    ``force`` replaces an ``out`` folder that cimstack did not write."""
    inputs = find_inputs(folder)
    out = report_folder(inputs, out, force)
    inputs.check()
    with atomic_folder(out, force, kind="report") as tmp:
        sections = [build(inputs, tmp / "figures") for build in SECTIONS]
        sections += flexspim_sections(inputs, tmp / "figures")
        sections += network_sections(inputs, tmp / "figures")
        sections += search_sections(inputs, tmp / "figures")
        title = f"cimstack report: {inputs.root.resolve().name}"
        intro = ("Written by `cimstack report` from the files found in the folder reported "
                 "on: " + ", ".join(f"`{inputs.rel(k)}`" for k in inputs.paths) + ".")
        write_text_atomic(tmp / "index.html", to_html(title, intro, sections))
        write_text_atomic(tmp / "report.md", to_markdown(title, intro, sections))
    return Report(inputs.root, out, sections)
