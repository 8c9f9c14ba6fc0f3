"""The process pool's public face: ``WorkerPool``, its arguments, its lifecycle.

``WorkerPool`` composes parts with one responsibility each (the way CPython's
``ProcessPoolExecutor`` hands its shared work items to an
``_ExecutorManagerThread``), wired together here and nowhere else:

* ``PoolState`` (``state``): the jobs, workers and flags shared under the pool lock;
* ``Dispatcher`` (``dispatch``): starts workers, plans, pickles and sends batches;
* ``Manager`` (``manager``): the manager thread: its selector, results, worker
  deaths, timers, callbacks, final cleanup; it calls the dispatcher only through
  ``dispatch`` and ``learn``;
* ``WorkerPool`` (here): argument checks, ``submit``/``kill``/``shutdown``/``pids``
  on the callers' threads, starting the manager thread, and shutting every pool
  down at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import selectors
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from woflo._process import wire
from woflo._process.dispatch import Dispatcher
from woflo._process.manager import Manager
from woflo._process.state import PENDING, SENT, TAKEN, Job, PoolState
from woflo._tasklog import levels_item

__all__ = ["WorkerPool"]

_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    for pool in list(_live_pools):
        pool.shutdown(wait=True, kill=True)


class WorkerPool:
    """A pool of worker processes that runs jobs and reports through two callbacks.

    A private mechanism: it knows nothing of futures, retries or events. Each job
    is identified by a caller-chosen, hashable ``token``, unique among live jobs.

    Args:
        max_workers: the most worker processes alive at once; started on demand.
        start_method: ``None`` or ``"exec"`` for woflo's own fork+exec of a
            fresh interpreter (`woflo._process.launch`), ``"loky"`` for
            loky's (which also starts loky's and multiprocessing's resource
            trackers), or ``"spawn"``, ``"forkserver"``, ``"fork"``.
        initializer: run with ``initargs`` in each new worker. If it raises, the
            pool is broken: every queued job fails with `BrokenProcessRunner`
            whose ``__cause__`` is the initializer's exception, and so does
            every later ``submit`` (it raises). Three workers in a row that die
            (or time out) while starting break the pool the same way.
        max_tasks_per_child: a worker exits after this many jobs; a new one
            replaces it when there is work.
        idle_timeout: retire a worker idle this many seconds (None: keep it).
        start_timeout: kill a worker not ready (initializer done) this many
            seconds after its start, and count it as a failed start (None: wait).
        on_start: ``(token, pid)``, the pool's estimate that the job began.
        on_done: ``(token, ok, value_or_exception, pid)``; pid is None when the
            job never reached a worker.
        on_sent: ``(tokens) -> refused``, called on the manager thread with a
            batch of jobs just before they are pickled and handed to a worker;
            it returns the indexes of the jobs to drop, with no other callback
            (their owner cancelled them). The others count as running for their
            owner from then on (the stdlib moves a future to RUNNING when it
            enters the call queue).

    Callbacks run on the manager thread, never under a pool lock; they may call
    ``submit`` and ``kill``. They must be quick: they delay every other job.
    One exception: a job that ``submit`` sent straight to an idle worker has
    its ``on_start`` called by the submitting thread, inside ``submit``, and
    whatever else arrives for that job meanwhile is called by that thread
    after it. A job's callbacks never overlap, and ``on_start`` comes first.
    """

    def __init__(
        self,
        max_workers: int,
        *,
        start_method: str | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
        idle_timeout: float | None = None,
        start_timeout: float | None = None,
        on_start: Callable[[object, int], None],
        on_done: Callable[[object, bool, Any, int | None], None],
        on_sent: Callable[[list[object]], list[int]] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be greater than 0")
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError("max_tasks_per_child must be >= 1")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be > 0")
        if start_timeout is not None and not start_timeout > 0:
            raise ValueError("start_timeout must be > 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        ctx: Any = None  # "exec": woflo's launcher, no multiprocessing context
        if start_method == "fork":
            import multiprocessing  # loky's get_context warns on "fork": the caller chose it

            ctx = multiprocessing.get_context("fork")
        elif start_method not in (None, "exec"):
            from loky.backend.context import get_context

            ctx = get_context(start_method)
        init = wire.dumps_task((initializer, initargs)) if initializer is not None else None
        self._has_init = init is not None
        self._state = state = PoolState()
        sel = selectors.DefaultSelector()
        self._dispatcher = dispatcher = Dispatcher(
            state,
            sel,
            ctx=ctx,
            fork=start_method == "fork",
            init=init,
            max_workers=max_workers,
            max_tasks=max_tasks_per_child,
            on_sent=on_sent,
        )
        self._manager = Manager(
            state,
            sel,
            dispatch=dispatcher.dispatch,
            learn=dispatcher.learn,
            idle_timeout=idle_timeout,
            start_timeout=start_timeout,
            on_start=on_start,
            on_done=on_done,
        )
        self._pid = os.getpid()  # a "fork" worker inherits a copy of this pool: not its own
        self._on_sent = on_sent
        self._on_start = on_start
        self._thread = threading.Thread(target=self._run, name="woflo-pool-manager", daemon=True)
        self._thread.start()
        self._manager_ident = self._thread.ident
        _live_pools.add(self)

    def submit(self, token: object, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Queue ``fn(*args, **kwargs)`` under ``token``; thread-safe, never blocks on workers.

        Raises:
            RuntimeError: after ``shutdown``.
            BrokenProcessRunner: the pool gave up starting workers (a fresh
                error each call).
            ValueError: ``token`` already names a live job.
        """
        job = Job(token, fn, args, kwargs)
        st = self._state
        with st.lock:
            if st.shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            broken = st.broken
            if broken is None:
                if token in st.table:
                    raise ValueError(f"token {token!r} is already in use")
                st.table[token] = job
                if (
                    st.pending
                    or st.taken
                    or threading.get_ident() == self._manager_ident
                    or not any(w.idle() for w in st.workers)
                ):
                    st.pending.append(job)
                    st.new = True
                    st.wake()
                    return
                # A worker is idle and nothing is queued: this thread sends the
                # job itself, sparing the round trip through the manager thread.
                job.state = TAKEN
                st.taken.add(job)
        if broken is not None:
            raise broken()  # made outside the lock: it unpickles the initializer's exception
        self._send_direct(job)

    def _send_direct(self, job: Job) -> None:
        """Send ``job`` (TAKEN) to an idle worker from the submitting thread, or queue it.

        What the manager's dispatch does for a batch, for one job: ``on_sent``,
        pickling (both user code, outside the lock), then, under the lock,
        one write of the whole frame (at most PIPE_BUF bytes: written whole
        or not at all) to a worker that is still idle while no batch of the
        manager's is being pickled (so job ids reach each worker in
        increasing order). Otherwise, or if the write fails, the job goes to
        the front of the queue, pickled already. A job sent here has its
        ``on_start`` fired by this thread (`_announce_start`), and what the
        manager gets for it meanwhile is fired after it, in order.
        """
        st = self._state
        on_sent = self._on_sent
        if on_sent is not None and on_sent([job.token]):
            with st.lock:  # refused: its owner cancelled it
                st.taken.discard(job)
                if st.claim(job):
                    job.killed = True
                st.wake()  # a manager shutting down may be waiting for this taken job (below)
            return
        dispatcher = self._dispatcher
        dispatcher.prepickle(job)
        # Taken outside the lock (it may build a structlog logger). Frames
        # reach a worker in the order of their snapshots unless a level
        # changes in between, then the next frame carries the change.
        levels = levels_item()
        with st.lock:
            st.taken.discard(job)
            if job.killed:  # by kill() or shutdown() meanwhile: nothing to report
                # The manager of a pool shut down meanwhile waits for taken
                # jobs before it exits (``_finished``): it must look again,
                # or it would sleep for ever.
                st.wake()
                return
            sent = False
            w = None
            if not st.taken and st.broken is None:
                w = next((w for w in st.workers if w.idle()), None)
            frame = None if w is None else dispatcher.frame_one(job, levels)
            if frame is not None:
                assert w is not None
                try:
                    sent = os.write(w.in_w, frame) == len(frame)  # <= PIPE_BUF: all or nothing
                except OSError:  # full (cannot be: the worker read all it was sent) or the worker is gone
                    sent = False
            if not sent:
                job.state = PENDING
                st.pending.appendleft(job)  # it was first in line: nothing was queued when it came
                st.new = True
                st.wake()
                return
            assert w is not None
            job.state = SENT
            job.worker = w
            w.inflight.append(job)
            if w.budget is not None:
                w.budget -= 1
            # It starts now (the worker was idle), and this thread says so:
            # waking the manager only to fire on_start cost a thread switch
            # per job. The manager holds back the job's other notices until
            # on_start has returned (PoolState.announcing).
            job.started = True
            job.t_start = time.monotonic()
            st.announcing[job.token] = []
            pid = w.pid
        self._announce_start(job, pid)

    def _announce_start(self, job: Job, pid: int) -> None:
        # on_start for a job this thread sent, then whatever the manager held
        # back for it meanwhile (its result, its log records), in order; the
        # manager fires the job's notices itself once it is out of announcing.
        st = self._state
        try:
            if not job.killed:
                self._on_start(job.token, pid)
        finally:
            interrupted: BaseException | None = None
            while True:
                with st.lock:
                    held = st.announcing[job.token]
                    if not held:
                        del st.announcing[job.token]
                        break
                    st.announcing[job.token] = []
                try:
                    self._manager.fire(held, caller=True)
                except BaseException as exc:  # a Ctrl-C: the held notices are all fired first
                    if interrupted is None:
                        interrupted = exc
            if interrupted is not None:
                raise interrupted

    def kill(self, token: object) -> bool:
        """Drop a queued job or SIGKILL the worker running it (and its process group).

        Returns True if the token named a live job: then ``on_done`` will never be
        called for it, and neither will ``on_start`` unless it was already being
        delivered on the manager thread at that moment. A job prefetched by a
        worker but not started is cancelled there without killing the worker.
        """
        with self._state.lock:
            job = self._state.table.pop(token, None)
            if job is None:
                return False
            job.killed = True
            if job.state != SENT:
                return True  # still in the queue, or being pickled: never sent
            w = job.worker
            assert w is not None
            if w.ready and w.inflight and w.inflight[0] is job:
                w.kill_group()
            elif not w.cancel(job.jid):
                w.kill_group()  # control pipe full: cannot happen in practice
            return True

    def shutdown(self, wait: bool = True, *, kill: bool = False, drain: bool = False) -> list[object]:
        """Stop the pool; idempotent. Returns the tokens of the jobs it dropped.

        Jobs still queued in the pool (never handed to a worker) are dropped and
        returned, with no callback; the caller decides what they become. With
        ``drain=True`` they run instead and nothing is dropped. Jobs already
        handed to a worker run to the end and report through ``on_done``, unless
        ``kill=True``: then their workers are SIGKILLed and no callback fires for
        them. Workers exit once idle; ``wait`` joins the manager thread after
        every worker is reaped and every fd closed.
        """
        dropped: list[object] = []
        st = self._state
        with st.lock:
            if not st.shutdown:
                st.shutdown = True
                st.drain = drain
                if not drain:
                    for job in [*st.taken, *st.pending]:
                        if st.claim(job):
                            job.killed = True
                            dropped.append(job.token)
                    st.pending.clear()
            if kill:
                for w in st.workers:
                    if w.inflight:
                        for job in w.inflight:
                            if not job.killed:
                                job.killed = True
                                st.table.pop(job.token, None)
                        w.kill_group()
            st.new = True
            st.wakeup.poke()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()
        return dropped

    def on_manager_thread(self) -> bool:
        """Whether the caller is the pool's manager thread (where callbacks run)."""
        return threading.current_thread() is self._thread

    @property
    def broken(self) -> Callable[[], BaseException] | None:
        """``None``, or once the pool gave up starting workers, what makes its error."""
        return self._state.broken

    @property
    def starting(self) -> bool:
        """No worker is ready: a job queued now waits for a worker to start.

        Read without the lock: a hint, exact only on the manager thread.
        """
        return self._state.ready <= 0

    def waiting_since(self) -> float | None:
        """When the wait for a worker began, as far as the initializer is to blame.

        ``None`` while a worker is ready (a queued job waits for busy workers,
        not for a start) or while no starting worker has begun its initializer
        yet (the interpreter is starting); otherwise the earliest
        ``time.monotonic()`` at which a starting worker began its initializer.
        """
        st = self._state
        with st.lock:
            if st.ready > 0:
                return None
            starts = [w.init_since for w in st.workers if not w.dead and w.init_since is not None]
            return min(starts) if starts else None

    @property
    def has_initializer(self) -> bool:
        """Whether new workers run an initializer before taking jobs."""
        return self._has_init

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._state.lock:
            return [w.pid for w in self._state.workers if not w.dead]

    def _run(self) -> None:
        # The manager thread's target.
        try:
            self._manager.run()
        finally:  # its last act: after it, atexit has nothing to wait for
            _live_pools.discard(self)
