"""Checks of numeric command-line flags, run by typer while it parses the command line,
so a bad value is a usage error (exit 2) before the command does any work.

- an integer flag takes typer's ``min=`` / ``max=``; where the flag is a knob of a macro
  spec, :func:`knob_limits` gives the spec's own range (``**knob_limits(AcimSpec,
  "adc_bits")``), so a range is written once;
- a float flag takes ``callback=finite(lo, hi)``: typer's float range lets NaN through
  (every comparison with NaN is False), :func:`cimstack.config.check_range` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer

from .config import check_range, knob_bounds
from .errors import ConfigError
from .events.core import FIT_MODES

SEED_MAX = 2**32 - 1          # numpy and torch seeds, and AcimSpec.seed: 0..2^32-1
EPOCHS_MAX = 1000             # the sweep's bound on training epochs (sweep.points)
SEARCH_HOLDOUT = 0.25         # share of the labelled images a design search holds out

# --force: a folder cimstack did not write (no .cimstack marker; cimstack.fileio)
FORCE_HELP = "replace an --out folder that cimstack did not write (its files are lost)"
FORCE_WRITE_HELP = "write into a folder that cimstack did not write (nothing in it is deleted)"

def _fit_mode(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in FIT_MODES:
        raise typer.BadParameter(f"{value!r}: choose one of {', '.join(FIT_MODES)}")
    return value


# --fit: event data from a larger sensor moved onto an SNN bundle's input (--data)
SNN_FIT = typer.Option(
    None, "--fit", callback=_fit_mode,
    help="SNN bundles with --data from a larger sensor (e.g. 128x128 DVS Gesture): move "
         "its events onto the bundle's input by 'crop' (the centre window) or 'downsample' "
         "(x and y divided by one integer factor, then the centre window)")


def knob_limits(spec: type, name: str) -> dict[str, Any]:
    """``{"min": lo, "max": hi}`` of the knob ``name`` of ``spec``, for ``typer.Option``."""
    lo, hi = knob_bounds(spec, name)
    return {"min": lo, "max": hi}


def knob_range(spec: type, name: str) -> tuple[float, float]:
    """``(lo, hi)`` of the knob ``name`` of ``spec``."""
    limits = knob_limits(spec, name)
    return limits["min"], limits["max"]


def finite(lo: float, hi: float, below_hi: bool = False) -> Callable:
    """Typer callback of a float flag: a finite number in ``[lo, hi]`` (``[lo, hi)`` when
    ``below_hi``); ``None`` (flag not given) passes."""
    def check(param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return value
        flag = param.opts[0] if param.opts else param.name
        try:
            check_range(flag, value, lo, hi, integer=False, below_hi=below_hi)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc)) from None
        return value
    return check


def seconds() -> Callable:
    """Typer callback of a timeout flag: finite seconds in [0.001, 86400] (a day)."""
    return finite(0.001, 86400.0)


def overlay_file(path: Optional[Path]) -> Optional[Path]:
    """Typer callback of ``--bitfile``: the user's overlay (the .bit, its .hwh beside it,
    built for the board's part) is checked before any work starts."""
    if path is not None:
        from .overlay_shape import check_handoff
        check_handoff(path)
    return path
