"""What the callers' threads and the pool's manager thread share: jobs, queue, workers, flags.

Everything here is read and written under ``PoolState._lock``, except what only
the manager thread touches (marked below). The manager never holds the lock
while it pickles, unpickles, starts a process or runs a callback: user code
never runs under it, and ``submit`` never waits for a pickle.

A job moves PENDING (queued) -> TAKEN (popped, being pickled outside the lock)
-> SENT (in a worker's FIFO). A worker that dies puts its never-started jobs
back to PENDING, at the front of the queue.
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import threading
from collections.abc import Callable
from typing import Any

from woflo._process.handle import Worker

__all__ = ["PENDING", "SENT", "TAKEN", "Job", "PoolState"]

PENDING, TAKEN, SENT = 0, 1, 2


class Job:
    """One submitted call and where it is on its way to a worker."""

    __slots__ = ("args", "fn", "jid", "killed", "kwargs", "started", "state", "t_start", "token", "worker")

    def __init__(self, token: object, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.token = token
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.jid = 0
        self.state = PENDING
        self.killed = False
        self.started = False
        self.t_start = 0.0
        self.worker: Worker | None = None


class PoolState:
    """The pool's configuration and shared state; dispatch and manager add behaviour, not state."""

    def __init__(
        self,
        *,
        ctx: Any,
        fork: bool,
        init: bytes | None,
        max_workers: int,
        max_tasks: int | None,
        idle_timeout: float | None,
        start_timeout: float | None,
        on_start: Callable[[object, int], None],
        on_done: Callable[[object, bool, Any, int | None], None],
        on_sent: Callable[[list[object]], list[int]] | None = None,
    ) -> None:
        self._ctx = ctx
        self._fork = fork
        self._init = init  # cloudpickled (initializer, initargs), or None
        self._max_workers = max_workers
        self._max_tasks = max_tasks
        self._idle_timeout = idle_timeout
        self._start_timeout = start_timeout  # a worker not ready by then is killed: a failed start
        self._on_start = on_start
        self._on_done = on_done
        self._on_sent = on_sent

        self._lock = threading.Lock()
        self._pending: collections.deque[Job] = collections.deque()
        self._taken: set[Job] = set()  # popped from pending, being pickled
        self._table: dict[object, Job] = {}  # live jobs by token: popped once, by whoever ends the job
        self._workers: list[Worker] = []
        self._shutdown = False
        self._drain = False
        # Set once the pool gives up starting workers: makes the error every
        # later job fails with, a fresh one each time (one exception object
        # raised in many threads grows one shared traceback: CPython gh-101267).
        self._broken: Callable[[], BaseException] | None = None
        self._ready = 0  # live workers whose initializer finished; read without the lock as a hint
        self._awake = False  # the manager will look at the queue without a poke
        self._new = False  # submissions since the manager last looked
        # Manager thread only.
        self._next_jid = 1
        self._startup_failures = 0
        # One job per worker until a job has finished: a job of unknown length
        # must not be queued behind another while a worker sits idle.
        self._prefetch = 1
        self._avg = 0.0
        self._fn_cache: tuple[object, bytes] = (None, b"")
        # Result pipes are read into this one buffer, reused: a fresh 1 MB
        # bytes per read would cost a page fault per 4 KiB each time. Made on
        # first use, so a pool of idle workers does not hold it.
        self._scratch: memoryview | None = None

        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)

    def _poke(self) -> None:
        # Called under the lock, so the manager cannot close the pipe meanwhile.
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):  # full: the manager is awake anyway
                os.write(self._wake_w, b"x")
