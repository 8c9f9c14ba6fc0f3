"""RunCondition: the per-run lock and condition variable, with real threads."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import wait_for

from woflo._condition import RunCondition

pytestmark = pytest.mark.timeout(30)


def test_wait_times_out_and_leaves_no_waiter_behind() -> None:
    cond = RunCondition()
    with cond:
        t0 = time.monotonic()
        assert cond.wait(0.05) is False
        assert time.monotonic() - t0 >= 0.04
        assert not cond._waiters
        assert cond.wait(0) is False


def test_notify_all_wakes_every_waiter() -> None:
    cond = RunCondition()
    woken: list[bool] = []

    def waiter() -> None:
        with cond:
            woken.append(cond.wait(10))

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for t in threads:
        t.start()

    # Seeing 4 waiters under the lock means each has released it inside wait().
    def all_waiting() -> bool:
        with cond:
            return len(cond._waiters or ()) == 4

    wait_for(all_waiting, 10, "4 waiters")
    with cond:
        cond.notify_all()
    for t in threads:
        t.join(10)
    assert woken == [True] * 4


def test_wait_releases_a_reentrant_hold_and_restores_it() -> None:
    cond = RunCondition()
    other_got_it = threading.Event()

    def other() -> None:
        with cond:
            other_got_it.set()
            cond.notify_all()

    with cond, cond:  # held twice
        threading.Thread(target=other).start()
        assert cond.wait(10) is True
        assert other_got_it.is_set()
        assert cond._is_owned()
    assert not cond._is_owned()


def test_a_future_result_waits_across_threads() -> None:
    from woflo import ThreadRunner

    with ThreadRunner(2) as ex:
        runs = [ex.submit(time.sleep, 0.01) for _ in range(50)]
        assert all(run.result(10) is None for run in runs)
        gate = threading.Event()
        slow = ex.submit(gate.wait, 10)
        assert not slow.wait(0.02)
        gate.set()
        assert slow.result(10) is True
