"""Runners dropped without shutdown() release their workers once unreachable, as the stdlib's do.

A run holds its runner (`TaskRun.runner`), so a run still referenced always
finishes; once nothing refers to the runner, its worker processes, threads and
fds go. "Eventually" is polled with a bound, never timed.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import funcs
import psutil
import pytest
from helpers import wait_for

from woflo import ProcessRunner, ThreadRunner


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def alive(threads: list[threading.Thread]) -> list[str]:
    return [t.name for t in threads if t.is_alive()]


def woflo_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("woflo")}


def _use_and_drop_process_runners(n: int) -> tuple[list[int], list[threading.Thread]]:
    before = woflo_threads()
    pids: list[int] = []
    for _ in range(n):
        r = ProcessRunner(1, timeout=30)  # a timeout: the timer thread runs too
        assert r.submit(funcs.add, 1, 2).result(30) == 3
        pids += r.worker_pids
    return pids, list(woflo_threads() - before)


@pytest.mark.timeout(120)
def test_dropped_process_runners_release_their_workers_and_threads() -> None:
    pids, threads = _use_and_drop_process_runners(10)
    assert len(pids) == 10 and threads
    gc.collect()
    wait_for(lambda: all(gone(pid) for pid in pids), 60, "the dropped runners' workers to exit")
    wait_for(lambda: not alive(threads), 30, "the dropped runners' threads to end")


@pytest.mark.timeout(60)
def test_a_referenced_run_of_a_dropped_runner_completes_and_then_its_workers_go() -> None:
    run = ProcessRunner(1).submit(funcs.sleep_then, 0.2, "done")
    gc.collect()  # the runner is referenced by its run only
    assert run.result(30) == "done"
    pid = run.attempts[-1].worker
    assert isinstance(pid, int)
    assert ProcessRunner(1).submit(funcs.add, 2, 3).result(30) == 5  # as a one-liner
    del run
    gc.collect()
    wait_for(lambda: gone(pid), 30, f"worker {pid} to exit")


@pytest.mark.timeout(60)
def test_a_dropped_runner_with_a_retry_waiting_finishes_it(tmp_path: Path) -> None:
    run = ProcessRunner(1, retries=1, retry_wait_time=0.2).submit(funcs.fail_times, str(tmp_path / "n"), 1, "ok")
    gc.collect()
    assert run.result(30) == "ok"
    assert len(run.attempts) == 2


@pytest.mark.timeout(60)
def test_dropped_thread_runners_release_their_threads() -> None:
    before = woflo_threads()
    seen: set[threading.Thread] = set()
    for _ in range(10):
        r = ThreadRunner(2, timeout=30)
        assert list(r.map(funcs.add, range(4), range(4))) == [0, 2, 4, 6]
        seen |= woflo_threads() - before  # its workers are named woflo-thread-...
    del r
    threads = list(seen)
    assert threads
    gc.collect()
    wait_for(lambda: not alive(threads), 30, "the dropped runners' threads to end")


@pytest.mark.timeout(60)
def test_a_referenced_run_of_a_dropped_thread_runner_completes() -> None:
    run = ThreadRunner(1).submit(funcs.sleep_then, 0.1, "done")
    gc.collect()
    assert run.result(30) == "done"
