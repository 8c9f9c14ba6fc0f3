"""How queued jobs reach workers: starting workers, batching, pickling, prefetch, start estimation.

Throughput comes from batching the parent-to-worker direction: a worker is sent
up to ``prefetch`` jobs in one frame, and ``prefetch`` adapts to the observed job
duration (about 2 ms of queued work per worker, between 1 and 64 jobs), so short
jobs travel in bulk while long jobs are not stuck behind each other.

Start estimation: a worker's dispatched jobs form a FIFO and it runs them in
order, so the head started when the previous result arrived (or when the job
reached an idle, ready worker). ``on_start`` fires then; never after ``on_done``.

Runs on the manager thread only (see ``manager``).
"""

from __future__ import annotations

import errno
import logging
import math
import pickle
import time
import types
from collections.abc import Callable
from typing import Any

from woflo._errors import SerializationError, WorkerCrashed
from woflo._process import wire
from woflo._process.handle import Worker, start_worker
from woflo._process.state import SENT, TAKEN, Job, PoolState

__all__ = ["Dispatcher"]

_log = logging.getLogger("woflo")

_TARGET_QUEUED_S = 0.002  # queued work per worker that prefetch aims for
_MAX_PREFETCH = 64


def _named_kind(fn: object) -> bool:
    # A function, a builtin function of a module (not a builtin method bound to
    # an object: ``random.Random(42).random`` is a builtin too) or a class: the
    # kinds that pickle saves by name when it can (``_dumps_fn`` checks it can).
    if isinstance(fn, types.BuiltinFunctionType):
        owner = fn.__self__
        return owner is None or isinstance(owner, types.ModuleType)
    return isinstance(fn, (types.FunctionType, type))


class Dispatcher(PoolState):
    """The dispatch half of the manager thread; ``Manager`` calls ``_dispatch`` once per loop turn."""

    def _mark_started(self, job: Job, w: Worker, out: list[tuple[Any, ...]], now: float) -> None:
        # Caller holds the lock.
        job.started = True
        job.t_start = now
        out.append(("s", job, w.pid))

    def _start_head(self, w: Worker, out: list[tuple[Any, ...]], now: float) -> None:
        # Caller holds the lock. The head of a ready worker's FIFO is running now;
        # not on a doomed worker: its jobs go back to the queue when it dies.
        if w.ready and w.inflight and not w.inflight[0].started and not w.doomed:
            self._mark_started(w.inflight[0], w, out, now)

    def _learn(self, duration: float) -> None:
        # Moving average of job durations sets how many jobs a worker may queue.
        self._avg = duration if not self._avg else 0.8 * self._avg + 0.2 * duration
        want = _TARGET_QUEUED_S / self._avg if self._avg > 0 else _MAX_PREFETCH
        self._prefetch = max(1, min(_MAX_PREFETCH, int(want)))

    def _dispatch(self, out: list[tuple[Any, ...]]) -> None:
        with self._lock:
            if not self._pending:
                return
            broken = self._broken
            if broken is not None:
                failed = [
                    job.token for job in self._pending if not job.killed and self._table.pop(job.token, None) is job
                ]
                self._pending.clear()
            elif self._shutdown and not self._drain:
                return
        if broken is not None:  # errors made outside the lock: they unpickle the initializer's exception
            out.extend(("d", token, False, broken(), None) for token in failed)
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
                self._start_failed(err, out)
                break
            with self._lock:
                self._workers.append(w)
        now = time.monotonic()
        on_sent = self._on_sent
        for w, batch in self._plan():
            if on_sent is not None:
                # From here the jobs count as running: the owner refuses those
                # it cancelled meanwhile, and they are never sent. One call per
                # batch: this is the per-job hot path.
                refused = on_sent([job.token for job in batch])
                if refused:
                    dropped = [batch[i] for i in refused]
                    with self._lock:
                        self._taken.difference_update(dropped)
                        for job in dropped:
                            if not job.killed and self._table.pop(job.token, None) is job:
                                job.killed = True
                        self._new = True  # the places they held in the plan are free again
                    batch = [job for i, job in enumerate(batch) if i not in refused]
                    if not batch:
                        continue
            parts, good, bad = self._pickle(batch)
            with self._lock:
                self._taken.difference_update(batch)
                for job, problem in bad:
                    if not job.killed and self._table.pop(job.token, None) is job:
                        out.append(("d", job.token, False, problem, None))
                if bad:
                    # The places these jobs held in the plan are free again: look
                    # at the queue once more in the next turn, without waiting for
                    # an event (a batch of failures alone sent nothing that would
                    # ever wake the manager, and the queue stayed put for good).
                    self._new = True
                if not good:
                    continue
                # The FIFO mirrors the frame exactly: the worker answers every job
                # in order, with a result or a "skipped".
                for job in good:
                    job.state = SENT
                    job.worker = w
                w.inflight.extend(good)
                if w.budget is not None:
                    w.budget -= len(good)
                w.send(parts, self._sel)
                for job in good:
                    if job.killed:  # killed while being pickled
                        w.cancel(job.jid)
                self._start_head(w, out, now)

    def _start_failed(self, err: Exception, out: list[tuple[Any, ...]]) -> None:
        # Most often a passing shortage (EMFILE: out of file descriptors,
        # EAGAIN: out of processes), so the pool is not broken: the jobs that
        # no live worker will take fail now, and the next submission tries to
        # start a worker again.
        what = errno.errorcode.get(err.errno, "") if isinstance(err, OSError) and err.errno else ""
        msg = f"cannot start a worker process: {err!r}" + (f" ({what})" if what else "")
        _log.warning("woflo: %s", msg, exc_info=err)
        with self._lock:
            if any(w.takes_jobs() for w in self._workers):
                return  # they wait for the live workers instead
            for job in self._pending:
                if not job.killed and self._table.pop(job.token, None) is job:
                    crashed = WorkerCrashed(msg)
                    crashed.__cause__ = err
                    out.append(("d", job.token, False, crashed, None))
            self._pending.clear()

    def _more_jobs_than(self, n: int) -> bool:
        # Caller holds the lock. Killed jobs stay queued until dispatch skips
        # them: they must not start workers (after stop() or at shutdown).
        for job in self._pending:
            if not job.killed:
                n -= 1
                if n < 0:
                    return True
        return False

    def _plan(self) -> list[tuple[Worker, list[Job]]]:
        plan: list[tuple[Worker, list[Job]]] = []
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
                batch: list[Job] = []
                while self._pending and len(batch) < share:
                    job = self._pending.popleft()
                    if not job.killed:
                        job.state = TAKEN
                        batch.append(job)
                if batch:
                    self._taken.update(batch)
                    plan.append((w, batch))
        return plan

    def _pickle(self, batch: list[Job]) -> tuple[list[bytes], list[Job], list[tuple[Job, SerializationError]]]:
        # Each job on its own, so one bad argument fails one job. Consecutive
        # jobs of one callable share its bytes, pickled once per frame (the
        # frame's pickle sends one bytes object once however often it appears);
        # the worker still unpickles them per job unless the callable is shared
        # (see wire), and then None stands for the previous job's function.
        items: list[tuple[int, bytes | None, bool, bytes | int]] = []
        large: list[bytes] = []
        good: list[Job] = []
        bad: list[tuple[Job, SerializationError]] = []
        pickled: tuple[object, bytes, bool] | None = None  # (fn, its bytes, shared)
        sent_fn: object = None  # the callable of the last job in ``items``
        for job in batch:
            fn = job.fn
            if pickled is None or pickled[0] is not fn:
                try:
                    pickled = (fn, *self._dumps_fn(fn))
                except BaseException as err:  # pickling runs user code; never kill the manager thread
                    pickled = None  # tried again for the next job: each run gets its own error
                    bad.append(
                        (
                            job,
                            SerializationError.wrap(
                                f"cannot pickle function {wire.describe(fn)}: {wire.reason(err)}", err
                            ),
                        )
                    )
                    continue
            try:
                arg_bytes = wire.dumps_task((job.args, job.kwargs))
            except BaseException as err:
                bad.append(
                    (
                        job,
                        SerializationError.wrap(
                            f"cannot pickle argument of {wire.describe(fn)}: {wire.reason(err)}", err
                        ),
                    )
                )
                continue
            shared = pickled[2]
            fn_bytes = None if shared and items and sent_fn is fn else pickled[1]
            sent_fn = fn
            job.jid = self._next_jid
            self._next_jid += 1
            if len(arg_bytes) < wire.INLINE_ARGS:
                items.append((job.jid, fn_bytes, shared, arg_bytes))
            else:  # sent after the list, as it is: see wire.META_LEN
                items.append((job.jid, fn_bytes, shared, len(arg_bytes)))
                large.append(arg_bytes)
            good.append(job)  # args are kept: a job whose worker dies before it starts is re-sent
        meta = pickle.dumps(items, wire.PROTOCOL)
        return [wire.META_LEN.pack(len(meta)) + meta, *large], good, bad

    def _dumps_fn(self, fn: Callable[..., Any]) -> tuple[bytes, bool]:
        """``fn`` pickled, and whether the worker may share one copy of it among jobs.

        Shared: what plain pickle saves by name (a module-level function, of
        ``__main__`` too, a builtin function, a class), which a
        ``ProcessPoolExecutor`` worker also holds once, as the module's own
        object. Not shared: any object with state of its own (a callable
        object, ``partial``, bound method, lambda, closure), unpickled per job.
        The bytes of a function pickled by reference never change: the last
        ones are cached. A function of ``__main__`` (cloudpickle sends it by
        value, with the globals it uses) is pickled again for each frame.
        """
        if fn is self._fn_cache[0]:
            return self._fn_cache[1], True
        data = wire.dumps_task(fn)
        if not _named_kind(fn):
            return data, False
        try:
            by_name = pickle.dumps(fn, wire.PROTOCOL)
        except Exception:
            return data, False  # a lambda or a nested function: it has state of its own
        if by_name == data:
            self._fn_cache = (fn, data)
        return data, True

    def _parent_fds(self) -> list[int]:
        # Only "fork" children inherit our fds; they close these at once so that
        # EOF still tells each worker that the parent is gone.
        if not self._fork:
            return []
        fds = [self._wake_r, self._wake_w, self._sel.fileno()]
        for w in self._workers:
            fds += [w.in_w, w.out_r, w.ctl_w]
        return fds
