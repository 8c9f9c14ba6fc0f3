"""Runs as inputs: a TaskRun among a submission's arguments is waited for and replaced by its result."""

from __future__ import annotations

import asyncio
import pickle
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import funcs
import pytest
from helpers import wait_for, wait_freed

from woflo import (
    AsyncRunner,
    ProcessRunner,
    RunState,
    SequentialRunner,
    TaskRun,
    ThreadRunner,
    UpstreamFailed,
    WofloError,
    task,
    unresolved,
)
from woflo.testing import RunnerKind, capture_events

pytestmark = pytest.mark.timeout(90)

Make = Callable[..., Any]


class Gate:
    """A thread run whose value is released by the test: what it feeds cannot start before."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.runner = ThreadRunner(1)

    def run(self, value: object) -> TaskRun[Any]:
        event = self.event

        def wait_for_gate() -> object:
            assert event.wait(60), "the test never opened the gate"
            return value

        return self.runner.submit(wait_for_gate)

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open()
    g.runner.shutdown(wait=True)


# -- the reported failure ------------------------------------------------------------


def test_double_of_double_with_default_tasks_is_twelve() -> None:
    # Was: SerializationError "cannot pickle ... RunCondition" on the default
    # (process) runner; the TaskRun itself handed to the task on threads.
    double = task(funcs.double)
    assert double(double(3)).result(timeout=60) == 12
    threaded = task(funcs.double, runner=ThreadRunner)
    assert threaded(threaded(3)).result(timeout=60) == 12


# -- every runner kind -----------------------------------------------------------------


def test_chain_diamond_and_fan_in(make: Make) -> None:
    ex = make()
    a = ex.submit(funcs.add, 1, 2)  # 3
    chain = ex.submit(funcs.double, ex.submit(funcs.double, a))  # 12
    left, right = ex.submit(funcs.add, a, 10), ex.submit(funcs.add, a, b=20)  # 13, 23
    diamond = ex.submit(funcs.total, left, right)  # 36
    fan_in = ex.submit(funcs.total, *[ex.submit(funcs.add, i) for i in range(10)])  # 45
    assert (chain.result(timeout=60), diamond.result(timeout=60), fan_in.result(timeout=60)) == (12, 36, 45)
    assert [r.state for r in (chain, diamond, fan_in)] == [RunState.SUCCEEDED] * 3


def test_inputs_inside_containers_one_level_deep(make: Make) -> None:
    ex = make()
    a, b = ex.submit(funcs.add, 1), ex.submit(funcs.add, 2)
    got = ex.submit(funcs.capture, [a, 0], (b,), {"k": a}, frozenset({b}), x={a}, y=[b]).result(timeout=60)
    assert got == (([1, 0], (2,), {"k": 1}, frozenset({2})), {"x": {1}, "y": [2]})


def test_a_failure_propagates_through_chain_and_diamond(make: Make) -> None:
    ex = make()
    bad = ex.submit(funcs.boom, "no page")
    parsed = ex.submit(funcs.identity, bad)
    left, right = ex.submit(funcs.identity, parsed), ex.submit(funcs.add, 1, parsed)
    joined = ex.submit(funcs.total, left, right)
    for run in (parsed, left, right, joined):
        with pytest.raises(UpstreamFailed) as info:
            run.result(timeout=60)
        err = info.value
        # Still the root error's class, as a Dask dependent's error would be.
        assert isinstance(err, ValueError) and isinstance(err, WofloError)
        assert run.attempts == [], "a run whose input failed never starts"
    assert parsed.exception().__cause__ is bad.exception()  # type: ignore[union-attr]
    assert parsed.exception().upstream_run_id == bad.run_id  # type: ignore[union-attr]
    assert joined.exception().__cause__ in (left.exception(), right.exception())  # type: ignore[union-attr]
    assert "no page" in str(parsed.exception())


def test_a_cancelled_input_fails_its_consumers(make: Make, kind: RunnerKind, gate: Gate) -> None:
    ex = make()
    busy = ThreadRunner(1)
    try:
        blocker = busy.submit(gate.event.wait, 60)
        queued = busy.submit(funcs.add, 1)  # pending: the only worker is busy
        if kind.inline:  # its submit would wait for the input: cancel it first
            assert queued.cancel()
        consumer = ex.submit(funcs.double, queued)
        downstream = ex.submit(funcs.double, consumer)
        assert queued.cancel() or kind.inline
        for run in (consumer, downstream):
            with pytest.raises(UpstreamFailed, match="was cancelled") as info:
                run.result(timeout=60)
            assert isinstance(info.value, CancelledError)
            assert not run.cancelled(), "it failed: it was not cancelled itself"
        gate.open()
        assert blocker.result(timeout=60) is True
    finally:
        busy.shutdown(wait=True)


def test_an_input_stopped_while_its_consumer_waits(make: Make, kind: RunnerKind, tmp_path: Path) -> None:
    if kind.inline:
        pytest.skip(
            "an inline runner's submit waits for the inputs itself (test_a_sequential_consumer_waits_inside_submit)"
        )
    ex = make()
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    with ThreadRunner(1) as threads:
        running = threads.submit(funcs.block, started, release, 60)
        consumer = ex.submit(funcs.identity, running)
        wait_for(lambda: Path(started).exists(), 30, "the input to start")
        assert consumer.state is RunState.PENDING
        assert running.stop()
        with pytest.raises(UpstreamFailed, match="was cancelled"):
            consumer.result(timeout=60)
        Path(release).touch()


def test_a_waiting_run_can_be_cancelled(make: Make, kind: RunnerKind, gate: Gate) -> None:
    if kind.inline:
        pytest.skip(
            "an inline runner's submit waits for the inputs itself (test_a_sequential_consumer_waits_inside_submit)"
        )
    ex = make()
    source = gate.run(5)
    consumer = ex.submit(funcs.double, source)
    assert consumer.state is RunState.PENDING
    assert consumer.cancel()
    gate.open()
    assert source.result(timeout=60) == 5
    assert consumer.cancelled() and consumer.attempts == []


def test_map_takes_runs(make: Make) -> None:
    ex = make()
    runs = [ex.submit(funcs.add, i) for i in range(4)]
    assert list(ex.map(funcs.double, runs, timeout=60)) == [0, 2, 4, 6]


@pytest.mark.parametrize("chunksize", [2, 3])
def test_a_chunked_process_map_takes_runs_too(chunksize: int) -> None:
    # Each chunk is one run: it waits for the runs among its calls' arguments,
    # as chunksize=1 does (it failed with SerializationError: a TaskRun
    # inside a chunk was pickled).
    with ProcessRunner(2) as ex:
        runs = [ex.submit(funcs.add, i, 1) for i in range(5)]
        assert list(ex.map(funcs.add, runs, range(5), chunksize=chunksize, timeout=60)) == [1, 3, 5, 7, 9]
        failing = ex.submit(funcs.boom, "upstream")
        results = ex.map(funcs.add, [runs[0], failing], [0, 0], chunksize=chunksize, timeout=60)
        with pytest.raises(ValueError, match="upstream"):
            list(results)


# -- waiting holds nothing -----------------------------------------------------------


def test_a_waiting_run_holds_no_worker(gate: Gate) -> None:
    with ThreadRunner(1) as ex:
        consumer = ex.submit(funcs.double, gate.run(4))
        # The runner's only worker is free: another run goes through meanwhile.
        assert ex.submit(funcs.add, 5).result(timeout=60) == 5
        assert consumer.state is RunState.PENDING
        gate.open()
        assert consumer.result(timeout=60) == 8


def test_a_run_is_released_once_its_consumer_started(gate: Gate) -> None:
    class Payload:
        pass

    started, release = threading.Event(), threading.Event()

    def consume(payload: Payload) -> str:
        started.set()
        assert release.wait(60)
        return type(payload).__name__

    with ThreadRunner(2) as ex:
        source = ex.submit(lambda v: Payload(), gate.run(None))
        consumer = ex.submit(consume, source)
        source_ref = weakref.ref(source)
        gate.open()
        payload_ref = weakref.ref(source.result(timeout=60))
        assert started.wait(60)
        del source
        wait_freed(source_ref, "the input run, while its consumer runs")
        release.set()
        assert consumer.result(timeout=60) == "Payload"
        del consumer
        wait_freed(payload_ref, "the input's result, after its consumer ended")


# -- mixing runners ----------------------------------------------------------------------


def test_process_and_thread_runs_feed_each_other() -> None:
    with ThreadRunner(1) as threads, ProcessRunner(1) as processes:
        on_process = processes.submit(funcs.double, 3)
        on_thread = threads.submit(funcs.double, on_process)
        back = processes.submit(funcs.double, on_thread)
        assert back.result(timeout=60) == 24


def test_a_sequential_consumer_waits_inside_submit(gate: Gate) -> None:
    source = gate.run(21)
    opener = threading.Timer(0, gate.open)  # opens the gate while submit below waits
    opener.start()
    run = SequentialRunner().submit(funcs.double, source)
    assert run.done() and run.result() == 42
    opener.join()


def test_async_runs_and_thread_runs_feed_each_other() -> None:
    async def triple(x: int) -> int:
        await asyncio.sleep(0)
        return 3 * x

    with AsyncRunner() as aio, ThreadRunner(1) as threads:
        on_loop = aio.submit(triple, threads.submit(funcs.double, 2))
        assert threads.submit(funcs.double, on_loop).result(timeout=60) == 24


# -- after=, unresolved() -----------------------------------------------------------------


def test_after_orders_runs_without_passing_data(gate: Gate) -> None:
    order: list[str] = []

    def first() -> str:
        assert gate.event.wait(60)
        order.append("first")
        return "ignored"

    def second(x: int) -> int:
        order.append("second")
        return x

    with ThreadRunner(2) as ex:
        before = ex.submit(first)
        after = task(second).submit(7, executor=ex, after=[before])
        assert after.state is RunState.PENDING
        gate.open()
        assert after.result(timeout=60) == 7
        assert order == ["first", "second"]
        failed = ex.submit(funcs.boom)
        with pytest.raises(UpstreamFailed):
            task(second).submit(1, executor=ex, after=[failed]).result(timeout=60)
        with pytest.raises(TypeError, match="after= takes TaskRuns"):
            task(second).submit(1, executor=ex, after=[3])


def test_unresolved_passes_the_run_itself() -> None:
    with ThreadRunner(1) as ex:
        first = ex.submit(funcs.add, 1)
        got = ex.submit(funcs.capture, unresolved(first), [unresolved(first)], k=unresolved(first)).result(timeout=60)
        assert got == ((first, [first]), {"k": first})


# -- shutdown ----------------------------------------------------------------------------


def test_shutdown_cancel_futures_cancels_waiting_runs(make: Make, kind: RunnerKind, gate: Gate) -> None:
    if kind.inline:
        pytest.skip(
            "an inline runner's submit waits for the inputs itself (test_a_sequential_consumer_waits_inside_submit)"
        )
    ex = make()
    outside = ex.submit(funcs.double, gate.run(1))  # waits for another runner's run
    source = ex.submit(funcs.add, 1)  # 1
    inside = ex.submit(funcs.double, ex.submit(funcs.double, source))  # 4
    ex.shutdown(wait=False, cancel_futures=True)
    assert outside.cancelled()
    with pytest.raises(CancelledError, match=r"shutdown\(cancel_futures=True\)"):
        outside.result(0)
    # A run of the same runner waits on its inputs: cancelled, or (inputs
    # already done) finished; never failed because its inputs were cancelled.
    # (It expected 8 for double(double(1)): the rare finished case failed.)
    assert inside.cancelled() or inside.result(timeout=60) == 4
    gate.open()
    ex.shutdown(wait=True)


def test_shutdown_wait_waits_for_waiting_runs(gate: Gate) -> None:
    ex = ThreadRunner(1)
    consumer = ex.submit(funcs.double, gate.run(5))
    closer = threading.Thread(target=ex.shutdown, kwargs={"wait": True})
    closer.start()
    gate.open()
    closer.join(60)
    assert not closer.is_alive()
    assert consumer.result(timeout=0) == 10


# -- events and the error ------------------------------------------------------------------


def test_events_of_a_waiting_run_and_of_an_upstream_failure() -> None:
    # Capture around the runner: a run's task.* event is emitted just after its
    # waiters wake, and the runner's shutdown (joining its threads) waits for it.
    with capture_events() as events, ThreadRunner(2) as ex:
        a, b = ex.submit(funcs.add, 1), ex.submit(funcs.add, 2)
        ok = ex.submit(funcs.total, a, b, a)
        assert ok.result(timeout=60) == 4
        bad = ex.submit(funcs.boom, "down")
        failed = ex.submit(funcs.identity, bad)
        failed.exception(timeout=60)
    mine = [e for e in events if e["run_id"] == ok.run_id]
    assert [e["event"] for e in mine][:2] == ["task.submitted", "task.waiting"]
    assert mine[1]["inputs"] == [a.run_id, b.run_id]
    assert mine[-1]["event"] == "task.succeeded"
    theirs = [e for e in events if e["run_id"] == failed.run_id]
    assert [e["event"] for e in theirs] == ["task.submitted", "task.waiting", "task.failed"]
    end = theirs[-1]
    assert end["exception_type"] == "UpstreamFailed"
    assert end["upstream_run_id"] == bad.run_id
    assert end["attempt"] == 0
    assert "down" in end["reason"]


def test_upstream_failed_pickles_with_its_fields() -> None:
    exc = UpstreamFailed.wrap("input parse failed", KeyError("id"), "parse", "abc")
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, UpstreamFailed) and isinstance(back, KeyError)
    assert (back.upstream, back.upstream_run_id, str(back)) == ("parse", "abc", str(exc))
    # An UpstreamFailed of an UpstreamFailed keeps the root's class.
    again = UpstreamFailed.wrap("input x failed", exc, "x", "def")
    assert isinstance(again, KeyError) and again.__cause__ is exc


def test_threads_asking_a_new_runs_id_at_once_get_one_id() -> None:
    # A consumer's callback names its input (UpstreamFailed, on the thread
    # that ended the input) while the submitting thread names it in an
    # event: the lazily made id must be one.
    with ThreadRunner(1) as ex:
        runs = [ex.submit(funcs.add, i) for i in range(300)]
        for run in runs:
            run.result(timeout=60)
    n = 4
    barrier = threading.Barrier(n)
    seen: list[list[str]] = [[] for _ in range(n)]

    def read(mine: list[str]) -> None:
        for run in runs:
            barrier.wait(10)
            mine.append(run.run_id)

    threads = [threading.Thread(target=read, args=(seen[i],)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(ids == seen[0] for ids in seen), "a run got two ids"
    assert [run.run_id for run in runs] == seen[0]
