"""map_on_cores: every part's result in order, a part's error raised to the caller, BLAS
on one thread while the parts run and as before afterwards."""

import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from threadpoolctl import threadpool_info

from cimstack import threads
from cimstack.threads import map_on_cores


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=9), st.integers(1, 4))
@example([], 2)
@example([7], 2)                              # one part: the calling thread
def test_results_in_the_order_of_the_parts(parts, cores):
    saved, threads.usable_cores = threads.usable_cores, lambda: cores
    try:
        assert map_on_cores(lambda v: v * 3 + 1, parts) == [v * 3 + 1 for v in parts]
    finally:
        threads.usable_cores = saved


def test_parts_run_on_several_threads_with_blas_on_one(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    # a pool made now: its BLAS controller knows every BLAS library loaded by now (it
    # limits those loaded when the first split runs, NumPy's among them)
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "_blas", None)
    before = _blas_threads()
    seen, barrier = [], threading.Barrier(2, timeout=30)

    def part(_):
        barrier.wait()                        # both parts at once, or a timeout error
        seen.append((threading.get_ident(), _blas_threads()))
        return np.ones((4, 4)) @ np.ones((4, 4))

    results = map_on_cores(part, [0, 1])
    assert len({ident for ident, _ in seen}) == 2
    assert all(counts and set(counts) == {1} for _, counts in seen), seen
    assert _blas_threads() == before
    np.testing.assert_array_equal(results[1], np.full((4, 4), 4.0))
    seen.clear()                              # parts without BLAS calls: left as it is
    map_on_cores(part, [0, 1], blas=False)
    assert [counts for _, counts in seen] == [before, before]


def test_an_error_in_a_part_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)

    finished = []

    def part(v):
        if v == 0:
            raise ValueError("part 0 failed")  # in the calling thread, at once
        time.sleep(0.2)
        finished.append(v)
        return v

    with pytest.raises(ValueError, match="part 0 failed"):
        map_on_cores(part, [0, 1, 2, 3])
    assert sorted(finished) == [1, 2, 3]      # the others had finished when it was raised


def test_without_threadpoolctl_the_parts_still_run(monkeypatch):
    """A board's Python has NumPy and pynq only: no BLAS control, the same results."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "_blas", None)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)     # importing it fails
    assert map_on_cores(lambda v: v + 1, [1, 2, 3]) == [2, 3, 4]
    assert threads._blas is None and threads._pool is not None


def test_a_map_inside_a_part_runs_in_that_part(monkeypatch):
    """Parts that map again (on every pool thread at once) finish: the inner maps run in
    their part's thread instead of waiting for the occupied pool."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    barrier = threading.Barrier(2, timeout=30)

    def part(v):
        barrier.wait()                        # both pool threads busy with a part
        return sum(map_on_cores(lambda u: u * v, [1, 2, 3]))

    result = []
    outer = threading.Thread(target=lambda: result.append(map_on_cores(part, [1, 10])),
                             daemon=True)             # a deadlock fails, it does not hang
    outer.start()
    outer.join(timeout=60)
    assert result == [[6, 60]], "the nested map did not finish within 60 s"
