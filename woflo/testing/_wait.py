"""Waiting on an event with a bound, instead of sleeping."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for", "wait_for_file", "wait_freed", "wait_running"]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true.

    Raises:
        AssertionError: still false after ``timeout`` seconds (the message names ``what``).
    """
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


def wait_freed(ref: Callable[[], object], what: str = "the object", timeout: float = 10.0) -> None:
    """Wait until weak reference ``ref`` is dead (collecting garbage meanwhile).

    A backend thread may hold a result for the moment it takes to return from
    delivering it (CPython's own test of this polls too): what matters is that
    nothing keeps it for good.

    Raises:
        AssertionError: still alive after ``timeout`` seconds.
    """
    wait_for(lambda: gc.collect() is not None and ref() is None, timeout, f"{what} to be freed")


def wait_for_file(path: str, timeout: float = 10.0) -> None:
    """Wait until ``path`` exists (a task writes it to say it got somewhere).

    Raises:
        AssertionError: it does not exist after ``timeout`` seconds.
    """
    wait_for(lambda: os.path.exists(path), timeout, f"file {path}")


def wait_running(run: Any, started: str, timeout: float = 30.0) -> None:
    """Wait until ``run``'s task has written the file ``started`` and the runner marks the run running.

    A runner may learn of a start a moment after the task itself (a process
    runner does): until then the run is pending, can be cancelled, and its
    worker counts as free.

    Raises:
        AssertionError: either did not happen within ``timeout`` seconds.
    """
    wait_for_file(started, timeout)
    wait_for(run.running, timeout, f"{run!r} to be marked running")
