"""The runners: each one an Executor that runs attempts its own way.

``woflo.runners`` also keeps woflo 0.8's names (`SequentialTaskRun`,
`BaseTaskRun`, `MultiprocessTaskRun`).
"""

from woflo._runner import Attempt as Attempt
from woflo._runner import Runner as Runner
from woflo.runners._legacy import BaseTaskRun as BaseTaskRun
from woflo.runners._legacy import SequentialTaskRun as SequentialTaskRun
from woflo.runners.sequential import SequentialRunner as SequentialRunner
from woflo.runners.thread import ThreadRunner as ThreadRunner

__all__ = [
    "Attempt",
    "BaseTaskRun",
    "Runner",
    "SequentialRunner",
    "SequentialTaskRun",
    "ThreadRunner",
]
