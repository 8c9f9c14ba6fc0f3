"""Concurrency and rate limits (issue #12 item 2): ``max_concurrency=``, ``rate_limit=``, ``woflo.limit``.

The tasks record their own spans (`funcs.record_span`: start and end on the
machine's one monotonic clock, from any process). A slot is held from before
a task starts until after it ends, so the spans' overlap bounds the slots'
from below, exactly: no timing tolerance. Rate checks count starts against
a time read before the first submission, never elapsed-time upper bounds.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as ResultTimeout  # the builtin only since 3.11
from pathlib import Path
from typing import Any

import funcs
import pytest

import woflo
from woflo import DeadlineExceeded, ProcessRunner, RunState, SequentialRunner, ThreadRunner, WofloExecutor, task
from woflo.testing import capture_events, wait_for


def _spans(path: Path) -> list[tuple[float, float]]:
    if not path.exists():
        return []
    return [(float(a), float(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    # Sweep the starts and ends; an end at the same instant as a start counts first.
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1]))
    most = current = 0
    for _, step in points:
        current += step
        most = max(most, current)
    return most


def _check_rate(starts: list[float], count: int, period: float, since: float) -> None:
    """Starts allowed by ``count`` per ``period`` from ``since`` on (before the first token was taken)."""
    for i, start in enumerate(sorted(starts), 1):
        allowed = count * (1 + math.floor((start - since) / period))
        assert i <= allowed, (
            f"start {i} came {start - since:.3f}s after the first submission: {count}/{period}s allows {allowed}"
        )


def _name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


# -- limits respected under load, on every runner ---------------------------------------


@pytest.mark.timeout(120)
def test_max_concurrency_is_never_exceeded(make: Any, tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    limited = task(funcs.record_span, max_concurrency=2)
    ex = make(4)
    runs = [ex.submit(limited, str(spans), 0.02) for _ in range(12)]
    for run in runs:
        run.result(timeout=60)
    assert len(_spans(spans)) == 12
    assert _max_overlap(_spans(spans)) <= 2
    assert all(len(run.attempts) == 1 for run in runs)


@pytest.mark.timeout(120)
def test_a_rate_limit_bounds_the_starts(make: Any, tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    limited = task(funcs.record_span, rate_limit=(4, 0.25))
    ex = make(4)
    since = time.monotonic()
    runs = [ex.submit(limited, str(spans)) for _ in range(10)]
    for run in runs:
        run.result(timeout=60)
    starts = [s for s, _ in _spans(spans)]
    assert len(starts) == 10
    _check_rate(starts, 4, 0.25, since)


@pytest.mark.timeout(60)
def test_limits_given_to_the_runner_and_to_an_executor(tmp_path: Path) -> None:
    for i, ex in enumerate(
        [ThreadRunner(6, max_concurrency=2), WofloExecutor(6, runner=ThreadRunner, max_concurrency=2)]
    ):
        spans = tmp_path / f"spans{i}"
        with ex:
            runs = [ex.submit(funcs.record_span, str(spans), 0.02) for _ in range(10)]
            for run in runs:
                run.result(timeout=30)
        assert len(_spans(spans)) == 10
        assert _max_overlap(_spans(spans)) <= 2


@pytest.mark.timeout(120)
def test_a_named_limit_is_shared_by_threads_and_processes(tmp_path: Path) -> None:
    name = _name()
    api = woflo.limit(name, max_concurrency=2, rate_limit="40/s")
    spans = tmp_path / "spans"
    on_threads = task(funcs.record_span, limits=name)
    on_processes = task(funcs.record_span, limits=[name], name="other")
    since = time.monotonic()
    with ThreadRunner(4) as threads, ProcessRunner(2) as processes:
        runs = []
        for _ in range(8):
            runs.append(threads.submit(on_threads, str(spans), 0.02))
            runs.append(processes.submit(on_processes, str(spans), 0.02))
        for run in runs:
            run.result(timeout=60)
    found = _spans(spans)
    assert len(found) == 16
    assert _max_overlap(found) <= 2
    _check_rate([s for s, _ in found], 40, 1.0, since)
    assert api.running == 0 and api.waiting == 0


@pytest.mark.timeout(60)
def test_waiting_runs_start_in_the_order_they_came() -> None:
    release = threading.Event()
    order: list[int] = []

    def hold() -> None:
        assert release.wait(30)

    limited = task(hold, max_concurrency=1, runner=ThreadRunner)
    first = limited()
    record = task(order.append, max_concurrency=1, runner=ThreadRunner)
    # A task copy counts against the same limit as its original.
    blocker = limited.options(retries=0)
    assert blocker._policy.limits is not None and limited._policy.limits is not None
    assert blocker._policy.limits.own is limited._policy.limits.own
    gate = woflo.limit(_name(), max_concurrency=1)
    one = task(hold, limits=gate, runner=ThreadRunner)
    two = task(order.append, limits=gate, runner=SequentialRunner)
    head = one()
    waiting = [two(i) for i in range(5)]
    assert all(run.state is RunState.PENDING for run in waiting)
    release.set()
    for run in [first, head, *waiting]:
        run.result(timeout=30)
    assert order == [0, 1, 2, 3, 4]
    record(9).result(timeout=30)


# -- retries and timeouts ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_each_retry_waits_for_a_slot_and_the_backoff_holds_none(tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    started = tmp_path / "other-started"
    gate = woflo.limit(_name(), max_concurrency=1)
    with ThreadRunner(4) as ex:
        flaky = task(funcs.record_span, limits=gate, retries=1, retry_wait_time=60)
        retrying = ex.submit(flaky, str(spans), 0, str(tmp_path / "failed-once"))
        wait_for(lambda: retrying.state is RunState.RETRYING, what="the first attempt failed")
        # The retry waits 60 s without a slot: another run gets it meanwhile.
        other = ex.submit(task(funcs.record_span, limits=gate), str(started))
        assert other.result(timeout=30) > 0
        assert retrying.stop()
    assert gate.running == 0 and gate.waiting == 0

    quick_retries = task(funcs.record_span, max_concurrency=1, retries=2)
    with ThreadRunner(4) as ex:
        runs = [ex.submit(quick_retries, str(spans), 0.01, str(tmp_path / f"fail-{i}")) for i in range(6)]
        for run in runs:
            run.result(timeout=30)
    assert [len(run.attempts) for run in runs] == [2] * 6
    assert _max_overlap(_spans(spans)[1:]) <= 1  # every attempt of the second batch, one at a time


@pytest.mark.timeout(60)
def test_the_timeout_counts_from_the_start_not_the_wait() -> None:
    release = threading.Event()
    gate = woflo.limit(_name(), max_concurrency=1)
    with ThreadRunner(2) as ex:
        holder = ex.submit(task(release.wait, limits=gate), 30)
        quick = ex.submit(task(time.monotonic, limits=gate, timeout=0.2))
        with pytest.raises(ResultTimeout):
            quick.result(timeout=0.6)  # it waits, longer than its timeout, and has not failed
        assert quick.state is RunState.PENDING and not quick.attempts
        release.set()
        assert holder.result(timeout=30) is True
        quick.result(timeout=30)
        assert [a.outcome for a in quick.attempts] == ["succeeded"]


@pytest.mark.timeout(60)
def test_a_deadline_passes_while_the_run_waits() -> None:
    release = threading.Event()
    gate = woflo.limit(_name(), max_concurrency=1)
    with ThreadRunner(2) as ex:
        holder = ex.submit(task(release.wait, limits=gate), 30)
        late = ex.submit(task(time.monotonic, limits=gate, deadline=0.1))
        with pytest.raises(DeadlineExceeded):
            late.result(timeout=30)
        assert gate.waiting == 0 and gate.running == 1
        release.set()
        holder.result(timeout=30)
    assert gate.running == 0


# -- cancel, stop and shutdown of waiting runs --------------------------------------------


@pytest.mark.timeout(60)
def test_cancel_and_stop_of_waiting_runs_leak_no_slot() -> None:
    release = threading.Event()
    gate = woflo.limit(_name(), max_concurrency=2)
    with ThreadRunner(6) as ex:
        holders = [ex.submit(task(release.wait, limits=gate), 30) for _ in range(2)]
        waiting = [ex.submit(task(time.monotonic, limits=gate)) for _ in range(3)]
        assert gate.waiting == 3
        assert waiting[0].cancel()
        assert waiting[1].stop()
        assert gate.waiting == 1
        for run in waiting[:2]:
            with pytest.raises(CancelledError):
                run.result(timeout=0)
        release.set()
        for run in [*holders, waiting[2]]:
            run.result(timeout=30)
        wait_for(lambda: gate.running == 0, what="every slot given back")
        # Both slots are free: two runs that wait for each other both get one.
        barrier = threading.Barrier(2, timeout=20)
        pair = [ex.submit(task(barrier.wait, limits=gate)) for _ in range(2)]
        assert sorted(run.result(timeout=30) for run in pair) == [0, 1]


@pytest.mark.timeout(60)
def test_a_stop_of_a_running_attempt_gives_its_slot_to_the_next(make: Any, kind: Any) -> None:
    if not kind.interrupts:
        pytest.skip(f"{kind.name} cannot stop a running attempt")
    gate = woflo.limit(_name(), max_concurrency=1)
    ex = make(2)
    running = ex.submit(task(time.sleep, limits=gate), 60)
    wait_for(lambda: running.state is RunState.RUNNING, what="the first run started")
    nxt = ex.submit(task(abs, limits=gate), -3)
    assert nxt.state is RunState.PENDING
    assert running.stop()
    assert nxt.result(timeout=30) == 3
    wait_for(lambda: gate.running == 0, what="the slot given back")


@pytest.mark.timeout(60)
def test_shutdown_cancel_futures_cancels_the_waiting_runs(make: Any) -> None:
    release = threading.Event()
    gate = woflo.limit(_name(), max_concurrency=1)
    ex = make(4)
    holder = ThreadRunner(1)
    try:
        held = holder.submit(task(release.wait, limits=gate), 30)
        waiting = [ex.submit(task(abs, limits=gate), -i) for i in range(4)]
        assert gate.waiting == 4
        ex.shutdown(wait=False, cancel_futures=True)
        for run in waiting:
            with pytest.raises(CancelledError):
                run.result(timeout=10)
        assert gate.waiting == 0
        release.set()
        held.result(timeout=30)
        ex.shutdown(wait=True)  # nothing left to wait for
    finally:
        release.set()
        holder.shutdown(wait=True)
    wait_for(lambda: gate.running == 0, what="the slot given back")


@pytest.mark.timeout(60)
def test_shutdown_wait_waits_for_the_waiting_runs() -> None:
    gate = woflo.limit(_name(), rate_limit=(2, 0.2))
    ex = ThreadRunner(4)
    runs = [ex.submit(task(abs, limits=gate), -i) for i in range(6)]
    ex.shutdown(wait=True)
    assert [run.result(timeout=0) for run in runs] == [0, 1, 2, 3, 4, 5]


# -- events ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_wait_is_an_event_with_its_reason() -> None:
    release = threading.Event()
    name = _name()
    woflo.limit(name, max_concurrency=1)
    with capture_events() as events, ThreadRunner(4) as ex:
        holder = ex.submit(task(release.wait, limits=name), 30)
        waits = ex.submit(task(abs, limits=name), -1)
        throttled = task(abs, rate_limit="1/minute")
        first, second = ex.submit(throttled, 1), ex.submit(throttled, 2)
        release.set()
        for run in (holder, waits, first):
            run.result(timeout=30)
        assert second.stop()
    waiting = [e for e in events if e["event"] == "task.waiting"]
    by_run = {e["run_id"]: e for e in waiting}
    assert by_run[waits.run_id]["reason"] == "concurrency"
    assert by_run[waits.run_id]["limit"] == name
    assert by_run[waits.run_id]["attempt"] == 1
    assert by_run[second.run_id]["reason"] == "rate"
    assert "limit" not in by_run[second.run_id]  # the task's own limit has no name
    assert holder.run_id not in by_run and first.run_id not in by_run
    assert woflo._events.event_line("task.waiting", by_run[waits.run_id]).endswith(
        f"attempt 1 waits for its concurrency limit of limit {name!r}"
    )


@pytest.mark.timeout(60)
def test_a_wait_is_told_before_a_freed_slot_can_start_the_attempt() -> None:
    # A run's task.waiting (on_wait) can never come after its attempt.started:
    # a slot freed while on_wait runs (here: from another thread, inside it)
    # does not start the waiting attempt; the thread telling the wait carries
    # on with it once it has told it. on_wait runs without the limit's lock
    # (a logging handler must be able to use the limit from another thread).
    from woflo._limits import Limit, Ticket

    limit = Limit(None, max_concurrency=1)
    started: list[str] = []
    during: list[tuple[bool, list[str]]] = []

    def free_the_slot_from_another_thread(reason: str, _: Limit) -> None:
        def free() -> None:
            taken = limit._lock.acquire(blocking=False)
            if taken:
                limit._lock.release()
            for ticket in holder.release():
                if ticket.enter():
                    ticket.start()
            during.append((taken, list(started)))

        thread = threading.Thread(target=free)
        thread.start()
        thread.join(30)

    holder = Ticket((limit,), lambda: started.append("holder"), lambda reason, limit: None)
    waiter = Ticket((limit,), lambda: started.append("waiter"), free_the_slot_from_another_thread)
    assert holder.enter()
    # The slot came while the wait was told: enter() says go, nobody started it yet.
    assert waiter.enter()
    assert during == [(True, [])]
    assert limit.running == 1 and limit.waiting == 0
    waiter.start()
    assert started == ["waiter"]


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_concurrency": 0}, ValueError),
        ({"max_concurrency": -1}, ValueError),
        ({"max_concurrency": True}, TypeError),
        ({"max_concurrency": "2"}, TypeError),
        ({"rate_limit": "ten per second"}, ValueError),
        ({"rate_limit": "10/fortnight"}, ValueError),
        ({"rate_limit": "0/s"}, ValueError),
        ({"rate_limit": (0, 1.0)}, ValueError),
        ({"rate_limit": (1, 0)}, ValueError),
        ({"rate_limit": (1, float("inf"))}, ValueError),
        ({"rate_limit": (1, "s")}, TypeError),
        ({"rate_limit": (1.5, 1)}, TypeError),
        ({"rate_limit": 10}, TypeError),
        ({"limits": 3}, TypeError),
        ({"limits": ["api", 3]}, TypeError),
        ({"limits": ""}, ValueError),
    ],
)
def test_bad_limits_are_refused_at_the_call(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        task(**options)
    with pytest.raises(error):
        ThreadRunner(1, **options)
    with pytest.raises(error):
        WofloExecutor(runner=SequentialRunner, **options)
    with pytest.raises(error):
        task(abs).options(**options)


def test_rate_strings() -> None:
    from woflo._limits import parse_rate

    assert parse_rate("10/s") == (10, 1.0)
    assert parse_rate("10/second") == (10, 1.0)
    assert parse_rate("100/minute") == (100, 60.0)
    assert parse_rate("5 per 2s") == (5, 2.0)
    assert parse_rate("3/500ms") == (3, 0.5)
    assert parse_rate("1/hours") == (1, 3600.0)
    assert parse_rate((10, 1)) == (10, 1.0)


def test_a_limit_name_is_looked_up_at_the_first_submission() -> None:
    name = _name()
    uses_it = task(abs, limits=name, runner=SequentialRunner)  # defined later: fine here
    with pytest.raises(ValueError, match=f"no limit named '{name}'"):
        uses_it(-1)
    with pytest.raises(ValueError, match="no limit named"):
        SequentialRunner(limits=name).submit(abs, -1)
    with pytest.raises(ValueError, match="give max_concurrency=, rate_limit= or both"):
        woflo.limit(name)
    with pytest.raises(TypeError):
        woflo.limit("", max_concurrency=1)
    defined = woflo.limit(name, max_concurrency=1)
    assert uses_it(-1).result(timeout=10) == 1
    # Defining it again changes it in place.
    assert woflo.limit(name, max_concurrency=3, rate_limit="5/s") is defined
    assert (defined.max_concurrency, defined.rate_limit) == (3, (5, 1.0))
    assert "running=0 waiting=0" in repr(defined)


def test_no_limit_no_ticket() -> None:
    # The attempt-start path reads one attribute for a policy without limits.
    assert woflo.Policy.build(retries=2).limits is None
    run = SequentialRunner().submit(abs, -2)
    assert run.result() == 2
