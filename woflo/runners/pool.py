"""`PoolRunner`: woflo's retries, timeouts, stop and events over any `concurrent.futures.Executor`.

Written only against woflo's public runner interface (`woflo.Runner`,
`woflo.Attempt`), as a runner of a third party would be: docs/writing-a-runner.md.
"""

from __future__ import annotations

import collections
import functools
import threading
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

# The public Runner and Attempt (woflo re-exports them), from where they are
# defined: woflo/__init__ imports this module.
from woflo._attempt import Attempt
from woflo._runner import Runner

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["PoolRunner"]


class PoolRunner(Runner):
    """woflo's retries, per-attempt timeouts, deadlines, ``stop()`` and events over an Executor you have.

    Each attempt is one ``executor.submit(fn, *args, **kwargs)``; its outcome
    is the outcome of that future. The executor's own errors (a
    ``BrokenProcessPool`` after one of its workers died, a ``RuntimeError``
    after it was shut down) are the attempt's error, as they are: the policy
    decides whether to retry them (the default policy does; a broken stdlib
    pool fails every later attempt too, so give it ``retry=`` a predicate that
    skips ``concurrent.futures.BrokenExecutor`` if retries are costly).

    Stopping: an executor cannot stop a call it is running. A timed-out or
    stopped attempt that is still queued in the executor is cancelled there
    (``future.cancel()``) and never runs; one that is running is abandoned:
    its `TaskRun` ends at once, the call goes on in the executor's worker
    until it returns, and its result is dropped.

    Args:
        executor: any `concurrent.futures.Executor` (a ``ThreadPoolExecutor``,
            a ``ProcessPoolExecutor``, loky's executor, a Dask client's
            ``get_executor()``...).
        max_workers: hand at most this many attempts to the executor at once;
            the others wait here, pending: ``cancel()`` of them succeeds, and
            their timeout has not started. Give the executor's width, so that
            an attempt handed over starts at once and its timeout counts its
            running time only. ``None`` (default): every attempt is handed
            over (and counts as started) when submitted, so a timeout also
            counts the time it waits in the executor's queue. Either way a
            timeout counts what the executor does before it runs the call,
            such as starting a worker process (a ``ProcessPoolExecutor``
            starts them on demand): warm such a pool first if timeouts are
            short. An abandoned
            call holds its slot until it returns, since it holds the
            executor's worker as long.
        own: the runner owns ``executor``: its ``shutdown()`` shuts the
            executor down too (``executor.shutdown(wait=wait)``, which waits
            for abandoned calls still running). Default ``False``: the
            executor is the caller's, and is left running.
        **options: the policy options of `woflo.Runner` (``retries``,
            ``timeout``, ``deadline``, tenacity's ``stop``/``wait``/``retry``...).

    Raises:
        TypeError: ``executor`` is not an Executor; ``max_workers`` is not an int.
        ValueError: ``max_workers`` is not positive; a policy option is invalid.

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with PoolRunner(ThreadPoolExecutor(2), max_workers=2, own=True, retries=2) as runner:
        ...     runner.submit(pow, 2, 10).result()
        1024
    """

    runner_name = "pool"

    def __init__(
        self,
        executor: Executor,
        *,
        max_workers: int | None = None,
        own: bool = False,
        **options: Unpack[PolicyOptions],
    ) -> None:
        if not isinstance(executor, Executor):
            raise TypeError(f"executor must be a concurrent.futures.Executor, not {type(executor).__name__}")
        if max_workers is not None:
            if isinstance(max_workers, bool) or not isinstance(max_workers, int):
                raise TypeError(f"max_workers must be an int or None, not {type(max_workers).__name__}")
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
        super().__init__(**options)
        # Named _pool_*: the base's own private fields must not be shadowed.
        self._pool_executor = executor
        self._pool_own = own
        self._pool_width = max_workers
        self._pool_worker = type(executor).__name__  # the ``worker`` field of the events
        self._pool_lock = threading.Lock()
        self._pool_waiting: collections.deque[Attempt] = collections.deque()  # for a slot
        self._pool_busy = 0  # attempts handed to the executor and not yet done there
        # Set on the executor's thread while it delivers an outcome (see owns_current_thread).
        self._pool_delivering = threading.local()

    @property
    def executor(self) -> Executor:
        """The executor attempts are submitted to."""
        return self._pool_executor

    @property
    def max_workers(self) -> int | None:
        """The most attempts handed to the executor at once (``None``: no limit)."""
        return self._pool_width

    # -- the runner interface ----------------------------------------------------------

    def start_attempt(self, attempt: Attempt) -> None:
        """Hand ``attempt`` to the executor, or queue it until a slot is free (submitting thread)."""
        if getattr(self._pool_delivering, "active", False):
            # A retry decided inside the executor's own done-callback: submitting
            # from there deadlocks a broken ProcessPoolExecutor on Python 3.12
            # (its manager thread holds its shutdown lock while it fails the
            # futures, and submit takes that lock). Hand it over from the
            # runner's timer thread instead.
            self.call_later(0.0, lambda: self.start_attempt(attempt), "retry")
            return
        if self._pool_width is not None:
            with self._pool_lock:
                if self._pool_busy >= self._pool_width:
                    self._pool_waiting.append(attempt)
                    return
                self._pool_busy += 1
        try:
            kept = self._hand_over(attempt)
        except BaseException:
            # A KeyboardInterrupt or SystemExit from user code (attempt.started's
            # logging handler): the slot was not kept, and must not leak.
            self._free_slot()
            raise
        if not kept:
            self._free_slot()

    def stop_attempt(self, attempt: Attempt) -> None:
        """Cancel ``attempt`` in the executor if it has not started there; else abandon it."""
        future = attempt.handle
        if future is None:
            with self._pool_lock:
                # Still waiting for a slot (or about to be handed over: then
                # begin() says no, see _hand_over).
                if attempt in self._pool_waiting:
                    self._pool_waiting.remove(attempt)
            return
        future.cancel()

    def close_workers(self, wait: bool) -> None:
        """Shut the executor down if the runner owns it."""
        if self._pool_own:
            self._pool_executor.shutdown(wait=wait)

    def owns_current_thread(self) -> bool:
        """Whether the caller is the executor's thread delivering an outcome (a done-callback of a run)."""
        return super().owns_current_thread() or getattr(self._pool_delivering, "active", False)

    # -- the executor's side ------------------------------------------------------------

    def _hand_over(self, attempt: Attempt) -> bool:
        """Submit ``attempt`` to the executor in the slot it holds; ``False`` if it did not keep the slot.

        What it raises (a ``KeyboardInterrupt`` or ``SystemExit`` from user
        code: a logging handler of ``attempt.started``, a done-callback of
        the failed attempt) means the slot was not kept either: the caller
        frees it.
        """
        fn, args, kwargs = attempt.fn, attempt.args, attempt.kwargs  # dropped once the attempt is settled
        if not attempt.begin(self._pool_worker):
            return False  # cancelled or stopped while it waited
        try:
            future = self._pool_executor.submit(fn, *args, **kwargs)
        except BaseException as exc:  # shut down, broken: the attempt's error, as it is
            attempt.fail(exc, "crashed" if isinstance(exc, BrokenProcessPool) else "failed")
            if not isinstance(exc, Exception):
                raise
            return False
        attempt.handle = future
        if attempt.settled:
            # Stopped or timed out between begin() and now: stop_attempt saw no future.
            future.cancel()
        # Holds the slot until the executor is done with the call (_done frees it).
        future.add_done_callback(functools.partial(self._done, attempt))
        return True

    def _done(self, attempt: Attempt, future: Future[Any]) -> None:
        # On the executor's thread (its worker, its manager thread), or on the
        # thread that cancelled the future.
        attempt.handle = None  # the future refers to this callback: no cycle left
        delivering = self._pool_delivering
        # Restored, not cleared, at the end: a done-callback of this run may
        # stop another queued run, whose _done then runs inside this one.
        outer = getattr(delivering, "active", False)
        delivering.active = True
        try:
            # Before the outcome: a done-callback of this run may wait for a
            # run that needs this slot. Handed over from the timer thread
            # (see _free_slot): not from here.
            self._free_slot()
        except BaseException as raised:  # not into the executor's thread; this attempt still ends below
            Runner.report_internal_error(raised)
        if attempt.settled:
            delivering.active = outer
            return  # timed out or stopped: the late outcome is dropped
        try:
            if future.cancelled():
                # Not by woflo (it settles the attempt first): by whoever else holds the executor.
                attempt.fail(CancelledError(f"the executor cancelled attempt {attempt.number} of {attempt.run.name}"))
                return
            exc = future.exception()
            if exc is None:
                attempt.succeed(future.result())
            else:
                # A pool that lost a worker: the attempt crashed, not the task.
                attempt.fail(exc, "crashed" if isinstance(exc, BrokenProcessPool) else "failed")
        except BaseException as raised:
            # A done-callback's SystemExit: not into the executor's thread,
            # which it would end (the stdlib's workers die of it).
            Runner.survive(attempt, raised)
        finally:
            delivering.active = outer

    def _free_slot(self) -> None:
        """Give up one slot: the next waiting attempt takes it, or it is free.

        Raises:
            BaseException: the first ``KeyboardInterrupt`` or ``SystemExit``
                a waiting attempt's start raised (it failed with it, and the
                slot went on to the next one), once the slot is placed.
        """
        if self._pool_width is None:
            return
        interrupted: BaseException | None = None
        while True:
            with self._pool_lock:
                if not self._pool_waiting:
                    self._pool_busy -= 1
                    break
                following = self._pool_waiting.popleft()  # the slot passes to it
            if getattr(self._pool_delivering, "active", False):
                # On the executor's own thread, inside its done-callback:
                # submitting from there deadlocks a broken ProcessPoolExecutor
                # on Python 3.12+ (its manager thread holds its shutdown lock
                # while it fails the futures, and submit takes that lock). The
                # slot passes on from the runner's timer thread instead.
                self.call_later(0.0, functools.partial(self._pass_slot, following), "retry")
                break
            # A loop, not a recursion: a thousand waiting attempts that an
            # executor shut down meanwhile refuses fail one after the other.
            try:
                if self._hand_over(following):
                    break
            except BaseException as exc:
                if interrupted is None:
                    interrupted = exc
                if not following.settled:  # it never reached the executor: it must not stay running
                    try:
                        following.fail(exc)
                    except BaseException as again:  # its own done-callback's: the run has ended all the same
                        Runner.report_internal_error(again)
        if interrupted is not None:
            raise interrupted

    def _pass_slot(self, following: Attempt) -> None:
        """On the timer thread: ``following`` takes the slot freed for it, or passes it on."""
        try:
            if self._hand_over(following):
                return
        except BaseException as exc:  # its start raised (a logging handler's Ctrl-C): it must not stay running
            if not following.settled:
                try:
                    following.fail(exc)
                except BaseException as again:  # its own done-callback's: the run has ended all the same
                    Runner.report_internal_error(again)
            Runner.report_internal_error(exc)
        self._free_slot()
