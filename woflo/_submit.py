"""What a submission runs and under which name, and `map`'s order-keeping submission."""

from __future__ import annotations

import collections
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TypeVar

from woflo._names import callable_name
from woflo._policy import Policy
from woflo._taskrun import TaskRun

__all__ = ["chain_results", "check_map_args", "map_total", "submit_ahead", "RunNaming", "task_name", "unwrap_task"]

T = TypeVar("T")


def task_name(fn: Callable[..., Any]) -> str:
    """The name events, reprs and messages use for ``fn``: names only, never values (`callable_name`)."""
    return callable_name(fn)


#: Names a run from its call's ``(args, kwargs)``: a task's ``run_name``.
RunNaming = Callable[[tuple[Any, ...], dict[str, Any]], str]


def unwrap_task(
    fn: Callable[..., Any], policy: Policy
) -> tuple[Callable[..., Any], Policy, str | None, RunNaming | None]:
    """A `@task` handed to an executor runs its plain function under its own policy.

    Returns the function to call, the policy, the task's name (``None`` for a
    plain callable: named by `task_name`) and, for a task with a
    ``run_name``, what names each run from its arguments.
    """
    unwrap = getattr(fn, "_woflo_unwrap", None)
    if unwrap is None:
        return fn, policy, None, None
    result: tuple[Callable[..., Any], Policy, str | None, RunNaming | None] = unwrap()
    return result


def check_map_args(timeout: object, chunksize: object, buffersize: object) -> None:
    """Check ``map``'s options at the call, as the stdlib would if it checked.

    Raises:
        TypeError: a value of the wrong type (a bool where a number is expected, ``chunksize="2"``).
        ValueError: ``chunksize < 1``, ``buffersize < 1``, or a NaN ``timeout``.
    """
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
        if math.isnan(timeout):
            raise ValueError("timeout must be a number of seconds, not NaN")
    if isinstance(chunksize, bool) or not isinstance(chunksize, int):
        raise TypeError(f"chunksize must be an int, not {type(chunksize).__name__}")
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1.")
    if buffersize is not None and (isinstance(buffersize, bool) or not isinstance(buffersize, int)):
        raise TypeError("buffersize must be an int or None")
    if buffersize is not None and buffersize < 1:
        raise ValueError("buffersize must be None or >= 1")


def submit_ahead(
    submissions: Iterator[TaskRun[T]],
    buffersize: int | None,
    end: float | None,
    *,
    progress: bool = False,
    total: int | None = None,
) -> Iterator[T]:
    """Order-keeping results of ``submissions`` (a lazy iterator of submits).

    With ``progress=True`` the runs' progress is shown (`woflo.progress`)
    until the results are consumed or the iterator is closed; ``total`` is
    how many runs to expect, if known (`map_total`).

    With ``buffersize=None`` everything is submitted before the first result
    is asked for, as the stdlib's map does; with a number, only that many runs
    are in flight and each result consumed submits the next, so a huge or
    endless input is never read ahead (Python 3.14's ``buffersize``).

    A result handed out is no longer referenced here (CPython gh-58592, the
    stdlib's map pops its futures likewise): once the caller drops it, it is freed.
    """
    check_map_args(None, 1, buffersize)
    if progress:
        from woflo._progress import map_progress  # only when asked: keeps import woflo light

        submissions, closing = map_progress(submissions, total)
        runs = collections.deque(submissions if buffersize is None else itertools.islice(submissions, buffersize))
        return closing(_results_in_order(runs, submissions if buffersize is not None else None, end))
    runs = collections.deque(submissions if buffersize is None else itertools.islice(submissions, buffersize))
    return _results_in_order(runs, submissions if buffersize is not None else None, end)


def map_total(iterables: tuple[Iterable[Any], ...], chunksize: int = 1) -> int | None:
    """How many runs ``map`` will make of ``iterables`` (chunks of ``chunksize``), if they all have a length."""
    if not iterables or not all(isinstance(it, Sized) for it in iterables):
        return None
    n = min(len(it) for it in iterables)  # type: ignore[arg-type]
    return -(-n // chunksize)


def _results_in_order(
    runs: collections.deque[TaskRun[T]], refill: Iterator[TaskRun[T]] | None, end: float | None
) -> Iterator[T]:
    # A generator of its own so that the first submissions happen at the map
    # call, not at the first next().
    try:
        while runs:
            # The result goes straight from the run to the caller: no local
            # of this frame holds it (or its run) while the caller has it.
            yield _next_result(runs, refill, end)
    finally:
        for run in runs:
            run._cancel_because("cancelled before it started: its map() iterator was closed or failed")


def _next_result(runs: collections.deque[TaskRun[T]], refill: Iterator[TaskRun[T]] | None, end: float | None) -> T:
    run = runs.popleft()
    try:
        if refill is not None:
            following = next(refill, None)
            if following is not None:
                runs.append(following)
        return run.result(None if end is None else end - time.monotonic())
    finally:
        run._cancel_because("cancelled before it started: its map() iterator was closed or failed")


def chain_results(chunks: Iterator[list[T]]) -> Iterator[T]:
    """The items of each chunk's list of results, in order, each dropped once handed out.

    ``itertools.chain`` would keep every item of a chunk alive until the
    chunk is exhausted; the stdlib's ``_chain_from_iterable_of_lists`` pops them.
    """
    for chunk in chunks:
        chunk.reverse()
        while chunk:
            yield chunk.pop()
