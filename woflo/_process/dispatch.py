"""How queued jobs reach workers: starting workers, batching, pickling, prefetch, start estimation.

Throughput comes from batching the parent-to-worker direction: a worker is sent
up to ``prefetch`` jobs in one frame, and ``prefetch`` adapts to the observed job
duration (about 2 ms of queued work per worker, between 1 and 64 jobs), so short
jobs travel in bulk while long jobs are not stuck behind each other.

Start estimation (``state.start_head``): a worker's dispatched jobs form a FIFO
and it runs them in order, so the head started when the previous result arrived
(or when the job reached an idle, ready worker). ``on_start`` fires then; never
after ``on_done``.

A part of the pool (see ``state``): it works on the shared ``PoolState`` and
the manager's selector, on the manager thread only (``Manager`` calls
``dispatch`` once per loop turn and ``learn`` with each finished job's duration).
What it decides goes out as notices (see ``state``); ``on_sent`` is its one
call out of the pool.
"""

from __future__ import annotations

import errno
import itertools
import logging
import math
import pickle
import select
import selectors
import time
import types
from collections.abc import Callable
from typing import Any

from woflo._errors import SerializationError, WorkerCrashed
from woflo._process import wire
from woflo._process.handle import Worker, start_worker
from woflo._process.state import SENT, TAKEN, Job, Notice, PoolState, start_head
from woflo._report import report_error
from woflo._tasklog import levels_item

__all__ = ["Dispatcher"]


_TARGET_QUEUED_S = 0.002  # queued work per worker that prefetch aims for
_MAX_PREFETCH = 64
# Arguments pickled to at most this many bytes may go straight to an idle
# worker (WorkerPool.submit); with the rest of the frame they fit PIPE_BUF
# (4096 on Linux, at least 512 by POSIX), which a pipe writes whole or not at all.
_DIRECT_MAX = 3072


def _named_kind(fn: object) -> bool:
    # A function, a builtin function of a module (not a builtin method bound to
    # an object: ``random.Random(42).random`` is a builtin too) or a class: the
    # kinds that pickle saves by name when it can (``_dumps_fn`` checks it can).
    if isinstance(fn, types.BuiltinFunctionType):
        owner = fn.__self__
        return owner is None or isinstance(owner, types.ModuleType)
    return isinstance(fn, (types.FunctionType, type))


class Dispatcher:
    """Plans and sends batches of queued jobs to workers, starting workers as needed.

    Args:
        state: the pool's shared state.
        sel: the manager's selector; the workers it starts are registered there.
        ctx: ``None`` (woflo's ``"exec"``) or the ``multiprocessing`` context workers start in.
        fork: ``ctx`` forks: children must close the parent's fds.
        init: the cloudpickled ``(initializer, initargs)``, or ``None``.
        max_workers: the most workers alive at once.
        max_tasks: ``max_tasks_per_child``, or ``None``.
        on_sent: ``(tokens) -> refused indexes``, see ``WorkerPool``.
    """

    def __init__(
        self,
        state: PoolState,
        sel: selectors.DefaultSelector,
        *,
        ctx: Any,
        fork: bool,
        init: bytes | None,
        max_workers: int,
        max_tasks: int | None,
        on_sent: Callable[[list[object]], list[int]] | None,
    ) -> None:
        self._state = state
        self._sel = sel
        self._ctx = ctx
        self._fork = fork
        self._init = init
        self._max_workers = max_workers
        self._max_tasks = max_tasks
        self._on_sent = on_sent
        # Jobs a worker may hold at once, read under the state lock. One until a
        # job has finished: a job of unknown length must not be queued behind
        # another while a worker sits idle.
        self.prefetch = 1
        self._avg = 0.0
        # Job ids, increasing in the order frames reach any one worker (its
        # watchdog relies on it): next() is atomic, and a submitting thread
        # takes one under the pool lock (see frame_one).
        self._jids = itertools.count(1)
        self._fn_cache: tuple[object, bytes] = (None, b"")

    def learn(self, duration: float) -> None:
        """Take one finished job's duration into the moving average that sets ``prefetch``."""
        self._avg = duration if not self._avg else 0.8 * self._avg + 0.2 * duration
        want = _TARGET_QUEUED_S / self._avg if self._avg > 0 else _MAX_PREFETCH
        # min() before int(): an average decayed by zero durations to a
        # denormal makes ``want`` infinite, which int() would raise on.
        self.prefetch = max(1, int(min(_MAX_PREFETCH, want)))

    def dispatch(self, out: list[Notice]) -> None:
        """Start the workers the queue needs and send each worker its next batch.

        Jobs that fail here (they cannot be pickled; the pool is broken; no
        worker can start) get a ``"d"`` notice in ``out``; so does nothing else.
        """
        st = self._state
        with st.lock:
            if not st.pending:
                return
            broken = st.broken
            if broken is not None:
                failed = [job.token for job in st.pending if st.claim(job)]
                st.pending.clear()
            elif st.shutdown and not st.drain:
                return
            else:
                start = self._need_worker()
        if broken is not None:  # errors made outside the lock: they unpickle the initializer's exception
            out.extend(("d", token, False, broken(), None) for token in failed)
            return
        # Start a worker per queued job that no idle worker will take, up to the
        # bound. Counted again after each start, outside the lock (starting a
        # process takes milliseconds): jobs submitted meanwhile must get workers
        # of their own, not be prefetched behind a job of unknown length.
        while start:
            try:
                w = start_worker(self._ctx, self._sel, self._init, self._max_tasks, self._parent_fds())
            except Exception as err:
                self._start_failed(err, out)
                break
            with st.lock:
                st.workers.append(w)
                start = self._need_worker()
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
                    with st.lock:
                        st.taken.difference_update(dropped)
                        for job in dropped:
                            if st.claim(job):
                                job.killed = True
                        st.new = True  # the places they held in the plan are free again
                    batch = [job for i, job in enumerate(batch) if i not in refused]
                    if not batch:
                        continue
            parts, good, bad = self._pickle(batch)
            with st.lock:
                st.taken.difference_update(batch)
                for job, problem in bad:
                    if st.claim(job):
                        out.append(("d", job.token, False, problem, None))
                if bad:
                    # The places these jobs held in the plan are free again: look
                    # at the queue once more in the next turn, without waiting for
                    # an event (a batch of failures alone sent nothing that would
                    # ever wake the manager, and the queue stayed put for good).
                    st.new = True
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
                start_head(w, out, now)

    def _start_failed(self, err: Exception, out: list[Notice]) -> None:
        # Most often a passing shortage (EMFILE: out of file descriptors,
        # EAGAIN: out of processes), so the pool is not broken: the jobs that
        # no live worker will take fail now, and the next submission tries to
        # start a worker again.
        what = errno.errorcode.get(err.errno, "") if isinstance(err, OSError) and err.errno else ""
        msg = f"cannot start a worker process: {err!r}" + (f" ({what})" if what else "")
        # On the manager thread: a logging handler's Ctrl-C must not end it.
        report_error(err, f"woflo: {msg}", logging.WARNING)
        st = self._state
        with st.lock:
            if any(w.takes_jobs() for w in st.workers):
                return  # they wait for the live workers instead
            for job in st.pending:
                if st.claim(job):
                    crashed = WorkerCrashed(msg)
                    crashed.__cause__ = err
                    out.append(("d", job.token, False, crashed, None))
            st.pending.clear()

    def _need_worker(self) -> bool:
        # Caller holds the lock: whether the queue needs one more worker started.
        st = self._state
        if len(st.workers) >= self._max_workers:
            return False
        idle = sum(1 for w in st.workers if w.takes_jobs() and not w.inflight)
        return self._more_jobs_than(idle)

    def _more_jobs_than(self, n: int) -> bool:
        # Caller holds the lock. Killed jobs stay queued until dispatch skips
        # them: they must not start workers (after stop() or at shutdown).
        for job in self._state.pending:
            if not job.killed:
                n -= 1
                if n < 0:
                    return True
        return False

    def _plan(self) -> list[tuple[Worker, list[Job]]]:
        # Which worker gets which queued jobs: the least loaded first, each an
        # even share of the queue, topped up to ``prefetch``.
        plan: list[tuple[Worker, list[Job]]] = []
        st = self._state
        pending = st.pending
        with st.lock:
            prefetch = self.prefetch
            live = sorted((w for w in st.workers if w.takes_jobs()), key=lambda w: len(w.inflight))
            for i, w in enumerate(live):
                if not pending:
                    break
                if len(w.inflight) > prefetch // 2:
                    continue  # refill in bulk, not one job at a time
                share = min(prefetch - len(w.inflight), math.ceil(len(pending) / (len(live) - i)))
                if w.budget is not None:
                    share = min(share, w.budget)
                batch: list[Job] = []
                while pending and len(batch) < share:
                    job = pending.popleft()
                    if not job.killed:
                        job.state = TAKEN
                        batch.append(job)
                if batch:
                    st.taken.update(batch)
                    plan.append((w, batch))
        return plan

    def _pickle(self, batch: list[Job]) -> tuple[list[Any], list[Job], list[tuple[Job, SerializationError]]]:
        # Each job on its own, so one bad argument fails one job. Consecutive
        # jobs of one callable share its bytes, pickled once per frame (the
        # frame's pickle sends one bytes object once however often it appears);
        # the worker still unpickles them per job unless the callable is shared
        # (see wire), and then None stands for the previous job's function.
        # Headed by the parent's log levels (jid 0), for the worker to apply first.
        items: list[tuple[int, bytes | None, bool, bytes | int]] = [levels_item()]
        large: list[Any] = []
        good: list[Job] = []
        bad: list[tuple[Job, SerializationError]] = []
        pickled: tuple[object, bytes, bool] | None = None  # (fn, its bytes, shared)
        sent_fn: object = None  # the callable of the last job in ``items``
        for job in batch:
            fn = job.fn
            call = job.call
            if call is not None:  # pickled by its submitting thread (see prepickle)
                if isinstance(call, BaseException):
                    job.call = None  # the error is its run's: reported once
                    bad.append((job, call))  # type: ignore[arg-type]
                    continue
                pickled = (fn, call[0], call[1])
            elif pickled is None or pickled[0] is not fn:
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
                # As parts: a large argument's payload is not copied here (see
                # wire.PartsPickler); it goes to the pipe as it is (writev).
                arg_parts = call[2] if call is not None else wire.dumps_task_parts((job.args, job.kwargs))
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
            job.jid = next(self._jids)
            size = len(arg_parts[0]) if len(arg_parts) == 1 else sum(map(len, arg_parts))
            if size < wire.INLINE_ARGS:
                items.append((job.jid, fn_bytes, shared, arg_parts[0] if len(arg_parts) == 1 else b"".join(arg_parts)))
            else:  # sent after the list, as it is: see wire.META_LEN
                items.append((job.jid, fn_bytes, shared, size))
                large.extend(arg_parts)
            good.append(job)  # args are kept: a job whose worker dies before it starts is re-sent
        meta = pickle.dumps(items, wire.PROTOCOL)
        return [wire.META_LEN.pack(len(meta)) + meta, *large], good, bad

    def prepickle(self, job: Job) -> None:
        """Pickle ``job``'s call into ``job.call`` (or the error), on the submitting thread.

        For `WorkerPool.submit`'s direct path: user code (``__reduce__``) runs
        here, on the caller's thread, never under the pool lock. Whatever
        becomes of the job, this is its only pickling: the dispatcher uses
        ``job.call`` if the job goes through the queue after all.
        """
        fn = job.fn
        try:
            fn_bytes, shared = self._dumps_fn(fn)
        except BaseException as err:  # pickling runs user code
            job.call = SerializationError.wrap(f"cannot pickle function {wire.describe(fn)}: {wire.reason(err)}", err)
            return
        try:
            arg_parts = wire.dumps_task_parts((job.args, job.kwargs))
        except BaseException as err:
            job.call = SerializationError.wrap(
                f"cannot pickle argument of {wire.describe(fn)}: {wire.reason(err)}", err
            )
            return
        job.call = (fn_bytes, shared, arg_parts)

    def frame_one(self, job: Job, levels: Any) -> bytes | None:
        """The inbox frame of ``job`` alone (pickled by `prepickle`), or None if it does not fit one atomic write.

        Takes the job's id: call under the pool lock, just before the frame is
        written, so that ids reach each worker in increasing order.
        """
        call = job.call
        if not isinstance(call, tuple) or len(call[2]) != 1 or len(call[2][0]) > _DIRECT_MAX:
            return None
        job.jid = next(self._jids)
        meta = pickle.dumps([levels, (job.jid, call[0], call[1], call[2][0])], wire.PROTOCOL)
        frame = wire.INBOX_HEADER.pack(wire.META_LEN.size + len(meta)) + wire.META_LEN.pack(len(meta)) + meta
        return frame if len(frame) <= select.PIPE_BUF else None

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
        cache = self._fn_cache  # read once: a submitting thread may replace it (see prepickle)
        if fn is cache[0]:
            return cache[1], True
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
        st = self._state
        fds = [st.wakeup.r, st.wakeup.w, self._sel.fileno()]
        for w in st.workers:
            fds += [w.in_w, w.out_r, w.ctl_w]
        return fds
