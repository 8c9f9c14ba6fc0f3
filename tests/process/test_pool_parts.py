"""The pool's parts on their own, with real worker processes and no WorkerPool around them.

A ``PoolState``, a selector and a ``Dispatcher`` (and, for the last test, a
``Manager`` on a thread of the test's own) are wired by hand, as ``WorkerPool``
wires them, so each part's narrow interface is what is tested: ``dispatch(out)``
and ``learn(duration)`` of the dispatcher, ``run()`` of the manager.
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from funcs import ErrorAtPickle, ExitOnPickle, add, block
from helpers import wait_for_file

from woflo._errors import SerializationError, WorkerCrashed
from woflo._process import wire
from woflo._process.dispatch import Dispatcher
from woflo._process.handle import Worker
from woflo._process.manager import Manager
from woflo._process.state import PENDING, SENT, Job, Notice, PoolState


class Parts:
    """A state, a selector and a dispatcher of "exec" workers, wired as ``WorkerPool`` wires them."""

    def __init__(self, max_workers: int, on_sent: Callable[[list[object]], list[int]] | None = None) -> None:
        self.state = PoolState()
        self.sel = selectors.DefaultSelector()
        self.dispatcher = Dispatcher(
            self.state,
            self.sel,
            ctx=None,
            fork=False,
            init=None,
            max_workers=max_workers,
            max_tasks=None,
            on_sent=on_sent,
        )
        self.closed = False

    def queue(self, token: object, fn: Callable[..., Any], *args: Any) -> Job:
        """What ``WorkerPool.submit`` does to the state, without waking a manager."""
        job = Job(token, fn, args, {})
        with self.state.lock:
            self.state.table[token] = job
            self.state.pending.append(job)
            self.state.new = True
        return job

    def results(self, jobs: list[Job], timeout: float = 60) -> dict[object, Any]:
        """Read the workers' result pipes (as the manager would) until every job in ``jobs`` answered."""
        by_jid = {job.jid: job for job in jobs}
        got: dict[object, Any] = {}
        end = time.monotonic() + timeout
        scratch = memoryview(bytearray(1 << 20))
        while len(got) < len(jobs):
            left = end - time.monotonic()
            assert left > 0, f"no result for {[j.token for j in jobs if j.token not in got]}"
            for key, _ in self.sel.select(left):
                w = key.data
                if isinstance(w, Worker) and key.fd == w.out_r:
                    for kind, jid, payload in w.read_frames(1 << 20, self.sel, scratch):
                        if kind in (wire.KIND_OK, wire.KIND_EXC):
                            assert kind == wire.KIND_OK
                            got[by_jid[jid].token] = pickle.loads(payload)
                elif isinstance(w, Worker) and key.fd == w.in_w:
                    w.flush(self.sel)
        return got

    def close(self) -> None:
        """Kill and reap every worker left, and close what the manager would close."""
        if self.closed:
            return
        self.closed = True
        with self.state.lock:
            for w in self.state.workers:
                w.kill_group()
                w.reap(self.sel)
                w.close()
            self.state.workers.clear()
            self.sel.close()
            self.state.wakeup.close()


@pytest.fixture
def parts_factory() -> Iterator[Callable[..., Parts]]:
    made: list[Parts] = []

    def make(max_workers: int, on_sent: Callable[[list[object]], list[int]] | None = None) -> Parts:
        made.append(Parts(max_workers, on_sent))
        return made[-1]

    yield make
    for parts in made:
        parts.close()


@pytest.mark.timeout(120)
def test_dispatch_starts_workers_up_to_the_bound_and_sends_one_job_each_until_one_finished(
    parts_factory: Callable[..., Parts],
) -> None:
    parts = parts_factory(2)
    jobs = [parts.queue(i, add, i, 1) for i in range(5)]
    out: list[Notice] = []
    parts.dispatcher.dispatch(out)
    st = parts.state
    assert out == []  # nothing failed, and no worker is ready yet: no job started
    assert len(st.workers) == 2
    # No job has finished, so no job length is known: one job per worker, the
    # rest stay queued, in order.
    assert [len(w.inflight) for w in st.workers] == [1, 1]
    sent = [w.inflight[0] for w in st.workers]
    assert sorted(job.token for job in sent) == [0, 1]
    for w in st.workers:
        assert w.inflight[0].state == SENT and w.inflight[0].worker is w
    assert list(st.pending) == jobs[2:] and all(job.state == PENDING for job in jobs[2:])
    assert not st.taken
    assert parts.results(sent) == {0: 1, 1: 2}


@pytest.mark.timeout(120)
def test_dispatch_fails_only_the_jobs_that_cannot_be_pickled(parts_factory: Callable[..., Parts]) -> None:
    parts = parts_factory(1)
    for _ in range(50):
        parts.dispatcher.learn(1e-7)  # short jobs: the whole queue fits in one batch
    assert parts.dispatcher.prefetch == 64
    good = [parts.queue("a", add, 1, 1), parts.queue("c", add, 3, 1), parts.queue("e", add, 5, 1)]
    parts.queue("b", add, threading.Lock())
    parts.queue("d", add, ErrorAtPickle())
    parts.queue("f", add, ExitOnPickle())  # a SystemExit while pickling fails its job, not the dispatcher
    out: list[Notice] = []
    parts.dispatcher.dispatch(out)
    assert [(n[0], n[1], n[2], n[4]) for n in out] == [("d", t, False, None) for t in "bdf"]
    for n in out:
        assert isinstance(n[3], SerializationError)
        assert "cannot pickle argument of" in str(n[3])
    st = parts.state
    assert set(st.table) == {"a", "c", "e"}
    assert st.new  # the places the failed jobs held are free: look at the queue again
    (w,) = st.workers
    assert list(w.inflight) == good
    assert parts.results(good) == {"a": 2, "c": 4, "e": 6}


@pytest.mark.timeout(120)
def test_jobs_refused_by_on_sent_are_never_sent_and_get_no_notice(parts_factory: Callable[..., Parts]) -> None:
    offered: list[list[object]] = []

    def on_sent(tokens: list[object]) -> list[int]:
        offered.append(tokens)
        return [i for i, t in enumerate(tokens) if t == "b"]

    parts = parts_factory(1, on_sent)
    for _ in range(50):
        parts.dispatcher.learn(1e-7)
    a, b, c = parts.queue("a", add, 1, 1), parts.queue("b", add, 2, 1), parts.queue("c", add, 3, 1)
    out: list[Notice] = []
    parts.dispatcher.dispatch(out)
    assert offered == [["a", "b", "c"]]
    assert out == []
    st = parts.state
    assert b.killed and "b" not in st.table and not st.taken
    (w,) = st.workers
    assert list(w.inflight) == [a, c]
    assert parts.results([a, c]) == {"a": 2, "c": 4}


def test_learn_keeps_prefetch_between_one_and_64_jobs() -> None:
    parts = Parts(1)
    try:
        d = parts.dispatcher
        assert d.prefetch == 1  # nothing learnt: one job per worker
        d.learn(1.0)
        assert d.prefetch == 1
        for _ in range(100):
            d.learn(1e-7)
        assert d.prefetch == 64
        for _ in range(100):
            d.learn(0.001)  # about 2 ms of queued work per worker
        assert d.prefetch == 2
    finally:
        parts.close()


@pytest.mark.timeout(120)
def test_manager_fails_the_head_of_a_dead_worker_and_requeues_the_rest_in_order(
    parts_factory: Callable[..., Parts], tmp_path: Path
) -> None:
    parts = parts_factory(1)
    for _ in range(50):
        parts.dispatcher.learn(1e-7)
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    head = parts.queue("head", block, started, release, 60.0)
    rest = [parts.queue("x", add, 1, 1), parts.queue("y", add, 2, 1)]
    parts.dispatcher.dispatch([])
    st = parts.state
    (w,) = st.workers
    assert list(w.inflight) == [head, *rest]

    notices: list[tuple[str, object, Any]] = []
    done = threading.Event()

    def on_start(token: object, pid: int) -> None:
        notices.append(("start", token, pid))

    def on_done(token: object, ok: bool, value: Any, pid: int | None) -> None:
        notices.append(("done", token, (ok, value, pid)))
        done.set()

    # A dispatch that sends nothing: the jobs put back stay in the queue, where
    # the test can look at them.
    manager = Manager(
        st,
        parts.sel,
        dispatch=lambda out: None,
        learn=parts.dispatcher.learn,
        idle_timeout=None,
        start_timeout=None,
        on_start=on_start,
        on_done=on_done,
    )
    thread = threading.Thread(target=manager.run, daemon=True)
    thread.start()
    try:
        wait_for_file(started, 60)
        os.kill(w.pid, signal.SIGKILL)
        assert done.wait(60), "no on_done for the head"
        kind, token, (ok, err, pid) = notices[-1]
        assert (kind, token, ok, pid) == ("done", "head", False, w.pid)
        assert isinstance(err, WorkerCrashed) and err.exitcode == -signal.SIGKILL
        assert notices[0] == ("start", "head", w.pid)
        with st.lock:
            assert list(st.pending) == rest
            assert all(job.state == PENDING and job.worker is None and not job.started for job in rest)
            assert st.workers == [] and st.ready == 0 and w.dead
            assert set(st.table) == {"x", "y"}
    finally:
        with st.lock:  # what WorkerPool.shutdown() does to the state
            st.shutdown = True
            for job in st.pending:
                st.claim(job)
            st.pending.clear()
            st.wakeup.poke()
        thread.join(60)
        parts.closed = not thread.is_alive()  # the manager closed what it owns on its way out
    assert not thread.is_alive()
    assert st.wakeup.w == -1
    assert [n[0] for n in notices] == ["start", "done"]
