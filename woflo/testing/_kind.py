"""`RunnerKind`: how the contract suite builds a runner, and what the runner can do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RunnerKind"]


@dataclass(frozen=True)
class RunnerKind:
    """How to build a runner for the contract suite, and what it can do.

    The flags say which parts of the contract apply: a test of something the
    runner says it cannot do is skipped, with the reason, never failed.

    Args:
        name: the kind's name in test ids.
        make: ``make(max_workers=2, **policy)`` builds a fresh runner (a
            `woflo.Runner`, or an Executor with woflo's API such as
            `woflo.WofloExecutor`). The suite passes ``max_workers`` and any
            policy option (``retries=``, ``timeout=``...); a bad option must
            raise at this call, as `woflo.Runner` does. The suite shuts the
            runner down after each test.
        inline: ``submit`` runs the task before it returns.
        interrupts: a timeout or ``stop()`` ends a running attempt early (the
            task does not run to its end).
        sized: the runner has ``max_workers``: a run submitted while every
            worker is busy waits, pending, and ``cancel()`` of it succeeds;
            ``make(max_workers=0)`` raises ``ValueError``.
        remote: tasks run in other processes (arguments and results are pickled).
        closures: lambdas and closures can be submitted (they are sent by
            value, as cloudpickle does; the stdlib's pickle cannot).
        crash_isolated: a task that ends its worker process fails its own run
            with `woflo.WorkerCrashed`, and only that run.
        serialization_errors: an argument that cannot be pickled fails its run
            with `woflo.SerializationError` (never retried).

    Example:
        >>> from woflo import ThreadRunner
        >>> kind = RunnerKind("thread", lambda max_workers=2, **policy: ThreadRunner(max_workers, **policy))
        >>> with kind.make(retries=1) as runner:
        ...     runner.submit(abs, -3).result()
        3
    """

    name: str
    make: Callable[..., Any]
    inline: bool = False
    interrupts: bool = True
    sized: bool = True
    remote: bool = False
    closures: bool = True
    crash_isolated: bool = False
    serialization_errors: bool = False
