"""The one rich console of the command line. Piped output (logs, CI) gets 120 columns
instead of rich's 80, so the per-layer tables are not cut."""

from __future__ import annotations

import sys
from typing import Iterable, Sequence

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 120)


def rich_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]],
               right: Sequence[bool] | None = None, caption: str | None = None) -> Table:
    """A titled table of text cells; columns are right-aligned where ``right`` says
    (default: every column but the first, which names the row)."""
    right = right if right is not None else [i > 0 for i in range(len(columns))]
    table = Table(title=title, header_style="bold", caption=caption)
    for col, r in zip(columns, right):
        table.add_column(col, justify="right" if r else "left")
    for row in rows:
        table.add_row(*row)
    return table
