"""Which runner woflo uses when the caller names none.

It sits above the runners it chooses from (woflo/_shared.py, below them,
only keeps the shared instances): `woflo.task` and `woflo.WofloExecutor`
ask here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from woflo._shared import shared_runner

if TYPE_CHECKING:
    from woflo._runner import Runner

# The runner modules are imported when a default is first asked for (the
# first call of a ``@task``, a `woflo.WofloExecutor` built without a runner),
# not when ``@task`` decorates: the process pool and asyncio are paid for by
# the scripts that use them.

__all__ = ["coroutine_runner", "default_runner", "default_runner_class"]


_default_class: type[Runner] | None = None  # ProcessRunner, once imported


def default_runner_class() -> type[Runner]:
    """The runner class `woflo.WofloExecutor` builds, and ``@task`` shares, when none is named."""
    global _default_class
    cls = _default_class
    if cls is None:  # once: every call of a default @task asks
        from woflo.runners.process import ProcessRunner

        cls = _default_class = ProcessRunner
    return cls


def default_runner() -> Runner:
    """The runner ``@task`` uses when none is named: the shared default runner class."""
    return shared_runner(default_runner_class())


def coroutine_runner() -> Runner:
    """The runner ``@task`` uses for an ``async def`` when none is named.

    Inside a running event loop, an AsyncRunner bound to that loop; outside
    any loop, the shared AsyncRunner with its own background loop.
    """
    from woflo.runners.aio import runner_for_running_loop

    return runner_for_running_loop()
