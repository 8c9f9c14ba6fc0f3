"""The runners: each one an Executor that runs attempts its own way.

``woflo.runners`` also keeps woflo 0.8's names (`SequentialTaskRun`,
`BaseTaskRun`, `MultiprocessTaskRun`). Each name is imported on first use,
as in ``woflo`` itself: importing one runner's module does not import the
others (``DaskRunner`` needs ``distributed``, the process runners loky's and
multiprocessing's machinery, `AsyncRunner` asyncio).
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from woflo._attempt import Attempt as Attempt
    from woflo._runner import Runner as Runner
    from woflo.runners._legacy import BaseTaskRun as BaseTaskRun
    from woflo.runners._legacy import SequentialTaskRun as SequentialTaskRun
    from woflo.runners.aio import AsyncRunner as AsyncRunner
    from woflo.runners.dask import DaskRunner as DaskRunner
    from woflo.runners.multiprocess import MultiprocessTaskRun as MultiprocessTaskRun
    from woflo.runners.pool import PoolRunner as PoolRunner
    from woflo.runners.process import ProcessRunner as ProcessRunner
    from woflo.runners.sequential import SequentialRunner as SequentialRunner
    from woflo.runners.thread import ThreadRunner as ThreadRunner

__all__ = [
    "AsyncRunner",
    "Attempt",
    "BaseTaskRun",
    "DaskRunner",
    "MultiprocessTaskRun",
    "PoolRunner",
    "ProcessRunner",
    "Runner",
    "SequentialRunner",
    "SequentialTaskRun",
    "ThreadRunner",
]

_LAZY: dict[str, str] = {
    "AsyncRunner": "woflo.runners.aio",
    "Attempt": "woflo._attempt",
    "BaseTaskRun": "woflo.runners._legacy",
    "DaskRunner": "woflo.runners.dask",
    "MultiprocessTaskRun": "woflo.runners.multiprocess",
    "PoolRunner": "woflo.runners.pool",
    "ProcessRunner": "woflo.runners.process",
    "Runner": "woflo._runner",
    "SequentialRunner": "woflo.runners.sequential",
    "SequentialTaskRun": "woflo.runners._legacy",
    "ThreadRunner": "woflo.runners.thread",
}


def __getattr__(name: str) -> Any:
    """Import the public name ``name`` on first use (see `woflo.__getattr__`)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
