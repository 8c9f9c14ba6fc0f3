"""The pool's manager thread: its event loop, result delivery, worker deaths and final cleanup.

The manager thread owns the worker pipes. It waits, in one persistent epoll
selector, on each worker's result pipe, each worker's process sentinel, each
inbox it still has bytes to write to, and a wake-up pipe that ``submit`` pokes
(only when the manager is not already awake, so a burst costs one poke). All
parent-side fds are non-blocking: the manager never blocks on one worker, and a
100 MB result is read piecewise while other workers keep being served.

Results come back one frame per job, as each ends (see ``wire``); the manager
reads whatever has accumulated in one go, so a busy parent still handles them in
bulk. Each loop turn collects start and done notices in a list and fires the
callbacks at the end of the turn, outside the lock.

A part of the pool (see ``state``): it works on the shared ``PoolState`` and
owns the selector; it asks the dispatcher for nothing but ``dispatch(out)``
once per turn and ``learn(duration)`` per finished job, and reaches the pool's
owner only through ``on_start`` and ``on_done``.
"""

from __future__ import annotations

import pickle
import selectors
import signal
import time
from collections.abc import Callable
from typing import Any

from woflo._errors import BrokenProcessRunner, SerializationError, WorkerCrashed
from woflo._process import wire
from woflo._process.handle import Worker
from woflo._process.state import PENDING, Job, Notice, PoolState, mark_started, start_head
from woflo._process.stream import Loaded
from woflo._report import report_error
from woflo._tasklog import reemit

__all__ = ["Manager"]


_MAX_STARTUP_FAILURES = 3
_SCRATCH = 1 << 20  # the pipes' size: one read takes what a pipe holds
_BIG = 1 << 20  # results larger than this are read straight into their own buffer
# The longest select(): epoll takes milliseconds as a C int (about 24.8 days),
# and a longer idle_timeout would overflow it. Waking once a day costs nothing.
_MAX_WAIT = 86400.0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown: reaped elsewhere"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _init_failed(payload: bytes, pid: int) -> Callable[[], BaseException]:
    """What a pool whose initializer failed fails every job with: a fresh error each time.

    The initializer's exception (remote traceback attached) is the ``__cause__``,
    unpickled anew for each error so that no two runs share an exception object.
    """
    msg = f"the worker initializer failed in worker pid {pid}: {wire.loads_exception(payload, 'the initializer')!r}"

    def make() -> BaseException:
        err = BrokenProcessRunner(msg)
        err.__cause__ = wire.loads_exception(payload, "the initializer")
        return err

    return make


class Manager:
    """The manager thread's side of the pool; ``run`` is the thread's target.

    Args:
        state: the pool's shared state; its wake-up pipe is watched here.
        sel: the selector the thread waits on; closed, with the wake-up pipe,
            when ``run`` returns.
        dispatch: sends queued jobs to workers (``Dispatcher.dispatch``).
        learn: takes a finished job's duration (``Dispatcher.learn``).
        idle_timeout, start_timeout: see ``WorkerPool``.
        on_start, on_done: the owner's callbacks, see ``WorkerPool``.
    """

    def __init__(
        self,
        state: PoolState,
        sel: selectors.BaseSelector,
        *,
        dispatch: Callable[[list[Notice]], None],
        learn: Callable[[float], None],
        idle_timeout: float | None,
        start_timeout: float | None,
        on_start: Callable[[object, int], None],
        on_done: Callable[[object, bool, Any, int | None], None],
    ) -> None:
        self._state = state
        self._sel = sel
        self._dispatch = dispatch
        self._learn = learn
        self._idle_timeout = idle_timeout
        self._start_timeout = start_timeout  # a worker not ready by then is killed: a failed start
        self._on_start = on_start
        self._on_done = on_done
        self._startup_failures = 0
        # Result pipes are read into this one buffer, reused: a fresh 1 MB
        # bytes per read would cost a page fault per 4 KiB each time. Made on
        # first use, so a pool of idle workers does not hold it.
        self._scratch: memoryview | None = None
        # Workers whose large-result stream ended (see stream), under the lock.
        self._ended: list[Worker] = []
        self._on_stream_end = self._stream_ended
        sel.register(state.wakeup.r, selectors.EVENT_READ, None)

    def _read_buffer(self) -> memoryview:
        if self._scratch is None:
            self._scratch = memoryview(bytearray(_SCRATCH))
        return self._scratch

    def run(self) -> None:
        """Serve the workers until the pool is shut down and every worker is reaped; then close."""
        st, sel, dispatch, fire = self._state, self._sel, self._dispatch, self.fire
        try:
            while True:
                timeout = self._next_deadline()
                with st.lock:
                    st.awake = False
                    if st.new:
                        st.new = False
                        timeout = 0.0
                out: list[Notice] = []
                events = sel.select(timeout)
                for key, _ in events:
                    w = key.data
                    if w is None:
                        st.wakeup.drain()
                    elif w.dead:
                        continue  # an earlier event of this round reaped it
                    elif key.fd == w.sentinel:
                        self._on_death(w, out)
                    elif key.fd == w.out_r:
                        self._handle(w, w.read_frames(_BIG, sel, self._read_buffer(), False, self._on_stream_end), out)
                    else:
                        w.flush(sel)
                if self._ended:  # read without the lock: a stream that ends now pokes us again
                    self._take_streams(out)
                dispatch(out)
                if st.announcing and out:  # read without the lock: a hint, the lock is taken to act on it
                    out = self._hold_back(out)
                fire(out)
                # st.shutdown read without the lock: shutdown() sets it, then
                # pokes, so a turn always follows that sees it. Until then the
                # turn ends here and select() lets go of the GIL sooner: the
                # caller just woken by on_done is waiting for it.
                if st.shutdown and self._finished():
                    break
        except BaseException as exc:
            report_error(exc, "woflo: the process pool manager failed")
            raise
        finally:
            self._close()

    def _hold_back(self, out: list[Notice]) -> list[Notice]:
        # The notices of a job whose start a submitting thread is still firing
        # (PoolState.announcing) wait for it: that thread fires them after.
        st = self._state
        kept: list[Notice] = []
        with st.lock:
            announcing = st.announcing
            for notice in out:
                token = notice[1].token if notice[0] == "s" else notice[1]
                held = announcing.get(token) if token is not None else None
                if held is None:
                    kept.append(notice)
                else:
                    held.append(notice)
        return kept

    def _stream_ended(self, w: Worker) -> None:
        # A stream's thread: hand the worker over to the manager thread.
        st = self._state
        with st.lock:
            self._ended.append(w)
            st.wakeup.poke()

    def _take_streams(self, out: list[Notice]) -> None:
        with self._state.lock:
            ended, self._ended = self._ended, []
        for w in ended:
            if w.stream is not None and not w.dead:  # else taken by _on_death already
                self._handle(w, w.end_stream(self._sel), out)

    def _next_deadline(self) -> float | None:
        # Retires workers idle for idle_timeout and kills those not ready
        # within start_timeout; returns the seconds until the next such event.
        idle_timeout, start_timeout = self._idle_timeout, self._start_timeout
        if idle_timeout is None and (start_timeout is None or self._state.ready == len(self._state.workers)):
            # Nothing to time (every worker is ready: none can miss its start).
            # Read without the lock: only this thread changes either.
            return None
        now = time.monotonic()
        deadline = None
        with self._state.lock:
            for w in self._state.workers:
                if w.stopping or w.dead:
                    continue
                if w.ready:
                    if idle_timeout is None or w.inflight:
                        continue
                    left = w.idle_since + idle_timeout - now
                    if left <= 0:
                        w.stop(self._sel)
                        continue
                elif start_timeout is not None and not w.expired:
                    left = w.born + start_timeout - now
                    if left <= 0:
                        # A hanging initializer, or a process stopped (SIGSTOP)
                        # while starting: it would hold its jobs forever.
                        w.expired = True
                        w.kill_group()
                        continue
                else:
                    continue
                deadline = left if deadline is None else min(deadline, left)
        return deadline if deadline is None else min(deadline, _MAX_WAIT)

    def _finished(self) -> bool:
        st = self._state
        with st.lock:
            if not st.shutdown or st.pending or st.taken:
                return False
            for w in st.workers:
                if not w.ready:
                    # Still starting, so it runs nothing; its initializer may
                    # never end. Jobs it was sent can only be killed ones here
                    # (live jobs keep pending or the runner's shutdown waiting).
                    if all(job.killed for job in w.inflight):
                        w.kill_group()
                elif not w.inflight:
                    w.stop(self._sel)
            return not st.workers

    def fire(self, out: list[Notice], *, caller: bool = False) -> None:
        """Fire the callbacks of ``out``'s notices, in order; a callback's exception is logged.

        With ``caller=True`` (a submitting thread firing what was held back
        for its job), a ``KeyboardInterrupt`` or ``SystemExit`` is raised
        once every notice has been fired instead: that thread is the
        caller's, which a Ctrl-C must reach.
        """
        on_start, on_done = self._on_start, self._on_done
        interrupted: BaseException | None = None
        for item in out:
            try:
                if item[0] == "s":
                    job = item[1]
                    if not job.killed:
                        on_start(job.token, item[2])
                elif item[0] == "l":  # a record a task logged: through the application's logging
                    reemit(item[1], item[2], item[3])
                else:
                    on_done(item[1], item[2], item[3], item[4])
            except BaseException as exc:
                if caller and not isinstance(exc, Exception):
                    if interrupted is None:
                        interrupted = exc
                    continue
                # User code runs here (done-callbacks, event processors): a
                # SystemExit from it must not end the thread every run needs,
                # nor a logging handler's while it is reported.
                report_error(exc, "woflo: a process pool callback raised")
        if interrupted is not None:
            raise interrupted

    def _handle(self, w: Worker, frames: list[tuple[int, int, Any]], out: list[Notice]) -> None:
        if not frames:
            return
        now = time.monotonic()
        st = self._state
        table, learn = st.table, self._learn
        finished: list[tuple[Job | None, int, Any]] = []
        with st.lock:
            for kind, jid, payload in frames:
                if kind == wire.KIND_READY:
                    w.ready = True
                    st.ready += 1
                    w.idle_since = now
                    self._startup_failures = 0
                elif kind == wire.KIND_INITIALIZING:
                    w.init_since = now
                elif kind == wire.KIND_INIT_FAILED:
                    finished.append((None, kind, payload))
                elif kind == wire.KIND_LOG:  # logged by the job at the head of the FIFO (jid 0: none)
                    running = w.inflight[0] if w.inflight and w.inflight[0].jid == jid else None
                    out.append(("l", None if running is None else running.token, payload, w.pid))
                else:
                    head: Job = w.inflight.popleft()
                    if kind == wire.KIND_SKIPPED and w.budget is not None:
                        # The worker counts only the jobs it ran (max_tasks_per_child):
                        # a skipped job gives its place back, or the worker would wait
                        # forever for a job the pool never sends.
                        w.budget += 1
                    if not w.inflight:
                        w.idle_since = now
                        if w.budget == 0:
                            w.stop(self._sel)  # its last job is answered: it exits now whatever it counted
                    # st.claim(head), inlined: this runs once per job
                    if not head.killed and table.pop(head.token, None) is head:
                        if not head.started:
                            mark_started(head, w, out, now)
                        learn(now - head.t_start)
                        finished.append((head, kind, payload))
                start_head(w, out, now)
        # Unpickling runs user code (__setstate__): never under the lock.
        for job, kind, payload in finished:
            if job is None:
                broken = _init_failed(payload, w.pid)
                with st.lock:
                    if st.broken is None:
                        st.broken = broken
                continue
            ok = kind == wire.KIND_OK
            if ok:
                try:
                    if type(payload) is Loaded:  # unpickled by a stream
                        if payload.error is not None:
                            raise payload.error
                        value: Any = payload.value
                    else:
                        value = pickle.loads(payload)
                except BaseException as err:  # user code (a reconstructor) may raise anything here
                    ok = False
                    value = SerializationError.wrap(
                        f"cannot unpickle the result of {wire.describe(job.fn)}: {wire.reason(err)}", err
                    )
            else:
                try:
                    value = wire.loads_exception(payload, wire.describe(job.fn))
                except BaseException as err:  # loads_exception lets a reconstructor's SystemExit through
                    what = wire.describe(job.fn)
                    value = SerializationError.wrap(
                        f"cannot unpickle the exception raised by {what}: {wire.reason(err)}", err
                    )
            out.append(("d", job.token, ok, value, w.pid))

    def _on_death(self, w: Worker, out: list[Notice]) -> None:
        if w.stream is not None:  # what it finished reading was written before the worker died
            w.stream.abandon()
            self._handle(w, w.end_stream(self._sel), out)
        self._handle(w, w.read_frames(_BIG, self._sel, self._read_buffer(), drain=True), out)  # written before it died
        st = self._state
        with st.lock:  # reap under the lock: kill() must never signal a reaped pid
            exitcode = w.reap(self._sel)
            w.dead = True
            st.workers.remove(w)
            jobs: list[Job] = [job for job in w.inflight if not job.killed]
            head: Job | None = w.inflight[0] if w.inflight else None
            w.inflight.clear()
            if w.doomed and exitcode == -signal.SIGKILL and not w.expired:
                # Killed by the pool for a job it stopped: that job is already
                # settled. Which job the worker was running is only the pool's
                # estimate (a result may have been on its way), so no other job
                # is blamed: every one goes back to the queue.
                pass
            elif w.ready and head is not None and not head.killed:
                jobs.pop(0)
                if st.claim(head):
                    if not head.started:
                        mark_started(head, w, out, time.monotonic())
                    how = _describe_exit(exitcode)
                    msg = f"worker pid {w.pid} died ({how}) while running {wire.describe(head.fn)}"
                    out.append(("d", head.token, False, WorkerCrashed(msg, exitcode=exitcode, worker=w.pid), w.pid))
            elif (
                not w.ready and st.broken is None and (w.expired or exitcode not in (-signal.SIGKILL, -signal.SIGTERM))
            ):
                # A worker killed from outside while starting says nothing about
                # the pool; one that keeps failing to start would loop forever.
                self._startup_failures += 1
                if self._startup_failures >= _MAX_STARTUP_FAILURES:
                    if w.expired:
                        why = f"the last was not ready within worker_start_timeout={self._start_timeout:g}s"
                    else:
                        why = f"the last died with {_describe_exit(exitcode)}"
                    msg = f"{self._startup_failures} worker processes in a row failed to start ({why})"
                    st.broken = lambda: BrokenProcessRunner(msg)
            if w.ready:
                st.ready -= 1
            for job in reversed(jobs):  # never started: back to the front, in order
                job.state = PENDING
                job.started = False
                job.worker = None
                st.pending.appendleft(job)
            if jobs:
                st.new = True
        w.close()

    def _close(self) -> None:
        st = self._state
        with st.lock:
            workers = list(st.workers)
        for w in workers:  # only after an internal error: normally none is left
            with st.lock:
                w.kill_group()
                w.reap(self._sel)
                w.dead = True
                st.workers.remove(w)
            w.close()
        with st.lock:
            self._sel.close()
            st.wakeup.close()
