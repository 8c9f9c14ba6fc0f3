"""The runners: each one an Executor that runs attempts its own way.

``woflo.runners`` also keeps woflo 0.8's names (`SequentialTaskRun`,
`BaseTaskRun`, `MultiprocessTaskRun`).
"""

from typing import TYPE_CHECKING, Any

from woflo._attempt import Attempt as Attempt
from woflo._runner import Runner as Runner
from woflo.runners._legacy import BaseTaskRun as BaseTaskRun
from woflo.runners._legacy import SequentialTaskRun as SequentialTaskRun
from woflo.runners.aio import AsyncRunner as AsyncRunner
from woflo.runners.multiprocess import MultiprocessTaskRun as MultiprocessTaskRun
from woflo.runners.pool import PoolRunner as PoolRunner
from woflo.runners.process import ProcessRunner as ProcessRunner
from woflo.runners.sequential import SequentialRunner as SequentialRunner
from woflo.runners.thread import ThreadRunner as ThreadRunner

if TYPE_CHECKING:
    from woflo.runners.dask import DaskRunner as DaskRunner

__all__ = [
    "AsyncRunner",
    "Attempt",
    "BaseTaskRun",
    "DaskRunner",
    "PoolRunner",
    "ProcessRunner",
    "Runner",
    "SequentialRunner",
    "SequentialTaskRun",
    "ThreadRunner",
]


def __getattr__(name: str) -> Any:
    # DaskRunner imports lazily: `import woflo` must not need (or load) distributed.
    if name == "DaskRunner":
        from woflo.runners.dask import DaskRunner

        return DaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
