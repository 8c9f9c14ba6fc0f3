"""What a submission runs and under which name, and `map`'s order-keeping submission."""

from __future__ import annotations

import collections
import functools
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from woflo._policy import Policy
from woflo._taskrun import TaskRun

__all__ = ["submit_ahead", "task_name", "unwrap_task"]

T = TypeVar("T")


def task_name(fn: Callable[..., Any]) -> str:
    """The name events and reprs use for ``fn``."""
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def unwrap_task(fn: Callable[..., Any], policy: Policy) -> tuple[Callable[..., Any], Policy, str | None]:
    """A `@task` handed to an executor runs its plain function under its own policy."""
    unwrap = getattr(fn, "_woflo_unwrap", None)
    if unwrap is None:
        return fn, policy, None
    result: tuple[Callable[..., Any], Policy, str | None] = unwrap()
    return result


def submit_ahead(submissions: Iterator[TaskRun[T]], buffersize: int | None, end: float | None) -> Iterator[T]:
    """Order-keeping results of ``submissions`` (a lazy iterator of submits).

    With ``buffersize=None`` everything is submitted before the first result
    is asked for, as the stdlib's map does; with a number, only that many runs
    are in flight and each result consumed submits the next, so a huge or
    endless input is never read ahead (Python 3.14's ``buffersize``).
    """
    if buffersize is not None and (isinstance(buffersize, bool) or not isinstance(buffersize, int)):
        raise TypeError("buffersize must be an int or None")
    if buffersize is not None and buffersize < 1:
        raise ValueError("buffersize must be None or >= 1")
    runs = collections.deque(submissions if buffersize is None else itertools.islice(submissions, buffersize))
    return _results_in_order(runs, submissions if buffersize is not None else None, end)


def _results_in_order(
    runs: collections.deque[TaskRun[T]], refill: Iterator[TaskRun[T]] | None, end: float | None
) -> Iterator[T]:
    # A generator of its own so that the first submissions happen at the map
    # call, not at the first next().
    try:
        while runs:
            run = runs.popleft()
            if refill is not None:
                following = next(refill, None)
                if following is not None:
                    runs.append(following)
            try:
                yield run.result(None if end is None else end - time.monotonic())
            finally:
                run.cancel()
    finally:
        for run in runs:
            run.cancel()
