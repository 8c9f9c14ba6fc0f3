"""The runners every contract test runs on: add a runner here and it gets the suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from woflo import AsyncRunner, ProcessRunner, SequentialRunner, ThreadRunner, WofloExecutor
from woflo._runner import Runner
from woflo.runners.thread import check_max_workers


@dataclass(frozen=True)
class RunnerKind:
    """How to build a runner for the tests, and what it can do."""

    name: str
    make: Callable[..., Any]  # make(max_workers=2, **policy) -> Executor with woflo's API
    inline: bool = False  # submit runs the task before returning
    interrupts: bool = True  # a timeout or stop ends a running attempt early
    sized: bool = True  # has max_workers, so runs can wait for a worker
    remote: bool = False  # runs in other processes (no shared memory)


def _sequential(max_workers: int = 2, **options: Any) -> Runner:
    return SequentialRunner(**options)


def _async(max_workers: int = 2, **options: Any) -> Runner:
    # max_workers maps to max_concurrency: runs wait for a slot as for a worker.
    return AsyncRunner(max_concurrency=check_max_workers(max_workers), **options)


RUNNER_KINDS: list[RunnerKind] = [
    RunnerKind("sequential", _sequential, inline=True, interrupts=False, sized=False),
    RunnerKind("thread", lambda max_workers=2, **kw: ThreadRunner(max_workers, **kw)),
    RunnerKind(
        "executor-thread",
        lambda max_workers=2, **kw: WofloExecutor(max_workers, runner=ThreadRunner, **kw),
    ),
    RunnerKind("async", _async),
    # "process" is the default start method, woflo's "exec"; loky's keeps its coverage.
    RunnerKind("process", lambda max_workers=2, **kw: ProcessRunner(max_workers, **kw), remote=True),
    RunnerKind(
        "process-loky",
        lambda max_workers=2, **kw: ProcessRunner(max_workers, start_method="loky", **kw),
        remote=True,
    ),
    RunnerKind(
        "process-spawn",
        lambda max_workers=2, **kw: ProcessRunner(max_workers, start_method="spawn", **kw),
        remote=True,
    ),
    RunnerKind(
        "process-forkserver",
        lambda max_workers=2, **kw: ProcessRunner(max_workers, start_method="forkserver", **kw),
        remote=True,
    ),
    RunnerKind(
        "executor-process",
        lambda max_workers=2, **kw: WofloExecutor(max_workers, **kw),
        remote=True,
    ),
]


def _dask(max_workers: int = 2, **options: Any) -> Runner:
    # The shared 2-worker cluster of tests/dask_cluster.py; max_workers is its size.
    import dask_cluster

    from woflo.runners.dask import DaskRunner

    return DaskRunner(dask_cluster.client(), **options)


try:
    import distributed  # noqa: F401
except ImportError:  # the Dask extra is optional
    pass
else:
    # interrupts=False: Dask cannot stop a task a worker is running (the run
    # ends at once, the worker keeps going). sized=False: every attempt goes to
    # the scheduler at submit, so no run waits in woflo for a worker (cancel()
    # of a submitted run returns False; stop() it instead).
    RUNNER_KINDS.append(RunnerKind("dask", _dask, interrupts=False, sized=False, remote=True))
