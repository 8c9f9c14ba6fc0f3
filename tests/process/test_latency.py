"""One job at a time: a lone job goes from the submitting thread straight to an idle worker (issue 13, item 4)."""

from __future__ import annotations

import os
import selectors
import threading
from typing import Any

import pytest
from funcs import add, block, touch
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
def test_direct_job_callbacks_on_manager_thread_start_before_done() -> None:
    seen: list[tuple[str, object, bool]] = []
    done = threading.Event()
    pool: WorkerPool | None = None

    def on_start(token: object, pid: int) -> None:
        assert pool is not None
        seen.append(("s", token, pool.on_manager_thread()))

    def on_done(token: object, ok: bool, value: object, pid: int | None) -> None:
        assert pool is not None
        seen.append(("d", token, pool.on_manager_thread()))
        if token == 50:
            done.set()

    pool = WorkerPool(2, on_start=on_start, on_done=on_done)
    try:
        pool.submit(0, add, (1,), {})
        wait_for(lambda: ("d", 0, True) in seen, timeout=30)
        for token in range(1, 51):  # one at a time: each goes the direct way
            before = len(seen)
            pool.submit(token, add, (token,), {})
            wait_for(lambda token=token: ("d", token, True) in seen, timeout=30)
            assert seen[before:] == [("s", token, True), ("d", token, True)]
        assert done.is_set()
    finally:
        pool.shutdown()


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
