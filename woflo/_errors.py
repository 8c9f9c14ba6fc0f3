"""The exceptions woflo raises on its own account.

Exceptions raised by a task come back as themselves; these are the ones that
describe what happened *around* a task: an attempt that ran out of time, a
worker that died, a runner that cannot start workers, a payload that could not
cross a process boundary.

Each one also subclasses the stdlib exception that code written for
`concurrent.futures` catches in the same situation (the compatibility rule of
docs/compat.md): `WorkerCrashed` is a ``BrokenProcessPool``, `BrokenRunner`'s
subclasses are ``BrokenProcessPool`` / ``BrokenThreadPool``, `AttemptTimeout`
is a ``TimeoutError``, and a `SerializationError` is a ``pickle.PicklingError``
and an instance of the error the pickler raised (``TypeError`` for a lock).
"""

from __future__ import annotations

import pickle
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import BrokenExecutor
    from concurrent.futures.process import BrokenProcessPool
    from concurrent.futures.thread import BrokenThreadPool

__all__ = [
    "AttemptTimeout",
    "BrokenProcessRunner",
    "BrokenRunner",
    "BrokenThreadRunner",
    "DeadlineExceeded",
    "SerializationError",
    "UpstreamFailed",
    "WofloError",
    "WorkerCrashed",
    "upstream_root",
]


class WofloError(Exception):
    """Base class of the errors woflo raises itself."""


class AttemptTimeout(WofloError, TimeoutError):
    """One attempt outlived the per-attempt ``timeout``.

    It counts as a failed attempt: the retry policy decides whether another
    attempt follows.

    Example:
        >>> isinstance(AttemptTimeout("slow"), TimeoutError)
        True
    """


class DeadlineExceeded(WofloError, TimeoutError):
    """The whole run (all attempts and the waits between them) outlived ``deadline``.

    Never retried. When an attempt had failed before, its exception is the
    ``__cause__``.
    """


# The classes based on the stdlib's broken-pool exceptions are defined the first
# time one of them is asked for (`__getattr__` below), not at import: their
# bases live in ``concurrent.futures.process``, which imports multiprocessing
# (benchmarks/bench_coldstart.py), and an "exec" worker, which imports this module for
# `SerializationError`, never needs them. They are the same classes either
# way (``woflo._errors.WorkerCrashed``), picklable by reference as before.
# mypy sees them here; tests/test_import_cost.py checks that the stub and the
# class agree (bases, signature).
if TYPE_CHECKING:

    class WorkerCrashed(WofloError, BrokenProcessPool):
        exitcode: int | None
        worker: object

        def __init__(self, message: str, *, exitcode: int | None = None, worker: object = None) -> None: ...

    class BrokenRunner(WofloError, BrokenExecutor): ...

    class BrokenProcessRunner(BrokenRunner, BrokenProcessPool): ...

    class BrokenThreadRunner(BrokenRunner, BrokenThreadPool): ...


def _rebuild_worker_crashed(
    cls: type[WorkerCrashed], message: str, exitcode: int | None, worker: object
) -> WorkerCrashed:
    return cls(message, exitcode=exitcode, worker=worker)


_define_lock = threading.Lock()
_LAZY = ("WorkerCrashed", "BrokenRunner", "BrokenProcessRunner", "BrokenThreadRunner")


def _define_broken() -> dict[str, type[BaseException]]:
    """Define the classes of `_LAZY` (importing their stdlib bases) and return them by name."""
    from concurrent.futures import BrokenExecutor
    from concurrent.futures.process import BrokenProcessPool
    from concurrent.futures.thread import BrokenThreadPool

    class WorkerCrashed(WofloError, BrokenProcessPool):
        """The worker running an attempt died before the attempt finished.

        Raised for a segfault, a ``SIGKILL``, ``os._exit``, the kernel's
        out-of-memory killer, or a lost Dask worker; not for ``sys.exit`` or any
        other exception a task raises, which is that run's exception (the worker
        lives on, as in ``ProcessPoolExecutor``). Only that attempt fails (the
        pool replaces the worker), and it is retryable like any other exception.
        It is a ``concurrent.futures.process.BrokenProcessPool`` (and so a
        ``BrokenExecutor``) because that is what ``ProcessPoolExecutor`` raises for
        the same death, and existing code catches it.

        Attributes:
            exitcode: the worker's exit code; negative for a signal (``-9`` is SIGKILL).
            worker: the worker's identity (a process id for process workers).

        Example:
            >>> from concurrent.futures.process import BrokenProcessPool
            >>> isinstance(WorkerCrashed("died", exitcode=-9), BrokenProcessPool)
            True
        """

        def __init__(self, message: str, *, exitcode: int | None = None, worker: object = None) -> None:
            super().__init__(message)
            self.exitcode = exitcode
            self.worker = worker

        def __reduce__(self) -> tuple[object, ...]:
            # Keyword-only fields would be lost by the default pickling of exceptions.
            message = self.args[0] if self.args else ""  # as given: str() may differ (see SerializationError)
            return (_rebuild_worker_crashed, (type(self), message, self.exitcode, self.worker))

    class BrokenRunner(WofloError, BrokenExecutor):
        """The runner cannot run anything any more: its workers cannot be started.

        Raised when the ``initializer`` fails (its exception is the ``__cause__``)
        or when worker processes keep dying while starting. Every run waiting for
        a worker fails with it, and so does every later ``submit`` (at the call),
        as with the stdlib's broken pools. Never retried. The runner-specific
        subclasses are what existing code catches: `BrokenProcessRunner` is a
        ``BrokenProcessPool``, `BrokenThreadRunner` a ``BrokenThreadPool``.
        """

    class BrokenProcessRunner(BrokenRunner, BrokenProcessPool):
        """`BrokenRunner` of `woflo.ProcessRunner`; a ``BrokenProcessPool``."""

    class BrokenThreadRunner(BrokenRunner, BrokenThreadPool):
        """`BrokenRunner` of `woflo.ThreadRunner`; a ``BrokenThreadPool``."""

    defined: dict[str, type[BaseException]] = {
        "WorkerCrashed": WorkerCrashed,
        "BrokenRunner": BrokenRunner,
        "BrokenProcessRunner": BrokenProcessRunner,
        "BrokenThreadRunner": BrokenThreadRunner,
    }
    for cls in defined.values():
        cls.__qualname__ = cls.__name__  # module level, as pickle and repr name them
    return defined


def __getattr__(name: str) -> Any:
    """Module attribute hook: define the broken-pool classes on first use (see `_LAZY`).

    Raises ``AttributeError`` for any other missing name, as a module does.

    Example:
        >>> from concurrent.futures.process import BrokenProcessPool
        >>> from woflo._errors import WorkerCrashed
        >>> isinstance(WorkerCrashed("died", exitcode=-9), BrokenProcessPool)
        True
    """
    if name in _LAZY:
        with _define_lock:
            if name not in globals():  # another thread may have defined them meanwhile
                globals().update(_define_broken())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class SerializationError(WofloError, pickle.PicklingError):
    """An argument, a result or an exception could not be pickled or unpickled.

    The message says which part failed and why; the original error is the
    ``__cause__``. Only the run concerned fails: the worker and the pool live on,
    and the default retry policy does not retry it (pickling again fails again).

    Build it with `SerializationError.wrap`: the instance is then also an
    instance of the original error's class, so code written for
    ``ProcessPoolExecutor`` that catches what the pickler raised (``TypeError``
    for a lock, ``pickle.PicklingError``, ``AttributeError``...) still catches it.

    Example:
        >>> import threading, pickle
        >>> try:
        ...     pickle.dumps(threading.Lock())
        ... except TypeError as err:
        ...     exc = SerializationError.wrap("cannot pickle argument 0", err)
        >>> isinstance(exc, TypeError), isinstance(exc, SerializationError)
        (True, True)
    """

    @classmethod
    def wrap(cls, message: str, error: BaseException) -> SerializationError:
        """A `SerializationError` with ``message`` that is also an instance of ``type(error)``.

        ``error`` becomes the ``__cause__``. Where the two classes cannot be
        combined (an incompatible layout, a non-``Exception``), the result is a
        plain `SerializationError`.
        """
        exc = _mixed(cls, type(error))(message)
        exc.__cause__ = error
        return exc

    def __reduce__(self) -> tuple[object, ...]:
        base, other = _unmixed(self)
        # args[0], not str(self): a KeyError's str() quotes its message.
        return (_rebuild_serialization_error, (base, other, self.args[0] if self.args else ""))


class UpstreamFailed(WofloError):
    """An input of the run (a `woflo.TaskRun` among its arguments, or in ``after=``) failed or was cancelled.

    The run fails at once, without an attempt; the input's exception is the
    ``__cause__`` (a `concurrent.futures.CancelledError` for a cancelled or
    stopped input). Build it with `UpstreamFailed.wrap`: like a Dask future
    whose dependency erred, the instance is also an instance of the class of
    the first exception in the chain that is not itself an `UpstreamFailed`
    (the error at the root of the pipeline), so ``except ValueError`` around
    ``run.result()`` still catches a ``ValueError`` raised upstream, and
    ``except CancelledError`` an input that was cancelled.

    Attributes:
        upstream: the name of the input run that failed.
        upstream_run_id: its `woflo.TaskRun.run_id`.

    Example:
        >>> exc = UpstreamFailed.wrap("parse [1a2b3c4d] failed", ValueError("bad page"), "parse", "1a2b3c4d")
        >>> isinstance(exc, ValueError), exc.upstream, type(exc.__cause__).__name__
        (True, 'parse', 'ValueError')
    """

    upstream: str = ""
    upstream_run_id: str = ""

    @classmethod
    def wrap(cls, message: str, error: BaseException, upstream: str, upstream_run_id: str) -> UpstreamFailed:
        """An `UpstreamFailed` with ``message`` caused by ``error``, the input run's exception.

        The instance is also an instance of the class of ``error`` or, when
        ``error`` is itself an `UpstreamFailed`, of its root error (where the
        classes cannot be combined it is a plain `UpstreamFailed`).
        """
        root = upstream_root(error)
        exc = _mixed(cls, type(root))(message) if root is not None else cls(message)
        exc.upstream = upstream
        exc.upstream_run_id = upstream_run_id
        exc.__cause__ = error
        return exc

    def __reduce__(self) -> tuple[object, ...]:
        base, other = _unmixed(self)
        # args[0], not str(self): a KeyError's str() quotes its message.
        message = self.args[0] if self.args else ""
        return (_rebuild_upstream_failed, (base, other, message, self.upstream, self.upstream_run_id))


def upstream_root(error: BaseException) -> BaseException | None:
    """The pipeline's root error behind ``error``, else None.

    That is the first exception along ``error``'s ``__cause__`` chain (``error``
    included) that is not an `UpstreamFailed`; None if the chain ends first.
    """
    root: BaseException | None = error
    while isinstance(root, UpstreamFailed):
        root = root.__cause__
    return root


def _unmixed(exc: BaseException) -> tuple[type[BaseException], type[BaseException] | None]:
    """The class and the mixed-in class of an exception made by ``wrap`` (None if nothing was mixed in).

    Mixed classes are made at run time: ``__reduce__`` rebuilds from the two
    classes they combine (both picklable by reference), not from the mixed class.
    """
    bases = type(exc).__bases__
    other = bases[1] if type(exc).__dict__.get("_woflo_mixed") else None
    return (bases[0] if other is not None else type(exc)), other


def _rebuild_upstream_failed(
    cls: type[UpstreamFailed], other: type[BaseException] | None, message: str, upstream: str, run_id: str
) -> UpstreamFailed:
    exc = (cls if other is None else _mixed(cls, other))(message)
    exc.upstream = upstream
    exc.upstream_run_id = run_id
    return exc


_E = TypeVar("_E", bound=WofloError)

_MIXED: dict[tuple[type, type], type[Any]] = {}


def _mixed(cls: type[_E], other: type[BaseException]) -> type[_E]:
    if issubclass(cls, other) or not issubclass(other, Exception):
        return cls
    key = (cls, other)
    mixed = _MIXED.get(key)
    if mixed is None:
        try:
            mixed = type(cls.__name__, (cls, other), {"_woflo_mixed": True, "__module__": cls.__module__})
            mixed.__qualname__ = cls.__qualname__
            mixed("probe")  # some builtin exceptions need other constructor arguments
        except Exception:
            mixed = cls
        _MIXED[key] = mixed
    return mixed


def _rebuild_serialization_error(
    cls: type[SerializationError], other: type[BaseException] | None, message: str
) -> SerializationError:
    return (cls if other is None else _mixed(cls, other))(message)
