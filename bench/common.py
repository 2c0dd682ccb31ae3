"""Helpers shared by the benchmarks: timing, machine description, result files."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from cimstack.fileio import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` calls, in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def machine() -> dict:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine()}


def record(name: str, figures: dict) -> Path:
    """Print the figures, write bench/results/<name>.json atomically, return its path."""
    for key, value in figures.items():
        print(f"{key:>32}: {value:.4g}" if isinstance(value, float) else f"{key:>32}: {value}")
    path = write_json_atomic(RESULTS / f"{name}.json", {"machine": machine(), **figures})
    print(f"recorded in {path}")
    return path
