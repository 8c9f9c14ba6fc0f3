"""`SequentialRunner`: every attempt runs inline, inside ``submit``."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from woflo._errors import AttemptTimeout, DeadlineExceeded
from woflo._runner import Attempt, Runner, TimerKind
from woflo._scheduler import Timer
from woflo._tasklog import call_bound

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["SequentialRunner"]


class SequentialRunner(Runner):
    """Runs each task in the calling thread; ``submit`` returns a finished `TaskRun`.

    Retries and their waits happen inside ``submit`` too. Nothing can interrupt
    an attempt here, so ``timeout`` and ``deadline`` are checked when an attempt
    returns: an attempt that took longer than ``timeout`` fails with
    `AttemptTimeout` (its result is discarded) but has run to its end, and
    `TaskRun.stop` cannot end a running attempt. Use `ThreadRunner` or
    `ProcessRunner` when an attempt must be cut short.

    A task that submits to its own runner (``@task`` calling another ``@task``
    on the shared `SequentialRunner`) gets a finished run back, as any caller
    does: the nested submission runs inline, inside the task, so the task may
    use its result. (Retries, by contrast, queue up behind the attempt that
    scheduled them rather than recursing.) ``shutdown(wait=True)`` inside a
    task raises `RuntimeError` (it would wait for that very task).

    Example:
        >>> run = SequentialRunner(retries=1).submit(divmod, 7, 2)
        >>> run.done(), run.result()
        (True, (3, 1))
    """

    runner_name = "sequential"

    # submit returns a finished run: a run with inputs waits for them there.
    _inputs_inline = True

    def __init__(self, **options: Unpack[PolicyOptions]) -> None:
        super().__init__(**options)
        # Attempts started while one runs inline (a retry) queue up here instead
        # of recursing, so a thousand retries need no deep stack.
        self._local = threading.local()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, stop_running: bool = False) -> None:
        """Stop taking work; see `Runner.shutdown`.

        Raises:
            RuntimeError: ``wait=True`` from inside one of this runner's tasks,
                which would wait for itself (the runner is shut down all the
                same; the stdlib's ThreadPoolExecutor raises likewise).
        """
        depth: int = getattr(self._local, "depth", 0)
        if wait and depth:
            super().shutdown(wait=False, cancel_futures=cancel_futures, stop_running=stop_running)
            raise RuntimeError("shutdown(wait=True) inside one of the runner's own tasks would wait for itself")
        super().shutdown(wait, cancel_futures=cancel_futures, stop_running=stop_running)

    def start_attempt(self, attempt: Attempt) -> None:
        if attempt.number > 1:
            # A retry: queued behind the step that scheduled it, not recursing.
            self._enqueue(lambda: self._run(attempt))
            return
        # A new submission runs now, on a queue of its own, even when it comes
        # from inside a task of this runner (or a callback called while it
        # finishes a run): the caller may wait for its result, which a queued
        # run would only get after the caller returned, that is never.
        local = self._local
        outer: deque[Callable[[], object]] | None = getattr(local, "pending", None)
        local.pending = None
        try:
            self._enqueue(lambda: self._run(attempt))
        finally:
            local.pending = outer

    def _enqueue(self, step: Callable[[], object]) -> None:
        pending: deque[Callable[[], object]] | None = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append(step)
            return
        self._local.pending = pending = deque([step])
        try:
            while pending:
                pending.popleft()()
        finally:
            self._local.pending = None

    def call_later(self, delay: float, fn: Callable[[], object], kind: TimerKind) -> Timer:
        timer = Timer(time.monotonic() + delay, 0, fn)
        if kind == "retry":

            def wait_then_run() -> None:
                time.sleep(delay)
                if not timer.cancelled:
                    fn()

            self._enqueue(wait_then_run)
        # Timeouts and deadlines are checked after the attempt instead (see _run).
        return timer

    def _run(self, attempt: Attempt) -> None:
        fn, args, kwargs = attempt.fn, attempt.args, attempt.kwargs
        worker = threading.current_thread().name
        if not attempt.begin(worker):
            return
        started = time.monotonic()
        local = self._local
        # How many of this runner's tasks this thread is inside (see shutdown).
        local.depth = getattr(local, "depth", 0) + 1
        try:
            try:
                # What the task logs carries its run (see woflo/_tasklog.py); a
                # run nested inside binds its own, and the outer one comes back after it.
                value = call_bound(attempt, fn, args, kwargs)
            finally:
                local.depth -= 1
        except KeyboardInterrupt as exc:
            # Ctrl-C inside an inline task interrupts the program: end the run,
            # then let the caller of submit see it, as a plain call would.
            self._report(attempt, started, None, exc)
            raise
        except BaseException as exc:
            # SystemExit and the rest are the call's outcome, as a stdlib
            # executor's worker reports them: result() raises them.
            self._report(attempt, started, None, exc)
        else:
            self._report(attempt, started, value, None)

    @staticmethod
    def _report(attempt: Attempt, started: float, value: object, exc: BaseException | None) -> None:
        now = time.monotonic()
        elapsed = now - started
        timeout = attempt.timeout
        if timeout is not None and elapsed > timeout:
            message = (
                f"attempt {attempt.number} of {attempt.run.name} took {elapsed:.3g}s, over its timeout of {timeout:g}s"
            )
            attempt.fail(AttemptTimeout(message), outcome="timed_out")
        elif exc is not None:
            # Past the run's deadline, the base ends the run with DeadlineExceeded.
            attempt.fail(exc)
        elif attempt.deadline is not None and now > attempt.deadline:
            attempt.fail(DeadlineExceeded(f"{attempt.run.name} returned after its deadline"), outcome="timed_out")
        else:
            attempt.succeed(value)
