"""Scheduler: the one timer thread of a runner, with real time and threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import wait_for

from woflo._scheduler import Scheduler

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    errors: list[BaseException] = []
    s = Scheduler("test-timers", errors.append)
    yield s
    s.close()
    assert not errors


def test_timers_fire_in_deadline_order_and_cancelled_ones_never(scheduler: Scheduler) -> None:
    fired: list[str] = []
    done = threading.Event()
    scheduler.call_later(0.15, lambda: (fired.append("c"), done.set()))
    scheduler.call_later(0.05, lambda: fired.append("a"))
    dropped = scheduler.call_later(0.08, lambda: fired.append("never"))
    scheduler.call_later(0.10, lambda: fired.append("b"))
    dropped.cancel()
    assert done.wait(10)
    assert fired == ["a", "b", "c"]


def test_an_earlier_timer_wakes_a_thread_sleeping_past_cancelled_ones(scheduler: Scheduler) -> None:
    # The thread sleeps until the latest cancelled deadline it has dropped
    # (an hour here) instead of being woken by every later timer; a timer due
    # before that must still wake it.
    for _ in range(100):
        scheduler.call_later(3600, lambda: None).cancel()
    # The thread sleeps until their deadline (not forever: _wake_at is finite).
    wait_for(lambda: 1800 < scheduler._wake_at - time.monotonic() < 7200, 10, "the thread to sleep an hour")
    fired = threading.Event()
    scheduler.call_later(0.05, fired.set)
    assert fired.wait(20)  # far sooner than the hour it sleeps otherwise


def test_later_timers_do_not_wake_the_thread(scheduler: Scheduler) -> None:
    first = threading.Event()
    # Due in 30 s: it cannot fire (and leave the thread with nothing to sleep
    # until) while the later timers below are armed, however slow the machine.
    timer = scheduler.call_later(30, first.set)
    wait_for(lambda: scheduler._wake_at == timer.when, 10, "the thread to sleep until the first timer")
    wakeups = 0
    cond = scheduler._cond
    real_notify = cond.notify

    def counting_notify(n: int = 1) -> None:
        nonlocal wakeups
        wakeups += 1
        real_notify(n)

    cond.notify = counting_notify  # type: ignore[method-assign]
    for _ in range(1000):
        scheduler.call_later(60, lambda: None).cancel()
    assert wakeups == 0
    # An earlier timer still wakes it.
    sooner = threading.Event()
    scheduler.call_later(0, sooner.set)
    assert sooner.wait(10) and wakeups == 1
    assert not first.is_set()


def test_armed_and_cancelled_timers_do_not_pile_up(scheduler: Scheduler) -> None:
    for _ in range(20_000):
        scheduler.call_later(60, lambda: None).cancel()
    assert len(scheduler._heap) < 2048


def test_many_threads_arm_timers_at_once(scheduler: Scheduler) -> None:
    count = 0
    lock = threading.Lock()
    all_fired = threading.Event()

    def hit() -> None:
        nonlocal count
        with lock:
            count += 1
            if count == 800:
                all_fired.set()

    def arm() -> None:
        for i in range(200):
            scheduler.call_later(0.001 * (i % 20), hit)

    threads = [threading.Thread(target=arm) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all_fired.wait(10)
    assert count == 800


def test_a_cancelled_timer_lets_go_of_its_callback(scheduler: Scheduler) -> None:
    # The callback usually closes over the attempt that holds the timer: kept,
    # it would be a reference cycle for the garbage collector while the timer
    # waits in the heap.
    import gc
    import weakref

    class Attempt:
        timer: Any = None

    def armed_and_cancelled() -> weakref.ref[Attempt]:
        attempt = Attempt()
        attempt.timer = scheduler.call_later(60, lambda: print(attempt))
        attempt.timer.cancel()
        return weakref.ref(attempt)

    gc.disable()
    try:
        gone = armed_and_cancelled()
        assert gone() is None, "freed by reference counting, without a collection"
    finally:
        gc.enable()
