"""Waiting on events with a bound, instead of sleeping, and what tests count to find leaks.

One helper per purpose: tests import these instead of writing their own poll
loops, pid checks or fd listings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

# One helper per purpose: the waits are the ones woflo.testing ships.
from woflo.testing import wait_for, wait_for_file, wait_freed, wait_running  # noqa: F401


async def wait_for_async(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """`wait_for` for a coroutine: polls without blocking the event loop."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.001)


def generous(seconds: float, cap: float = 20.0) -> float:
    """``seconds`` scaled by how slow this machine is right now, for a time limit a task must beat.

    A test whose task must reach a point before its own timeout (to show the
    timeout kills what it started) cannot use a fixed number: on a loaded
    machine starting a process alone can take longer. The scale is how long
    an interpreter takes to start now against 50 ms (a quiet machine's), at
    least 1; the result is at most ``cap`` seconds.
    """
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
    return min(cap, seconds * max(1.0, (time.monotonic() - t0) / 0.05))


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie left to a non-reaping parent counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Wait until ``pid`` has ended, without reaping it (its parent may be a pool that reaps its own)."""
    wait_for(lambda: gone(pid), timeout, f"pid {pid} to exit")


def _dask_worker_pids() -> set[int]:
    # The session's Dask cluster (if a Dask test started it) has worker
    # processes of its own, which its nanny restarts at any time after a test
    # killed one: not woflo's to count.
    import dask_cluster

    client = dask_cluster._state.get("client")
    if client is None:
        return set()
    return set(client.run(os.getpid).values())


def child_pids() -> set[int]:
    """This process's live descendants, the session's Dask cluster left out."""
    children = {p.pid for p in psutil.Process().children(recursive=True) if not gone(p.pid)}
    return children - _dask_worker_pids()


def open_fds() -> set[str]:
    """This process's open fds other than sockets, as ``"fd -> target"``.

    Sockets are left out: the session's Dask cluster (tests/dask_cluster.py)
    opens and closes its own connections at any time.
    """
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while we looked
        if not target.startswith("socket:"):
            fds.add(f"{fd} -> {target}")
    return fds


def woflo_threads() -> set[threading.Thread]:
    """The live threads woflo started (their names start with ``woflo``)."""
    return {t for t in threading.enumerate() if t.name.startswith("woflo")}


def snapshot() -> tuple[set[int], set[str], set[threading.Thread]]:
    """Child processes, open non-socket fds and woflo's threads, to compare before and after."""
    return child_pids(), open_fds(), woflo_threads()


def assert_nothing_new(before: tuple[set[int], set[str], set[threading.Thread]], timeout: float = 30.0) -> None:
    """Wait until no process, fd or thread exists that was not in ``before`` (a `snapshot`).

    A subset check, not equality: what other tests left behind may end
    meanwhile, and that is not the test's business.
    """
    checks: list[tuple[str, Callable[[], set[object]]]] = [
        ("child processes", lambda: set(child_pids() - before[0])),
        ("woflo threads", lambda: set(woflo_threads() - before[2])),
        ("fds", lambda: set(open_fds() - before[1])),
    ]
    for what, new in checks:
        try:
            wait_for(lambda: not new(), timeout, f"new {what} to end")
        except AssertionError:
            raise AssertionError(f"{what} left behind: {sorted(map(str, new()))}") from None


class Collect(logging.Handler):
    """A logging handler that keeps every record it is handed, at every level (``records``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, run: Any) -> list[logging.LogRecord]:
        """The records that carry ``run``'s ``run_id`` (logged inside its task)."""
        return [r for r in self.records if getattr(r, "run_id", None) == run.run_id]
