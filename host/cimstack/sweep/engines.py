"""Where a sweep's tasks run: a local process pool, an existing Dask cluster, or this
process.

Every engine has one small interface: :meth:`submit` a top-level function with
picklable arguments and get a future; :meth:`completed` waits (with a time limit) until
at least one of some futures has finished; :meth:`share` turns an object many tasks
take (a trained model) into an argument that travels once; :meth:`close`.

Every wait is bounded. A cluster address that is not ``tcp://HOST:PORT`` is refused
before anything connects; one where nothing listens fails at once; a program there that
does not answer as a Dask scheduler, or a scheduler without workers, fails after
``connect_timeout`` seconds. Each is one :class:`SweepError` (or :class:`ConfigError`),
with Dask's own log messages kept off the console.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import socket
import uuid
from typing import Any, Callable, Collection, Iterator
from urllib.parse import urlsplit

from ..errors import CimstackError, ConfigError


class SweepError(CimstackError, RuntimeError):
    """The sweep could not run: engine unreachable, tasks stuck or lost."""


class PoolEngine:
    """A local pool of ``workers`` processes (default: one per core). Processes are
    spawned, not forked, so each starts clean (no inherited torch threads)."""

    def __init__(self, workers: int | None = None):
        self.workers = (os.cpu_count() or 1) if workers is None else int(workers)
        if self.workers < 1:
            raise ConfigError(f"--workers {workers}: give at least 1 process (0: run the "
                              "tasks in this process)")
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


class InlineEngine:
    """The tasks run in this process, one after another, when submitted: for debugging,
    and for macro families registered at run time (a pool's or a cluster's workers
    start fresh interpreters that know only the families ``import cimstack``
    registers)."""

    workers = 0
    name = "this process"

    def submit(self, fn: Callable, *args: Any, tag: str = "") -> cf.Future:
        """Run ``fn(*args)`` now; the future holds its result or its exception."""
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:                # the task's own error, as a pool reports it
            future.set_exception(exc)
        return future

    def share(self, obj: Any) -> Any:
        return obj

    def completed(self, futures: Collection, timeout: float) -> set:
        """Every future of ``futures`` (all finished when submitted)."""
        return set(futures)

    def close(self, cancel: bool = False) -> None:
        """Nothing to shut down."""


# the loggers Dask's client and its event loop report a failed connection through
_DASK_LOGGERS = ("distributed", "tornado", "asyncio")


def cluster_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of a Dask scheduler address ``tcp://HOST:PORT`` (or
    ``HOST:PORT``); :class:`ConfigError` when it is not one."""
    text = str(address).strip()
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        port = parts.port
    except ValueError:
        port = -1                                   # not a number or out of 0..65535
    if (parts.scheme != "tcp" or not parts.hostname or port is None
            or not 1 <= port <= 65535 or parts.path or parts.query or parts.fragment):
        raise ConfigError(f"--cluster {address!r} is not a Dask scheduler address: give "
                          "tcp://HOST:PORT with a port in 1..65535, as `dask scheduler` "
                          "prints it (e.g. tcp://127.0.0.1:8786)")
    return parts.hostname, port


@contextlib.contextmanager
def _dask_quiet() -> Iterator[None]:
    """Keep Dask's connection retries and teardown messages off the console: a failed
    connection is reported once, as a :class:`SweepError`."""
    loggers = [logging.getLogger(name) for name in _DASK_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _server_kind(address: str, timeout: float) -> str:
    """What the Dask server at ``address`` says it is (``"Scheduler"``, ``"Worker"``),
    or ``""`` when no Dask answer arrives within ``timeout`` seconds (another program
    on that port). Dask's own client waits forever for an answer that never comes."""
    import asyncio

    from distributed.core import rpc

    async def ask() -> str:
        async with rpc(address, timeout=timeout) as server:
            answer = await asyncio.wait_for(server.identity(), timeout)
        return str(answer.get("type", "")) if isinstance(answer, dict) else ""

    # a fresh event loop in a thread of its own: callers may be inside a running loop
    with cf.ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(asyncio.run, ask()).result()
        except Exception:            # whatever went wrong, no scheduler answered
            return ""


class DaskEngine:
    """A running Dask scheduler at ``address`` (``tcp://HOST:PORT``) and its workers."""

    def __init__(self, address: str, connect_timeout: float = 10.0):
        host, port = cluster_address(address)
        address = f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
        unreachable = (f"cannot reach a Dask scheduler at {address} within "
                       f"{connect_timeout:g} s ({{}}); start one with `dask scheduler` and "
                       f"workers with `dask worker {address}` (docs/sweep.md), or drop "
                       "--cluster to use the local pool")
        try:                    # nothing listening: say so at once, without Dask's retries
            socket.create_connection((host, port), timeout=connect_timeout).close()
        except OSError as exc:
            raise SweepError(unreachable.format(exc.strerror or exc)) from None
        with _dask_quiet():
            kind = _server_kind(address, connect_timeout)
        if kind != "Scheduler":
            raise SweepError(unreachable.format(
                f"a Dask {kind} answers there, not a scheduler" if kind else
                "something answers there, but not Dask's protocol"))
        from distributed import Client
        with _dask_quiet():
            try:
                self._client = Client(address, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise SweepError(unreachable.format(exc)) from None
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
                connect_timeout: float = 10.0) -> PoolEngine | DaskEngine | InlineEngine:
    """The Dask cluster at ``cluster`` when given, else a local pool of ``workers``
    (``workers`` 0: this process)."""
    if cluster is not None:
        return DaskEngine(cluster, connect_timeout)
    return InlineEngine() if workers == 0 else PoolEngine(workers)
