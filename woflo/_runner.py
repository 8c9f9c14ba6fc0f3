"""`Runner`: the Executor base that owns the attempt loop for every runner.

A run travels like this (see docs/architecture.md):

1. ``submit`` creates a `TaskRun` and its bookkeeping (`_Control`), emits
   ``task.submitted`` and hands attempt 1 to the concrete runner's
   `Runner.start_attempt`.
2. The backend calls `Attempt.begin` when the attempt really starts (this arms
   the timeout timer and emits ``attempt.started``), then `Attempt.succeed` or
   `Attempt.fail`.
3. The base records the attempt and asks the policy (tenacity, see
   woflo/_retry.py) what next: done, or wait N seconds then attempt again.
   The wait is a timer (`Runner.call_later`), so no worker is held during it.

A concrete runner implements `start_attempt` and, if it can, `stop_attempt`
and `close_workers`: docs/writing-a-runner.md.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import operator
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Executor
from types import FunctionType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from woflo._attempt import NO_KWARGS, Attempt, GatedAttempt, settled_call
from woflo._each import call_each
from woflo._errors import AttemptTimeout, BrokenRunner, DeadlineExceeded, UpstreamFailed
from woflo._events import Emitter, stdlib_switch, structlog_switch
from woflo._inputs import has_inputs, wait_for_inputs
from woflo._limits import Limit, Ticket, WaitReason, start_granted
from woflo._policy import Policy
from woflo._report import report_error
from woflo._retry import before_attempt, next_step
from woflo._scheduler import Cancellable, Scheduler
from woflo._shared import track
from woflo._submit import check_map_args, map_total, submit_ahead, task_name, unwrap_task
from woflo._taskrun import _OVER, ST_RUNNING, AttemptOutcome, TaskRun

if TYPE_CHECKING:
    import tenacity
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["Attempt", "Runner"]

T = TypeVar("T")

#: What a timer waits for (`Runner.call_later`'s ``kind``).
TimerKind = Literal["timeout", "deadline", "retry"]

# Read before building a success-path event, to keep silent runs cheap: two
# plain attribute reads (structlog configured; the stdlib `woflo` logger
# enabled at INFO). Emitter.emit then decides precisely.
_structlog = structlog_switch()
_stdlib = stdlib_switch()


class _Control:
    """The runner's bookkeeping of one run, kept from submit until the run ends.

    The run itself (`TaskRun`) is the caller's Future and knows none of this;
    dropping the control when the run ends drops the call's arguments and the
    retry state with it. Held by the runner's active runs, and only for a
    while by its own timers (a retry's wait), by the `woflo._inputs.Waiting`
    of a run waiting for inputs (until it acts) and by the frames working on
    it: `Runner._drop` clears a control something may still hold.
    """

    __slots__ = (
        "args",
        "attempt",
        "deadline",
        "deadline_hit",
        "deadline_timer",
        "fn",
        "kwargs",
        "policy",
        "retry_state",
        "t0",
        "wait",
    )

    def __init__(
        self,
        policy: Policy,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        t0: float,
    ) -> None:
        self.policy = policy
        #: The call each attempt makes (three fields, not a tuple: one object
        #: fewer per run for the garbage collector).
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.t0 = t0
        #: The attempt in progress (or about to start), else None.
        self.attempt: Attempt | None = None
        #: The timer of a retry's wait, else None.
        self.wait: Cancellable | None = None
        #: ``time.monotonic()`` by which the run must end (set by _prepare), else None.
        self.deadline: float | None = None
        self.deadline_timer: Cancellable | None = None
        self.deadline_hit = False
        self.retry_state: tenacity.RetryCallState | None = None


class Runner(Executor, metaclass=abc.ABCMeta):
    """Base of every woflo runner: a `concurrent.futures.Executor` with retries,
    per-attempt timeouts, run deadlines, `TaskRun.stop` and an event per attempt.

    Args:
        **options: the default policy for ``submit``: ``retries``,
            ``retry_wait_time`` (alias ``retry_sleep_time``), ``timeout``,
            ``deadline``, tenacity's ``stop``/``wait``/``retry``, or a whole
            ``retrying=tenacity.Retrying(...)``; limits: ``max_concurrency``,
            ``rate_limit``, ``limits`` (docs/orchestration.md).

    A runner is a subclass that implements `start_attempt` (abstract: a
    class without it cannot be built) and, where its backend can,
    `stop_attempt`, `close_workers` and the other hooks below; see
    docs/writing-a-runner.md.
    """

    #: The runner's name in events (``runner=`` field).
    runner_name: ClassVar[str] = "runner"

    # What a shutdown(stop_running=True) stops the runs for, when it is not
    # the caller's own call (Ctrl-C in a with block, exit after Ctrl-C): the
    # cancelled runs' CancelledError says so. Set just before that shutdown.
    _stop_reason: str | None = None

    def __init__(self, **options: Unpack[PolicyOptions]) -> None:
        self.__policy = Policy.build(**options)
        self.__events = Emitter(self.runner_name)
        self.__lock = threading.Lock()
        self.__shutdown = False
        self.__closed = False
        # The runs not finished yet, with the runner's bookkeeping of each.
        self.__active: dict[TaskRun[Any], _Control] = {}
        # Called with each new run (add_submit_callback): a tuple, replaced
        # whole, so that submit reads it without a lock.
        self.__submit_callbacks: tuple[Callable[[TaskRun[Any]], object], ...] = ()
        self.__scheduler = Scheduler(f"woflo-{self.runner_name}-timers", report_error)
        # What releases the threads and workers of a runner dropped without
        # shutdown(), once it is unreachable, as the stdlib executors do. None
        # of these may refer to the runner (nor may its threads: they hold
        # weak references or none), or it would never be unreachable. A run
        # refers to its runner, so a run still referenced keeps it working.
        self.__release_hooks: list[Callable[[], object]] = [functools.partial(self.__scheduler.close, False)]
        self.__finalizer = weakref.finalize(self, _release, self.__release_hooks)
        self.__finalizer.atexit = False  # at exit, _shared shuts runners down (waiting for their runs)
        track(self)

    # -- the Executor contract --------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskRun[T]:
        """Run ``fn(*args, **kwargs)`` under this runner's policy; return its `TaskRun`.

        Raises:
            TypeError: ``fn`` is not callable.
            RuntimeError: the runner has been shut down.
        """
        if type(fn) is FunctionType:  # the common case: no @task to unwrap
            return self._submit(fn, args, kwargs, self.__policy, fn.__name__)
        fn, policy, name, naming = unwrap_task(fn, self.__policy)
        return self._submit(fn, args, kwargs, policy, name if naming is None else naming(args, kwargs))

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
        progress: bool = False,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` with every call a run; results in order.

        Submits everything at once (or, with ``buffersize=N``, keeps N runs in
        flight and reads the input lazily), yields results lazily, raises the
        first exception when its result is reached, and raises `TimeoutError`
        if the results are not all there ``timeout`` seconds after the call.
        Runners that batch (processes) use ``chunksize``; the others ignore it.
        ``progress=True`` shows the runs' progress while the results are
        consumed (`woflo.progress`: a bar with ``woflo[progress]`` on a
        terminal or in Jupyter, else a line every few seconds).

        Example:
            >>> import itertools
            >>> from woflo import ThreadRunner
            >>> with ThreadRunner(2) as ex:  # an endless input, read as consumed
            ...     squares = ex.map(pow, itertools.count(), itertools.repeat(2), buffersize=4)
            ...     [next(squares) for _ in range(5)]
            [0, 1, 4, 9, 16]
        """
        return self._map(fn, iterables, timeout, chunksize, self.__policy, buffersize, progress)

    def _map(
        self,
        fn: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        timeout: float | None,
        chunksize: int,
        policy: Policy,
        buffersize: int | None = None,
        progress: bool = False,
    ) -> Iterator[T]:
        check_map_args(timeout, chunksize, buffersize)
        fn, policy, name, naming = unwrap_task(fn, policy)
        end = None if timeout is None else time.monotonic() + timeout
        submissions = (
            self._submit(fn, args, {}, policy, name if naming is None else naming(args, {}))
            for args in zip(*iterables, strict=False)
        )
        total = map_total(iterables) if progress else None
        return submit_ahead(submissions, buffersize, end, progress=progress, total=total)

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
        if wait and self.owns_current_thread():
            wait = False
        with self.__lock:
            self.__shutdown = True
            # Newest first: a run waiting for inputs (always newer than they
            # are) is cancelled before its inputs, so it ends cancelled, not
            # failed with UpstreamFailed by their cancellation.
            runs = list(reversed(self.__active))
        # A done-callback may raise SystemExit or KeyboardInterrupt as its run
        # is cancelled here: every other run is still stopped or cancelled,
        # and then the first such exception is raised, without waiting.
        interrupted: BaseException | None = None
        if stop_running or cancel_futures:
            if stop_running:
                reason = f"stopped by {self._stop_reason or 'shutdown(stop_running=True)'}"
                end = operator.methodcaller("_stop_because", reason)
            else:
                reason = "cancelled by shutdown(cancel_futures=True) before it started"
                end = operator.methodcaller("_cancel_because", reason)
            try:
                call_each(end, runs)
            except BaseException as exc:
                interrupted = exc
        if interrupted is not None:
            wait = False
        if wait:
            for run in runs:
                run.wait()
            self._close_all(wait=True)
        else:
            with self.__lock:
                idle = not self.__active
            if idle:
                self._close_all(wait=False)
        if interrupted is not None:
            raise interrupted

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        # Ctrl-C in a with block should stop the work now, not wait for it.
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        if interrupted:
            ctrl_c = " (Ctrl-C)" if issubclass(exc_type, KeyboardInterrupt) else ""
            self._stop_reason = f"{exc_type.__name__}{ctrl_c} leaving the runner's with block"
        self.shutdown(wait=True, stop_running=interrupted)

    # -- the hooks a concrete runner implements ---------------------------------------
    #
    # Which thread calls each: start_attempt is called on the submitting
    # thread (attempt 1) or on whichever thread ended the previous attempt or
    # fired its retry timer (a worker, a manager thread, the timer thread);
    # stop_attempt on the thread that settled the attempt from outside (the
    # timer thread for a timeout or deadline, any caller of TaskRun.stop,
    # shutdown's caller); close_workers on shutdown's caller, or on the
    # thread that ended the last run after shutdown(wait=False). None is
    # called with a lock of the base held.

    @abc.abstractmethod
    def start_attempt(self, attempt: Attempt) -> None:
        """Start ``attempt`` (or queue it) and report how it ends through it.

        Call `Attempt.begin` when the call really starts (``False``: drop it),
        then `Attempt.succeed` or `Attempt.fail`, from any thread. An exception
        raised here fails the attempt (and goes through the retry policy).
        """

    def stop_attempt(self, attempt: Attempt) -> None:
        """Stop ``attempt``, already settled as timed out or stopped: kill its worker, cancel its task.

        It may be queued (not begun) or running. The default abandons it: the
        call runs on, and its late result is ignored.
        """

    def close_workers(self, wait: bool) -> None:
        """Release the backend's workers; no run is left (or the rest are abandoned).

        Called once, and again with ``wait=True`` if the first call did not
        wait: it must be idempotent, and with ``wait`` return only when every
        worker is gone. With ``wait=True`` it is never called from a thread
        `owns_current_thread` names, so it may join every worker thread.
        """

    def broken_error(self) -> BaseException | None:
        """The error ``submit`` raises while the runner is broken, else ``None``.

        A runner whose workers cannot start (`BrokenRunner`) returns a new
        exception on each call (one object raised in many places would chain
        their tracebacks, CPython gh-101267). Called on the submitting thread.
        """
        return None

    def owns_current_thread(self) -> bool:
        """Whether the caller is a thread the runner needs to finish its runs.

        ``shutdown(wait=True)`` from such a thread (a done-callback) does not
        wait. The base knows its timer thread; a runner adds its own
        (workers, a manager thread).
        """
        return threading.current_thread() is self.__scheduler._thread

    #: The `TaskRun` class of this runner's runs (a subclass may add fields
    #: through its ``_create``, as `LoopTaskRun` does).
    run_class: ClassVar[type[TaskRun[Any]]] = TaskRun

    def call_later(self, delay: float, fn: Callable[[], object], kind: TimerKind) -> Cancellable:
        """Call ``fn()`` in ``delay`` seconds, for a ``kind`` of wait; return a handle with ``cancel()``.

        The base uses one timer thread per runner; a runner whose attempts
        live on an event loop uses the loop's timers instead, and an inline
        runner runs retry waits in line. ``fn`` must not be called after
        ``cancel()`` returned on the calling thread's own handle.
        """
        return self.__scheduler.call_later(delay, fn)

    def _mute_events(self) -> None:
        """Emit no events: for a runner used inside another one that reports the attempts itself."""
        self.__events = Emitter(self.runner_name, muted=True)

    @classmethod
    def _shared_instance(cls) -> Runner:
        """The instance ``@task(runner=ThisClass)`` shares (default: ``cls()``)."""
        return cls()

    @classmethod
    def _shared_key(cls) -> object:
        """What, when it changes, makes the shared instance be built anew (default: nothing)."""
        return None

    # -- what the base offers a runner -------------------------------------------------

    @property
    def is_shutdown(self) -> bool:
        """Whether `shutdown` was called: ``submit`` refuses new work (runs in flight go on)."""
        return self.__shutdown

    @property
    def workers_closed(self) -> bool:
        """Whether `close_workers` was called: a runner starts no new worker after it."""
        return self.__closed

    def active_runs(self) -> list[TaskRun[Any]]:
        """The runs submitted and not finished yet (a snapshot, in no particular order)."""
        return list(self.__active)

    def add_submit_callback(self, fn: Callable[[TaskRun[Any]], object]) -> None:
        """Call ``fn(run)`` with every run submitted from now on, before its first attempt starts.

        For observers that must see every run, short ones too (`woflo.progress`
        given a runner). ``fn`` runs on the submitting thread; it must be quick
        and must not submit. An exception it raises is reported
        (`report_internal_error`), not raised to the submitter.
        """
        with self.__lock:
            self.__submit_callbacks = (*self.__submit_callbacks, fn)

    def remove_submit_callback(self, fn: Callable[[TaskRun[Any]], object]) -> None:
        """Stop calling ``fn`` (added by `add_submit_callback`); nothing happens if it was not added."""
        with self.__lock:
            callbacks = list(self.__submit_callbacks)
            if fn in callbacks:
                callbacks.remove(fn)
            self.__submit_callbacks = tuple(callbacks)

    def release_on_drop(self, release: Callable[[], object]) -> None:
        """Call ``release()`` if this runner becomes unreachable without `shutdown`.

        For what the backend must give back then (threads, processes), as the
        stdlib's executors do. ``release`` must not refer to the runner (a
        bound method would keep it reachable for ever); it is called once, on
        a thread of its own.
        """
        self.__release_hooks.append(release)

    @staticmethod
    def report_internal_error(exc: BaseException) -> None:
        """Report an error in the runner's own machinery (not a task's): a worker set-up, a callback.

        Logged as ``woflo.internal_error`` through structlog when it is
        configured, else on the standard library's ``woflo`` logger (ERROR);
        never raised, so the thread that met it carries on.
        """
        report_error(exc)

    @staticmethod
    def survive(attempt: Attempt, exc: BaseException) -> None:
        """For a backend's own thread: ``exc`` came out of ``attempt``'s `begin`, `succeed` or `fail`.

        Those call user code: logging handlers (``attempt.started``, the
        run's last event) and, as the run ends, its done-callbacks, which may
        raise ``SystemExit`` or ``KeyboardInterrupt`` (the stdlib lets those
        through; other exceptions are logged where they happen). On the
        submitting thread let it propagate; on a thread of the backend's own
        (a worker thread, an event loop, a delivery thread) call this instead
        and carry on serving: a thread that died of it would shrink the pool
        for good. The attempt is failed with ``exc`` if it is not settled yet
        (a handler raised in `begin`: the run must not stay running for
        ever), and ``exc`` is reported with `report_internal_error`.
        """
        if not attempt.settled:
            try:
                attempt.fail(exc)
            except BaseException as again:  # its own callbacks raised too: the run has ended all the same
                report_error(again)
        report_error(exc)

    # -- the attempt loop ---------------------------------------------------------

    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: Policy,
        name: str | None,
        after: Iterable[TaskRun[Any]] | None = None,
    ) -> TaskRun[Any]:
        refusal = self.broken_error()
        if refusal is not None:  # as the stdlib: a broken pool refuses work at the call
            raise refusal
        if not callable(fn):
            # Python's own wording; not repr(fn), which may show secrets.
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        plain = policy.plain
        if not plain and policy.limits is not None:
            policy.limits.resolve()  # a limit name never defined: ValueError here, at the call
        run = self.run_class._create(name or task_name(fn), self)
        control = _Control(policy, fn, args, kwargs, time.monotonic())
        lock = self.__lock
        lock.acquire()  # not `with`: half the cost, once per submit
        try:
            if self.__shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.__active[run] = control
        finally:
            lock.release()
        if _structlog.is_configured or _stdlib.enabled:
            try:
                self.__events.emit("task.submitted", run)
            except BaseException as exc:
                # A handler's KeyboardInterrupt: the run must not stay
                # pending among the active ones (shutdown would wait for it).
                self._finish(run, None, exc)
                raise
        if self.__submit_callbacks:
            self.__notify_submitted(run)
        # Runs among the arguments: wait for them (woflo/_inputs.py). The
        # check costs one `type(arg) in set` per argument.
        if (after is not None or ((args or kwargs) and has_inputs(args, kwargs))) and wait_for_inputs(
            self, run, control, after
        ):
            return run
        if not plain:
            if (policy.deadline is not None or policy.custom) and not self._prepare(run, control):
                return run
            if policy.limits is not None:  # it waits for its limits (woflo/_limits.py)
                self._launch_gated(run, control, 1)
                return run
        # Attempt 1, as _launch does, without its frame (the per-submit path).
        attempt = control.attempt = Attempt(
            self, run, 1, fn, control.args, control.kwargs, policy.timeout, control.deadline
        )
        try:
            self.start_attempt(attempt)
        except BaseException as exc:
            self._start_failed(attempt, exc)
        return run

    def __notify_submitted(self, run: TaskRun[Any]) -> None:
        for fn in self.__submit_callbacks:
            try:
                fn(run)
            except Exception as exc:
                report_error(exc)

    # -- runs as inputs (woflo/_inputs.py calls these; see woflo._inputs.InputOwner) ---------

    #: Whether a run waits for its inputs inside ``submit`` (an inline runner).
    _inputs_inline: ClassVar[bool] = False

    def _note_input(self, run: TaskRun[Any]) -> None:
        """``run`` will be an input of one of this runner's runs: the default does nothing."""

    def _input_value(self, run: TaskRun[Any]) -> Any:
        """What replaces the successful input ``run`` in a waiting run's arguments: its result."""
        return run.result()

    def _policy_of(self, run: TaskRun[Any]) -> Policy | None:
        """The policy of this runner's active ``run``, else None."""
        control = self.__active.get(run)
        return None if control is None else control.policy

    def _emit_waiting(self, run: TaskRun[Any], inputs: list[TaskRun[Any]]) -> None:
        if _structlog.is_configured or _stdlib.enabled:
            self.__events.emit("task.waiting", run, reason="inputs", inputs=[source.run_id for source in inputs])

    def _inputs_ready(
        self, run: TaskRun[Any], control: _Control, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Every input of ``run`` succeeded: start attempt 1 with ``args`` and ``kwargs``.

        Called on the thread that ended the last input. The run's deadline,
        its duration and tenacity's clock count from now, not from submit.
        """
        if self.__active.get(run) is not control:
            return  # cancelled meanwhile
        control.args, control.kwargs = args, kwargs
        control.t0 = time.monotonic()
        if self._prepare(run, control):
            self._launch(run, control, 1)

    def _prepare(self, run: TaskRun[Any], control: _Control) -> bool:
        """Before attempt 1: arm the run's deadline (from ``control.t0``) and let tenacity begin.

        Returns False if the run ended instead (a user's ``before`` hook failed it).
        """
        policy = control.policy
        if policy.deadline is not None:
            control.deadline = control.t0 + policy.deadline
            control.deadline_timer = self.call_later(policy.deadline, lambda: self._on_deadline(run), "deadline")
        if policy.custom:
            # A user's Retrying (or retry predicate): tenacity drives every
            # step, hooks included, on a copy of its own for this run.
            state = control.retry_state = policy.retry_state(control.fn, control.args, control.kwargs)
            error = before_attempt(state)
            if error is not None:
                self._finish(run, None, error)
                return False
        return True

    def _launch(self, run: TaskRun[Any], control: _Control, number: int) -> None:
        """Start attempt ``number`` of ``run`` through the backend."""
        if control.policy.limits is not None:
            self._launch_gated(run, control, number)
            return
        attempt = control.attempt = Attempt(
            self, run, number, control.fn, control.args, control.kwargs, control.policy.timeout, control.deadline
        )
        try:
            self.start_attempt(attempt)
        except BaseException as exc:
            self._start_failed(attempt, exc)

    def _start_failed(self, attempt: Attempt, exc: BaseException) -> None:
        """``start_attempt(attempt)`` raised ``exc``: fail the attempt; raise ``exc`` unless an `Exception`.

        An `Exception` is the backend's: the attempt fails with it and the
        policy may retry. A ``KeyboardInterrupt`` or ``SystemExit`` came from
        user code run while starting (Ctrl-C, a logging handler, an inline
        run's done-callback): the caller is interrupted too. If the backend
        had handed the attempt over already (a process worker runs it), it
        is stopped, so the failed run leaves no work behind holding a worker.
        """
        ours = not attempt.settled
        try:
            attempt.fail(exc)
        finally:
            if ours:
                with contextlib.suppress(Exception):
                    self.stop_attempt(attempt)
        if not isinstance(exc, Exception):
            raise exc

    def _launch_gated(self, run: TaskRun[Any], control: _Control, number: int) -> None:
        """Attempt ``number``, once its limits give it a slot (now, or when one frees)."""
        policy = control.policy
        attempt = control.attempt = GatedAttempt(
            self, run, number, control.fn, control.args, control.kwargs, policy.timeout, control.deadline
        )
        ticket = attempt._ticket = Ticket(
            policy.limits.resolve(),  # type: ignore[union-attr]
            functools.partial(self._start_gated, attempt),
            functools.partial(self._on_wait, attempt),
        )
        if ticket.enter():
            self._start_gated(attempt)

    def _start_gated(self, attempt: Attempt) -> None:
        try:
            self.start_attempt(attempt)
        except BaseException as exc:
            self._start_failed(attempt, exc)

    def _on_wait(self, attempt: Attempt, reason: WaitReason, limit: Limit) -> None:
        if _structlog.is_configured or _stdlib.enabled:
            run, number = attempt.run, attempt.number
            if limit.name is None:  # the task's own limit
                self.__events.emit("task.waiting", run, attempt=number, reason=reason)
            else:
                self.__events.emit("task.waiting", run, attempt=number, reason=reason, limit=limit.name)

    def _relaunch(self, run: TaskRun[Any], control: _Control, number: int) -> None:
        """Attempt ``number`` (a retry), unless the run ended during the wait."""
        control.wait = None
        if run._state in _OVER:
            return
        state = control.retry_state
        if control.policy.custom and state is not None:
            # tenacity's loop asks iter() before every attempt, not only the first.
            error = before_attempt(state)
            if error is not None:
                self._finish(run, None, error)
                return
            if run._state in _OVER:
                return
        self._launch(run, control, number)

    # Called by Attempt (see woflo._attempt.AttemptOwner).

    def _set_running(self, attempt: Attempt) -> bool:
        return hasattr(attempt, "_claim") and attempt.run._try_begin()

    def _begin(self, attempt: Attempt, worker: object) -> bool:
        if not hasattr(attempt, "_claim"):  # settled: stopped or timed out before it began
            return False
        run = attempt.run
        # A backend may have moved the run to running already (the process
        # runner does when it sends the job): then skip the run's lock. A stop
        # that comes after this read pops the attempt's claim, as after the lock.
        if run._run_state is not ST_RUNNING and not run._try_begin():
            return False
        attempt.started_at = time.time()
        attempt.started = time.monotonic()
        attempt.worker = worker
        timeout = attempt.timeout
        if timeout is not None:
            attempt._timer = self.call_later(timeout, lambda: self._on_timeout(attempt), "timeout")
        if _structlog.is_configured or _stdlib.enabled:
            self.__events.emit("attempt.started", run, attempt=attempt.number, worker=worker)
        return True

    def _claim(self, attempt: Attempt) -> bool:
        """Settle ``attempt`` once: the first of result, timeout and stop wins."""
        try:
            del attempt._claim  # atomic: see Attempt.__init__
        except AttributeError:
            return False
        if attempt._timer is not None:
            attempt._timer.cancel()
        # A settled attempt must not keep its arguments alive: a backend may
        # hold it a while longer (a batch of results being reported).
        attempt.fn, attempt.args, attempt.kwargs = settled_call, (), NO_KWARGS
        return True

    def _settle(self, attempt: Attempt, outcome: AttemptOutcome, value: Any, exc: BaseException | None) -> None:
        if self._claim(attempt):
            ticket = attempt._ticket
            if ticket is None:
                self._settled(attempt, outcome, value, exc)
                return
            # Its slots are free as it settles; the attempts they let go start
            # once this one is recorded (an inline runner runs them right here).
            granted = ticket.release()
            try:
                self._settled(attempt, outcome, value, exc)
            finally:
                start_granted(granted)

    def _settled(self, attempt: Attempt, outcome: AttemptOutcome, value: Any, exc: BaseException | None) -> None:
        run = attempt.run
        started = attempt.started
        if started is None:  # reported before it began: it took no time
            duration, started_at = 0.0, time.time()
        else:
            duration, started_at = time.monotonic() - started, attempt.started_at
        number, worker = attempt.number, attempt.worker
        run._records.append((number, started_at, duration, outcome, exc, worker))
        try:
            if exc is None:
                if _structlog.is_configured or _stdlib.enabled:
                    self.__events.emit("attempt.succeeded", run, attempt=number, worker=worker, duration_s=duration)
            else:
                event = "attempt.timed_out" if outcome == "timed_out" else "attempt.failed"
                self.__events.emit(event, run, attempt=number, worker=worker, duration_s=duration, exception=exc)
        except BaseException as raised:
            # A logging handler's KeyboardInterrupt (emit lets only that kind
            # through): the attempt is settled, so its run must still end or
            # retry, or it would stay running for ever; then it is raised.
            try:
                self._after_attempt(attempt, run, number, value, exc)
            finally:
                raise raised  # once the run has moved on
        self._after_attempt(attempt, run, number, value, exc)

    def _after_attempt(
        self, attempt: Attempt, run: TaskRun[Any], number: int, value: Any, exc: BaseException | None
    ) -> None:
        """What follows a recorded attempt: end the run, or ask the policy for the next attempt."""
        control = self.__active.get(run)
        if control is None:
            return  # the run ended meanwhile (stopped): the record is all that is left
        if exc is None and not control.policy.custom:
            self._finish(run, value, None)
            return
        if control.attempt is attempt:
            control.attempt = None
        if exc is not None:
            if control.deadline_hit or (control.deadline is not None and time.monotonic() >= control.deadline):
                self._finish(run, None, self._deadline_error(run, control))
                return
            if control.policy.single_attempt or isinstance(exc, BrokenRunner):
                # A broken runner fails every later attempt too: never retried.
                self._finish(run, None, exc)
                return
        self._next(run, control, number, value, exc)

    def _next(self, run: TaskRun[Any], control: _Control, number: int, value: Any, exc: BaseException | None) -> None:
        """Ask tenacity what follows attempt ``number``, and do it."""
        state = control.retry_state
        if state is None:
            # woflo's own Retrying (no hooks): made at the first failure only,
            # and tenacity imported then (a run that never fails never needs it).
            try:
                import tenacity

                state = control.retry_state = tenacity.RetryCallState(
                    control.policy.retrying, control.fn, control.args, control.kwargs
                )
            except BaseException as err:
                # tenacity missing or broken (ModuleNotFoundError): the run
                # fails with it, where it would otherwise stay running for ever.
                self._finish(run, None, err)
                if not isinstance(err, Exception):
                    raise
                return
            state.start_time = control.t0
        step = next_step(state, value, exc, run.name)
        if not step.retry:
            self._finish(run, step.value, step.error)
            return
        wait = step.wait
        if control.deadline is not None and time.monotonic() + wait >= control.deadline:
            # The next attempt could not start in time: end the run now.
            self._finish(run, None, self._deadline_error(run, control))
            return
        if not run._set_retrying():
            return  # stopped meanwhile
        state.prepare_for_next_attempt()
        try:
            self.__events.emit("task.retrying", run, attempt=number, wait_s=wait, next_attempt=number + 1)
        finally:
            # Even past a handler's KeyboardInterrupt: a run left retrying
            # with no next attempt would never end.
            if wait <= 0:
                self._relaunch(run, control, number + 1)
            else:
                try:
                    control.wait = self.call_later(wait, lambda: self._relaunch(run, control, number + 1), "retry")
                except RuntimeError:
                    if not run.done():
                        raise
                    # else: stopped meanwhile, and the runner closed its timers since

    def _finish(self, run: TaskRun[Any], value: Any, exc: BaseException | None) -> None:
        # dict.pop is atomic: of this and a concurrent stop() one gets the control.
        control = self.__active.pop(run, None)
        if control is not None and (control.deadline_timer is not None or control.wait is not None):
            # Its timers hold it: cancel them. Nothing else holds a control
            # once its run ended (see _Control), so it goes, call and all.
            self._drop(control)
        # The run's last event is logged before the run is seen to end (a
        # caller that checks the log after result() finds it), and only if
        # it does end here (not if a stop() got there first).
        announce = None
        if control is not None and (exc is not None or _structlog.is_configured or _stdlib.enabled):
            announce = functools.partial(self._announce_end, run, time.monotonic() - control.t0, exc)
        try:
            run._complete(value, exc, announce)
        finally:
            # A done-callback may raise SystemExit or KeyboardInterrupt (the
            # stdlib lets those through): the run is over all the same.
            if self.__shutdown:
                self._after_end(run)

    def _announce_end(self, run: TaskRun[Any], duration: float, exc: BaseException | None) -> None:
        """Emit ``task.succeeded`` or ``task.failed`` for ``run`` (called by its `TaskRun._complete`)."""
        if exc is None:
            self.__events.emit("task.succeeded", run, attempt=len(run._records), duration_s=duration)
        elif isinstance(exc, UpstreamFailed):
            self.__events.emit(
                "task.failed",
                run,
                attempt=0,
                duration_s=duration,
                exception=exc,
                reason=str(exc),
                upstream_run_id=exc.upstream_run_id,
            )
        else:
            self.__events.emit("task.failed", run, attempt=len(run._records), duration_s=duration, exception=exc)

    @staticmethod
    def _drop(control: _Control) -> None:
        # A finished run keeps its result, not its arguments (as the stdlib's
        # futures): a list of finished runs must not hold every input alive.
        # Nor a second reference to its result (tenacity's last outcome).
        timer = control.deadline_timer
        if timer is not None:
            timer.cancel()
            control.deadline_timer = None
        timer = control.wait
        if timer is not None:
            timer.cancel()
            control.wait = None
        control.attempt = control.retry_state = None
        control.fn, control.args, control.kwargs = _no_call, (), NO_KWARGS

    def _after_end(self, run: TaskRun[Any]) -> None:
        # No lock for the check: of this and a concurrent shutdown(wait=False)
        # at least one sees both conditions (closing twice is harmless).
        if self.__shutdown and not self.__active:
            self._close_all(wait=False)

    # -- timers and stopping ----------------------------------------------------------

    def _on_timeout(self, attempt: Attempt) -> None:
        self._interrupt(
            attempt,
            "timed_out",
            AttemptTimeout(f"attempt {attempt.number} of {attempt.run.name} timed out after {attempt.timeout:g}s"),
        )

    def _interrupt(self, attempt: Attempt, outcome: AttemptOutcome, exc: BaseException) -> None:
        """Settle an attempt from outside, then have the backend stop it."""
        if not self._claim(attempt):
            return
        ticket = attempt._ticket
        granted: list[Ticket] = []
        if ticket is not None:
            granted = ticket.release()  # out of its limit's queue, or its slots back
        try:
            if ticket is None or ticket.started:  # else the backend never had it
                self.stop_attempt(attempt)
            if attempt.started is not None:
                self._settled(attempt, outcome, None, exc)
            elif outcome == "timed_out":
                # A deadline that passed before the attempt reached a worker
                # (or while it waited for its limits).
                self._finish(attempt.run, None, exc)
        finally:
            if granted:
                start_granted(granted)

    def _on_deadline(self, run: TaskRun[Any]) -> None:
        control = self.__active.get(run)
        if control is None:
            return
        control.deadline_hit = True
        attempt, wait = control.attempt, control.wait
        if attempt is not None:
            self._interrupt(attempt, "timed_out", self._deadline_error(run, control))
        elif wait is not None:
            wait.cancel()
            self._finish(run, None, self._deadline_error(run, control))

    @staticmethod
    def _deadline_error(run: TaskRun[Any], control: _Control) -> DeadlineExceeded:
        err = DeadlineExceeded(f"{run.name} did not finish within its deadline of {control.policy.deadline:g}s")
        if run._records:
            err.__cause__ = run._records[-1][4]  # the last attempt's exception (AttemptRecord.exception)
        return err

    def _on_cancelled(self, run: TaskRun[Any], stopped: bool) -> None:
        """Called by `TaskRun.cancel` / `TaskRun.stop` as the run ends cancelled, before it is marked so.

        The attempt is stopped and ``task.cancelled`` logged before any
        waiter can see the run cancelled (see `TaskRun._end_cancelled`).
        """
        control = self.__active.pop(run, None)
        try:
            if control is not None:
                attempt = control.attempt
                self._drop(control)
                if attempt is not None:
                    self._interrupt(attempt, "stopped", CancelledError(run._cancelled_message()))
            self.__events.emit("task.cancelled", run, stopped=stopped, reason=run._cancel_reason)
        finally:
            self._after_end(run)

    # -- shutdown ------------------------------------------------------------------------

    def _close_all(self, wait: bool) -> None:
        # The first call closes; when the last run ended after shutdown(wait=
        # False) began, that call came from a worker and could not wait, so a
        # later shutdown(wait=True) closes again, waiting this time.
        if wait and self.owns_current_thread():
            # Never join the thread we are on: close_workers(wait=True) may
            # assume it is not called from one of the runner's own threads.
            wait = False
        with self.__lock:
            first = not self.__closed
            self.__closed = True
        if first:
            self.__finalizer.detach()  # closed here: nothing left to release when dropped
        if first or wait:
            self.__scheduler.close(wait)
            self.close_workers(wait)


def _no_call(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("this run has ended: its call was dropped")


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
            report_error(exc)
