"""What the parts of the pool share: the job record, the wake-up pipe, and the state under the pool lock.

The pool is made of parts with one responsibility each, composed by
``WorkerPool`` (``pool``), as CPython's ``ProcessPoolExecutor`` shares its work
items between the executor and its ``_ExecutorManagerThread``:

* ``PoolState`` (here): plain shared data, no policy;
* ``Dispatcher`` (``dispatch``): how queued jobs reach workers;
* ``Manager`` (``manager``): the manager thread: events, results, deaths, timers;
* ``WorkerPool`` (``pool``): the callers' side: ``submit``, ``kill``, ``shutdown``.

Every field of ``PoolState`` is read and written under ``PoolState.lock``
unless its comment says otherwise. The manager never holds the lock while it
pickles, unpickles, starts a process or runs a callback: user code never runs
under it, and ``submit`` never waits for a pickle.

A job moves PENDING (queued) -> TAKEN (popped, being pickled outside the lock)
-> SENT (in a worker's FIFO). A worker that dies puts its never-started jobs
back to PENDING, at the front of the queue. Whoever ends a live job pops it
from ``PoolState.table`` first (``claim``): a job is ended once.

The manager thread collects what a loop turn decided as notices, fired as
callbacks at the end of the turn, outside the lock: ``("s", job, pid)`` (the
job started, by the pool's estimate) and ``("d", token, ok, value, pid)`` (it
ended; ``pid`` is None if it never reached a worker). One exception: a job
that a submitting thread sent straight to an idle worker has its start fired
by that thread (``announcing``), which then fires what the manager held back
for it meanwhile.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from woflo._process.handle import Worker

__all__ = ["PENDING", "SENT", "TAKEN", "Job", "Notice", "PoolState", "Wakeup", "mark_started", "start_head"]

PENDING, TAKEN, SENT = 0, 1, 2

Notice = tuple[
    Any, ...
]  # ("s", job, pid), ("d", token, ok, value, pid) or ("l", token, payload, pid): a forwarded log record


class Job:
    """One submitted call and where it is on its way to a worker."""

    __slots__ = ("args", "call", "fn", "jid", "killed", "kwargs", "started", "state", "t_start", "token", "worker")

    def __init__(self, token: object, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.token = token
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.jid = 0  # set when pickled for a worker
        self.state = PENDING
        self.killed = False  # ended by kill() or shutdown(): never reported
        self.started = False  # its "s" notice is out
        self.t_start = 0.0
        self.worker: Worker | None = None  # the worker whose FIFO holds it (SENT)
        # Pickled by the submitting thread (see WorkerPool.submit's direct
        # path): (fn_bytes, shared, arg_parts), or why it cannot be pickled.
        # The dispatcher uses it rather than pickling the call again.
        self.call: tuple[bytes, bool, list[Any]] | BaseException | None = None


class Wakeup:
    """The pipe that wakes the manager thread from its ``select``.

    ``poke`` is called by any thread under the pool lock; ``drain`` and
    ``close`` by the manager thread (``close`` under the lock, so that no
    ``poke`` writes to a closed, possibly reused, fd).
    """

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)

    def poke(self) -> None:
        """Make the manager's next (or current) ``select`` return."""
        if self.w >= 0:
            with contextlib.suppress(OSError):  # full: the manager is awake anyway
                os.write(self.w, b"x")

    def drain(self) -> None:
        """Empty the pipe (manager thread), so the next ``select`` can sleep."""
        # Usually one byte (``submit`` pokes only a sleeping manager): one read,
        # not a second one that ends in BlockingIOError (this is on every job's path).
        with contextlib.suppress(BlockingIOError):
            while len(os.read(self.r, 4096)) == 4096:
                pass

    def close(self) -> None:
        """Close both ends; later pokes do nothing. Call under the pool lock."""
        os.close(self.r)
        os.close(self.w)
        self.w = -1


class PoolState:
    """The jobs, workers and flags shared by the callers' threads and the manager thread.

    Data only, and the one rule every part follows to end a job (``claim``).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: collections.deque[Job] = collections.deque()  # queued, in order
        self.taken: set[Job] = set()  # popped from pending, being pickled
        self.table: dict[object, Job] = {}  # live jobs by token: popped once, by whoever ends the job
        self.workers: list[Worker] = []  # live workers, not yet reaped
        self.shutdown = False
        self.drain = False  # shutdown(drain=True): queued jobs still run
        # Set once the pool gives up starting workers: makes the error every
        # later job fails with, a fresh one each time (one exception object
        # raised in many threads grows one shared traceback: CPython gh-101267).
        self.broken: Callable[[], BaseException] | None = None
        self.ready = 0  # live workers whose initializer finished; read without the lock as a hint
        self.awake = False  # the manager will look at the queue without a poke
        self.new = False  # the queue changed since the manager last looked
        # Jobs (by token) that a submitting thread sent straight to an idle
        # worker and whose on_start it is firing itself (see WorkerPool.submit).
        # The manager holds back their later notices in the list, and that
        # thread fires them once its on_start returned: the callbacks of one
        # job never overlap, and come in order.
        self.announcing: dict[object, list[Notice]] = {}
        self.wakeup = Wakeup()

    def wake(self) -> None:
        """Make the manager look at the pool again. Call under ``lock``.

        Pokes only a manager that is not awake already, so a burst of
        submissions costs one write.
        """
        if not self.awake:
            self.awake = True
            self.wakeup.poke()

    def claim(self, job: Job) -> bool:
        """Whether the caller ends ``job``: it was live, and is now out of the table. Hold the lock."""
        return not job.killed and self.table.pop(job.token, None) is job


def mark_started(job: Job, w: Worker, out: list[Notice], now: float) -> None:
    """Note that ``job`` began on ``w`` at ``now``. Hold the lock."""
    job.started = True
    job.t_start = now
    out.append(("s", job, w.pid))


def start_head(w: Worker, out: list[Notice], now: float) -> None:
    """Note that the head of ``w``'s FIFO began, if it just did. Hold the lock.

    A worker runs its FIFO in order, so the head starts when the previous result
    arrives or when a job reaches an idle, ready worker. Not on a doomed worker:
    its jobs go back to the queue when it dies.
    """
    if w.ready and w.inflight and not w.inflight[0].started and not w.doomed:
        mark_started(w.inflight[0], w, out, now)
