"""The runners every contract test runs on: add a runner here and it gets the suite.

`RUNNER_KINDS` are woflo's built-in runners: the whole contract runs on them,
the shipped part (`woflo.testing.RunnerContract`) and the CPython ports of
tests/contract/. `CONTRACT_KINDS` adds runners written only against the public
interface (`PoolRunner` over the stdlib's executors), which run the shipped
part through `AllKinds`.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from woflo import AsyncRunner, ProcessRunner, SequentialRunner, ThreadRunner, WofloExecutor
from woflo._runner import Runner
from woflo.runners.pool import PoolRunner
from woflo.runners.thread import check_max_workers
from woflo.testing import RunnerKind, tasks

__all__ = ["CONTRACT_KINDS", "RUNNER_KINDS", "AllKinds", "RunnerKind"]

# What woflo's own worker processes add to a remote runner: a task that kills
# its worker fails only its run (WorkerCrashed), and an argument that cannot be
# pickled fails its run with SerializationError.
_WOFLO_PROCESS = {"remote": True, "crash_isolated": True, "serialization_errors": True}


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
    RunnerKind("process", lambda max_workers=2, **kw: ProcessRunner(max_workers, **kw), **_WOFLO_PROCESS),
    RunnerKind(
        "process-loky",
        lambda max_workers=2, **kw: ProcessRunner(max_workers, start_method="loky", **kw),
        **_WOFLO_PROCESS,
    ),
    RunnerKind(
        "process-spawn",
        lambda max_workers=2, **kw: ProcessRunner(max_workers, start_method="spawn", **kw),
        **_WOFLO_PROCESS,
    ),
    RunnerKind(
        "process-forkserver",
        lambda max_workers=2, **kw: ProcessRunner(max_workers, start_method="forkserver", **kw),
        **_WOFLO_PROCESS,
    ),
    RunnerKind(
        "executor-process",
        lambda max_workers=2, **kw: WofloExecutor(max_workers, **kw),
        **_WOFLO_PROCESS,
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


def _pool(executor_class: type[Executor], *, warm: bool = False, **executor_options: Any) -> Callable[..., Runner]:
    """``make`` of a `PoolRunner` that owns a new ``executor_class(max_workers)``.

    ``warm``: start the executor's workers first. An attempt's timeout counts
    from its hand-over to the executor, so it also counts the start of a
    worker process that a ProcessPoolExecutor makes on demand; under load
    that took more than the 0.3 s timeout of a contract test. A user with
    short timeouts warms the pool the same way.
    """

    def make(max_workers: int = 2, **options: Any) -> Runner:
        executor = executor_class(max_workers, **executor_options)  # validates max_workers
        try:
            runner = PoolRunner(executor, max_workers=max_workers, own=True, **options)
        except BaseException:
            executor.shutdown(wait=True)  # a bad policy option: nothing left running
            raise
        if warm:
            # Submitted together, so no worker is idle yet: each starts a process.
            warming = [executor.submit(tasks.add, i) for i in range(max_workers)]
            cf.wait(warming, timeout=60)
        return runner

    return make


# The shipped contract's kinds: the built-in runners, then runners written only
# against the public interface. A PoolRunner cannot stop a running call
# (interrupts=False); over the stdlib's ProcessPoolExecutor, lambdas do not
# pickle, a dead worker breaks the whole pool (BrokenProcessPool), and an
# argument that does not pickle fails with pickle's own error.
CONTRACT_KINDS: list[RunnerKind] = [
    *RUNNER_KINDS,
    RunnerKind("pool-thread", _pool(ThreadPoolExecutor), interrupts=False),
    RunnerKind(
        "pool-process",
        # forkserver: fork() of this multi-threaded process warns on 3.12+.
        _pool(ProcessPoolExecutor, warm=True, mp_context=multiprocessing.get_context("forkserver")),
        interrupts=False,
        remote=True,
        closures=False,
    ),
]


class AllKinds:
    """Mixin for a `woflo.testing` contract class: run it on every kind of `CONTRACT_KINDS`."""

    @pytest.fixture(name="kind", params=CONTRACT_KINDS, ids=lambda k: k.name)
    def _contract_kind(self, request: pytest.FixtureRequest) -> RunnerKind:
        return request.param  # type: ignore[no-any-return]
