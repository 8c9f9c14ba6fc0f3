"""One job at a time: a lone job goes from the submitting thread straight to an idle worker (issue 13, item 4)."""

from __future__ import annotations

import logging
import os
import selectors
import threading
from typing import Any

import pytest
from funcs import TASKLOG, add, block, log_records, touch
from helpers import wait_for

from woflo import ProcessRunner, SerializationError
from woflo._process import WorkerPool
from woflo._process.dispatch import Dispatcher
from woflo._process.state import PoolState


@pytest.mark.timeout(60)
def test_lone_job_reaches_idle_worker_while_manager_is_busy(tmp_path: Any) -> None:
    # The manager thread is held in a done-callback: a job submitted now still
    # reaches the idle worker and runs (the old code queued it for the manager,
    # so it ran only once the callback returned).
    gate, in_callback = threading.Event(), threading.Event()
    started, release, ran = str(tmp_path / "started"), str(tmp_path / "release"), str(tmp_path / "ran")
    with ProcessRunner(1) as r:
        assert r.submit(add, 1, 2).result(timeout=30) == 3  # the worker is up and idle
        first = r.submit(block, started, release)
        first.add_done_callback(lambda _: (in_callback.set(), gate.wait(30)))
        wait_for(lambda: os.path.exists(started), timeout=30)
        open(release, "w").close()
        assert in_callback.wait(30)  # the manager thread is inside the callback now
        try:
            second = r.submit(touch, ran)
            wait_for(lambda: os.path.exists(ran), timeout=20, what="the job to run while the manager is busy")
        finally:
            gate.set()
        assert first.result(timeout=30) == "released"
        assert second.result(timeout=30) == ran


class _CountedReduce:
    calls = 0

    def __reduce__(self) -> Any:
        type(self).calls += 1
        raise TypeError("not today")


@pytest.mark.timeout(60)
def test_unpicklable_argument_of_a_direct_job_fails_once() -> None:
    # Pickled on the submitting thread; the manager reports the error from it,
    # without pickling the call a second time (user code runs once).
    with ProcessRunner(1) as r:
        assert r.submit(add, 1, 1).result(timeout=30) == 2
        _CountedReduce.calls = 0
        run = r.submit(add, _CountedReduce(), 1)
        with pytest.raises(SerializationError, match="cannot pickle argument"):
            run.result(timeout=30)
        assert _CountedReduce.calls == 1
        assert r.submit(add, 2, 2).result(timeout=30) == 4


@pytest.mark.timeout(60)
def test_a_direct_job_is_started_by_the_submitting_thread_and_done_after() -> None:
    # A lone job sent straight to an idle worker: the submitting thread fires
    # its on_start (no manager wake-up for it), and its on_done comes after.
    seen: list[tuple[str, object, int]] = []
    pool = WorkerPool(
        2,
        on_start=lambda token, pid: seen.append(("s", token, threading.get_ident())),
        on_done=lambda token, ok, value, pid: seen.append(("d", token, threading.get_ident())),
    )
    me = threading.get_ident()
    try:
        pool.submit(0, add, (1,), {})
        wait_for(lambda: any(n[:2] == ("d", 0) for n in seen), timeout=30)
        for token in range(1, 51):  # one at a time: each goes the direct way
            before = len(seen)
            pool.submit(token, add, (token,), {})
            wait_for(lambda token=token: any(n[:2] == ("d", token) for n in seen), timeout=30)
            (start, done) = seen[before:]
            assert start == ("s", token, me)
            assert done[:2] == ("d", token)
    finally:
        pool.shutdown()


@pytest.mark.timeout(60)
def test_what_comes_while_a_direct_start_is_fired_waits_for_it() -> None:
    # The submitting thread is still in on_start when the job's result and
    # its log record reach the manager: the manager holds them back, and they
    # are fired after on_start returns, in order, never alongside it.
    seen: list[tuple[str, object]] = []
    records: list[logging.LogRecord] = []
    in_start = threading.Event()
    pool: WorkerPool | None = None

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            seen.append(("l", record.getMessage()))

    def on_start(token: object, pid: int) -> None:
        assert pool is not None
        seen.append(("s", token))
        if token == "watched":
            in_start.set()
            # Until the manager has read both the record and the result.
            wait_for(lambda: len(pool._state.announcing.get(token, ())) == 2, timeout=30)

    def on_done(token: object, ok: bool, value: object, pid: int | None) -> None:
        seen.append(("d", token))

    handler = Keep(logging.INFO)
    logger = logging.getLogger(TASKLOG)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the worker drops records below the parent's level
    pool = WorkerPool(1, on_start=on_start, on_done=on_done)
    try:
        pool.submit("warm", add, (1,), {})
        wait_for(lambda: ("d", "warm") in seen, timeout=30)
        pool.submit("watched", log_records, (1, "from the task"), {})
        wait_for(lambda: ("d", "watched") in seen, timeout=30)
        assert seen[-3:] == [("s", "watched"), ("l", "from the task 0"), ("d", "watched")]
        assert in_start.is_set()
        assert pool._state.announcing == {}
    finally:
        pool.shutdown()
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_prefetch_survives_zero_durations() -> None:
    # A direct job whose result is read before its start was announced is
    # recorded as taking no time; a run of those decays the average to a
    # denormal, and int(0.002 / 5e-324) raised OverflowError on the manager thread.
    sel = selectors.DefaultSelector()
    try:
        d = Dispatcher(PoolState(), sel, ctx=None, fork=False, init=None, max_workers=1, max_tasks=None, on_sent=None)
        d.learn(1e-3)
        for _ in range(5000):
            d.learn(0.0)
        assert d.prefetch == 64
    finally:
        sel.close()
