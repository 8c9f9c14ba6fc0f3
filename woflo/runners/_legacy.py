"""woflo 0.8's runner names, kept so its code keeps importing and working."""

from __future__ import annotations

import abc
from typing import Any

from woflo.runners.sequential import SequentialRunner

__all__ = ["BaseTaskRun", "SequentialTaskRun"]


class BaseTaskRun(abc.ABC):
    """The woflo 0.8 interface for hand-written runners.

    A subclass given as ``@task(runner=MyRun)`` is still called the 0.8 way,
    ``MyRun(task, instance_name, fn, args, kwargs)``, and its instance is what
    calling the task returns. New code subclasses `woflo.Runner` instead.
    """

    def __init__(self, task: Any, instance_name: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.task = task
        self.instance_name = instance_name
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    @abc.abstractmethod
    def get_result(self) -> Any:
        """Return the task's result."""

    @abc.abstractmethod
    def wait(self) -> None:
        """Block until the task is done."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the task."""

    @abc.abstractmethod
    def is_running(self) -> bool:
        """Whether the task still runs."""


#: woflo 0.8's name for the sequential runner: ``@task(runner=SequentialTaskRun)``.
SequentialTaskRun = SequentialRunner
