"""What travels between the pool and its workers: frames, kinds and payload pickling.

Three pipes join the parent to each worker:

* inbox (parent -> worker): frames of ``len:u64 | pickle(list of jobs)``; a job is
  ``(jid, fn_bytes | None, args_bytes)`` where ``None`` means "the same function as
  the previous job of this batch", so a map-like burst pickles its function once.
  A frame of length 0 asks the worker to exit once its queue is done.
* outbox (worker -> parent): frames of ``len:u64 | kind:u8 | jid:u64 | payload``.
  One frame per finished job, written as soon as the job ends: pipe contents
  survive the writer's death, so when a worker dies the parent still reads every
  result it produced and blames exactly the job that was running.
* control (parent -> worker): fixed 8-byte job ids to cancel. The worker's
  watchdog thread reads it; EOF there means the parent is gone.

Every job is pickled on its own so that one bad argument fails only that job.
"""

from __future__ import annotations

import os
import pickle
import struct
import traceback
from typing import Any

import cloudpickle

from woflo._errors import SerializationError

__all__ = [
    "CTL",
    "INBOX_HEADER",
    "INLINE_ARGS",
    "META_LEN",
    "KIND_EXC",
    "KIND_INIT_FAILED",
    "KIND_INITIALIZING",
    "KIND_OK",
    "KIND_READY",
    "KIND_SKIPPED",
    "OUT_HEADER",
    "RemoteTraceback",
    "describe",
    "dumps_exception",
    "dumps_value",
    "loads_exception",
    "write_all",
]

INBOX_HEADER = struct.Struct("<Q")
OUT_HEADER = struct.Struct("<QBQ")  # length of (kind + jid + payload), kind, jid
CTL = struct.Struct("<Q")
# An inbox frame's body: META_LEN, then the pickled list of (jid, fn_bytes,
# args), then the large arguments back to back. ``args`` is a job's pickled
# arguments when small, or the length of its part after the list when at least
# INLINE_ARGS: a large argument is not pickled a second time inside the list,
# which would cost one more copy into fresh memory on each side.
META_LEN = struct.Struct("<I")
INLINE_ARGS = 64 * 1024

KIND_OK = 0
KIND_EXC = 1
KIND_SKIPPED = 2  # the job was cancelled before it started
KIND_READY = 3  # the worker finished its initializer and takes jobs
KIND_INIT_FAILED = 4  # payload is an exception frame; the worker exits after it
KIND_INITIALIZING = 5  # the worker is up and runs the initializer now (sent only when there is one)

PROTOCOL = pickle.HIGHEST_PROTOCOL


class RemoteTraceback(Exception):
    """Carries the formatted traceback of an exception raised in a worker.

    Set as the ``__cause__`` of the task's exception, as ``ProcessPoolExecutor``
    does, so the remote frames show up in the parent's traceback.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def describe(obj: object) -> str:
    """Name a callable for an error message: its name, never its values (see `callable_name`)."""
    # Imported here, not at the top: this function's body is all that changed.
    from woflo._names import callable_name

    return callable_name(obj)


def dumps_value(obj: object) -> bytes:
    """Pickle with the C pickler, falling back to cloudpickle for lambdas and such.

    The fast path matters: it is taken for nearly every result.
    """
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        data: bytes = cloudpickle.dumps(obj, PROTOCOL)
        return data


def dumps_exception(exc: BaseException) -> bytes:
    """Pickle ``(traceback text, pickled exception)``; never raises.

    An exception that cannot be pickled is replaced by a SerializationError that
    names it; the traceback text travels either way.
    """
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    tb = f'\n"""\n{tb}"""'
    try:
        body = dumps_value(exc)
    except Exception as err:
        body = pickle.dumps(
            SerializationError(f"cannot pickle exception {type(exc).__name__}: {exc!r}: {err!r}"),
            PROTOCOL,
        )
    return pickle.dumps((tb, body), PROTOCOL)


def loads_exception(payload: bytes, what: str) -> BaseException:
    """Rebuild an exception sent by ``dumps_exception``, remote traceback attached."""
    tb, body = pickle.loads(payload)
    try:
        exc = pickle.loads(body)
        if not isinstance(exc, BaseException):
            raise TypeError(f"not an exception: {type(exc).__name__}")
    except Exception as err:
        bad = SerializationError(f"cannot unpickle the exception raised by {what}: {err!r}")
        bad.__cause__ = RemoteTraceback(tb)
        return bad
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def write_all(fd: int, parts: list[Any]) -> None:
    """Write every byte of ``parts`` to a blocking fd (handles partial writes)."""
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        n = os.writev(fd, views)
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0
