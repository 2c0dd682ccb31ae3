"""Design-space sweeps: a grid of design points per macro family, each trained model
shared by the points that need it, run on a local process pool or a Dask cluster,
resumable, written to one results table (docs/sweep.md)."""

from .engines import SweepError
from .grid import DEFAULT_GRID, expand, load_grid, merge_sets, parse_sets
from .runner import COLUMNS, SweepProgress, SweepResult, run_sweep

__all__ = ["run_sweep", "SweepResult", "SweepProgress", "SweepError", "COLUMNS",
           "DEFAULT_GRID", "load_grid", "parse_sets", "merge_sets", "expand"]
