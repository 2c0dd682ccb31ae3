"""The one rich console of the command line. Piped output (logs, CI) gets 120 columns
instead of rich's 80, so the per-layer tables are not cut."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 120)
