"""woflo: concurrent.futures as it should have been.

Every runner is an `Executor`, every submission a `TaskRun` (a real `Future`),
with retries, per-attempt timeouts, stop, crash isolation and an event per
attempt on top.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from woflo._attempt import Attempt as Attempt
    from woflo._errors import AttemptTimeout as AttemptTimeout
    from woflo._errors import BrokenProcessRunner as BrokenProcessRunner
    from woflo._errors import BrokenRunner as BrokenRunner
    from woflo._errors import BrokenThreadRunner as BrokenThreadRunner
    from woflo._errors import DeadlineExceeded as DeadlineExceeded
    from woflo._errors import SerializationError as SerializationError
    from woflo._errors import UpstreamFailed as UpstreamFailed
    from woflo._errors import WofloError as WofloError
    from woflo._errors import WorkerCrashed as WorkerCrashed
    from woflo._executor import WofloExecutor as WofloExecutor
    from woflo._inputs import unresolved as unresolved
    from woflo._limits import Limit as Limit
    from woflo._limits import limit as limit
    from woflo._looprun import RunCancelled as RunCancelled
    from woflo._policy import Policy as Policy
    from woflo._progress import Progress as Progress
    from woflo._progress import progress as progress
    from woflo._runner import Runner as Runner
    from woflo._summary import Summary as Summary
    from woflo._summary import summary as summary
    from woflo._task import RunName as RunName
    from woflo._task import Task as Task
    from woflo._task import task as task
    from woflo._taskrun import AttemptRecord as AttemptRecord
    from woflo._taskrun import RunState as RunState
    from woflo._taskrun import TaskRun as TaskRun
    from woflo.log import configure_logging as configure_logging
    from woflo.runners.aio import AsyncRunner as AsyncRunner
    from woflo.runners.dask import DaskRunner as DaskRunner
    from woflo.runners.pool import PoolRunner as PoolRunner
    from woflo.runners.process import ProcessRunner as ProcessRunner
    from woflo.runners.sequential import SequentialRunner as SequentialRunner
    from woflo.runners.thread import ThreadRunner as ThreadRunner

__version__ = "0.9.0.dev0"

__all__ = [
    "AsyncRunner",
    "Attempt",
    "AttemptRecord",
    "AttemptTimeout",
    "BrokenProcessRunner",
    "BrokenRunner",
    "BrokenThreadRunner",
    "DaskRunner",
    "DeadlineExceeded",
    "Limit",
    "Policy",
    "PoolRunner",
    "Progress",
    "RunName",
    "RunState",
    "ProcessRunner",
    "RunCancelled",
    "Runner",
    "SequentialRunner",
    "SerializationError",
    "Summary",
    "Task",
    "TaskRun",
    "ThreadRunner",
    "UpstreamFailed",
    "WofloError",
    "WofloExecutor",
    "WorkerCrashed",
    "configure_logging",
    "limit",
    "progress",
    "summary",
    "task",
    "unresolved",
    "__version__",
]


# Where each public name lives. `import woflo` imports none of them: a name
# is imported the first time it is read (``woflo.task``, ``from woflo import
# ProcessRunner``), so a script pays for the process pool (loky, cloudpickle,
# multiprocessing), tenacity, structlog or asyncio only if it uses what needs
# them, and ``distributed`` only with DaskRunner. See docs/architecture.md.
_LAZY: dict[str, str] = {
    "Attempt": "woflo._attempt",
    "AttemptTimeout": "woflo._errors",
    "BrokenProcessRunner": "woflo._errors",
    "BrokenRunner": "woflo._errors",
    "BrokenThreadRunner": "woflo._errors",
    "DeadlineExceeded": "woflo._errors",
    "SerializationError": "woflo._errors",
    "UpstreamFailed": "woflo._errors",
    "WofloError": "woflo._errors",
    "WorkerCrashed": "woflo._errors",
    "WofloExecutor": "woflo._executor",
    "unresolved": "woflo._inputs",
    "Limit": "woflo._limits",
    "limit": "woflo._limits",
    "RunCancelled": "woflo._looprun",
    "Policy": "woflo._policy",
    "Progress": "woflo._progress",
    "progress": "woflo._progress",
    "Runner": "woflo._runner",
    "Summary": "woflo._summary",
    "summary": "woflo._summary",
    "RunName": "woflo._task",
    "Task": "woflo._task",
    "task": "woflo._task",
    "AttemptRecord": "woflo._taskrun",
    "RunState": "woflo._taskrun",
    "TaskRun": "woflo._taskrun",
    "configure_logging": "woflo.log",
    "AsyncRunner": "woflo.runners.aio",
    "PoolRunner": "woflo.runners.pool",
    "ProcessRunner": "woflo.runners.process",
    "SequentialRunner": "woflo.runners.sequential",
    "ThreadRunner": "woflo.runners.thread",
    "DaskRunner": "woflo.runners.dask",
}


def __getattr__(name: str) -> Any:
    """Import the public name ``name`` on first use, and keep it as a module attribute.

    Raises:
        AttributeError: ``name`` is not one of woflo's public names.
        ImportError: what it needs is missing (say ``distributed`` for
            ``DaskRunner``): raised here, at first use, with the missing module named.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later reads are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
