"""Helpers for testing code that uses woflo, and runners built on it.

- `capture_events`: the woflo events a block of code emits.
- `RunnerKind` and `RunnerContract`: the Executor contract suite that every
  woflo runner passes, shipped so that a runner written elsewhere can run it
  (as ``trio.testing`` ships its stream checkers). `RunnerContract` needs
  pytest, which woflo itself does not: it is imported only when asked for.
- `tasks`: the task functions the suite submits, importable in worker processes.
- `wait_for`, `wait_for_file`, `wait_running`, `wait_freed`: wait on an event with a bound, not a sleep.

Example:
    >>> from woflo import SequentialRunner
    >>> from woflo.testing import capture_events
    >>> with capture_events() as events:
    ...     _ = SequentialRunner().submit(len, "abc")
    >>> [e["event"] for e in events]
    ['task.submitted', 'attempt.started', 'attempt.succeeded', 'task.succeeded']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from woflo.testing import tasks as tasks
from woflo.testing._events import CapturedEvents as CapturedEvents
from woflo.testing._events import capture_events as capture_events
from woflo.testing._kind import RunnerKind as RunnerKind
from woflo.testing._wait import wait_for as wait_for
from woflo.testing._wait import wait_for_file as wait_for_file
from woflo.testing._wait import wait_freed as wait_freed
from woflo.testing._wait import wait_running as wait_running

if TYPE_CHECKING:
    from woflo.testing.contract import RunnerContract as RunnerContract

__all__ = [
    "CapturedEvents",
    "RunnerContract",
    "RunnerKind",
    "capture_events",
    "tasks",
    "wait_for",
    "wait_for_file",
    "wait_freed",
    "wait_running",
]


def __getattr__(name: str) -> Any:
    # The contract suite needs pytest; `from woflo.testing import capture_events` must not.
    if name == "RunnerContract":
        from woflo.testing.contract import RunnerContract

        return RunnerContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
