"""`ThreadRunner`: attempts run in a pool of threads."""

from __future__ import annotations

import collections
import functools
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from woflo._each import call_each
from woflo._errors import BrokenThreadRunner
from woflo._runner import Attempt, Runner
from woflo._tasklog import call_bound

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["ThreadRunner"]


def default_thread_workers() -> int:
    """The stdlib ThreadPoolExecutor's default: ``min(32, cpu_count + 4)``."""
    return min(32, (os.cpu_count() or 1) + 4)


def check_max_workers(max_workers: int) -> int:
    """Validate ``max_workers`` the way the stdlib executors do."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise TypeError(f"max_workers must be an int, not {type(max_workers).__name__}")
    if max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")
    return max_workers


def check_initializer(initializer: Callable[..., object] | None, initargs: Iterable[Any]) -> tuple[Any, ...]:
    """Validate ``initializer`` and ``initargs`` at the constructor; return ``initargs`` as a tuple.

    The stdlib executors take any iterable ``initargs`` and fail only in the
    worker (``initializer(*5)``), where a mistake breaks the pool long after
    the call that made it; woflo says so at the constructor.

    Raises:
        TypeError: ``initializer`` is neither ``None`` nor callable, or
            ``initargs`` is not iterable.
    """
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be a callable or None, not {type(initializer).__name__}")
    try:
        return tuple(initargs)
    except TypeError:
        raise TypeError(f"initargs must be a tuple, not {type(initargs).__name__}") from None


def _wake_all(jobs: queue.SimpleQueue[Attempt | None], n: int) -> None:
    # A dropped runner's release: every idle thread takes a None and exits.
    for _ in range(n):
        jobs.put(None)


class ThreadRunner(Runner):
    """Runs attempts in up to ``max_workers`` threads, started on demand.

    Python cannot stop a thread, so stopping here is cooperative: when an
    attempt times out or its run is stopped, the `TaskRun` ends at once, the
    attempt's late result is discarded, and a fresh thread takes its place so
    the pool keeps its full width; the abandoned thread exits when the function
    returns. Use `ProcessRunner` for work that must really be stopped.

    Args:
        max_workers: threads at most; default ``min(32, cpu_count + 4)``.
        thread_name_prefix: names the threads ``{prefix}_{n}``.
        initializer: called with ``initargs`` in each new thread. If it
            raises, the runner is broken, as the stdlib's pool is: every run
            waiting for a thread fails with `woflo.BrokenThreadRunner` (a
            ``BrokenThreadPool``) whose ``__cause__`` is the initializer's
            exception, without retries, and every later ``submit`` raises a
            new `woflo.BrokenThreadRunner` at once.
        initargs: the initializer's arguments (a tuple).
        **options: the policy options of `Runner`.

    Raises:
        TypeError: ``initializer`` is not callable, ``initargs`` not a tuple.
        ValueError: ``max_workers`` is not positive.

    Example:
        >>> with ThreadRunner(max_workers=4, retries=2) as ex:
        ...     list(ex.map(abs, [-1, -2, 3]))
        [1, 2, 3]
    """

    runner_name = "thread"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        **options: Unpack[PolicyOptions],
    ) -> None:
        self._max_workers = check_max_workers(default_thread_workers() if max_workers is None else max_workers)
        initargs = check_initializer(initializer, initargs)
        super().__init__(**options)
        self._prefix = thread_name_prefix or f"woflo-thread-{id(self):x}"
        self._initializer = initializer
        self._initargs = initargs
        # The initializer's exception once one failed: the runner is broken.
        self._broken: BaseException | None = None
        self._queue: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        # One token per idle worker. A deque, not the stdlib's Semaphore: its
        # append and pop are atomic C calls, where Semaphore goes through a
        # Python-level Condition that the submitting thread and every worker
        # fought over (a third of the time of 20,000 no-op tasks).
        self._idle: collections.deque[None] = collections.deque()
        self._threads: set[threading.Thread] = set()
        self._abandoned: set[threading.Thread] = set()
        self._pool_lock = threading.Lock()
        self._count = 0
        self.release_on_drop(functools.partial(_wake_all, self._queue, self._max_workers))

    @property
    def max_workers(self) -> int:
        """The most threads that run attempts at once."""
        return self._max_workers

    def broken_error(self) -> BaseException | None:
        return None if self._broken is None else self._broken_error()

    def _broken_error(self) -> BrokenThreadRunner:
        # A new exception per run and per call: one object raised in many
        # places would chain their tracebacks together (CPython gh-101267).
        err = BrokenThreadRunner(
            f"a thread initializer failed: the ThreadRunner cannot run anything any more ({self._broken!r})"
        )
        err.__cause__ = self._broken
        return err

    def start_attempt(self, attempt: Attempt) -> None:
        self._queue.put(attempt)
        if self._broken is not None:
            # Broken meanwhile (a submit that raced the failing initializer,
            # or a retry): nothing will ever take it from the queue.
            self._fail_queued()
            return
        try:
            self._idle.pop()
        except IndexError:
            self._grow()

    def _fail_queued(self) -> None:
        """Fail every attempt still queued with `BrokenThreadRunner` (the runner is broken)."""
        queued: list[Attempt] = []
        stops = 0
        while True:
            try:
                attempt = self._queue.get_nowait()
            except queue.Empty:
                break
            if attempt is None:
                stops += 1  # a shutdown's stop signal: put back for a worker below
            else:
                queued.append(attempt)
        try:
            # Never retried: a BrokenRunner ends its run (see Runner). A
            # done-callback's SystemExit: every other run ends too (call_each).
            call_each(self._fail_broken, queued)
        finally:
            for _ in range(stops):
                self._queue.put(None)

    def _fail_broken(self, attempt: Attempt) -> None:
        attempt.fail(self._broken_error())

    def reserve_thread(self) -> None:
        """Start one more worker thread now, on the caller's thread, if below ``max_workers``.

        It waits, idle, for the next attempt. For a runner that hands work
        over later from a thread of its own (`AsyncRunner`'s loop): Python
        3.12+ refuses to start a thread once the interpreter is shutting
        down, so a thread needed then must exist before.
        """
        before = self._count
        self._grow()
        if self._count != before:
            # Counted idle: the next attempt takes it instead of starting
            # another. One token too many (a concurrent start meanwhile) can
            # only happen at max_workers threads, where none starts anyway.
            self._idle.append(None)

    def _grow(self) -> None:
        with self._pool_lock:
            if (
                self.workers_closed
                or self._broken is not None
                or len(self._threads) - len(self._abandoned) >= self._max_workers
            ):
                return
            # Numbered from 0, as the stdlib's ThreadPoolExecutor names its threads.
            number = self._count
            self._count += 1
            # The thread holds a weak reference to its runner (and the queue), so
            # a runner dropped without shutdown() can be released (see Runner).
            thread = threading.Thread(
                target=ThreadRunner._work,
                args=(weakref.ref(self), self._queue),
                name=f"{self._prefix}_{number}",
                daemon=True,
            )
            # Counted before it starts (its first task may ask whether it
            # runs on one of ours: shutdown(wait=True) inside a task), and
            # started under the lock: close_workers, which lists the threads
            # under it, must never see one not started yet (join() raises on
            # it), nor keep one that could not start (Python 3.12+ refuses
            # new threads at interpreter shutdown).
            self._threads.add(thread)
            try:
                thread.start()
            except RuntimeError:  # it could not start: not one of ours
                self._threads.discard(thread)
                raise
            # A KeyboardInterrupt while start() waited for the thread to run:
            # it runs, and stays counted (close_workers sends it its stop).

    @staticmethod
    def _work(ref: weakref.ref[ThreadRunner], jobs: queue.SimpleQueue[Attempt | None]) -> None:
        me = threading.current_thread()
        self = ref()
        if self is None:
            return
        if self._initializer is not None:
            try:
                self._initializer(*self._initargs)
            except BaseException as exc:
                with self._pool_lock:
                    self._threads.discard(me)
                    if self._broken is None:
                        self._broken = exc
                self.report_internal_error(exc)
                try:
                    self._fail_queued()
                except BaseException as raised:  # a done-callback's: this thread ends here anyway
                    self.report_internal_error(raised)
                return
        del self  # never held while waiting for work: a runner may be dropped meanwhile
        get, name = jobs.get, me.name
        while True:
            attempt = get()
            if attempt is None:
                break
            attempt.handle = me
            fn, args, kwargs = attempt.fn, attempt.args, attempt.kwargs
            try:
                if attempt.begin(name):
                    try:
                        # What the task logs carries its run (see woflo/_tasklog.py).
                        value = call_bound(attempt, fn, args, kwargs)
                    except BaseException as exc:
                        attempt.handle = None
                        attempt.fail(exc)
                    else:
                        attempt.handle = None
                        attempt.succeed(value)
            except BaseException as exc:
                # A done-callback's or logging handler's SystemExit: this
                # thread serves on (a dead one would shrink the pool for good).
                attempt.handle = None
                Runner.survive(attempt, exc)
            # Not kept until the next attempt: a result its caller dropped must
            # be freed, and a finished run's arguments too.
            attempt = value = None
            del fn, args, kwargs
            self = ref()
            if self is None:
                return  # the runner was dropped and released
            if me in self._abandoned:
                # Replaced while stuck in a timed-out or stopped attempt.
                with self._pool_lock:
                    self._abandoned.discard(me)
                    self._threads.discard(me)
                return
            self._idle.append(None)
            del self
        self = ref()
        if self is not None:
            with self._pool_lock:
                self._threads.discard(me)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, stop_running: bool = False) -> None:
        """Stop taking work; see `Runner.shutdown`.

        Raises:
            RuntimeError: ``wait=True`` from one of the runner's own threads,
                which would wait for itself (the runner is shut down all the
                same), as the stdlib's ``cannot join current thread``.
        """
        if wait and threading.current_thread() in self._threads:
            super().shutdown(wait=False, cancel_futures=cancel_futures, stop_running=stop_running)
            raise RuntimeError("cannot join current thread: shutdown(wait=True) inside one of the runner's own tasks")
        super().shutdown(wait, cancel_futures=cancel_futures, stop_running=stop_running)

    def stop_attempt(self, attempt: Attempt) -> None:
        with self._pool_lock:
            thread = attempt.handle
            if thread is None or thread in self._abandoned:
                return
            self._abandoned.add(thread)
        # The abandoned thread no longer counts: let a new one serve the queue.
        self._grow()

    def owns_current_thread(self) -> bool:
        return super().owns_current_thread() or threading.current_thread() in self._threads

    def close_workers(self, wait: bool) -> None:
        with self._pool_lock:
            workers = [t for t in self._threads if t not in self._abandoned]
        for _ in workers:
            self._queue.put(None)
        if wait:
            for thread in workers:
                thread.join()
