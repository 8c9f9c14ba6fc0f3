"""`TaskRun`: a `concurrent.futures.Future` that knows its attempts.

A TaskRun behaves exactly like the Future the standard executors return. It only
adds what a run of a task has on top: a name, an id, a state that tells
"retrying" from "running", the record of every attempt, ``stop()``, the woflo 0.8
methods, and ``await``. Only runners create TaskRuns.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
from collections.abc import Callable, Generator
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, NamedTuple, Protocol, TypeVar

from woflo._condition import RunCondition
from woflo._each import call_callbacks

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "INPUT_LEAVES",
    "INPUT_TYPES",
    "ST_RUNNING",
    "AttemptOutcome",
    "AttemptRecord",
    "RunOwner",
    "RunState",
    "TaskRun",
]

#: How an attempt ended (`AttemptRecord.outcome`).
AttemptOutcome = Literal["succeeded", "failed", "timed_out", "crashed", "stopped"]

T = TypeVar("T")

_OVER = (FINISHED, CANCELLED_AND_NOTIFIED)

# The stdlib Future's logger, for what a done-callback raises.
_LOGGER = logging.getLogger("concurrent.futures")


def callback_failed(run: Future[Any], exc: Exception) -> None:
    """Log a done-callback's `Exception` as the stdlib's ``Future`` does (called in the ``except`` block)."""
    _LOGGER.exception("exception calling callback for %r", run)


# concurrent.futures' own words for a Future's states (its __repr__).
_STATE_WORDS = {PENDING: "pending", RUNNING: "running", CANCELLED_AND_NOTIFIED: "cancelled", FINISHED: "finished"}


class RunState(str, enum.Enum):
    """Where a run is in its life. ``str`` so it prints and compares as its name.

    The allowed moves between states are `TRANSITIONS`; a run's stdlib
    ``Future`` state is a function of this one (`FUTURE_STATE`).
    """

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


#: The life of a run, written once: the states each state may move to.
#: PENDING -> RUNNING is the first attempt starting; RUNNING -> RUNNING the
#: next attempt starting after an immediate retry; RETRYING is a retry's wait,
#: and RETRYING -> RETRYING the next wait after an attempt that failed before
#: it began (it waited for a worker that never came).
#: A run may end from any live state: succeed before any attempt started
#: (as ``Future.set_result`` may), fail before (its arguments could not be
#: sent), be cancelled (pending) or stopped (running, retrying).
TRANSITIONS: dict[RunState, tuple[RunState, ...]] = {
    RunState.PENDING: (
        RunState.RUNNING,
        RunState.RETRYING,
        RunState.SUCCEEDED,
        RunState.FAILED,
        RunState.CANCELLED,
    ),
    RunState.RUNNING: (
        RunState.RUNNING,
        RunState.RETRYING,
        RunState.SUCCEEDED,
        RunState.FAILED,
        RunState.CANCELLED,
    ),
    RunState.RETRYING: (
        RunState.RUNNING,
        RunState.RETRYING,
        RunState.SUCCEEDED,
        RunState.FAILED,
        RunState.CANCELLED,
    ),
    RunState.SUCCEEDED: (),
    RunState.FAILED: (),
    RunState.CANCELLED: (),
}

#: The stdlib ``Future`` state a run in each state shows (its ``_state``, which
#: the stdlib's own ``wait``/``as_completed`` read).
FUTURE_STATE: dict[RunState, str] = {
    RunState.PENDING: PENDING,
    RunState.RUNNING: RUNNING,
    RunState.RETRYING: RUNNING,
    RunState.SUCCEEDED: FINISHED,
    RunState.FAILED: FINISHED,
    RunState.CANCELLED: CANCELLED_AND_NOTIFIED,
}

# The states as module constants, for the per-run path: reading a member
# through its class (``RunState.RUNNING``) is a lookup in EnumType, about 90 ns
# on Python 3.11, three times per run.
ST_RUNNING, ST_RETRYING, ST_SUCCEEDED, ST_FAILED, ST_CANCELLED = (
    RunState.RUNNING,
    RunState.RETRYING,
    RunState.SUCCEEDED,
    RunState.FAILED,
    RunState.CANCELLED,
)

# The hot path reads the table through attributes of the members: an enum
# member's hash is a Python-level call, a tuple's ``in`` compares identity first.
for _state, _next in TRANSITIONS.items():
    _state._next = _next  # type: ignore[attr-defined]
    _state._future = FUTURE_STATE[_state]  # type: ignore[attr-defined]
del _state, _next


#: The exact types of the arguments ``submit`` looks at twice (woflo/_inputs.py):
#: the run classes (`TaskRun` and every subclass, added as it is defined), the
#: containers searched one level deep for runs, and ``woflo.unresolved``'s
#: wrapper (added by woflo/_inputs.py). A set of types, so that the check per
#: argument is one ``type(arg) in INPUT_TYPES``.
INPUT_TYPES: set[type] = {list, tuple, dict, set, frozenset}
#: The same without the containers: what is looked for inside one.
INPUT_LEAVES: set[type] = set()


class RunOwner(Protocol):
    """What a `TaskRun` calls back on its runner (`woflo.Runner` implements it)."""

    def _on_cancelled(self, run: TaskRun[Any], stopped: bool) -> None:
        """The run is being cancelled or stopped: stop its attempt, drop its bookkeeping, log it.

        Called without the run's lock, while the run is ending: it is marked
        cancelled (and its waiters wake) once this returns.
        """


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
    outcome: AttemptOutcome
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
    _runner: RunOwner
    # The one state of the run; the stdlib Future's ``_state`` follows it
    # (see _move, the only place either changes). Both start as the class's
    # values, set on the instance at the first move.
    _run_state: RunState = RunState.PENDING
    _state: str = PENDING
    _run_id: str | None = None
    # What ended the run as cancelled ("stopped by stop()"), for the message
    # of the CancelledError that result() raises.
    _cancel_reason: str | None = None
    # Set (under the lock) by whoever ends the run (the `_complete` that
    # announces its end, or `cancel`/`stop`) while the end is logged unlocked:
    # meanwhile no attempt may begin and nothing else may end the run.
    _ending: bool = False
    # Future's own fields, as the class's defaults (see _create).
    _result: Any = None
    _exception: BaseException | None = None

    # A subclass may have all its runs share one lock (see LoopTaskRun).
    _shared_condition: ClassVar[RunCondition | None] = None

    def __init__(self) -> None:
        raise TypeError("TaskRun objects are created by runners: call Runner.submit() or a @task")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        INPUT_TYPES.add(cls)  # a run of a subclass is an input too
        INPUT_LEAVES.add(cls)

    @classmethod
    def _create(cls, name: str, runner: RunOwner) -> TaskRun[Any]:
        """A new pending run of ``runner`` (subclasses add their own fields)."""
        self: TaskRun[Any] = cls.__new__(cls)
        # Future.__init__'s fields, with a RunCondition instead of its costly
        # threading.Condition (see woflo/_condition.py); the fields whose
        # first value is None are class attributes until set.
        cond = cls._shared_condition
        if cond is None:
            cond = RunCondition()
            cond._waiters = None
        self._condition = cond  # type: ignore[assignment]
        self._records = []
        self.name = name
        self._runner = runner
        return self

    # -- lazily made containers ------------------------------------------------
    #
    # Most runs are never waited on by concurrent.futures.wait and have at
    # most one callback: these lists are made when first needed, not per run
    # (each is one more object for the garbage collector to walk while
    # thousands of runs are in flight). Only runners and the stdlib's own
    # Future code touch them, always under the run's lock or from the thread
    # that owns the run's state.

    _w: list[Any] | None = None
    # None or a list (LoopTaskRun also keeps one bare callback here).
    _cbs: Any = None
    # One plain tuple per attempt, in AttemptRecord's field order; `attempts`
    # makes the AttemptRecords. Building a namedtuple per attempt made a
    # one-at-a-time round trip on ThreadRunner 0.6 us (4%) slower
    # (benchmarks/bench_latency.py --cpus 0), and most records are never read.
    _records: list[tuple[int, float, float, AttemptOutcome, BaseException | None, object]]

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
        """The record of every attempt so far, oldest first: a new list of `AttemptRecord`."""
        return [AttemptRecord._make(record) for record in self._records]

    # -- identity and state ---------------------------------------------------

    @property
    def run_id(self) -> str:
        """A unique id for this run (a uuid4 hex string), made on first use."""
        run_id = self._run_id
        if run_id is None:
            # setdefault, atomic: two threads asking first (a consumer's
            # callback naming its input while an event names it) get one id.
            run_id = self.__dict__.setdefault("_run_id", _uuid4_hex())
        return run_id

    @property
    def state(self) -> RunState:
        """The run's state: pending, running, retrying, succeeded, failed or cancelled."""
        return self._run_state

    @property
    def runner(self) -> Executor:
        """The runner this run was submitted to (a `woflo.Runner`)."""
        return self._runner  # type: ignore[return-value]

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

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call ``fn(run)`` once the run is done, or now if it is (the stdlib contract).

        As the stdlib's: ``fn`` runs on the thread that ends the run (or this
        one, at once, if the run is done), an `Exception` it raises is logged
        on the ``concurrent.futures`` logger, and a ``KeyboardInterrupt`` or
        ``SystemExit`` it raises propagates. Unlike it, once 16 callbacks nest
        on a thread (``woflo._each.MAX_NESTED_CALLBACKS``) and the stack is
        half the recursion limit deep, one added to a done run is queued and
        called by the outermost callback loop once its callback returns, in
        order. A chain of runs, each submitted from the last one's callback,
        then keeps a bounded stack however long it gets (the stdlib's
        ``Future`` nests them all, and with runs that end at once, as on
        `woflo.SequentialRunner`, hits the recursion limit after a few
        hundred).
        """
        cond = self._condition
        cond.acquire()
        try:
            if self._state not in _OVER:
                self._done_callbacks.append(fn)
                return
        finally:
            cond.release()
        call_callbacks(self, (fn,), callback_failed)

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
                    del self  # as below
                    raise  # the task's own CancelledError
            except BaseException:
                # As the stdlib's Future.result: the traceback of the task's
                # exception keeps this frame, and the run keeps the exception;
                # the frame must not hold the run (a cycle only a collection frees).
                del self
                raise
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
            if self._state != PENDING or self._ending:  # ending: see _complete
                return self._state == CANCELLED_AND_NOTIFIED
            # From here no attempt may begin (see _try_begin) nor another end win.
            self._ending = True
            self._cancel_reason = reason
        self._end_cancelled(stopped=False)
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
            if self._state in _OVER or self._ending:  # ending: see _complete
                return self._state == CANCELLED_AND_NOTIFIED
            self._ending = True
            self._cancel_reason = reason
        self._end_cancelled(stopped=True)
        return True

    def _end_cancelled(self, stopped: bool) -> None:
        """End the ending run as cancelled: first its runner, then its waiters and callbacks.

        The runner stops the attempt, drops its bookkeeping and logs
        ``task.cancelled`` (`RunOwner._on_cancelled`) without the run's lock
        and before anyone can see the run cancelled, as `_complete` announces
        an end; then the run is marked cancelled, waiters wake, and the
        callbacks run, after the lock is released, as ``Future.cancel()``
        calls them. Whatever the runner raises (a logging handler's
        ``KeyboardInterrupt``) is raised once the run has ended.
        """
        try:
            self._runner._on_cancelled(self, stopped)
        finally:
            with self._condition:
                self._finish_cancelled()
            self._invoke_callbacks()

    # The stdlib's executor-side methods would change the Future's state
    # behind the run's own (see _move): a run is ended by its runner only,
    # through the `woflo.Attempt` its backend was given.

    def set_running_or_notify_cancel(self) -> bool:
        """Not for a TaskRun: raises `RuntimeError` (its runner moves it; see `woflo.Attempt.begin`)."""
        raise RuntimeError(_OWNED_BY_RUNNER.format("set_running_or_notify_cancel"))

    def set_result(self, result: T) -> None:
        """Not for a TaskRun: raises `RuntimeError` (report through `woflo.Attempt.succeed`)."""
        raise RuntimeError(_OWNED_BY_RUNNER.format("set_result"))

    def set_exception(self, exception: BaseException | None) -> None:
        """Not for a TaskRun: raises `RuntimeError` (report through `woflo.Attempt.fail`)."""
        raise RuntimeError(_OWNED_BY_RUNNER.format("set_exception"))

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickling one would drag in its runner, its locks and every run its
        # arguments reach (a chain of runs hit the recursion limit): say what
        # is wrong at once. A process runner fails such a run with
        # SerializationError.
        raise TypeError(f"cannot pickle {self!r}: pass its result() instead of the TaskRun")

    def _finish_cancelled(self) -> None:
        # Called with self._condition held, once _cancel_reason is set; the
        # caller invokes the callbacks after releasing it, as Future.cancel()
        # does. Mirrors cancel() followed by set_running_or_notify_cancel(),
        # but is also valid from RUNNING.
        self._move(ST_CANCELLED)
        for waiter in self._w or ():
            waiter.add_cancelled(self)
        self._condition.notify_all()

    def _move(self, to: RunState) -> bool:
        """Move the run to state ``to`` if `TRANSITIONS` allows it; the only writer of both states.

        Called with the run's condition held.
        """
        if to not in self._run_state._next:  # type: ignore[attr-defined]
            return False
        self._run_state = to
        self._state = to._future  # type: ignore[attr-defined]
        return True

    def _try_begin(self) -> bool:
        """Move to RUNNING as an attempt starts; False if the run is over or ending."""
        # acquire/release rather than `with`: half the cost on this per-attempt path.
        cond = self._condition
        cond.acquire()
        try:
            return not self._ending and self._move(ST_RUNNING)
        finally:
            cond.release()

    def _set_retrying(self) -> bool:
        """Move to RETRYING as a retry's wait begins; False if the run is over or ending."""
        with self._condition:
            return not self._ending and self._move(ST_RETRYING)

    def _complete(self, value: Any, exc: BaseException | None, announce: Callable[[], object] | None = None) -> bool:
        """End the run with ``value`` (``exc`` is None) or ``exc``; False if it had ended.

        ``Future.set_result``/``set_exception`` would run the callbacks under
        the run's lock and raise on a run stopped meanwhile; this does the
        same bookkeeping race-free, then calls the callbacks unlocked.

        ``announce()``, if given, is called once the run is sure to end here
        and before anyone can see it ended: the runner's ``task.succeeded``/
        ``task.failed`` event is then logged before ``result()`` returns, on
        any thread. It is called without the run's lock: a logging handler
        may block, or stop or wait for other runs (whose ends may be calling
        it too), without deadlocking; meanwhile the run is ending: `stop`
        and `cancel` return ``False``, another completion does nothing. An
        exception it raises (``emit`` lets only a ``KeyboardInterrupt``-like
        one through) is raised once the run has ended.
        """
        interrupted: BaseException | None = None
        cond = self._condition
        if announce is not None:
            cond.acquire()
            try:
                if self._state in _OVER or self._ending:
                    return False
                self._ending = True
            finally:
                cond.release()
            try:
                announce()
            except BaseException as raised:  # the run ends all the same
                interrupted = raised
        cond.acquire()
        try:
            if self._ending and announce is None:
                return False  # ending elsewhere: an announced completion, a cancel() or a stop()
            if exc is None:
                if not self._move(ST_SUCCEEDED):
                    return False
                self._result = value
                event = "add_result"
            else:
                if not self._move(ST_FAILED):
                    return False
                self._exception = exc
                event = "add_exception"
            if self._w or cond._waiters:  # type: ignore[attr-defined]
                self._notify_waiters(event)
        finally:
            cond.release()
        try:
            if self._cbs is not None:
                self._invoke_callbacks_at_end()
        finally:
            if interrupted is not None:
                raise interrupted
        return True

    def _invoke_callbacks_at_end(self) -> None:
        # Called by _succeed/_fail, which only the runner calls, at the end of
        # an attempt's work (see LoopTaskRun for why that matters).
        self._invoke_callbacks()

    def _invoke_callbacks(self) -> None:
        # As the stdlib's Future: each callback in turn, an Exception logged
        # on the ``concurrent.futures`` logger. Unlike it, a callback raising
        # SystemExit or KeyboardInterrupt does not skip the ones after it (a
        # run waiting for this one as its input, a wait() or as_completed()):
        # every callback runs, then the first such exception is raised; and
        # nested too deep on this thread they are queued (woflo/_each.py).
        call_callbacks(self, self._done_callbacks, callback_failed)

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
        # Imported here: whoever awaits has asyncio imported already, and
        # `import woflo` must not import it (tens of milliseconds).
        import asyncio

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


INPUT_TYPES.add(TaskRun)
INPUT_LEAVES.add(TaskRun)

_OWNED_BY_RUNNER = (
    "TaskRun.{}() is not for callers: a run's state belongs to its runner, "
    "which settles it through the Attempt its backend was given (Attempt.begin/succeed/fail)"
)


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
