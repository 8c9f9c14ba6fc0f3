"""The exceptions woflo raises on its own account.

Exceptions raised by a task come back as themselves; these are the ones that
describe what happened *around* a task: an attempt that ran out of time, a
worker that died, a payload that could not cross a process boundary.
"""

from __future__ import annotations

__all__ = [
    "AttemptTimeout",
    "DeadlineExceeded",
    "SerializationError",
    "WofloError",
    "WorkerCrashed",
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


class WorkerCrashed(WofloError):
    """The worker running an attempt died before the attempt finished.

    Raised for a segfault, a ``SIGKILL``, ``os._exit``, ``sys.exit`` in a worker,
    or the kernel's out-of-memory killer. Retryable like any other exception.

    Attributes:
        exitcode: the worker's exit code; negative for a signal (``-9`` is SIGKILL).
        worker: the worker's identity (a process id for process workers).
    """

    def __init__(self, message: str, *, exitcode: int | None = None, worker: object = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.worker = worker

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields would be lost by the default pickling of exceptions.
        return (_rebuild_worker_crashed, (str(self), self.exitcode, self.worker))


def _rebuild_worker_crashed(message: str, exitcode: int | None, worker: object) -> WorkerCrashed:
    return WorkerCrashed(message, exitcode=exitcode, worker=worker)


class SerializationError(WofloError):
    """An argument, a result or an exception could not be pickled or unpickled.

    The message says which part failed and why; the original error is the
    ``__cause__``. Only the run concerned fails: the worker and the pool live on.
    """
