"""The report's matplotlib figures (Agg backend, no display needed).

A figure is a row of panels, each a line plot (:class:`Lines`) or a grouped bar chart
(:class:`Bars`), saved atomically as one PNG; the analog study draws its plots with it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ..fileio import atomic_file


class Series(NamedTuple):
    """One line (or set of points) of a :class:`Lines` panel."""
    label: str
    x: list
    y: list
    style: str = "o-"


class Lines(NamedTuple):
    """A line-plot panel."""
    title: str
    xlabel: str
    ylabel: str
    series: list
    log_y: bool = False


class Bars(NamedTuple):
    """A grouped bar-chart panel: ``bars`` maps a legend label to one value per category;
    ``notes`` (optional) are written above each category."""
    title: str
    ylabel: str
    categories: list
    bars: dict
    notes: tuple = ()
    log_y: bool = False


Panel = Lines | Bars


def _draw_lines(ax, p: Lines) -> None:
    for s in p.series:
        ax.plot(s.x, s.y, s.style, label=s.label)
    ax.set_xlabel(p.xlabel)
    if p.log_y:
        ax.set_yscale("log")


def _draw_bars(ax, p: Bars) -> None:
    width = 0.8 / max(1, len(p.bars))
    for i, (label, values) in enumerate(p.bars.items()):
        xs = [c + (i - (len(p.bars) - 1) / 2) * width for c in range(len(p.categories))]
        ax.bar(xs, values, width, label=label)
    top = max((v for values in p.bars.values() for v in values), default=0)
    for c, note in enumerate(p.notes):             # just below the top of the axes
        ax.annotate(note, (c, 1), xycoords=("data", "axes fraction"), xytext=(0, -4),
                    textcoords="offset points", ha="center", va="top", fontsize="x-small")
    if p.log_y and top > 0:
        ax.set_yscale("log")
        ax.set_ylim(min(v for values in p.bars.values() for v in values if v > 0) / 3, top * 8)
    else:                                          # room below 0 for negative bars
        bottom = min((v for values in p.bars.values() for v in values), default=0)
        ax.set_ylim(min(0, bottom * 1.3), top * 1.3 if top > 0 else 1)
    ax.set_xticks(range(len(p.categories)), p.categories)


def _two_five(value: float, _pos=None) -> str:
    """A minor log tick's label at 2 and 5 times a power of ten, else none."""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (2, 5) else ""


def plot(panels: Sequence[Panel], path: Path) -> Path:
    """Draw ``panels`` side by side and save them as one PNG at ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax, p in zip(axes[0], panels):
        (_draw_lines if isinstance(p, Lines) else _draw_bars)(ax, p)
        ax.set_title(p.title)
        ax.set_ylabel(p.ylabel)
        if p.log_y:                                # 0.1, 1, 10 rather than 10^-1
            lo, hi = ax.get_ylim()
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain if hi < 10 * lo else FuncFormatter(_two_five)
                                         if hi < 1000 * lo else NullFormatter())
        ax.grid(alpha=0.3)
        if len(ax.get_legend_handles_labels()[1]) > 1:
            ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)
