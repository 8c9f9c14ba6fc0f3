"""Which runner woflo uses when the caller names none.

It sits above the runners it chooses from (woflo/_shared.py, below them,
only keeps the shared instances): `woflo.task` and `woflo.WofloExecutor`
ask here.
"""

from __future__ import annotations

from woflo._runner import Runner
from woflo._shared import shared_runner
from woflo.runners.aio import runner_for_running_loop
from woflo.runners.process import ProcessRunner

__all__ = ["coroutine_runner", "default_runner", "default_runner_class"]


def default_runner_class() -> type[Runner]:
    """The runner class `woflo.WofloExecutor` builds, and ``@task`` shares, when none is named."""
    return ProcessRunner


def default_runner() -> Runner:
    """The runner ``@task`` uses when none is named: the shared default runner class."""
    return shared_runner(default_runner_class())


def coroutine_runner() -> Runner:
    """The runner ``@task`` uses for an ``async def`` when none is named.

    Inside a running event loop, an AsyncRunner bound to that loop; outside
    any loop, the shared AsyncRunner with its own background loop.
    """
    return runner_for_running_loop()
