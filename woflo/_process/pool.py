"""The parent side of the process pool: one manager thread drives every worker.

The manager thread owns the worker pipes. It waits, in one persistent epoll
selector, on each worker's result pipe, each worker's process sentinel, each
inbox it still has bytes to write to, and a wake-up pipe that ``submit`` pokes
(only when the manager is not already awake, so a burst costs one poke). All
parent-side fds are non-blocking: the manager never blocks on one worker, and a
100 MB result is read piecewise while other workers keep being served.

Throughput comes from batching the parent-to-worker direction: a worker is sent
up to ``prefetch`` jobs in one frame, and ``prefetch`` adapts to the observed job
duration (about 2 ms of queued work per worker, between 1 and 64 jobs), so short
jobs travel in bulk while long jobs are not stuck behind each other. Results come
back one frame per job, as each ends (see ``wire``); the manager reads whatever
has accumulated in one go, so a busy parent still handles them in bulk.

Start estimation: a worker's dispatched jobs form a FIFO and it runs them in
order, so the head started when the previous result arrived (or when the job
reached an idle, ready worker). ``on_start`` fires then; never after ``on_done``.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import math
import os
import pickle
import selectors
import signal
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle
from loky.backend.context import get_context

from woflo._errors import SerializationError, WorkerCrashed
from woflo._process import wire
from woflo._process.handle import Worker, start_worker

__all__ = ["WorkerPool"]

_log = logging.getLogger("woflo")

_PENDING, _TAKEN, _SENT = 0, 1, 2
_TARGET_QUEUED_S = 0.002  # queued work per worker that prefetch aims for
_MAX_PREFETCH = 64
_MAX_STARTUP_FAILURES = 3
_BIG = 1 << 20  # results larger than this are read straight into their own buffer

_BY_REFERENCE = (types.FunctionType, types.BuiltinFunctionType, type)
_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    for pool in list(_live_pools):
        pool.shutdown(wait=True, kill=True)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown: reaped elsewhere"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class _Job:
    __slots__ = ("args", "fn", "jid", "killed", "kwargs", "started", "state", "t_start", "token", "worker")

    def __init__(self, token: object, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.token = token
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.jid = 0
        self.state = _PENDING
        self.killed = False
        self.started = False
        self.t_start = 0.0
        self.worker: Worker | None = None


class WorkerPool:
    """A pool of worker processes that runs jobs and reports through two callbacks.

    A private mechanism: it knows nothing of futures, retries or events. Each job
    is identified by a caller-chosen, hashable ``token``, unique among live jobs.

    Args:
        max_workers: the most worker processes alive at once; started on demand.
        start_method: ``None`` for loky's ``"loky"`` (fork+exec), or ``"spawn"``,
            ``"forkserver"``, ``"fork"``.
        initializer: run with ``initargs`` in each new worker. If it raises, the
            pool is broken: every queued and later job fails with WorkerCrashed
            whose ``__cause__`` is the initializer's exception.
        max_tasks_per_child: a worker exits after this many jobs; a new one
            replaces it when there is work.
        idle_timeout: retire a worker idle this many seconds (None: keep it).
        on_start: ``(token, pid)``, the pool's estimate that the job began.
        on_done: ``(token, ok, value_or_exception, pid)``; pid is None when the
            job never reached a worker.

    Callbacks run on the manager thread, never under a pool lock; they may call
    ``submit`` and ``kill``. They must be quick: they delay every other job.
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
        on_start: Callable[[object, int], None],
        on_done: Callable[[object, bool, Any, int | None], None],
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be greater than 0")
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError("max_tasks_per_child must be >= 1")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be > 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if start_method == "fork":
            import multiprocessing  # loky's get_context warns on "fork": the caller chose it

            self._ctx: Any = multiprocessing.get_context("fork")
        else:
            self._ctx = get_context(start_method or "loky")
        self._fork = start_method == "fork"
        self._init = cloudpickle.dumps((initializer, initargs)) if initializer is not None else None
        self._max_workers = max_workers
        self._max_tasks = max_tasks_per_child
        self._idle_timeout = idle_timeout
        self._on_start = on_start
        self._on_done = on_done

        self._lock = threading.Lock()
        self._pending: collections.deque[_Job] = collections.deque()
        self._taken: set[_Job] = set()  # popped from pending, being pickled
        self._table: dict[object, _Job] = {}
        self._workers: list[Worker] = []
        self._next_jid = 1
        self._shutdown = False
        self._drain = False
        self._broken: BaseException | None = None
        self._startup_failures = 0
        # One job per worker until a job has finished: a job of unknown length
        # must not be queued behind another while a worker sits idle.
        self._prefetch = 1
        self._avg = 0.0
        self._fn_cache: tuple[object, bytes] = (None, b"")
        self._awake = False  # the manager will look at the queue without a poke
        self._new = False  # submissions since the manager last looked

        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="woflo-pool-manager", daemon=True)
        self._thread.start()
        _live_pools.add(self)

    # ------------------------------------------------------------------ public
    def submit(self, token: object, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Queue ``fn(*args, **kwargs)`` under ``token``; thread-safe, never blocks on workers.

        Raises:
            RuntimeError: after ``shutdown``.
            ValueError: ``token`` already names a live job.
        """
        job = _Job(token, fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if token in self._table:
                raise ValueError(f"token {token!r} is already in use")
            self._table[token] = job
            self._pending.append(job)
            self._new = True
            if not self._awake:
                self._awake = True
                self._poke()

    def kill(self, token: object) -> bool:
        """Drop a queued job or SIGKILL the worker running it (and its process group).

        Returns True if the token named a live job: then ``on_done`` will never be
        called for it, and neither will ``on_start`` unless it was already being
        delivered on the manager thread at that moment. A job prefetched by a
        worker but not started is cancelled there without killing the worker.
        """
        with self._lock:
            job = self._table.pop(token, None)
            if job is None:
                return False
            job.killed = True
            if job.state != _SENT:
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
        with self._lock:
            if not self._shutdown:
                self._shutdown = True
                self._drain = drain
                if not drain:
                    for job in [*self._taken, *self._pending]:
                        if not job.killed and self._table.pop(job.token, None) is job:
                            job.killed = True
                            dropped.append(job.token)
                    self._pending.clear()
            if kill:
                for w in self._workers:
                    if w.inflight:
                        for job in w.inflight:
                            if not job.killed:
                                job.killed = True
                                self._table.pop(job.token, None)
                        w.kill_group()
            self._new = True
            self._poke()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()
        return dropped

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.pid for w in self._workers if not w.dead]

    # ---------------------------------------------------------- manager thread
    def _poke(self) -> None:
        # Called under the lock, so the manager cannot close the pipe meanwhile.
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):  # full: the manager is awake anyway
                os.write(self._wake_w, b"x")

    def _run(self) -> None:
        try:
            while True:
                timeout = self._idle_deadline()
                with self._lock:
                    self._awake = False
                    if self._new:
                        self._new = False
                        timeout = 0.0
                out: list[tuple[Any, ...]] = []
                for key, _ in self._sel.select(timeout):
                    w = key.data
                    if w is None:
                        self._drain_wake()
                    elif w.dead:
                        continue  # an earlier event of this round reaped it
                    elif key.fd == w.sentinel:
                        self._on_death(w, out)
                    elif key.fd == w.out_r:
                        self._handle(w, w.read_frames(_BIG, self._sel), out)
                    else:
                        w.flush(self._sel)
                self._dispatch(out)
                self._fire(out)
                if self._finished():
                    break
        except BaseException:
            _log.exception("woflo: the process pool manager failed")
            raise
        finally:
            self._close()

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _idle_deadline(self) -> float | None:
        if self._idle_timeout is None:
            return None
        now = time.monotonic()
        deadline = None
        with self._lock:
            for w in self._workers:
                if w.ready and not w.inflight and not w.stopping:
                    left = w.idle_since + self._idle_timeout - now
                    if left <= 0:
                        w.stop(self._sel)
                    else:
                        deadline = left if deadline is None else min(deadline, left)
        return deadline

    def _finished(self) -> bool:
        with self._lock:
            if not self._shutdown or self._pending or self._taken:
                return False
            for w in self._workers:
                if not w.inflight:
                    w.stop(self._sel)
            return not self._workers

    def _fire(self, out: list[tuple[Any, ...]]) -> None:
        for item in out:
            try:
                if item[0] == "s":
                    job = item[1]
                    if not job.killed:
                        self._on_start(job.token, item[2])
                else:
                    self._on_done(item[1], item[2], item[3], item[4])
            except Exception:
                _log.exception("woflo: a process pool callback raised")

    def _mark_started(self, job: _Job, w: Worker, out: list[tuple[Any, ...]], now: float) -> None:
        # Caller holds the lock.
        job.started = True
        job.t_start = now
        out.append(("s", job, w.pid))

    def _start_head(self, w: Worker, out: list[tuple[Any, ...]], now: float) -> None:
        # Caller holds the lock. The head of a ready worker's FIFO is running now.
        if w.ready and w.inflight and not w.inflight[0].started:
            self._mark_started(w.inflight[0], w, out, now)

    # ------------------------------------------------------------- results
    def _handle(self, w: Worker, frames: list[tuple[int, int, Any]], out: list[tuple[Any, ...]]) -> None:
        if not frames:
            return
        now = time.monotonic()
        finished: list[tuple[_Job | None, int, Any]] = []
        with self._lock:
            for kind, _jid, payload in frames:
                if kind == wire.KIND_READY:
                    w.ready = True
                    w.idle_since = now
                    self._startup_failures = 0
                elif kind == wire.KIND_INIT_FAILED:
                    finished.append((None, kind, payload))
                else:
                    head: _Job = w.inflight.popleft()
                    if not w.inflight:
                        w.idle_since = now
                    if not head.killed and self._table.pop(head.token, None) is head:
                        if not head.started:
                            self._mark_started(head, w, out, now)
                        self._learn(now - head.t_start)
                        finished.append((head, kind, payload))
                self._start_head(w, out, now)
        # Unpickling runs user code (__setstate__): never under the lock.
        for job, kind, payload in finished:
            if job is None:
                exc = wire.loads_exception(payload, "the initializer")
                err = WorkerCrashed(f"the worker initializer failed: {exc!r}", worker=w.pid)
                err.__cause__ = exc
                with self._lock:
                    self._broken = self._broken or err
                continue
            ok = kind == wire.KIND_OK
            if ok:
                try:
                    value: Any = pickle.loads(payload)
                except Exception as err:
                    ok = False
                    value = SerializationError(f"cannot unpickle the result of {wire.describe(job.fn)}: {err!r}")
                    value.__cause__ = err
            else:
                value = wire.loads_exception(payload, wire.describe(job.fn))
            out.append(("d", job.token, ok, value, w.pid))

    def _learn(self, duration: float) -> None:
        # Moving average of job durations sets how many jobs a worker may queue.
        self._avg = duration if not self._avg else 0.8 * self._avg + 0.2 * duration
        want = _TARGET_QUEUED_S / self._avg if self._avg > 0 else _MAX_PREFETCH
        self._prefetch = max(1, min(_MAX_PREFETCH, int(want)))

    def _on_death(self, w: Worker, out: list[tuple[Any, ...]]) -> None:
        self._handle(w, w.read_frames(_BIG, self._sel, drain=True), out)  # written before it died
        with self._lock:  # reap under the lock: kill() must never signal a reaped pid
            exitcode = w.reap(self._sel)
            w.dead = True
            self._workers.remove(w)
            jobs: list[_Job] = [job for job in w.inflight if not job.killed]
            head: _Job | None = w.inflight[0] if w.inflight else None
            w.inflight.clear()
            if w.ready and head is not None and not head.killed:
                jobs.pop(0)
                if self._table.pop(head.token, None) is head:
                    if not head.started:
                        self._mark_started(head, w, out, time.monotonic())
                    how = _describe_exit(exitcode)
                    msg = f"worker pid {w.pid} died ({how}) while running {wire.describe(head.fn)}"
                    out.append(("d", head.token, False, WorkerCrashed(msg, exitcode=exitcode, worker=w.pid), w.pid))
            elif not w.ready and self._broken is None and exitcode not in (-signal.SIGKILL, -signal.SIGTERM):
                # A worker killed from outside while starting says nothing about
                # the pool; one that keeps crashing while starting would loop forever.
                self._startup_failures += 1
                if self._startup_failures >= _MAX_STARTUP_FAILURES:
                    self._broken = WorkerCrashed(
                        f"{self._startup_failures} workers in a row died while starting (last: exit code {exitcode})",
                        exitcode=exitcode,
                        worker=w.pid,
                    )
            for job in reversed(jobs):  # never started: back to the front, in order
                job.state = _PENDING
                job.started = False
                job.worker = None
                self._pending.appendleft(job)
            if jobs:
                self._new = True
        w.close()

    # ------------------------------------------------------------ dispatch
    def _dispatch(self, out: list[tuple[Any, ...]]) -> None:
        with self._lock:
            if not self._pending:
                return
            if self._broken is not None:
                for job in self._pending:
                    if not job.killed and self._table.pop(job.token, None) is job:
                        out.append(("d", job.token, False, self._broken, None))
                self._pending.clear()
                return
            if self._shutdown and not self._drain:
                return
        # Start a worker per queued job that no idle worker will take, up to the
        # bound. Counted again after each start, outside the lock (starting a
        # process takes milliseconds): jobs submitted meanwhile must get workers
        # of their own, not be prefetched behind a job of unknown length.
        while True:
            with self._lock:
                idle = sum(1 for w in self._workers if w.takes_jobs() and not w.inflight)
                if len(self._workers) >= self._max_workers or not self._more_jobs_than(idle):
                    break
            try:
                w = start_worker(self._ctx, self._sel, self._init, self._max_tasks, self._parent_fds())
            except Exception as err:
                _log.exception("woflo: cannot start a worker process")
                with self._lock:
                    if not self._workers:
                        self._broken = WorkerCrashed(f"cannot start a worker process: {err!r}")
                        self._new = True
                break
            with self._lock:
                self._workers.append(w)
        now = time.monotonic()
        for w, batch in self._plan():
            frame, good, bad = self._pickle(batch)
            with self._lock:
                self._taken.difference_update(batch)
                for job, problem in bad:
                    if not job.killed and self._table.pop(job.token, None) is job:
                        out.append(("d", job.token, False, problem, None))
                if not good:
                    continue
                # The FIFO mirrors the frame exactly: the worker answers every job
                # in order, with a result or a "skipped".
                for job in good:
                    job.state = _SENT
                    job.worker = w
                w.inflight.extend(good)
                if w.budget is not None:
                    w.budget -= len(good)
                w.send(frame, self._sel)
                for job in good:
                    if job.killed:  # killed while being pickled
                        w.cancel(job.jid)
                self._start_head(w, out, now)

    def _more_jobs_than(self, n: int) -> bool:
        # Caller holds the lock. Killed jobs stay queued until dispatch skips
        # them: they must not start workers (after stop() or at shutdown).
        for job in self._pending:
            if not job.killed:
                n -= 1
                if n < 0:
                    return True
        return False

    def _plan(self) -> list[tuple[Worker, list[_Job]]]:
        plan: list[tuple[Worker, list[_Job]]] = []
        with self._lock:
            live = sorted((w for w in self._workers if w.takes_jobs()), key=lambda w: len(w.inflight))
            for i, w in enumerate(live):
                if not self._pending:
                    break
                if len(w.inflight) > self._prefetch // 2:
                    continue  # refill in bulk, not one job at a time
                share = min(self._prefetch - len(w.inflight), math.ceil(len(self._pending) / (len(live) - i)))
                if w.budget is not None:
                    share = min(share, w.budget)
                batch: list[_Job] = []
                while self._pending and len(batch) < share:
                    job = self._pending.popleft()
                    if not job.killed:
                        job.state = _TAKEN
                        batch.append(job)
                if batch:
                    self._taken.update(batch)
                    plan.append((w, batch))
        return plan

    def _pickle(self, batch: list[_Job]) -> tuple[bytes, list[_Job], list[tuple[_Job, SerializationError]]]:
        # Each job on its own, so one bad argument fails one job; a function
        # shared by consecutive jobs is pickled once per batch (map-like bursts).
        items: list[tuple[int, bytes | None, bytes]] = []
        good: list[_Job] = []
        bad: list[tuple[_Job, SerializationError]] = []
        last_fn: object = None
        for job in batch:
            fn_bytes = None
            if not items or job.fn is not last_fn:
                try:
                    fn_bytes = self._dumps_fn(job.fn)
                except Exception as err:
                    exc = SerializationError(f"cannot pickle function {wire.describe(job.fn)}: {err!r}")
                    exc.__cause__ = err
                    bad.append((job, exc))
                    continue
            try:
                arg_bytes = cloudpickle.dumps((job.args, job.kwargs), wire.PROTOCOL)
            except Exception as err:
                exc = SerializationError(f"cannot pickle argument of {wire.describe(job.fn)}: {err!r}")
                exc.__cause__ = err
                bad.append((job, exc))
                continue
            last_fn = job.fn
            job.jid = self._next_jid
            self._next_jid += 1
            items.append((job.jid, fn_bytes, arg_bytes))
            good.append(job)  # args are kept: a job whose worker dies before it starts is re-sent
        return pickle.dumps(items, wire.PROTOCOL), good, bad

    def _dumps_fn(self, fn: Callable[..., Any]) -> bytes:
        # A function pickled by reference (module + name) gives the same bytes
        # every time, so the last one is cached; one pickled by value (lambda,
        # closure, __main__) is pickled again, to capture the globals it sees now.
        if fn is self._fn_cache[0]:
            return self._fn_cache[1]
        data: bytes = cloudpickle.dumps(fn, wire.PROTOCOL)
        if isinstance(fn, _BY_REFERENCE) and getattr(fn, "__module__", "__main__") != "__main__":
            try:
                if pickle.dumps(fn, wire.PROTOCOL) == data:
                    self._fn_cache = (fn, data)
            except Exception:
                pass
        return data

    def _parent_fds(self) -> list[int]:
        # Only "fork" children inherit our fds; they close these at once so that
        # EOF still tells each worker that the parent is gone.
        if not self._fork:
            return []
        fds = [self._wake_r, self._wake_w, self._sel.fileno()]
        for w in self._workers:
            fds += [w.in_w, w.out_r, w.ctl_w]
        return fds

    def _close(self) -> None:
        with self._lock:
            workers = list(self._workers)
        for w in workers:  # only after an internal error: normally none is left
            with self._lock:
                w.kill_group()
                w.reap(self._sel)
                w.dead = True
                self._workers.remove(w)
            w.close()
        _live_pools.discard(self)
        with self._lock:
            self._sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = -1
