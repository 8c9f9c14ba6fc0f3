"""`PoolRunner` specifics: who owns the executor, what stop does to a call it
cannot stop, slots, and the executor's own errors. The Executor contract runs
on it in tests/contract/ (kinds ``pool-thread`` and ``pool-process``)."""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from woflo import RunState
from woflo.runners.pool import PoolRunner
from woflo.testing import capture_events, tasks, wait_for, wait_for_file, wait_running

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def threads() -> Iterator[cf.ThreadPoolExecutor]:
    """A caller's executor of one thread, shut down after the test."""
    executor = cf.ThreadPoolExecutor(1)
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def test_a_borrowed_executor_is_left_running(threads: cf.ThreadPoolExecutor) -> None:
    with PoolRunner(threads, retries=1) as runner:
        assert runner.submit(tasks.add, 1, 2).result(timeout=30) == 3
        assert runner.executor is threads and runner.max_workers is None
    assert threads.submit(tasks.add, 2, 2).result(timeout=30) == 4


def test_an_owned_executor_is_shut_down_with_the_runner() -> None:
    executor = cf.ThreadPoolExecutor(1)
    with PoolRunner(executor, own=True) as runner:
        assert runner.submit(tasks.add, 1, 2).result(timeout=30) == 3
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(tasks.add, 1)


def test_stop_abandons_a_running_call_and_drops_its_result(threads: cf.ThreadPoolExecutor, tmp_path: Path) -> None:
    runner = PoolRunner(threads, max_workers=1)
    started, release = str(tmp_path / "started"), tmp_path / "release"
    with capture_events() as events:
        run = runner.submit(tasks.block, started, str(release))
        wait_running(run, started)
        assert run.stop()
        assert run.cancelled() and run.state is RunState.CANCELLED
        # The call still holds the executor's only thread, so it holds the
        # runner's only slot: the next run waits, pending (and cancellable).
        queued = runner.submit(tasks.add, 1, 1)
        assert not queued.running()
        release.touch()
        assert queued.result(timeout=30) == 2
    assert run.cancelled()
    assert [a.outcome for a in run.attempts] == ["stopped"]
    assert not [e for e in events.of("attempt.succeeded") if e["run_id"] == run.run_id]
    runner.shutdown()


def test_stop_cancels_a_call_still_queued_in_the_executor(threads: cf.ThreadPoolExecutor, tmp_path: Path) -> None:
    # No max_workers: every attempt is handed to the executor at once, and
    # waits in its queue while its one thread is busy.
    runner = PoolRunner(threads)
    first, second = (str(tmp_path / "first"), str(tmp_path / "second"))
    release = tmp_path / "release"
    blocker = runner.submit(tasks.block, first, str(release))
    wait_for_file(first)
    queued = runner.submit(tasks.block, second, str(release))
    assert queued.running()  # handed over: it counts as started
    assert queued.stop()
    release.touch()
    assert blocker.result(timeout=30) == "released"
    # The executor runs its queue in order: once this ran, the cancelled call was skipped.
    assert threads.submit(tasks.add, 1).result(timeout=30) == 1
    assert not os.path.exists(second)
    runner.shutdown()


def test_cancel_of_a_run_waiting_for_a_slot(threads: cf.ThreadPoolExecutor, tmp_path: Path) -> None:
    runner = PoolRunner(threads, max_workers=1)
    started, release = str(tmp_path / "started"), tmp_path / "release"
    blocker = runner.submit(tasks.block, started, str(release))
    wait_running(blocker, started)
    waiting = [runner.submit(tasks.block, str(tmp_path / f"w{i}"), str(release)) for i in range(3)]
    assert all(r.cancel() for r in waiting)
    release.touch()
    assert blocker.result(timeout=30) == "released"
    runner.shutdown(wait=True)
    assert not any(os.path.exists(tmp_path / f"w{i}") for i in range(3))


def test_a_dead_worker_is_the_executors_own_error() -> None:
    executor = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))
    with PoolRunner(executor, own=True, retries=1) as runner:
        run = runner.submit(tasks.exit_holding, "token")
        with pytest.raises(BrokenProcessPool):
            run.result(timeout=30)
    # The stdlib pool is broken for good: the retry fails the same way, at submit.
    assert [a.outcome for a in run.attempts] == ["crashed", "crashed"]
    assert all(isinstance(a.exception, BrokenProcessPool) for a in run.attempts)


@pytest.mark.parametrize("retries", [0, 2])
def test_a_dead_worker_fails_the_runs_waiting_for_a_slot_too(retries: int) -> None:
    # max_workers=1: as the dead worker's attempt ends, the executor's
    # manager thread frees the slot. Handing it to the next waiting attempt
    # from there called submit on that thread, which holds the executor's
    # shutdown lock while it fails the futures: on Python 3.12+ every run
    # stayed pending for ever. The slot now passes on from the timer thread.
    executor = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))
    with PoolRunner(executor, own=True, max_workers=1, retries=retries) as runner:
        dead = runner.submit(tasks.exit_holding, "token")
        waiting = [runner.submit(tasks.add, n) for n in range(5)]
        for run in [dead, *waiting]:
            with pytest.raises(BrokenProcessPool):
                run.result(timeout=30)
        assert runner._pool_busy == 0 and not runner._pool_waiting  # no slot left taken


def test_an_executor_shut_down_by_its_owner_fails_the_attempt(threads: cf.ThreadPoolExecutor) -> None:
    runner = PoolRunner(threads)
    threads.shutdown()
    run = runner.submit(tasks.add, 1)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        run.result(timeout=30)
    runner.shutdown()


def test_many_waiting_attempts_refused_by_the_executor_fail_without_recursion(tmp_path: Path) -> None:
    executor = cf.ThreadPoolExecutor(1)
    runner = PoolRunner(executor, max_workers=1)
    started, release = str(tmp_path / "started"), tmp_path / "release"
    blocker = runner.submit(tasks.block, started, str(release))
    wait_running(blocker, started)
    waiting = [runner.submit(tasks.add, i) for i in range(3000)]
    executor.shutdown(wait=False)  # its owner shuts it down under the runner
    release.touch()
    assert blocker.result(timeout=30) == "released"
    assert cf.wait(waiting, timeout=30).not_done == set()
    assert all(isinstance(r.exception(), RuntimeError) for r in waiting)
    runner.shutdown()


def test_shutdown_from_a_done_callback_on_the_executors_thread(tmp_path: Path) -> None:
    runner = PoolRunner(cf.ThreadPoolExecutor(1), own=True)
    outcome: list[tuple[str, BaseException | None]] = []
    done = threading.Event()

    def close(_: Any) -> None:
        where = threading.current_thread().name
        try:
            runner.shutdown(wait=True)  # on the executor's thread: must not join itself
        except BaseException as exc:
            outcome.append((where, exc))
        else:
            outcome.append((where, None))
        done.set()

    started, release = str(tmp_path / "started"), tmp_path / "release"
    run = runner.submit(tasks.block, started, str(release))
    run.add_done_callback(close)  # before the run ends: called on the thread that ends it
    release.touch()
    assert done.wait(30)
    assert outcome == [(outcome[0][0], None)] and outcome[0][0] != threading.current_thread().name
    runner.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        runner.executor.submit(tasks.add, 1)


def test_lambdas_over_an_executor_that_pickles_by_value() -> None:
    loky = pytest.importorskip("loky")
    offset = 10
    with PoolRunner(loky.ProcessPoolExecutor(1), max_workers=1, own=True, retries=1) as runner:
        assert runner.submit(lambda x: x + offset, 5).result(timeout=60) == 15
        assert runner.submit(functools.partial(tasks.add, 1), 2).result(timeout=60) == 3


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        ((object(),), TypeError, "Executor"),
        ((None,), TypeError, "Executor"),
    ],
)
def test_the_executor_is_checked(args: tuple[Any, ...], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        PoolRunner(*args)


@pytest.mark.parametrize(
    ("max_workers", "error"), [(0, ValueError), (-1, ValueError), ("2", TypeError), (True, TypeError)]
)
def test_max_workers_is_checked(threads: cf.ThreadPoolExecutor, max_workers: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_workers"):
        PoolRunner(threads, max_workers=max_workers)


def test_events_name_the_executor_as_worker(threads: cf.ThreadPoolExecutor) -> None:
    runner = PoolRunner(threads)
    with capture_events() as events:
        run = runner.submit(tasks.add, 1)
        run.result(timeout=30)
        wait_for(lambda: events.of("task.succeeded"), 10, "the task.succeeded event")
    assert {e["worker"] for e in events.of("attempt.started")} == {"ThreadPoolExecutor"}
    assert {e["runner"] for e in events} == {"pool"}
    runner.shutdown()


def test_a_run_stopped_inside_a_done_callback_leaves_the_callback_on_the_executors_thread() -> None:
    # A's done-callback stops B, still queued in the executor: B's outcome is
    # delivered inside A's callback, and at its end it cleared the flag that
    # says "this is the executor's thread delivering an outcome". The rest of
    # A's callback was then taken for a foreign thread: shutdown(wait=True)
    # there raised "cannot join current thread" instead of returning.
    executor = cf.ThreadPoolExecutor(1)
    runner = PoolRunner(executor, max_workers=2, own=True)
    release = threading.Event()
    first = runner.submit(release.wait, 30)
    second = runner.submit(tasks.add, 1)  # queued in the executor behind the first
    seen: dict[str, object] = {}
    ended = threading.Event()

    def on_first(run: Any) -> None:
        seen["stopped"] = second.stop()
        seen["owns"] = runner.owns_current_thread()
        try:
            runner.shutdown(wait=True)
            seen["shutdown"] = "returned"
        except BaseException as exc:
            seen["shutdown"] = repr(exc)
        ended.set()

    first.add_done_callback(on_first)
    release.set()
    assert ended.wait(30)
    assert seen == {"stopped": True, "owns": True, "shutdown": "returned"}
    assert second.cancelled()
