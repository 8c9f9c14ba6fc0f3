"""`Scheduler`: one thread that fires an executor's timers.

Retry waits, per-attempt timeouts and run deadlines are all timers. A runner
owns one scheduler, so a thousand runs waiting to retry cost a thousand heap
entries, not a thousand threads or `threading.Timer` objects. The thread starts
on the first timer and is joined by `close`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Cancellable", "Scheduler", "Timer"]


class Cancellable(Protocol):
    """A scheduled call's handle, as `woflo.Runner.call_later` returns it."""

    def cancel(self) -> None:
        """Keep the call from happening (no effect if it already ran)."""


_NEVER = float("inf")
# The longest wait a lock accepts, with room for the float arithmetic above.
_TIMEOUT_MAX = threading.TIMEOUT_MAX / 2


def _nothing() -> None:
    """What a cancelled timer calls, if it fires anyway."""


_NEVER_BEFORE = float("-inf")


class Timer:
    """A handle on one scheduled call; `cancel` keeps it from firing."""

    __slots__ = ("cancelled", "fn", "seq", "when")

    def __init__(self, when: float, seq: int, fn: Callable[[], object]) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        """Keep the call from happening (no effect if it already ran)."""
        self.cancelled = True
        # Drop the callback: it usually closes over the attempt that holds
        # this timer, a reference cycle only the garbage collector could free
        # while the timer waits in the heap (that doubled the cost of every
        # attempt with a timeout).
        self.fn = _nothing


class Scheduler:
    """Calls functions at given times, from one thread.

    Callbacks must be short: they run one after another on the scheduler's
    thread. An exception in one is reported by ``on_error`` and does not stop
    the others.
    """

    def __init__(self, name: str, on_error: Callable[[BaseException], None]) -> None:
        self._name = name
        self._on_error = on_error
        # (when, seq, timer) tuples: compared in C, unlike Timer objects, which
        # matters when every attempt of a run with a timeout pushes one.
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._compact_at = 1024
        # When the thread will wake up on its own (it sleeps until then): a
        # new timer due later needs no wake-up. Notifying for every timer
        # that lands on an empty heap made the thread wake, find that
        # attempt already done (its timer cancelled), empty the heap again
        # and sleep: one context switch for every fifth no-op task.
        self._wake_at = _NEVER

    def call_later(self, delay: float, fn: Callable[[], object]) -> Timer:
        """Call ``fn()`` after ``delay`` seconds; return a handle to cancel it."""
        seq = next(self._seq)
        when = time.monotonic() + delay
        timer = Timer(when, seq, fn)
        lock = self._lock
        lock.acquire()  # the Condition's lock itself: `with self._cond` is a Python call
        try:
            if self._closed:
                raise RuntimeError("scheduler is closed")
            if self._thread is None:
                thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                thread.start()  # kept only once started: close() joins it
                self._thread = thread
            heap = self._heap
            heapq.heappush(heap, (when, seq, timer))
            if len(heap) >= self._compact_at:
                self._compact()
            # Only a deadline earlier than the one slept until needs a wake-up.
            if when < self._wake_at:
                self._cond.notify()
        finally:
            lock.release()
        return timer

    def close(self, wait: bool = True) -> None:
        """Drop the timers not yet due and stop the thread."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        heap = self._heap
        # The latest deadline among the cancelled timers dropped: with an
        # empty heap the thread still sleeps until then (see _wake_at).
        horizon = _NEVER_BEFORE
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    while heap and heap[0][2].cancelled:
                        horizon = max(horizon, heapq.heappop(heap)[0])
                    now = time.monotonic()
                    if heap:
                        when = heap[0][0]
                        if when <= now:
                            fn = heapq.heappop(heap)[2].fn  # read under the lock: cancel() replaces it
                            break
                    elif horizon > now:
                        when = horizon
                    else:
                        self._wake_at = _NEVER
                        self._cond.wait()
                        continue
                    self._wake_at = when
                    # Lock.acquire(timeout=) refuses more than TIMEOUT_MAX
                    # (OverflowError, which would end this thread and every
                    # later timer): a timer further off is slept to in steps.
                    self._cond.wait(min(when - now, _TIMEOUT_MAX))
                self._wake_at = _NEVER_BEFORE  # awake: it looks at the heap again before sleeping
            try:
                fn()
            except BaseException as exc:
                self._on_error(exc)
            # Not kept while this thread sleeps until the next timer: it may
            # hold a run (a retry's relaunch, a slot passed on) and its result.
            del fn

    def _compact(self) -> None:
        # Cancelled timeouts of finished attempts pile up behind long timeouts:
        # drop them whenever the heap doubles. Called with the lock held.
        live = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(live)
        self._heap[:] = live
        self._compact_at = max(1024, 2 * len(live))
