"""`LoopTaskRun`: a run of `AsyncRunner`, a `TaskRun` that is also an asyncio future.

``asyncio.gather``, ``wait``, ``as_completed``, ``shield`` and ``wait_for`` take
any asyncio future as it is, but wrap every other awaitable in a new
``asyncio.Task``: for a batch of short coroutines that wrapper costs as much as
the coroutine itself. A run of `AsyncRunner` therefore speaks asyncio's future
protocol (``asyncio.isfuture(run)`` is true), so those functions use it
directly; it stays a ``concurrent.futures.Future`` for threads.

What the protocol means for a run, from where it is called:

- ``add_done_callback(fn)`` from inside a running event loop: ``fn(run)`` is
  called on that loop once the run is done (asyncio's rule; when the run
  ends on that loop at the end of its attempt, at once rather than one loop
  iteration later); from a thread without a loop it is called in the thread
  that finishes the run (the stdlib's rule).
- ``cancel()`` from inside a running event loop stops the run wherever it is,
  as ``asyncio.Task.cancel()`` would (what ``gather``, ``wait_for`` and
  ``TaskGroup`` rely on); from a thread without a loop it keeps the
  ``concurrent.futures`` contract: only a run that has not started can be
  cancelled (`TaskRun.stop` ends a running one).
- ``get_loop()`` is the caller's running loop, or the runner's loop outside
  any: a run can be gathered from another event loop too.

asyncio's future protocol is private: ``asyncio.isfuture`` looks for the
class attribute ``_asyncio_future_blocking``, and ``gather`` calls
``_make_cancelled_error()`` on a cancelled child (and reads
``_cancel_message`` on 3.10). Asking which loop runs in this thread is faster
through ``loop._thread_id`` and ``asyncio._get_running_loop()``. All of it is
pinned by ``tests/test_canaries.py``. Without it, or with
``WOFLO_NO_FAST_PATHS=1`` (`woflo._fastpath`), a run is not an asyncio future
(`FAST` is false): asyncio wraps it in a Task through ``TaskRun.__await__``,
the public way, which costs a Task per run and keeps every behaviour above;
and the running loop is asked with ``asyncio.get_running_loop()``.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import CancelledError
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED
from threading import get_ident
from typing import Any, TypeVar

from woflo._condition import RunCondition
from woflo._each import call_callbacks
from woflo._fastpath import ENABLED as _FAST_PATHS_ALLOWED
from woflo._taskrun import _OVER, TaskRun, callback_failed

__all__ = ["FAST", "LoopTaskRun", "RunCancelled", "running_loop", "running_loop_here"]

T = TypeVar("T")

_allocate_lock = _thread.allocate_lock


def _running_loop_public() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None: public API only (the fallback)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _speaks_future_protocol() -> bool:
    """Whether asyncio takes an object whose class has ``_asyncio_future_blocking`` for a future."""

    class Probe:
        _asyncio_future_blocking = False

    return asyncio.isfuture(Probe())


#: Whether the fast paths of this module are on: runs are asyncio futures,
#: and the running loop is found through asyncio's private helpers.
FAST: bool = _FAST_PATHS_ALLOWED and callable(getattr(asyncio, "_get_running_loop", None)) and _speaks_future_protocol()

#: The event loop running in this thread, or None.
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = (
    asyncio._get_running_loop if FAST else _running_loop_public
)


def _running_loop_here_fast(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop | None:
    # asyncio._get_running_loop() makes a getpid() system call on every call
    # (Python 3.11); asyncio's own loops record the thread they run in, so
    # the common question, "is this the runner's loop thread?", costs a compare.
    try:
        if loop._thread_id == get_ident():  # type: ignore[attr-defined]
            return loop
    except AttributeError:  # a loop implementation without _thread_id
        pass
    return running_loop()


def _running_loop_here_public(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop | None:
    return _running_loop_public()


#: ``running_loop_here(loop)``: the event loop running in this thread (or
#: None), asking ``loop`` first.
running_loop_here: Callable[[asyncio.AbstractEventLoop], asyncio.AbstractEventLoop | None] = (
    _running_loop_here_fast if FAST else _running_loop_here_public
)


class RunCancelled(asyncio.CancelledError, CancelledError):
    """Raised by ``result()``/``exception()`` of a cancelled run of `AsyncRunner`.

    It is both ``asyncio.CancelledError`` (what asyncio's ``wait_for``,
    ``as_completed`` and ``run_until_complete`` expect from a cancelled future)
    and ``concurrent.futures.CancelledError`` (what thread code expects from a
    cancelled ``Future``), so either ``except`` clause catches it.
    """


# One callback registered from a loop: (fn, loop, context).
_LoopCallback = tuple[Callable[[Any], object], asyncio.AbstractEventLoop, "contextvars.Context | None"]


# The lock of every LoopTaskRun. One per process instead of one per run: a
# run's lock is one more object for the garbage collector to walk per pending
# run (about 2 us per run when 20,000 short coroutines are in flight), and
# the state of these runs changes almost only on their loops' threads, so the
# lock is nearly never contended. Threads that block on a run wait on a
# `_Sleeper` of that run (see LoopTaskRun.result), never on this lock's
# condition, so one run's end wakes only its own waiters.
_SHARED = RunCondition()
_SHARED._waiters = None


class _Sleeper:
    """A thread blocked until one run ends; woken like concurrent.futures' waiters."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = _allocate_lock()
        self.lock.acquire()

    def add_result(self, future: object) -> None:
        self.lock.release()

    add_exception = add_cancelled = add_result


class LoopTaskRun(TaskRun[T]):
    """A `TaskRun` of an event loop's runner that asyncio treats as one of its futures.

    Example:
        >>> import asyncio
        >>> from woflo import AsyncRunner
        >>> async def main() -> list[int]:
        ...     runner = AsyncRunner(loop=asyncio.get_running_loop())
        ...     runs = [runner.submit(asyncio.sleep, 0, n) for n in range(3)]
        ...     return await asyncio.gather(*runs)  # takes the runs as they are
        >>> asyncio.run(main())
        [0, 1, 2]
    """

    # asyncio.isfuture() looks for the class attribute _asyncio_future_blocking:
    # set below, on the fast path only. What gather reads on a cancelled child, and what asyncio.shield (3.14)
    # reads when it logs a late failure: asyncio futures' attributes.
    _cancel_message: str | None = None
    _source_traceback: Any = None

    _loop: asyncio.AbstractEventLoop

    _shared_condition = _SHARED

    @classmethod
    def _create(cls, name: str, runner: Any) -> TaskRun[Any]:
        """A new pending run of ``runner``, on the runner's event loop (its ``loop``)."""
        run = super()._create(name, runner)
        run._loop = runner.loop  # type: ignore[attr-defined]
        return run

    def _sleep_until_done(self, timeout: float | None) -> bool:
        """Block until the run is done or ``timeout`` passes; return whether it is done.

        Raises:
            RuntimeError: called on the run's own loop for a run not done, with
                a timeout other than 0: the run could only end once the loop
                runs again, so the wait would freeze the loop (forever, without
                a timeout) and then fail.
        """
        if (
            (timeout is None or timeout > 0)
            and self._state not in _OVER
            and running_loop_here(self._loop) is self._loop
        ):
            raise RuntimeError(
                f"waiting for {self.name} on the event loop that runs it would deadlock: "
                "await the run there instead of calling result(), exception(), wait() or get_result()"
            )
        lock = self._condition
        lock.acquire()
        try:
            if self._state in _OVER:
                return True
            sleeper = _Sleeper()
            self._waiters.append(sleeper)
        finally:
            lock.release()
        try:
            if timeout is None:
                sleeper.lock.acquire()
            elif timeout > 0:
                sleeper.lock.acquire(True, timeout)
        finally:
            lock.acquire()
            try:
                with contextlib.suppress(ValueError):  # already woken and removed
                    self._waiters.remove(sleeper)
            finally:
                lock.release()
        return self._state in _OVER

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run is done; return whether it is (``False`` on timeout)."""
        return self._sleep_until_done(timeout)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The caller's running event loop, else the loop the run executes on."""
        running = running_loop_here(self._loop)
        return self._loop if running is None else running

    def add_done_callback(self, fn: Callable[[Any], object], *, context: contextvars.Context | None = None) -> None:
        """Call ``fn(run)`` when the run is done: on the caller's loop if it has one.

        Args:
            fn: called with the run.
            context: the ``contextvars.Context`` to call ``fn`` in (asyncio's
                argument); only used for callbacks scheduled on a loop.
        """
        loop = running_loop_here(self._loop)
        if loop is None:
            if context is None:
                super().add_done_callback(fn)
                return
            loop = self._loop
        cond = self._condition
        cond.acquire()
        try:
            if self._state not in _OVER:
                if self._cbs is None and loop is self._loop and context is None:
                    # The usual case (gather, wait): one callback, on the
                    # run's loop. Kept as it is, with no list or tuple.
                    self._cbs = fn
                else:
                    self._done_callbacks.append((fn, loop, context))
                return
        finally:
            cond.release()
        _schedule((fn, loop, context), self)

    @property
    def _done_callbacks(self) -> list[Any]:
        # _cbs: None, a list of entries, or one bare callback for the run's
        # own loop. Entries: a plain callable (the stdlib's kind, called in
        # the thread that ends the run) or (fn, loop, context) for a loop.
        cbs = self._cbs
        if type(cbs) is not list:
            cbs = self._cbs = [] if cbs is None else [(cbs, self._loop, None)]
        return cbs

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        """Remove every pending ``fn`` callback; return how many were removed (asyncio's API)."""
        with self._condition:
            callbacks = self._done_callbacks
            kept = [cb for cb in callbacks if (cb[0] if type(cb) is tuple else cb) != fn]
            removed = len(callbacks) - len(kept)
            callbacks[:] = kept
        return removed

    def _invoke_callbacks(self) -> None:
        # The stdlib calls each callback in this thread; those added from a
        # loop go to their loop instead.
        cbs = self._cbs
        # Called once, when the run ends: drop the callbacks (and whatever
        # they hold) now rather than with the run.
        self._cbs = None
        if type(cbs) is not list:
            if cbs is not None:
                _schedule((cbs, self._loop, None), self)
            return
        # Those for a loop are scheduled there (call_soon: nothing nests);
        # the rest as TaskRun's: a callback's SystemExit does not skip the
        # others, and deep nesting is queued (woflo/_each.py).
        plain = []
        for callback in cbs:
            if type(callback) is tuple:
                _schedule(callback, self)
            else:
                plain.append(callback)
        if plain:
            call_callbacks(self, plain, callback_failed)

    def _invoke_callbacks_at_end(self) -> None:
        # The run succeeded or failed on its loop's thread, at the very end of
        # the runner's work for the attempt: a single loop callback (gather's,
        # wait's) is called now rather than one loop iteration later, which
        # saves a Handle and a trip through the ready queue per run. Nothing
        # runs after it that could see a state it changed, the reason asyncio
        # otherwise defers callbacks. cancel()/stop() (user code) still defer.
        cbs = self._cbs
        loop = self._loop
        if cbs is None or type(cbs) is list or running_loop_here(loop) is not loop:
            self._invoke_callbacks()
            return
        self._cbs = None
        try:
            cbs(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            loop.call_exception_handler({"message": f"Exception in callback {cbs!r}", "exception": exc, "future": self})

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the run: asyncio's meaning inside an event loop, the stdlib's outside.

        Called from a coroutine or loop callback (including by ``gather``,
        ``wait_for`` or a cancelled task awaiting it), it stops the run even
        while an attempt is running and returns ``True`` unless the run had
        already finished. Called from a thread without a loop, it cancels only
        a run that has not started (`stop` ends a running one).
        """
        if running_loop_here(self._loop) is None:
            return super().cancel()
        if self.done():
            return False  # asyncio's answer, even for a run already cancelled
        if msg is not None:
            self._cancel_message = str(msg)
        return self._stop_because("stopped by cancel() inside its event loop")

    def result(self, timeout: float | None = None) -> T:
        """The run's value, as `TaskRun.result`; a cancelled run raises `RunCancelled`."""
        if self._state == FINISHED and self._exception is None:  # gather's call, per run
            return self._result  # type: ignore[no-any-return]
        if self._state not in _OVER:
            self._sleep_until_done(timeout)
        if self._state == CANCELLED_AND_NOTIFIED:
            raise self._make_cancelled_error()
        # Done: returns or raises at once. Not done: the timeout passed, and
        # result(0) raises the stdlib's TimeoutError.
        try:
            return super().result(0)
        except BaseException:
            del self  # as TaskRun.result: the exception's traceback keeps this frame
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The run's exception, as `TaskRun.exception`; a cancelled run raises `RunCancelled`."""
        if self._state == FINISHED:  # gather's call, twice per run
            return self._exception
        if self._state not in _OVER:
            self._sleep_until_done(timeout)
        if self._state == CANCELLED_AND_NOTIFIED:
            raise self._make_cancelled_error()
        return super().exception(0)

    def _make_cancelled_error(self) -> RunCancelled:
        # What asyncio raises for a cancelled future (gather calls it): the
        # message given to cancel(msg), else what ended the run.
        if self._cancel_message is None:
            return RunCancelled(self._cancelled_message())
        return RunCancelled(self._cancel_message)

    _cancelled_error = _make_cancelled_error


if FAST:
    # An asyncio future: gather, wait, shield... take a run as it is.
    LoopTaskRun._asyncio_future_blocking = False  # type: ignore[attr-defined]


def _schedule(callback: _LoopCallback, run: LoopTaskRun[Any]) -> None:
    fn, loop, context = callback
    if running_loop_here(loop) is loop:
        loop.call_soon(fn, run, context=context)
        return
    # A loop that has closed can run nothing more: the callback is dropped
    # with it, as asyncio drops the callbacks of a closed loop.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, run, context=context)
