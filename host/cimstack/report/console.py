"""The one rich console of the command line. Piped output (logs, CI) gets 120 columns
instead of rich's 80, so the per-layer tables are not cut."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Iterable, Iterator, Sequence

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


class StepStatus:
    """What a long step is doing; piped, printed as a plain line every ``interval`` s."""

    def __init__(self, text: str, interval: float):
        self.text = text
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def update(self, text: str) -> None:
        self.text = text

    def _beat(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(self.interval):
            console.print(f"{self.text} ... {time.monotonic() - t0:.0f} s", markup=False,
                          highlight=False)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1.0)


@contextlib.contextmanager
def long_step(text: str, interval: float = 5.0, live: bool = True) -> Iterator:
    """Show that a long step is running; yields a handle with ``update(text)``.

    On a terminal: rich's spinner with ``text`` (nothing when ``live`` is False, for
    steps that draw their own progress bar). Piped (logs, CI), where rich draws
    nothing: a plain line ``text ... N s`` every ``interval`` seconds until the step ends.
    """
    if console.is_terminal:
        if live:
            with console.status(text) as status:
                yield status
        else:
            yield StepStatus(text, interval)          # updates go nowhere
        return
    step = StepStatus(text, interval)
    step.start()
    try:
        yield step
    finally:
        step.stop()
