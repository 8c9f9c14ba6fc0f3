"""The process-wide registry of runners: shared instances, and shutdown at exit.

woflo 0.8 wrote ``@task(runner=SequentialTaskRun)``: a class. Every task naming
the same class shares one instance of it, made on first use and shut down at
interpreter exit; every runner is tracked so the exit hook can shut it down.
This module knows runners only through `SharedRunner` (it sits below them);
which runner is the default is decided above them, in woflo/_defaults.py.
"""

from __future__ import annotations

import atexit
import sys
import threading
import traceback
import weakref
from typing import Any, Protocol, TypeVar

__all__ = ["SharedRunner", "shared_runner", "track", "untrack"]


class SharedRunner(Protocol):
    """What the registry needs of a runner (`woflo.Runner` has it)."""

    _stop_reason: str | None

    @property
    def is_shutdown(self) -> bool: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, stop_running: bool = False) -> None: ...

    @classmethod
    def _shared_instance(cls) -> Any: ...

    @classmethod
    def _shared_key(cls) -> object: ...


R = TypeVar("R", bound=SharedRunner)

_lock = threading.RLock()  # shared_runner builds runners, which call track()
_shared: dict[type[Any], tuple[object, SharedRunner]] = {}
_live: weakref.WeakSet[SharedRunner] = weakref.WeakSet()
_exit_hook_registered = False


def shared_runner(cls: type[R]) -> R:
    """The process-wide instance of runner class ``cls``, made on first use.

    The class's ``_shared_instance()`` builds it and its ``_shared_key()``
    says when it must be rebuilt (woflo 0.8's ``process_type`` switch). A
    shared instance that was shut down is replaced by a new one.
    """
    key = cls._shared_key()
    stale: SharedRunner | None = None
    with _lock:
        entry = _shared.get(cls)
        if entry is not None and entry[0] == key and not entry[1].is_shutdown:
            return entry[1]  # type: ignore[return-value]
        if entry is not None:
            stale = entry[1]
        runner: R = cls._shared_instance()
        _shared[cls] = (key, runner)
    if stale is not None:
        stale.shutdown(wait=False)
    return runner


def track(runner: SharedRunner) -> None:
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


def untrack(runner: SharedRunner) -> None:
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
