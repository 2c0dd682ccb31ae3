"""The host's cores for work split into independent parts: how many this process may use
(its CPU affinity: ``taskset -c 0 cimstack ...`` keeps cimstack on one core), and a map of
a function over parts on that many threads.

The parts' functions are expected to spend their time in code that releases the GIL
(numba ``nogil`` kernels, NumPy's BLAS products). While the parts run, BLAS keeps to one
thread per caller (threadpoolctl; the BLAS libraries loaded when the first split runs,
NumPy's among them): two layers of threads on the same cores only wait on
each other (in a measured ResNet18 run, parallel numba passes between BLAS products ran
4-9x slower than on one thread).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_blas = None                  # threadpoolctl's controller, made on first use
_PREFIX = "cimstack-part"      # the pool's thread names


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _shared_pool() -> tuple[ThreadPoolExecutor, object]:
    global _pool, _blas
    with _lock:
        if _pool is None:
            try:
                from threadpoolctl import ThreadpoolController
                _blas = ThreadpoolController()
            except ImportError:          # a board's Python: BLAS threads left as they are
                _blas = None
            _pool = ThreadPoolExecutor(usable_cores(), thread_name_prefix=_PREFIX)
        return _pool, _blas


def map_on_cores(fn: Callable[[T], R], parts: Sequence[T], blas: bool = True) -> list[R]:
    """``[fn(part) for part in parts]``, the first part in the calling thread and the
    others on a shared pool of :func:`usable_cores` threads, with BLAS on one thread
    each unless ``blas`` is False (parts that make no BLAS call: setting the BLAS
    threads costs about 0.2 ms a map); all in the calling thread when there is one part
    or one core, or when the caller is itself running a part (a nested map would wait on
    the threads it occupies). Every part has finished when this returns or raises; an exception of a
    part (the first in the parts' order) is raised here."""
    nested = threading.current_thread().name.startswith(_PREFIX)
    if len(parts) <= 1 or usable_cores() == 1 or nested:
        return [fn(part) for part in parts]
    pool, controller = _shared_pool()
    limit = blas and controller is not None
    with controller.limit(limits=1, user_api="blas") if limit else nullcontext():
        futures = [pool.submit(fn, part) for part in parts[1:]]
        try:
            first = fn(parts[0])
        finally:
            wait(futures)
    return [first, *(future.result() for future in futures)]
