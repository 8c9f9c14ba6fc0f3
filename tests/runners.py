"""The runners every contract test runs on: add a runner here and it gets the suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from woflo import SequentialRunner, ThreadRunner, WofloExecutor
from woflo._runner import Runner


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


RUNNER_KINDS: list[RunnerKind] = [
    RunnerKind("sequential", _sequential, inline=True, interrupts=False, sized=False),
    RunnerKind("thread", lambda max_workers=2, **kw: ThreadRunner(max_workers, **kw)),
    RunnerKind(
        "executor-thread",
        lambda max_workers=2, **kw: WofloExecutor(max_workers, runner=ThreadRunner, **kw),
    ),
]
