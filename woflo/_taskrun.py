"""`TaskRun`: a `concurrent.futures.Future` that knows its attempts.

A TaskRun behaves exactly like the Future the standard executors return. It only
adds what a run of a task has on top: a name, an id, a state that tells
"retrying" from "running", the record of every attempt, ``stop()``, the woflo 0.8
methods, and ``await``. Only runners create TaskRuns.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import threading
from collections.abc import Generator
from concurrent.futures import CancelledError, Future
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from woflo._condition import RunCondition

if TYPE_CHECKING:
    from collections.abc import Callable

    import tenacity

    from woflo._policy import Policy
    from woflo._runner import Runner
    from woflo._scheduler import Timer

__all__ = ["AttemptRecord", "RunState", "TaskRun"]

T = TypeVar("T")

_OVER = (FINISHED, CANCELLED_AND_NOTIFIED)

# concurrent.futures' own words for a Future's states (its __repr__).
_STATE_WORDS = {PENDING: "pending", RUNNING: "running", CANCELLED_AND_NOTIFIED: "cancelled", FINISHED: "finished"}


class RunState(str, enum.Enum):
    """Where a run is in its life. ``str`` so it prints and compares as its name."""

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class AttemptRecord(NamedTuple):
    """What happened in one attempt of a run.

    Attributes:
        number: 1 for the first attempt.
        started_at: wall-clock start (``time.time()``).
        duration_s: how long the attempt ran, in seconds.
        outcome: ``"succeeded"``, ``"failed"``, ``"timed_out"``, ``"crashed"`` or ``"stopped"``.
        exception: the attempt's exception, ``None`` on success.
        worker: who ran it: a thread name, a process id, a Dask worker address.
    """

    number: int
    started_at: float
    duration_s: float
    outcome: str
    exception: BaseException | None
    worker: object


class TaskRun(Future[T], Generic[T]):
    """One submission of a callable: a `Future` with attempts, state and `stop()`.

    Use it as any `concurrent.futures.Future` (``result``, ``exception``,
    ``add_done_callback``, ``wait``, ``as_completed``), ``await`` it inside an
    event loop, or with the woflo 0.8 methods ``get_result``, ``wait``,
    ``is_running`` and ``stop``.

    Example:
        >>> from woflo import ThreadRunner
        >>> with ThreadRunner(max_workers=1) as ex:
        ...     run = ex.submit(pow, 2, 10)
        ...     run.result(), run.state, len(run.attempts)
        (1024, <RunState.SUCCEEDED: 'succeeded'>, 1)
    """

    name: str
    _runner: Runner
    _run_state: RunState
    # The runner's bookkeeping, kept on the run itself rather than in an
    # object of its own (one allocation fewer per run): the attempt in
    # progress or the scheduled retry, the policy, the call (dropped when the
    # run ends), its start, and what deadlines and custom retries need.
    _current: Any = None
    _policy: Policy
    _fn: Callable[..., Any] | None = None
    _args: tuple[Any, ...] | None = None
    _kwargs: dict[str, Any] | None = None
    _t0: float
    _deadline_timer: Timer | None = None
    _deadline_hit: bool = False
    _retry_state: tenacity.RetryCallState | None = None
    _run_id: str | None = None
    # What ended the run as cancelled ("stopped by stop()"), for the message
    # of the CancelledError that result() raises.
    _cancel_reason: str | None = None
    # Future's own fields, as the class's defaults (see _create).
    _result: Any = None
    _exception: BaseException | None = None

    # A subclass may have all its runs share one lock (see LoopTaskRun).
    _shared_condition: ClassVar[RunCondition | None] = None

    def __init__(self) -> None:
        raise TypeError("TaskRun objects are created by runners: call Runner.submit() or a @task")

    @classmethod
    def _create(cls, name: str, runner: Runner) -> TaskRun[Any]:
        self: TaskRun[Any] = cls.__new__(cls)
        # Future.__init__'s fields, with a RunCondition instead of its costly
        # threading.Condition (see woflo/_condition.py); the fields whose
        # first value is None are class attributes until set.
        cond = cls._shared_condition
        if cond is None:
            cond = RunCondition()
            cond._waiters = None
        self._condition = cond  # type: ignore[assignment]
        self._state = PENDING
        self.name = name
        self._runner = runner
        self._run_state = RunState.PENDING
        return self

    # -- lazily made containers ------------------------------------------------
    #
    # Most runs are never waited on by concurrent.futures.wait, have at most
    # one callback and one attempt: these lists are made when first needed, not
    # per run (each is one more object for the garbage collector to walk while
    # thousands of runs are in flight). Only runners and the stdlib's own
    # Future code touch them, always under the run's lock or from the thread
    # that owns the run's state.

    _w: list[Any] | None = None
    # None or a list (LoopTaskRun also keeps one bare callback here).
    _cbs: Any = None
    _records: list[AttemptRecord] | AttemptRecord | None = None

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        w = self._w
        if w is None:
            w = self._w = []
        return w

    @property
    def _done_callbacks(self) -> list[Any]:
        cbs: list[Any] | None = self._cbs
        if cbs is None:
            cbs = self._cbs = []
        return cbs

    @property
    def attempts(self) -> list[AttemptRecord]:
        """The record of every attempt so far, oldest first (`AttemptRecord`)."""
        records = self._records
        if type(records) is not list:
            records = self._records = [] if records is None else [records]  # type: ignore[list-item]
        return records

    def _record(self, record: AttemptRecord) -> None:
        records = self._records
        if records is None:
            self._records = record
        elif type(records) is list:
            records.append(record)
        else:
            self._records = [records, record]  # type: ignore[list-item]

    # -- identity and state ---------------------------------------------------

    @property
    def run_id(self) -> str:
        """A unique id for this run (a uuid4 hex string), made on first use."""
        run_id = self._run_id
        if run_id is None:
            run_id = self._run_id = _uuid4_hex()
        return run_id

    @property
    def state(self) -> RunState:
        """The run's state: pending, running, retrying, succeeded, failed or cancelled."""
        return self._run_state

    @property
    def runner(self) -> Runner:
        """The runner this run was submitted to."""
        return self._runner

    def __repr__(self) -> str:
        # The stdlib Future's wording first (code and people parse it), then
        # woflo's own fields. Only class names of the result: never its repr.
        state = self._state
        head = f"<{type(self).__name__} at {id(self):#x} state={_STATE_WORDS[state]}"
        if state == FINISHED:
            exc = self._exception
            if exc is not None:
                head += f" raised {type(exc).__name__}"
            else:
                head += f" returned {type(self._result).__name__}"
        return f"{head} name={self.name!r} run_id={self.run_id[:8]} run_state={self._run_state.value}>"

    # -- stdlib contract, extended --------------------------------------------

    # done/cancelled/result/exception read a finished run without its lock:
    # a finished state never changes, and asyncio.gather calls them several
    # times per run. Anything not finished takes the stdlib's locked path.

    def done(self) -> bool:
        """Whether the run has finished or was cancelled."""
        return self._state in _OVER

    def cancelled(self) -> bool:
        """Whether the run was cancelled or stopped."""
        return self._state == CANCELLED_AND_NOTIFIED

    def result(self, timeout: float | None = None) -> T:
        """The run's value, waiting up to ``timeout`` seconds (the stdlib contract).

        Raises:
            CancelledError: the run was cancelled or stopped; the message says by what.
            TimeoutError: the run did not finish within ``timeout`` seconds.
            BaseException: the task's own exception.
        """
        state = self._state
        if state == FINISHED and self._exception is None:
            return self._result  # type: ignore[no-any-return]
        if state != CANCELLED_AND_NOTIFIED:
            try:
                return super().result(timeout)
            except CancelledError:
                if self._state != CANCELLED_AND_NOTIFIED:
                    raise  # the task's own CancelledError
        raise self._cancelled_error()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The run's exception or ``None``, waiting up to ``timeout`` seconds (the stdlib contract).

        Raises:
            CancelledError: the run was cancelled or stopped; the message says by what.
            TimeoutError: the run did not finish within ``timeout`` seconds.
        """
        state = self._state
        if state == FINISHED:
            return self._exception
        if state != CANCELLED_AND_NOTIFIED:
            try:
                return super().exception(timeout)
            except CancelledError:
                pass  # cancelled meanwhile
        raise self._cancelled_error()

    def _cancelled_message(self) -> str:
        """What ended this cancelled run, as one line."""
        return f"{self.name} was {self._cancel_reason or 'cancelled'}"

    def _cancelled_error(self) -> CancelledError:
        # The stdlib raises CancelledError() with no message at all.
        return CancelledError(self._cancelled_message())

    def cancel(self) -> bool:
        """Cancel the run if no attempt has started yet (the stdlib contract).

        Returns ``False`` once an attempt is running or the run is done; use
        `stop` to end a running run.
        """
        return self._cancel_because("cancelled by cancel() before it started")

    def _cancel_because(self, reason: str) -> bool:
        """`cancel`, with ``reason`` (``"cancelled by ..."``) for the CancelledError's message."""
        with self._condition:
            if self._state != PENDING:
                return self._state == CANCELLED_AND_NOTIFIED
            # Notify waiters now: a cancelled run may never reach a worker that
            # would otherwise call set_running_or_notify_cancel for it.
            self._finish_cancelled(reason)
        try:
            self._invoke_callbacks()  # type: ignore[attr-defined]
        finally:  # a callback's SystemExit must not leave the attempt running
            self._runner._on_cancelled(self, stopped=False)
        return True

    def stop(self) -> bool:
        """Stop the run wherever it is, and end it as cancelled.

        A pending run is cancelled, a scheduled retry is dropped, and a running
        attempt is stopped as far as the runner can: the process runner kills the
        worker, the async runner cancels the coroutine, the thread runner abandons
        the thread (its late result is discarded), the sequential runner cannot.

        Returns:
            ``True`` if the run ended as cancelled, ``False`` if it had already
            finished.
        """
        return self._stop_because("stopped by stop()")

    def _stop_because(self, reason: str) -> bool:
        """`stop`, with ``reason`` (``"stopped by ..."``) for the CancelledError's message."""
        with self._condition:
            if self._state in (FINISHED, CANCELLED_AND_NOTIFIED):
                return self._state == CANCELLED_AND_NOTIFIED
            self._finish_cancelled(reason)
        try:
            self._invoke_callbacks()  # type: ignore[attr-defined]
        finally:  # a callback's SystemExit must not leave the attempt running
            self._runner._on_cancelled(self, stopped=True)
        return True

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickling one would drag in its runner, its locks and every run its
        # arguments reach (a chain of runs hit the recursion limit): say what
        # is wrong at once. A process runner fails such a run with
        # SerializationError.
        raise TypeError(f"cannot pickle {self!r}: pass its result() instead of the TaskRun")

    def _finish_cancelled(self, reason: str) -> None:
        # Called with self._condition held; the caller invokes the callbacks
        # after releasing it, as Future.cancel() does. Mirrors cancel() followed
        # by set_running_or_notify_cancel(), but is also valid from RUNNING.
        self._cancel_reason = reason
        self._state = CANCELLED_AND_NOTIFIED
        self._run_state = RunState.CANCELLED
        for waiter in self._w or ():
            waiter.add_cancelled(self)
        self._condition.notify_all()

    def _try_begin(self) -> bool:
        """Move PENDING to RUNNING for the first attempt; False if the run is over."""
        # acquire/release rather than `with`: half the cost on this per-attempt path.
        cond = self._condition
        cond.acquire()
        try:
            state = self._state
            if state == PENDING:
                self._state = RUNNING
            elif state != RUNNING:
                return False
            self._run_state = RunState.RUNNING
            return True
        finally:
            cond.release()

    def _set_retrying(self) -> bool:
        with self._condition:
            if self._state == PENDING:
                # An attempt that failed before reaching a worker (say, its
                # arguments could not be pickled): the run has started all the same.
                self._state = RUNNING
            elif self._state != RUNNING:
                return False
            self._run_state = RunState.RETRYING
            return True

    def _succeed(self, value: T) -> bool:
        # Future.set_result would run the callbacks under our lock and raise on a
        # run stopped meanwhile; this does the same bookkeeping race-free.
        cond = self._condition
        cond.acquire()
        try:
            if self._state != RUNNING:
                return False
            self._result = value
            self._state = FINISHED
            self._run_state = RunState.SUCCEEDED
            if self._w or cond._waiters:  # type: ignore[attr-defined]
                self._notify_waiters("add_result")
        finally:
            cond.release()
        if self._cbs is not None:
            self._invoke_callbacks_at_end()
        return True

    def _fail(self, exc: BaseException) -> bool:
        cond = self._condition
        cond.acquire()
        try:
            if self._state not in (RUNNING, PENDING):
                return False
            self._exception = exc
            self._state = FINISHED
            self._run_state = RunState.FAILED
            if self._w or cond._waiters:  # type: ignore[attr-defined]
                self._notify_waiters("add_exception")
        finally:
            cond.release()
        if self._cbs is not None:
            self._invoke_callbacks_at_end()
        return True

    def _invoke_callbacks_at_end(self) -> None:
        # Called by _succeed/_fail, which only the runner calls, at the end of
        # an attempt's work (see LoopTaskRun for why that matters).
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def _notify_waiters(self, event: str) -> None:
        # Called with the condition held, only when someone waits: the common
        # case, nobody, is the hot path of every run and skips this call.
        for waiter in self._w or ():
            getattr(waiter, event)(self)
        self._condition.notify_all()

    # -- woflo 0.8 API ---------------------------------------------------------

    def get_result(self, raise_exceptions: bool = False, wait: bool = True, timeout: float | None = None) -> Any:
        """Return the task's value; the woflo 0.8 form of `result`.

        Args:
            raise_exceptions: raise the task's exception instead of returning it.
                ``result()`` is the always-raising form.
            wait: with ``False``, raise `RuntimeError` at once if the run has not
                finished.
            timeout: seconds to wait at most (`TimeoutError` after that).

        Returns:
            The return value, or, if the run failed or was cancelled and
            ``raise_exceptions`` is false, the exception object.

        Example:
            >>> from woflo import SequentialRunner
            >>> SequentialRunner().submit(int, "x").get_result()
            ValueError("invalid literal for int() with base 10: 'x'")
        """
        if not wait and not self.done():
            raise RuntimeError(f"Task {self.name} is still running")
        try:
            return self.result(timeout)
        except (CancelledError, Exception) as exc:
            # A run not done did not raise this: the wait did (a timeout, or a
            # wait refused on the run's own event loop). Never return it as
            # if it were the task's outcome.
            if raise_exceptions or not self.done():
                raise
            return exc

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run is done; return whether it is (``False`` on timeout)."""
        with self._condition:
            if self._state not in (FINISHED, CANCELLED_AND_NOTIFIED):
                self._condition.wait(timeout)
            return self._state in (FINISHED, CANCELLED_AND_NOTIFIED)

    def is_running(self) -> bool:
        """True while the run is not done (running, retrying or waiting for a worker)."""
        return not self.done()

    # -- asyncio ---------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, T]:
        """``await run`` inside a running event loop gives the result.

        Cancelling the awaiting coroutine (``asyncio.wait_for`` timing out, a
        cancelled task) stops the run, as cancelling an asyncio task would; a
        run that was cancelled or stopped raises ``asyncio.CancelledError``
        there, as any cancelled asyncio future does.
        """
        if not self.done():
            loop = asyncio.get_running_loop()
            signal: asyncio.Future[None] = loop.create_future()
            loop_thread = threading.get_ident()

            def relay(_: Future[T]) -> None:
                # A run that ends on the loop's own thread (the async runner)
                # needs no cross-thread wake-up; the others hop onto the loop.
                if threading.get_ident() == loop_thread:
                    _wake(signal)
                else:
                    with contextlib.suppress(RuntimeError):  # the loop has closed
                        loop.call_soon_threadsafe(_wake, signal)

            # The stdlib's add_done_callback: called by whoever ends the run,
            # without the extra loop hop of a run's asyncio-style callbacks.
            Future.add_done_callback(self, relay)
            try:
                yield from signal.__await__()
            except asyncio.CancelledError:
                self._stop_because("stopped because the coroutine awaiting it was cancelled")
                raise
        if self._state == CANCELLED_AND_NOTIFIED:
            raise asyncio.CancelledError(self._cancelled_message())
        return self.result()


def _uuid4_hex() -> str:
    # uuid.uuid4().hex without building a UUID object (0.8 instead of 2 us;
    # every run with events on needs one).
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _wake(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)
