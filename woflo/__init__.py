"""woflo: concurrent.futures as it should have been.

Every runner is an `Executor`, every submission a `TaskRun` (a real `Future`),
with retries, per-attempt timeouts, stop, crash isolation and an event per
attempt on top.
"""

from typing import TYPE_CHECKING, Any

from woflo._attempt import Attempt as Attempt
from woflo._errors import AttemptTimeout as AttemptTimeout
from woflo._errors import BrokenProcessRunner as BrokenProcessRunner
from woflo._errors import BrokenRunner as BrokenRunner
from woflo._errors import BrokenThreadRunner as BrokenThreadRunner
from woflo._errors import DeadlineExceeded as DeadlineExceeded
from woflo._errors import SerializationError as SerializationError
from woflo._errors import WofloError as WofloError
from woflo._errors import WorkerCrashed as WorkerCrashed
from woflo._executor import WofloExecutor as WofloExecutor
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
from woflo.runners.pool import PoolRunner as PoolRunner
from woflo.runners.process import ProcessRunner as ProcessRunner
from woflo.runners.sequential import SequentialRunner as SequentialRunner
from woflo.runners.thread import ThreadRunner as ThreadRunner

if TYPE_CHECKING:
    from woflo.runners.dask import DaskRunner as DaskRunner

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
    "WofloError",
    "WofloExecutor",
    "WorkerCrashed",
    "configure_logging",
    "progress",
    "summary",
    "task",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # DaskRunner imports lazily: `import woflo` must not need (or load) distributed.
    if name == "DaskRunner":
        from woflo.runners.dask import DaskRunner

        return DaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
