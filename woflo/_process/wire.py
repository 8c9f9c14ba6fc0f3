"""What travels between the pool and its workers: frames, kinds and payload pickling.

Three pipes join the parent to each worker:

* inbox (parent -> worker): frames of ``len:u64 | pickle(list of jobs)``; a job is
  ``(jid, fn_bytes | None, shared, args_bytes)``. A callable the stdlib would
  pickle by name (a module-level function, of ``__main__`` too, a builtin
  function, a class) is ``shared``: as in ``ProcessPoolExecutor``, the worker
  keeps one copy of it for every job with equal ``fn_bytes``, and ``None``
  means "the previous job's function" (sent for the later jobs of a frame).
  Anything else (a callable object, ``partial``, bound method, lambda, closure)
  is unpickled for its job alone, so its state never leaks into the next call.
  A frame of length 0 asks the worker to exit once its queue is done. A job
  with jid 0 heads every list: not a job, but the parent's log levels
  (``woflo._tasklog.levels_item``), applied before the jobs that follow.
* outbox (worker -> parent): frames of ``len:u64 | kind:u8 | jid:u64 | payload``.
  One frame per finished job, written as soon as the job ends, and one
  ``KIND_LOG`` frame per record a task logs, as it logs it: pipe contents
  survive the writer's death, so when a worker dies the parent still reads every
  result it produced and blames exactly the job that was running.
* control (parent -> worker): fixed 8-byte job ids to cancel. The worker's
  watchdog thread reads it; EOF there means the parent is gone.

Every job is pickled on its own so that one bad argument fails only that job.

Functions that cloudpickle sends by value (lambdas, closures, functions of
``__main__``) get, in each worker, one global namespace per module name, shared
by every such function of that module (see ``dumps_task``): an initializer of
``__main__`` that sets a global is seen by the tasks of ``__main__``, as with
``ProcessPoolExecutor``, where ``__main__`` is forked or re-imported.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import struct
from typing import Any

from woflo._errors import SerializationError
from woflo._names import callable_name

__all__ = [
    "CTL",
    "INBOX_HEADER",
    "INLINE_ARGS",
    "META_LEN",
    "KIND_EXC",
    "KIND_INIT_FAILED",
    "KIND_INITIALIZING",
    "KIND_LOG",
    "KIND_OK",
    "KIND_READY",
    "KIND_SKIPPED",
    "OUT_HEADER",
    "RemoteTraceback",
    "describe",
    "dumps_exception",
    "dumps_task",
    "dumps_task_parts",
    "PartsPickler",
    "dumps_value",
    "loads_exception",
    "reason",
    "write_all",
]

INBOX_HEADER = struct.Struct("<Q")
OUT_HEADER = struct.Struct("<QBQ")  # length of (kind + jid + payload), kind, jid
CTL = struct.Struct("<Q")
# An inbox frame's body: META_LEN, then the pickled list of (jid, fn_bytes,
# shared, args), then the large arguments back to back. ``args`` is a job's pickled
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
# A log record or structlog event emitted in the worker, forwarded as it is
# emitted (see worklog); jid is the job running then, 0 if none. Not a result:
# the job's FIFO is untouched.
KIND_LOG = 6

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
    """Name a callable for an error message: its name, never its values (see `callable_name`).

    Never raises: the attributes it reads may be user code.
    """
    try:
        return callable_name(obj)
    except BaseException:
        return "a callable"


def reason(err: BaseException) -> str:
    """``"TypeName: message"`` of an exception, for an error message; never raises.

    The message is cut at 200 characters; the exception itself stays the
    ``__cause__``.
    """
    name = type(err).__name__
    try:
        text = str(err)
    except BaseException:
        return name
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{name}: {text}" if text else name


def dumps_value(obj: object) -> bytes:
    """Pickle with the C pickler, falling back to cloudpickle for lambdas and such.

    The fast path matters: it is taken for nearly every result.
    """
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        # cloudpickle imported here, when pickle cannot: a worker imports
        # this module to serve jobs, and most jobs never need cloudpickle.
        import cloudpickle

        data: bytes = cloudpickle.dumps(obj, PROTOCOL)
        return data


class _Parts(list):  # type: ignore[type-arg]
    """A list that is a pickler's file: what it writes is appended."""

    write = list.append


class PartsPickler:
    """Pickles into a list of parts; large ``bytes``/``bytearray`` are parts by reference, not copied.

    The C pickler hands a payload of 64 KiB or more to its file's ``write`` as
    the object itself (its framing flushes smaller pieces in 64 KiB frames), so
    the parts written back to back (``writev``) are the pickle, with the big
    payloads never copied: ``pickle.dumps`` would copy each into fresh memory,
    one page fault per 4 KiB (500 us per MB). One pickler is reused (its memo
    cleared), as cheap as ``pickle.dumps`` for a small object. Not thread-safe.
    """

    def __init__(self) -> None:
        self._parts = _Parts()
        self._pickler = pickle.Pickler(self._parts, PROTOCOL)

    def dumps(self, obj: object) -> list[Any]:
        """``obj`` pickled as parts (cloudpickle, copied, for what plain pickle cannot take).

        Raises:
            Whatever the picklers raise.
        """
        parts = self._parts
        try:
            self._pickler.dump(obj)
            return parts.copy()
        except Exception:
            parts.clear()
            return [dumps_value(obj)]
        finally:
            parts.clear()
            self._pickler.clear_memo()


def dumps_exception(exc: BaseException, what: str = "the function") -> bytes:
    """Pickle ``(traceback text, pickled exception)`` for an exception raised by ``what``; never raises.

    Any ``BaseException`` is taken (a task's ``SystemExit`` too). An exception
    whose pickling raises a non-``Exception`` (``SystemExit``) is replaced by
    that one, as ``ProcessPoolExecutor`` does. One that cannot be pickled
    otherwise is replaced by a `SerializationError` that names its
    type and ``what`` (never its values: its ``repr`` may raise too), built with
    `SerializationError.wrap` from the pickling error; a traceback that cannot
    be formatted is replaced by a line saying so.
    """
    try:
        # Imported on the first exception, not with the module: a worker whose
        # tasks all succeed never needs it (linecache, tokenize, textwrap).
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException as err:
        tb = f"{type(exc).__qualname__} (its traceback could not be formatted: {reason(err)})\n"
    tb = f'\n"""\n{tb}"""'
    try:
        body = dumps_value(exc)
    except BaseException as err:
        if not isinstance(err, Exception):  # the stdlib sends this one instead (a SystemExit...)
            with contextlib.suppress(BaseException):
                return pickle.dumps((tb, dumps_value(err)), PROTOCOL)
        bad = SerializationError.wrap(
            f"cannot pickle exception {type(exc).__qualname__} raised by {what}: {reason(err)}", err
        )
        try:
            body = pickle.dumps(bad, PROTOCOL)
        except BaseException:  # the pickler's error class is not importable: keep the message only
            body = pickle.dumps(SerializationError(str(bad)), PROTOCOL)
    return pickle.dumps((tb, body), PROTOCOL)


def loads_exception(payload: bytes, what: str) -> BaseException:
    """Rebuild an exception sent by ``dumps_exception``, remote traceback attached; never raises.

    Each call returns a new object. One that cannot be unpickled becomes a
    `SerializationError` (built with `SerializationError.wrap` from the error).
    """
    tb, body = pickle.loads(payload)
    try:
        exc = pickle.loads(body)
        if not isinstance(exc, BaseException):
            raise TypeError(f"not an exception: {type(exc).__name__}")
    except BaseException as err:  # unpickling runs user code, which may raise anything
        if err.__cause__ is None:  # keep the worker's traceback in the chain
            err.__cause__ = RemoteTraceback(tb)
        return SerializationError.wrap(f"cannot unpickle the exception raised by {what}: {reason(err)}", err)
    exc.__cause__ = RemoteTraceback(tb)
    return exc


_task_pickler: Any = None  # woflo._process.taskpickler.TaskPickler, once imported


def _pickler() -> Any:
    global _task_pickler
    pickler = _task_pickler
    if pickler is None:  # imports cloudpickle
        from woflo._process.taskpickler import TaskPickler

        pickler = _task_pickler = TaskPickler
    return pickler


def dumps_task_parts(obj: object) -> list[Any]:
    """As `dumps_task`, as a list of parts: payloads of 64 KiB or more are not copied.

    The parts are ``bytes``: those of ``obj`` itself by reference, any other
    payload (a ``bytearray``) copied.
    """
    parts = _Parts()
    _pickler()(parts, PROTOCOL).dump(obj)
    if len(parts) == 1:  # small: the pickler's own buffer, flushed once (the per-job hot path)
        return parts
    # A mutable payload (a bytearray argument) is copied: the caller's threads
    # may change it while its bytes wait for room in the pipe.
    return [p if type(p) is bytes else bytes(p) for p in parts]


def dumps_task(obj: object) -> bytes:
    """Pickle what the parent sends to a worker (callable, arguments, initializer) with cloudpickle.

    As ``cloudpickle.dumps``, except that functions sent by value share, in the
    worker, one namespace per module name (see `woflo._process.taskpickler`).

    Raises:
        Whatever the pickler raises (``TypeError`` for a lock, ``pickle.PicklingError``...).
    """
    with io.BytesIO() as file:
        _pickler()(file, PROTOCOL).dump(obj)
        return file.getvalue()


_IOV_MAX = 512  # buffers per writev, under every platform's IOV_MAX


def write_all(fd: int, parts: list[Any]) -> None:
    """Write every byte of ``parts`` to a blocking fd (handles partial writes)."""
    if len(parts) == 1 and type(parts[0]) is bytes:  # one small frame: a result, the per-job path
        data = parts[0]
        n = os.write(fd, data)
        if n == len(data):
            return
        parts = [memoryview(data)[n:]]
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        n = os.writev(fd, views[:_IOV_MAX])
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0
