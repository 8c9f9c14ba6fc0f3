"""`Runner`: the Executor base that owns the attempt loop for every runner.

A run travels like this (see docs/architecture.md):

1. ``submit`` creates a `TaskRun`, emits ``task.submitted`` and launches
   attempt 1 through the concrete runner's `Runner._start`.
2. The backend calls `Attempt.begin` when the attempt really starts (this arms
   the timeout timer and emits ``attempt.started``), then `Attempt.succeed` or
   `Attempt.fail`.
3. `Runner._settle` records the attempt and asks the policy (tenacity's
   ``Retrying.iter``) what next: done, or sleep N then attempt again. The wait
   is a timer on the runner's `Scheduler`, so no worker is held during it.

A concrete runner implements only `_start` (run one attempt) and, if it can,
`_stop` (stop one attempt) and `_close` (release its workers).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Executor
from concurrent.futures._base import RUNNING
from types import FunctionType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import structlog
import tenacity

from woflo._attempt import Attempt
from woflo._errors import AttemptTimeout, BrokenRunner, DeadlineExceeded
from woflo._events import Emitter, events_switch
from woflo._policy import Policy
from woflo._scheduler import Scheduler, Timer
from woflo._shared import track
from woflo._submit import check_map_args, submit_ahead, task_name, unwrap_task
from woflo._taskrun import _OVER, AttemptRecord, RunState, TaskRun

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

# Attempt is re-exported: backends import it from here with Runner.
__all__ = ["Attempt", "Runner"]

T = TypeVar("T")


# Wall-clock time of an attempt's start, derived from its monotonic start:
# one clock read per attempt instead of two.
_WALL_OFFSET = time.time() - time.monotonic()

_new_tuple = tuple.__new__

# Checked before building an event's fields, to keep silent runs cheap.
_logging = events_switch()


class Runner(Executor):
    """Base of every woflo runner: a `concurrent.futures.Executor` with retries,
    per-attempt timeouts, run deadlines, `TaskRun.stop` and an event per attempt.

    Args:
        **options: the default policy for ``submit``: ``retries``,
            ``retry_wait_time`` (alias ``retry_sleep_time``), ``timeout``,
            ``deadline``, tenacity's ``stop``/``wait``/``retry``, or a whole
            ``retrying=tenacity.Retrying(...)``.
    """

    #: The runner's name in events (``runner=`` field).
    runner_name: ClassVar[str] = "runner"

    # What a shutdown(stop_running=True) stops the runs for, when it is not
    # the caller's own call (Ctrl-C in a with block, exit after Ctrl-C): the
    # cancelled runs' CancelledError says so. Set just before that shutdown.
    _stop_reason: str | None = None

    def __init__(self, **options: Unpack[PolicyOptions]) -> None:
        self._policy = Policy.build(**options)
        self._events = Emitter(self.runner_name)
        self._lock = threading.Lock()
        self._shutdown = False
        self._closed = False
        self._active: set[TaskRun[Any]] = set()
        self._scheduler = Scheduler(f"woflo-{self.runner_name}-timers", _report_error)
        # What releases the threads and workers of a runner dropped without
        # shutdown(), once it is unreachable, as the stdlib executors do. None
        # of these may refer to the runner (nor may its threads: they hold
        # weak references or none), or it would never be unreachable. A run
        # refers to its runner, so a run still referenced keeps it working.
        self._release_hooks: list[Callable[[], object]] = [functools.partial(self._scheduler.close, False)]
        self._finalizer = weakref.finalize(self, _release, self._release_hooks)
        self._finalizer.atexit = False  # at exit, _shared shuts runners down (waiting for their runs)
        track(self)

    # -- the Executor contract --------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskRun[T]:
        """Run ``fn(*args, **kwargs)`` under this runner's policy; return its `TaskRun`.

        Raises:
            TypeError: ``fn`` is not callable.
            RuntimeError: the runner has been shut down.
        """
        if type(fn) is FunctionType:  # the common case: no @task to unwrap
            return self._submit(fn, args, kwargs, self._policy, fn.__name__)
        fn, policy, name = unwrap_task(fn, self._policy)
        return self._submit(fn, args, kwargs, policy, name)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` with every call a run; results in order.

        Submits everything at once (or, with ``buffersize=N``, keeps N runs in
        flight and reads the input lazily), yields results lazily, raises the
        first exception when its result is reached, and raises `TimeoutError`
        if the results are not all there ``timeout`` seconds after the call.
        Runners that batch (processes) use ``chunksize``; the others ignore it.

        Example:
            >>> import itertools
            >>> from woflo import ThreadRunner
            >>> with ThreadRunner(2) as ex:  # an endless input, read as consumed
            ...     squares = ex.map(pow, itertools.count(), itertools.repeat(2), buffersize=4)
            ...     [next(squares) for _ in range(5)]
            [0, 1, 4, 9, 16]
        """
        return self._map(fn, iterables, timeout, chunksize, self._policy, buffersize)

    def _map(
        self,
        fn: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        timeout: float | None,
        chunksize: int,
        policy: Policy,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        check_map_args(timeout, chunksize, buffersize)
        fn, policy, name = unwrap_task(fn, policy)
        end = None if timeout is None else time.monotonic() + timeout
        submissions = (self._submit(fn, args, {}, policy, name) for args in zip(*iterables, strict=False))
        return submit_ahead(submissions, buffersize, end)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, stop_running: bool = False) -> None:
        """Stop taking work and release the workers once the runs are done.

        Args:
            wait: block until every run (retries included) has finished and the
                workers are gone.
            cancel_futures: cancel the runs that have not started.
            stop_running: also `stop` the runs in progress (what Ctrl-C inside a
                ``with`` block does).

        Calling it again does nothing more.

        Called with ``wait=True`` from one of the runner's own threads (a
        done-callback runs on the thread that ended the run: a process
        runner's manager thread, a worker thread, the timer thread), it does
        not wait, since the runs it would wait for may need that very thread:
        the stdlib's executors raise ``RuntimeError("cannot join current
        thread")`` there, or deadlock. The runner closes when its last run ends.
        """
        if wait and self._on_own_thread():
            wait = False
        with self._lock:
            self._shutdown = True
            runs = list(self._active)
        if stop_running:
            reason = f"stopped by {self._stop_reason or 'shutdown(stop_running=True)'}"
            for run in runs:
                run._stop_because(reason)
        elif cancel_futures:
            for run in runs:
                run._cancel_because("cancelled by shutdown(cancel_futures=True) before it started")
        if wait:
            for run in runs:
                run.wait()
            self._close_all(wait=True)
        else:
            with self._lock:
                idle = not self._active
            if idle:
                self._close_all(wait=False)

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        # Ctrl-C in a with block should stop the work now, not wait for it.
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        if interrupted:
            ctrl_c = " (Ctrl-C)" if issubclass(exc_type, KeyboardInterrupt) else ""
            self._stop_reason = f"{exc_type.__name__}{ctrl_c} leaving the runner's with block"
        self.shutdown(wait=True, stop_running=interrupted)

    # -- what a concrete runner implements -----------------------------------------

    def _start(self, attempt: Attempt) -> None:
        """Start one attempt (or queue it); report through ``attempt``."""
        raise NotImplementedError

    def _stop(self, attempt: Attempt) -> None:
        """Stop a running or queued attempt that was settled as timed out or stopped.

        The default abandons it: its late result is ignored.
        """

    def _close(self, wait: bool) -> None:
        """Release the workers once no run is left.

        Called once, and again with ``wait=True`` if the first call did not
        wait: it must be idempotent, and with ``wait`` return only when every
        worker is gone.
        """

    def _refusal(self) -> BaseException | None:
        """The error ``submit`` raises while the runner is broken, else ``None``.

        A runner whose workers cannot start (`BrokenRunner`) returns a new
        exception on each call (one object raised in many places would chain
        their tracebacks, CPython gh-101267). Called on the submitting thread.
        """
        return None

    def _on_own_thread(self) -> bool:
        """Whether the caller is a thread the runner needs to finish its runs.

        The base knows its timer thread; a runner adds its own (workers, a
        manager thread).
        """
        return threading.current_thread() is self._scheduler._thread

    def _new_run(self, name: str) -> TaskRun[Any]:
        """Create the `TaskRun` of a submission (a runner may use a subclass)."""
        return TaskRun._create(name, self)

    def _arm_timer(self, kind: str, delay: float, fn: Callable[[], object]) -> Timer:
        """Schedule a ``"timeout"``, ``"deadline"`` or ``"retry"`` wait."""
        return self._scheduler.call_later(delay, fn)

    # -- the attempt loop ---------------------------------------------------------

    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: Policy,
        name: str | None,
    ) -> TaskRun[Any]:
        refusal = self._refusal()
        if refusal is not None:  # as the stdlib: a broken pool refuses work at the call
            raise refusal
        if not callable(fn):
            # Python's own wording; not repr(fn), which may show secrets.
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        run = self._new_run(name or task_name(fn))
        lock = self._lock
        lock.acquire()  # not `with`: half the cost, once per submit
        try:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._active.add(run)
        finally:
            lock.release()
        # The run carries its own bookkeeping (no separate object per run).
        run._policy = policy
        run._fn, run._args, run._kwargs = fn, args, kwargs
        run._t0 = time.monotonic()
        if _logging.is_configured:
            self._events.emit("task.submitted", run)
        if policy.deadline is not None:
            run._deadline_timer = self._arm_timer("deadline", policy.deadline, lambda: self._on_deadline(run))
        if policy.custom:
            # A user's Retrying (or retry predicate): tenacity drives every
            # step, hooks included, on a copy of its own for this run.
            state = run._retry_state = policy.retry_state(fn, args, kwargs)
            if not self._before_attempt(run, state):
                return run
        attempt = run._current = Attempt(self, run, 1)
        try:
            self._start(attempt)
        except BaseException as exc:
            attempt.fail(exc)
            if isinstance(exc, KeyboardInterrupt):
                # Ctrl-C while starting it (an inline runner runs the task right
                # here): the run has ended, and the caller is interrupted too.
                raise
        return run

    def _before_attempt(self, run: TaskRun[Any], state: tenacity.RetryCallState) -> bool:
        """Let tenacity begin an attempt (its ``before`` hook); False if the run ended instead."""
        try:
            state.retry_object.iter(state)
        except BaseException as exc:  # a failing hook fails this run, never leaves it pending
            self._finish(run, None, exc)
            return False
        return True

    def _launch(self, attempt: Attempt) -> None:
        run = attempt.run
        if run._state in _OVER:
            return  # stopped while its retry wait was being scheduled
        if run._policy.custom:
            # tenacity's loop asks iter() before every attempt, not only the first.
            state = run._retry_state
            if state is None or not self._before_attempt(run, state) or run._state in _OVER:
                return
        run._current = attempt
        try:
            self._start(attempt)
        except BaseException as exc:
            attempt.fail(exc)
            if isinstance(exc, KeyboardInterrupt):
                # Ctrl-C while starting it (an inline runner runs the task right
                # here): the run has ended, and the caller is interrupted too.
                raise

    def _begin(self, attempt: Attempt, worker: object) -> bool:
        if not attempt._claim:
            return False
        run = attempt.run
        # A backend may have moved the run to running already (the process
        # runner does when it sends the job): then skip the run's lock. A stop
        # that comes after this read pops the attempt's claim, as after the lock.
        if (run._state != RUNNING or run._run_state is not RunState.RUNNING) and not run._try_begin():
            return False
        attempt.started = time.monotonic()
        attempt.worker = worker
        timeout = attempt.run._policy.timeout
        if timeout is not None:
            attempt.timer = self._arm_timer("timeout", timeout, lambda: self._on_timeout(attempt))
        if _logging.is_configured:
            self._events.emit("attempt.started", attempt.run, attempt=attempt.number, worker=worker)
        return True

    def _claim(self, attempt: Attempt) -> bool:
        """Settle ``attempt`` once: the first of result, timeout and stop wins."""
        try:
            attempt._claim.pop()
        except IndexError:
            return False
        if attempt.timer is not None:
            attempt.timer.cancel()
        return True

    def _settle(self, attempt: Attempt, outcome: str, value: Any, exc: BaseException | None) -> None:
        if self._claim(attempt):
            self._settled(attempt, outcome, value, exc)

    def _settled(self, attempt: Attempt, outcome: str, value: Any, exc: BaseException | None) -> None:
        run = attempt.run
        started = attempt.started
        if started is None:
            duration, started_at = 0.0, time.time()
        else:
            duration, started_at = time.monotonic() - started, _WALL_OFFSET + started
        number, worker = attempt.number, attempt.worker
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (twice as fast).
        run._record(_new_tuple(AttemptRecord, (number, started_at, duration, outcome, exc, worker)))
        if exc is None:
            if _logging.is_configured:
                self._events.emit("attempt.succeeded", run, attempt=number, worker=worker, duration_s=duration)
            if not run._policy.custom:
                self._finish(run, value, None)
                return
        else:
            event = "attempt.timed_out" if outcome == "timed_out" else "attempt.failed"
            self._events.emit(event, run, attempt=number, worker=worker, duration_s=duration, exception=exc)
            if run.done():
                return
            if run._deadline_hit:
                self._finish(run, None, self._deadline_error(run))
                return
            if run._policy.single_attempt or isinstance(exc, BrokenRunner):
                # A broken runner fails every later attempt too: never retried.
                self._finish(run, None, exc)
                return
        self._next(attempt, value, exc)

    def _next(self, attempt: Attempt, value: Any, exc: BaseException | None) -> None:
        """Ask tenacity what follows this attempt, and do it."""
        run = attempt.run
        state = run._retry_state
        if state is None:
            if run._fn is None:
                return  # stopped meanwhile
            # woflo's own Retrying (no hooks): made at the first failure only.
            retrying = run._policy.retrying
            state = run._retry_state = tenacity.RetryCallState(retrying, run._fn, run._args, run._kwargs)
            state.start_time = run._t0
        else:
            retrying = state.retry_object  # type: ignore[assignment]
        # tenacity's statistics, which iter() updates: a run's own copy of a
        # user's Retrying has them; woflo's own keeps them per thread, and
        # this thread's must exist (nobody reads them).
        if "attempt_number" not in retrying.statistics:
            retrying.begin()
        if exc is None:
            state.set_result(value)
        else:
            state.set_exception((type(exc), exc, exc.__traceback__))
        try:
            action = retrying.iter(state)
        except tenacity.RetryError as err:
            last = err.last_attempt
            # The task's own exception; a RetryError only when results, not
            # exceptions, were retried until the policy gave up.
            self._finish(run, None, (last.exception() if last.failed else None) or err)
            return
        except BaseException as final:
            if exc is not None and final is not exc and final.__context__ is None:
                # A strategy or hook failed while handling the task's error:
                # keep that error in the traceback, as an except block would.
                final.__context__ = exc
            self._finish(run, None, final)
            return
        if isinstance(action, tenacity.DoSleep):
            wait = float(action)
            if not 0 <= wait < math.inf:  # NaN too
                self._finish(run, None, self._bad_wait(run, wait, exc))
                return
            self._retry_after(attempt, wait)
        elif isinstance(action, tenacity.DoAttempt):
            self._retry_after(attempt, 0.0)
        else:
            # The outcome's value, or what a retry_error_callback returned.
            self._finish(run, action, None)

    @staticmethod
    def _bad_wait(run: TaskRun[Any], wait: float, exc: BaseException | None) -> ValueError:
        err = ValueError(f"the wait strategy of {run.name} returned {wait!r} seconds; a wait must be >= 0 and finite")
        err.__cause__ = exc
        return err

    def _retry_after(self, attempt: Attempt, wait: float) -> None:
        run = attempt.run
        deadline = run._policy.deadline
        if deadline is not None and time.monotonic() + wait - run._t0 >= deadline:
            # The next attempt could not start in time: end the run now.
            self._finish(run, None, self._deadline_error(run))
            return
        if not run._set_retrying():
            return
        state = run._retry_state
        if state is None:
            return  # stopped meanwhile (a stop drops the state): no next attempt
        state.prepare_for_next_attempt()
        self._events.emit("task.retrying", run, attempt=attempt.number, wait_s=wait, next_attempt=attempt.number + 1)
        following = Attempt(self, run, attempt.number + 1)
        if wait <= 0:
            self._launch(following)
        else:
            run._current = self._arm_timer("retry", wait, lambda: self._launch(following))

    def _finish(self, run: TaskRun[Any], value: Any, exc: BaseException | None) -> None:
        if run._deadline_timer is not None:
            run._deadline_timer.cancel()
        run._current = None
        try:
            done = run._succeed(value) if exc is None else run._fail(exc)
        except BaseException:
            # A done-callback raised SystemExit or KeyboardInterrupt (the stdlib
            # lets those through): the run is over all the same, so forget it
            # before the exception goes on to whoever ended the run.
            run._fn = run._args = run._kwargs = None
            self._forget(run)
            raise
        # A finished run keeps its result, not its arguments (as the stdlib's
        # futures): a list of finished runs must not hold every input alive.
        # Nor a second reference to its result (tenacity's last outcome): a
        # caller that drops the result must free it (see submit_ahead).
        run._fn = run._args = run._kwargs = None
        if run._retry_state is not None:  # most runs never had one: no store
            run._retry_state = None
        if done and _logging.is_configured:
            duration = time.monotonic() - run._t0
            if exc is None:
                self._events.emit("task.succeeded", run, attempt=len(run.attempts), duration_s=duration)
            else:
                self._events.emit("task.failed", run, attempt=len(run.attempts), duration_s=duration, exception=exc)
        self._forget(run)

    def _forget(self, run: TaskRun[Any]) -> None:
        # No lock: set.discard is atomic, and of this and a concurrent
        # shutdown(wait=False) at least one sees both conditions (closing twice
        # is harmless).
        self._active.discard(run)
        if self._shutdown and not self._active:
            self._close_all(wait=False)

    # -- timers and stopping ----------------------------------------------------------

    def _on_timeout(self, attempt: Attempt) -> None:
        timeout = attempt.run._policy.timeout
        self._interrupt(
            attempt,
            "timed_out",
            AttemptTimeout(f"attempt {attempt.number} of {attempt.run.name} timed out after {timeout:g}s"),
        )

    def _interrupt(self, attempt: Attempt, outcome: str, exc: BaseException) -> None:
        """Settle an attempt from outside, then have the backend stop it."""
        if not self._claim(attempt):
            return
        self._stop(attempt)
        if attempt.started is not None:
            self._settled(attempt, outcome, None, exc)
        elif outcome == "timed_out":
            # A deadline that passed before the attempt reached a worker.
            self._finish(attempt.run, None, exc)

    def _on_deadline(self, run: TaskRun[Any]) -> None:
        run._deadline_hit = True
        current = run._current
        if isinstance(current, Attempt):
            self._interrupt(current, "timed_out", self._deadline_error(run))
        elif isinstance(current, Timer):
            current.cancel()
            self._finish(run, None, self._deadline_error(run))

    @staticmethod
    def _deadline_error(run: TaskRun[Any]) -> DeadlineExceeded:
        err = DeadlineExceeded(f"{run.name} did not finish within its deadline of {run._policy.deadline:g}s")
        if run.attempts:
            err.__cause__ = run.attempts[-1].exception
        return err

    def _on_cancelled(self, run: TaskRun[Any], stopped: bool) -> None:
        """Called by `TaskRun.cancel` / `TaskRun.stop` once the run is marked cancelled."""
        current = run._current
        run._current = None
        if isinstance(current, Timer):
            current.cancel()
        elif isinstance(current, Attempt):
            self._interrupt(current, "stopped", CancelledError(run._cancelled_message()))
        if run._deadline_timer is not None:
            run._deadline_timer.cancel()
        run._fn = run._args = run._kwargs = None
        if run._retry_state is not None:
            run._retry_state = None
        self._events.emit("task.cancelled", run, stopped=stopped, reason=run._cancel_reason)
        self._forget(run)

    # -- shutdown ------------------------------------------------------------------------

    def _close_all(self, wait: bool) -> None:
        # The first call closes; when the last run ended after shutdown(wait=
        # False) began, that call came from a worker and could not wait, so a
        # later shutdown(wait=True) closes again, waiting this time.
        with self._lock:
            first = not self._closed
            self._closed = True
        if first:
            self._finalizer.detach()  # closed here: nothing left to release when dropped
        if first or wait:
            self._scheduler.close(wait)
            self._close(wait)

    @staticmethod
    def _report_error(exc: BaseException) -> None:
        """Report an error inside woflo's own machinery (timer callbacks, worker set-up)."""
        _report_error(exc)


def _report_error(exc: BaseException) -> None:
    # An error inside woflo's own timer callbacks: say so through the event
    # channel rather than kill the scheduler thread. A function, not a method:
    # the scheduler thread holds it and must not keep its runner alive.
    if structlog.is_configured():
        structlog.get_logger("woflo").error("woflo.internal_error", exc_info=exc)


def _release(hooks: list[Callable[[], object]]) -> None:
    # Called by the garbage collector, on whatever thread it ran, maybe one
    # holding a lock that the hooks take (the scheduler's, the pool's): so the
    # hooks run on a thread of their own.
    with contextlib.suppress(RuntimeError):  # interpreter exiting: its exit hooks do it
        threading.Thread(target=_run_hooks, args=(hooks,), name="woflo-release", daemon=True).start()


def _run_hooks(hooks: list[Callable[[], object]]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception as exc:
            _report_error(exc)
