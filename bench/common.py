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


def interleaved_times(fns: dict, repeat: int = 5) -> dict:
    """Wall times in seconds of each function of ``fns`` (name -> function): one
    warm-up call each, then ``repeat`` rounds calling each once, so that every function
    sees the same machine load (the cores are shared); name -> the ``repeat`` times."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def interleaved_medians(fns: dict, repeat: int = 5) -> dict:
    """Median of each function's :func:`interleaved_times`."""
    return {name: float(np.median(t)) for name, t in interleaved_times(fns, repeat).items()}


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
