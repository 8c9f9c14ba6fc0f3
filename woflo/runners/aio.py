"""`AsyncRunner`: attempts are coroutines on an event loop.

Everything the runner does happens on its loop's thread: attempts start there,
their timeouts and retry waits are ``loop.call_later`` handles, and stopping an
attempt is ``asyncio.Task.cancel()``. Calls that arrive from other threads
(``submit`` from synchronous code, ``TaskRun.stop()``) hop onto the loop with
``call_soon_threadsafe``, so the loop's state is only ever touched by its own
thread and needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
import weakref
from collections import deque
from collections.abc import Callable
from inspect import CO_COROUTINE
from types import FunctionType
from typing import TYPE_CHECKING, Any

from woflo._looprun import LoopTaskRun, running_loop, running_loop_here
from woflo._runner import Attempt, Runner, TimerKind
from woflo._scheduler import Timer, _nothing
from woflo._shared import shared_runner, untrack
from woflo._tasklog import bind, unbind
from woflo.runners.thread import ThreadRunner

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import AsyncPolicyOptions

__all__ = ["AsyncRunner", "runner_for_running_loop"]


# One runner per foreign loop, for `@task async def` called inside that loop.
# Weak on the loop: a finished `asyncio.run()` must not be kept alive by woflo.
_bound_lock = threading.Lock()
_bound: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRunner] = weakref.WeakKeyDictionary()


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine (``async def``, partials of one, async ``__call__``)."""
    if type(fn) is FunctionType:
        # The common case, without inspect's unwrapping (this runs per attempt).
        return bool(fn.__code__.co_flags & CO_COROUTINE)
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class's __call__, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


class _LoopTimer(Timer):
    """A `Timer` whose call happens on the runner's loop (a ``call_later`` handle)."""

    __slots__ = ("handle", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float, fn: Callable[[], object]) -> None:
        super().__init__(when, 0, fn)
        self.loop = loop
        self.handle: asyncio.TimerHandle | None = None

    def fire(self) -> None:
        fn = self.fn  # before the flag: cancel() replaces it
        # Fired: this timer and its handle refer to each other, and fn may
        # hold a run (a retry's relaunch) and its result. Dropped now, they
        # go without waiting for a collection.
        self.handle = None
        if not self.cancelled:
            self.cancelled = True  # a later cancel() has nothing to do
            self.fn = _nothing
            fn()

    def cancel(self) -> None:
        super().cancel()
        handle = self.handle
        # From another thread the flag alone suffices: the handle fires as a
        # no-op. On the loop, drop it now so finished attempts leave no garbage.
        if handle is not None and running_loop_here(self.loop) is self.loop:
            handle.cancel()


class AsyncRunner(Runner):
    """Runs ``async def`` functions as tasks on an event loop.

    A per-attempt ``timeout`` and `TaskRun.stop` cancel the attempt's
    ``asyncio.Task``: the coroutine sees ``CancelledError`` at its current
    ``await`` and its ``finally`` blocks run. Retry waits are loop timers, so a
    run waiting to retry holds neither a thread nor a concurrency slot.

    Where it runs: with ``loop=None`` the runner owns an event loop in a
    background thread, started on first use and stopped and joined at
    shutdown; with ``loop=`` it runs on that (running) loop, which it never
    stops. ``@task async def f`` called inside a running loop uses a runner bound
    to that loop (`runner_for_running_loop`), so ``await f(x)`` runs on the
    caller's loop; called outside any loop it uses a shared owning runner.

    A plain (non-async) function is run in a thread of the runner's own
    `ThreadRunner`, never on the loop itself: that is what makes
    ``loop.run_in_executor(runner, fn, x)`` and ``Executor`` code work, and one
    blocking call must not freeze every coroutine. Such an attempt cannot be
    interrupted: a timeout or stop ends its `TaskRun` at once and its thread is
    abandoned (a daemon: a call that never returns does not hold up the
    interpreter's exit), as with `ThreadRunner`. If a plain function returns a
    coroutine (``lambda: fetch(url)``), that coroutine is awaited on the loop.

    Args:
        max_concurrency: attempts running at once at most; the others wait in
            a queue on the loop. ``None``: no limit.
        loop: run on this event loop instead of one owned by the runner.
        **options: the policy options of `Runner` (``retries``, ``timeout``...).

    Raises:
        TypeError: ``max_concurrency`` is not an int, ``loop`` not an
            ``asyncio.AbstractEventLoop``, or a policy option has the wrong type.
        ValueError: ``max_concurrency`` is not positive, ``loop`` is closed.

    A run needs its loop to finish, so blocking that loop until the run ends
    can never succeed: ``run.result()``, ``exception()``, ``wait()`` and
    ``get_result()`` called on the run's own loop (in a coroutine or a loop
    callback) raise `RuntimeError` at once instead of freezing the loop
    (``await run`` there instead; a timeout of 0, a poll, still works).
    ``concurrent.futures.wait`` and ``as_completed`` on that loop cannot be
    detected: they block it until their timeout.

    Example:
        >>> import asyncio
        >>> async def double(x: int) -> int:
        ...     await asyncio.sleep(0)
        ...     return 2 * x
        >>> with AsyncRunner(max_concurrency=10, retries=2, timeout=5) as ex:
        ...     [run.result() for run in [ex.submit(double, n) for n in range(3)]]
        [0, 2, 4]
    """

    runner_name = "async"

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        **options: Unpack[AsyncPolicyOptions],
    ) -> None:
        if max_concurrency is not None:
            if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
                raise TypeError(f"max_concurrency must be an int or None, not {type(max_concurrency).__name__}")
            if max_concurrency <= 0:
                raise ValueError("max_concurrency must be greater than 0")
        if loop is not None:
            if not isinstance(loop, asyncio.AbstractEventLoop):
                raise TypeError(f"loop must be an asyncio event loop or None, not {type(loop).__name__}")
            if loop.is_closed():
                raise ValueError("loop is closed")
        super().__init__(**options)
        self._limit = max_concurrency
        self._loop: asyncio.AbstractEventLoop | None = loop
        self._owned = loop is None
        self._thread: threading.Thread | None = None
        self._threads: ThreadRunner | None = None
        self._loop_lock = threading.Lock()
        self._worker = "loop" if loop is None else f"loop-{id(loop):x}"
        # Loop-thread state (never touched from elsewhere).
        self._running = 0
        self._waiting: deque[Attempt] = deque()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the attempts run on (the owned one is started by this)."""
        return self._loop if self._loop is not None else self._start_loop()

    @property
    def max_concurrency(self) -> int | None:
        """The most attempts running at once, or ``None``."""
        return self._limit

    # -- the loop ---------------------------------------------------------------------

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                if self.workers_closed:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._serve, args=(loop,), name=f"woflo-async-{id(self):x}")
                # A daemon, like the other runners' threads: atexit shuts it down.
                thread.daemon = True
                thread.start()
                self._thread = thread
                self._worker = thread.name
                with _bound_lock:
                    _bound[loop] = self
                self._loop = loop
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _on_loop(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` on the loop: now if this is the loop's thread, else soon."""
        loop = self._loop if self._loop is not None else self._start_loop()
        if running_loop_here(loop) is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    # -- the backend ------------------------------------------------------------------

    run_class = LoopTaskRun

    def start_attempt(self, attempt: Attempt) -> None:
        loop = self._loop if self._loop is not None else self._start_loop()
        if running_loop_here(loop) is loop:
            self._admit(attempt)
        else:
            if not _is_async(attempt.fn):
                self._reserve_thread()
            loop.call_soon_threadsafe(self._admit, attempt)

    def _reserve_thread(self) -> None:
        # A plain function submitted from outside the loop gets a thread now,
        # in the submitting thread, as ThreadPoolExecutor.submit starts one:
        # on the loop it may only be started after the main thread has
        # finished, and Python 3.12 refuses to start threads at interpreter
        # shutdown ("can't create new thread at interpreter shutdown"), which
        # failed the very run that the exit hook was waiting for. The new
        # thread waits for work, so it counts as idle: the attempt, once
        # admitted, takes it instead of starting another. At most
        # max_workers threads, as ever; an idle one is not looked for, since
        # other admitted attempts may take it first.
        self._thread_runner().reserve_thread()

    def _admit(self, attempt: Attempt) -> None:
        if attempt.settled:
            return  # stopped before it reached the loop: nothing to run
        if self._limit is not None:
            if self._running >= self._limit:
                self._waiting.append(attempt)
                return
            self._running += 1
        self._spawn(attempt)

    def _spawn(self, attempt: Attempt) -> None:
        # The task needs no other strong reference (the loop keeps weak ones):
        # the runner's active run holds its current attempt, which holds it.
        attempt.handle = self._loop.create_task(self._run(attempt))  # type: ignore[union-attr]

    async def _run(self, attempt: Attempt) -> None:
        try:
            fn, args, kwargs = attempt.fn, attempt.args, attempt.kwargs
            if not attempt.begin(self._worker):
                return
            # What the task logs carries its run (see woflo/_tasklog.py): this
            # asyncio task's context is the attempt's own.
            bound = bind(attempt)
            try:
                try:
                    if _is_async(fn):
                        value = await fn(*args, **kwargs)
                    else:
                        # Awaiting the thread's TaskRun: cancelling this task
                        # (timeout, stop) stops it, which abandons the thread.
                        # The call runs in a copy of this context, as
                        # asyncio.to_thread runs it: it sees this run, not the
                        # thread runner's own.
                        call = contextvars.copy_context().run
                        value = await self._thread_runner().submit(call, fn, *args, **kwargs)
                        if inspect.iscoroutine(value):
                            value = await value
                finally:
                    unbind(bound)
            except asyncio.CancelledError as exc:
                if not attempt.settled:
                    # Cancelled by someone else than woflo (the loop is being
                    # torn down, or user code cancelled this task): the run is
                    # stopped, as a cancelled asyncio task would be.
                    attempt.run.stop()
                    if not attempt.settled:
                        attempt.fail(exc)
                raise
            except BaseException as exc:
                attempt.fail(exc)
            else:
                attempt.succeed(value)
        except BaseException as exc:
            # A done-callback's or logging handler's SystemExit or
            # KeyboardInterrupt. On a borrowed loop it propagates, as asyncio
            # lets those out of a task; the runner's own loop serves on (it
            # would otherwise stop, and every run on it hang).
            if not self._owned or isinstance(exc, asyncio.CancelledError):
                raise
            Runner.survive(attempt, exc)
        finally:
            if self._limit is not None:
                self._release()
            # A failure's traceback keeps this frame, and the run keeps the
            # failure in its attempts: the frame must not hold the attempt
            # (and through it the run), or only a collection could free them.
            del attempt

    def _release(self) -> None:
        waiting = self._waiting
        while waiting:
            following = waiting.popleft()
            if not following.settled:  # skip attempts stopped while queued
                self._spawn(following)
                return
        self._running -= 1

    def stop_attempt(self, attempt: Attempt) -> None:
        self._on_loop(lambda: self._cancel(attempt))

    @staticmethod
    def _cancel(attempt: Attempt) -> None:
        task = attempt.handle
        if task is not None and not task.done():
            task.cancel()
        # A queued attempt has no task yet; `_release` skips it as settled.

    def call_later(self, delay: float, fn: Callable[[], object], kind: TimerKind) -> Timer:
        loop = self._loop if self._loop is not None else self._start_loop()
        timer = _LoopTimer(loop, loop.time() + delay, fn)
        if running_loop_here(loop) is loop:
            timer.handle = loop.call_later(delay, timer.fire)
        else:

            def arm() -> None:
                if not timer.cancelled:
                    timer.handle = loop.call_at(timer.when, timer.fire)

            loop.call_soon_threadsafe(arm)
        return timer

    # -- shutdown ---------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, stop_running: bool = False) -> None:
        """Stop taking work; see `Runner.shutdown`.

        On a borrowed loop that has already stopped for good (closed), nothing
        can finish the runs left on it, so they are stopped rather than waited for.

        Raises:
            RuntimeError: ``wait=True`` where waiting would deadlock: on the
                runner's own loop while runs are pending, or inside one of its
                plain functions (the runner is shut down all the same then).
        """
        loop = self._loop
        if not self._owned and loop is not None and loop.is_closed():
            stop_running = True
        if wait and loop is not None and running_loop_here(loop) is loop and self.active_runs():
            # The runs need this very loop to finish: blocking it would hang.
            raise RuntimeError(
                "shutdown(wait=True) on the runner's own loop would deadlock; "
                "await the runs first, or call shutdown(wait=False)"
            )
        threads = self._threads
        if wait and threads is not None and threads.owns_current_thread():
            # A plain function of this runner would wait for its own run.
            super().shutdown(wait=False, cancel_futures=cancel_futures, stop_running=stop_running)
            raise RuntimeError("cannot join current thread: shutdown(wait=True) inside one of the runner's own tasks")
        super().shutdown(wait, cancel_futures=cancel_futures, stop_running=stop_running)

    def _thread_runner(self) -> ThreadRunner:
        with self._loop_lock:
            if self._threads is None:
                threads = ThreadRunner(thread_name_prefix=f"woflo-async-{id(self):x}")
                threads._mute_events()  # this runner reports the attempts itself
                # Closed by this runner's _close, after its runs: the exit
                # hook must not shut it down on its own, before a run of
                # this runner that is still queued on the loop reaches it
                # ("cannot schedule new futures after shutdown").
                untrack(threads)
                self._threads = threads
            return self._threads

    def owns_current_thread(self) -> bool:
        # The loop's thread (a coroutine, a loop callback) and the threads of
        # its plain functions.
        thread, threads = self._thread, self._threads
        return (
            super().owns_current_thread()
            or (thread is not None and thread is threading.current_thread())
            or (threads is not None and threads.owns_current_thread())
        )

    def close_workers(self, wait: bool) -> None:
        with _bound_lock:
            if self._loop is not None and _bound.get(self._loop) is self:
                del _bound[self._loop]
        with self._loop_lock:
            loop, thread, threads = self._loop, self._thread, self._threads
        if threads is not None:
            # Only abandoned (stopped, timed-out) plain functions can still be
            # running here: do not wait for them.
            threads.shutdown(wait=False, cancel_futures=True)
        if not self._owned or loop is None or thread is None:
            return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: already stopped
                loop.call_soon_threadsafe(loop.stop)
        if wait:
            thread.join()


def runner_for_running_loop() -> Runner:
    """The AsyncRunner for the caller's context: bound to the running loop if any.

    Inside a running event loop this is a runner bound to that loop (made on
    first use, one per loop); outside any loop, the shared AsyncRunner that
    owns a background loop. ``@task`` uses it for ``async def`` functions.
    """
    loop = running_loop()
    if loop is None:
        return shared_runner(AsyncRunner)
    with _bound_lock:
        runner = _bound.get(loop)
        if runner is None or runner.is_shutdown:
            runner = _bound[loop] = AsyncRunner(loop=loop)
        return runner
