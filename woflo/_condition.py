"""`RunCondition`: the lock and condition variable of one `TaskRun`, made cheap.

Every ``concurrent.futures.Future`` builds a ``threading.Condition`` (a Python
object holding an ``RLock``, a deque and six bound methods): about 2 us and
nine garbage-collected objects per future, paid by every run although almost
no run is ever waited on with ``result()`` before it is done. A `RunCondition`
is the C ``RLock`` itself, subclassed with the two methods a Future calls on
its condition (``wait`` and ``notify_all``); the waiter list is made only
when somebody waits. ``with run._condition:`` stays a C-level lock.

That rests on two private methods of the C ``RLock``, ``_release_save`` and
``_acquire_restore`` (what ``threading.Condition`` itself calls to wait on a
lock held several times; pinned by ``tests/test_canaries.py``). Without them,
or with ``WOFLO_NO_FAST_PATHS=1`` (`woflo._fastpath`), `RunCondition` is
`PlainRunCondition`: a ``threading.Condition(threading.RLock())`` used through
its public API only.

Both keep ``_waiters`` truthy exactly while some thread may be waiting (None
or empty otherwise): `TaskRun` reads it, under the lock, to skip
``notify_all`` when nobody waits.
"""

from __future__ import annotations

import _thread
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from woflo._fastpath import ENABLED as _FAST_PATHS_ALLOWED

__all__ = ["FAST", "FastRunCondition", "PlainRunCondition", "RunCondition"]

_allocate_lock = _thread.allocate_lock


class FastRunCondition(_thread.RLock):  # type: ignore[misc]
    """A reentrant lock with ``wait``/``notify_all``, as ``threading.Condition(RLock())``.

    Example:
        >>> cond = FastRunCondition()
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


class PlainRunCondition:
    """The fallback `RunCondition`: ``threading.Condition(threading.RLock())``, public API only.

    Example:
        >>> cond = PlainRunCondition()
        >>> with cond:
        ...     cond.wait(0.01)  # nobody notifies: times out
        False
    """

    __slots__ = ("_cond", "_waiters", "acquire", "release")

    def __init__(self) -> None:
        cond = threading.Condition(threading.RLock())
        self._cond = cond
        self.acquire = cond.acquire
        self.release = cond.release
        # The idents of the threads in wait() (None: none yet); changed under the lock.
        self._waiters: list[int] | None = None

    def __enter__(self) -> bool:
        return self._cond.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        self._cond.release()

    def wait(self, timeout: float | None = None) -> bool:
        """As ``threading.Condition.wait``: call with the lock held."""
        me = threading.get_ident()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(me)
        try:
            return self._cond.wait(timeout)
        finally:
            waiters.remove(me)  # the lock is held again here

    def _is_owned(self) -> bool:
        # As RLock's and Condition's: for tests, woflo never calls it.
        return self._cond._is_owned()  # type: ignore[attr-defined,no-any-return]

    def notify_all(self) -> None:
        """Wake every thread blocked in `wait` (call with the lock held)."""
        self._cond.notify_all()


def _rlock_has_condition_hooks() -> bool:
    """Whether the C ``RLock`` has the private methods `FastRunCondition.wait` calls."""
    return all(callable(getattr(_thread.RLock, name, None)) for name in ("_release_save", "_acquire_restore"))


#: Whether `RunCondition` is the fast `FastRunCondition`.
FAST: bool = _FAST_PATHS_ALLOWED and _rlock_has_condition_hooks()

if TYPE_CHECKING:
    # For the type checker, one class: PlainRunCondition has the same
    # methods and attribute that TaskRun and the stdlib's Future code use.
    RunCondition = FastRunCondition
else:
    RunCondition = FastRunCondition if FAST else PlainRunCondition
