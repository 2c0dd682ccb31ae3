"""Where a sweep's tasks run: a local process pool, or an existing Dask cluster.

Both engines have one small interface: :meth:`submit` a top-level function with
picklable arguments and get a future; :meth:`completed` waits (with a time limit) until
at least one of some futures has finished; :meth:`share` turns an object many tasks
take (a trained model) into an argument that travels once; :meth:`close`. Every wait is bounded: a
cluster address nobody answers at fails after ``connect_timeout`` seconds, a scheduler
without workers too.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import uuid
from typing import Any, Callable, Collection

from ..errors import CimstackError, ConfigError


class SweepError(CimstackError, RuntimeError):
    """The sweep could not run: engine unreachable, tasks stuck or lost."""


class PoolEngine:
    """A local pool of ``workers`` processes (default: one per core). Processes are
    spawned, not forked, so each starts clean (no inherited torch threads)."""

    def __init__(self, workers: int | None = None):
        self.workers = (os.cpu_count() or 1) if workers is None else int(workers)
        if self.workers < 1:
            raise ConfigError(f"--workers {workers}: give at least 1 process")
        self.name = f"local pool of {self.workers} processes"
        self._pool = cf.ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable, *args: Any, tag: str = "") -> cf.Future:
        """Run ``fn(*args)`` in a worker process."""
        return self._pool.submit(fn, *args)

    def share(self, obj: Any) -> Any:
        """``obj`` as an argument for many tasks (a pool pickles it with each task)."""
        return obj

    def completed(self, futures: Collection, timeout: float) -> set:
        """The futures of ``futures`` that have finished, after waiting up to ``timeout``
        seconds for the first (empty when none did)."""
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return done

    def close(self, cancel: bool = False) -> None:
        """Shut the pool down; ``cancel`` drops queued tasks and ends running ones."""
        if not cancel:
            self._pool.shutdown(wait=True)
            return
        # the executor's worker processes (no public accessor before Python 3.14)
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:          # a stuck task must not keep the interpreter alive
            proc.terminate()


class DaskEngine:
    """A running Dask scheduler at ``address`` (``tcp://HOST:PORT``) and its workers."""

    def __init__(self, address: str, connect_timeout: float = 10.0):
        from distributed import Client
        try:
            self._client = Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(
                f"cannot reach a Dask scheduler at {address} within {connect_timeout:g} s "
                f"({exc}); start one with `dask scheduler` and workers with `dask worker "
                f"{address}` (docs/sweep.md), or drop --cluster to use the local pool"
            ) from None
        try:
            self._client.wait_for_workers(1, timeout=connect_timeout)
        except TimeoutError:
            self._client.close()
            raise SweepError(f"the Dask scheduler at {address} has no workers after "
                             f"{connect_timeout:g} s; start some with `dask worker {address}` "
                             "on machines with cimstack installed") from None
        self.workers = len(self._client.scheduler_info().get("workers", {}))
        self.name = f"Dask cluster {address} ({self.workers} workers)"

    def submit(self, fn: Callable, *args: Any, tag: str = "") -> Any:
        """Run ``fn(*args)`` on a worker; ``tag`` names the task on the dashboard."""
        key = f"cimstack-{tag or fn.__name__}-{uuid.uuid4().hex[:8]}"
        return self._client.submit(fn, *args, key=key, pure=False)

    def share(self, obj: Any) -> Any:
        """``obj`` sent to the cluster once; the handle stands for it in task arguments."""
        return self._client.scatter(obj, hash=False)

    def completed(self, futures: Collection, timeout: float) -> set:
        """As :meth:`PoolEngine.completed`."""
        from distributed import wait
        try:
            with self._client.as_current():
                done, _ = wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def close(self, cancel: bool = False) -> None:
        """Disconnect; the cluster releases this client's tasks (``cancel`` or not)."""
        self._client.close()


def open_engine(workers: int | None = None, cluster: str | None = None,
                connect_timeout: float = 10.0) -> PoolEngine | DaskEngine:
    """The Dask cluster at ``cluster`` when given, else a local pool of ``workers``."""
    if cluster:
        return DaskEngine(cluster, connect_timeout)
    return PoolEngine(workers)
