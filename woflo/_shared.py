"""The runners that ``@task`` uses when given a runner class instead of an instance.

woflo 0.8 wrote ``@task(runner=SequentialTaskRun)``: a class. Every task naming
the same class shares one instance of it, made on first use and shut down at
interpreter exit. This module holds that process-wide registry, and only it.
"""

from __future__ import annotations

import atexit
import sys
import threading
import traceback
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from woflo._runner import Runner

__all__ = ["coroutine_runner", "default_runner", "default_runner_class", "shared_runner", "track", "untrack"]

_lock = threading.RLock()  # shared_runner builds runners, which call track()
_shared: dict[type[Any], tuple[object, Runner]] = {}
_live: weakref.WeakSet[Runner] = weakref.WeakSet()
_exit_hook_registered = False


def shared_runner(cls: type[Runner]) -> Runner:
    """The process-wide instance of runner class ``cls``, made on first use.

    A class may define ``_shared_instance()`` to build it and ``_shared_key()``
    to say when it must be rebuilt (woflo 0.8's ``process_type`` switch). A
    shared instance that was shut down is replaced by a new one.
    """
    key_of = getattr(cls, "_shared_key", None)
    key = key_of() if key_of is not None else None
    stale: Runner | None = None
    with _lock:
        entry = _shared.get(cls)
        if entry is not None and entry[0] == key and not entry[1]._shutdown:
            return entry[1]
        if entry is not None:
            stale = entry[1]
        factory = getattr(cls, "_shared_instance", None)
        runner: Runner = factory() if factory is not None else cls()
        _shared[cls] = (key, runner)
    if stale is not None:
        stale.shutdown(wait=False)
    return runner


def track(runner: Runner) -> None:
    """Shut ``runner`` down at interpreter exit if its owner did not."""
    global _exit_hook_registered
    with _lock:
        if not _exit_hook_registered:
            # Registered on first use, after the backends' own exit hooks (the
            # process pool kills its workers at exit): atexit runs hooks last
            # in, first out, so the runs finish before their workers go.
            atexit.register(_shutdown_all)
            _exit_hook_registered = True
    _live.add(runner)


def untrack(runner: Runner) -> None:
    """Forget ``runner``: its constructor failed after `track`, there is nothing to shut down."""
    _live.discard(runner)


def _shutdown_all() -> None:
    # Like the stdlib executors, let submitted work finish before exit; the
    # runners' own threads are daemons, so nothing else would wait for them.
    # But a program ended by Ctrl-C wants its workers gone, not waited for:
    # the interpreter records the exception that ended it in sys.last_type.
    interrupted = getattr(sys, "last_type", None) is KeyboardInterrupt
    for runner in list(_live):
        if interrupted:
            runner._stop_reason = "KeyboardInterrupt (Ctrl-C) at interpreter exit"
        try:
            runner.shutdown(wait=True, stop_running=interrupted)
        except Exception as exc:
            # One runner failing to close must not stop the others from
            # finishing their runs: an exception here would end this hook,
            # and the interpreter would kill the remaining runners' threads.
            print(f"woflo: shutting down {runner!r} at exit failed:", file=sys.stderr)
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def default_runner() -> Runner:
    """The runner ``@task`` uses when none is named: the shared default runner class."""
    return shared_runner(default_runner_class())


def default_runner_class() -> type[Runner]:
    """The runner class `WofloExecutor` builds when none is named."""
    from woflo.runners.process import ProcessRunner

    return ProcessRunner


def coroutine_runner() -> Runner:
    """The runner ``@task`` uses for an ``async def`` when none is named.

    Inside a running event loop, an AsyncRunner bound to that loop; outside
    any loop, the shared AsyncRunner with its own background loop.
    """
    from woflo.runners.aio import runner_for_running_loop

    return runner_for_running_loop()
