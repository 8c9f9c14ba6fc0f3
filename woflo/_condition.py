"""`RunCondition`: the lock and condition variable of one `TaskRun`, made cheap.

Every ``concurrent.futures.Future`` builds a ``threading.Condition`` (a Python
object holding an ``RLock``, a deque and six bound methods): about 2 us and
nine garbage-collected objects per future, paid by every run although almost
no run is ever waited on with ``result()`` before it is done. A `RunCondition`
is the C ``RLock`` itself, subclassed with the two methods a Future calls on
its condition (``wait`` and ``notify_all``); the waiter list is made only
when somebody waits. ``with run._condition:`` stays a C-level lock.
"""

from __future__ import annotations

import _thread
import contextlib
from collections.abc import Callable

__all__ = ["RunCondition"]

_allocate_lock = _thread.allocate_lock


class RunCondition(_thread.RLock):  # type: ignore[misc]
    """A reentrant lock with ``wait``/``notify_all``, as ``threading.Condition(RLock())``.

    Example:
        >>> cond = RunCondition()
        >>> with cond:
        ...     cond.wait(0.01)  # nobody notifies: times out
        False
    """

    __slots__ = ("_waiters",)

    _waiters: list[_thread.LockType] | None
    # The C RLock's own hooks for Condition.wait (typeshed does not list them).
    _release_save: Callable[[], tuple[int, int]]
    _acquire_restore: Callable[[tuple[int, int]], None]

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, block until notified or ``timeout`` passes, take it back.

        Must be called with the lock held, as ``threading.Condition.wait``.
        """
        waiter = _allocate_lock()
        waiter.acquire()
        waiters: list[_thread.LockType] | None = getattr(self, "_waiters", None)
        if not waiters:
            waiters = self._waiters = []
        waiters.append(waiter)
        saved = self._release_save()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            elif timeout > 0:
                notified = waiter.acquire(True, timeout)
            else:
                notified = waiter.acquire(False)
            return notified
        finally:
            self._acquire_restore(saved)
            if not notified:
                # Timed out: notify_all may have run meanwhile and removed it.
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)

    def notify_all(self) -> None:
        """Wake every thread blocked in `wait` (call with the lock held)."""
        waiters: list[_thread.LockType] | None = getattr(self, "_waiters", None)
        if waiters:
            for waiter in waiters:
                waiter.release()
            waiters.clear()
