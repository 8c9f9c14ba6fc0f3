"""ProcessRunner with real worker processes: crashes, kills, stop, timeout, payloads, events.

The Executor contract runs on every process kind in tests/contract; this file
holds what only a process runner can do. Task functions live at module level
(or in funcs.py) so the workers can import them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import funcs
import pytest
from funcs import crash
from helpers import generous, gone, wait_for, wait_for_file, wait_gone, wait_running

import woflo
from woflo import AttemptTimeout, ProcessRunner, SerializationError, WorkerCrashed
from woflo._process.wire import RemoteTraceback
from woflo.testing import capture_events

# -- task functions (imported by the workers) ----------------------------------------


def crash_first(counter: str, how: str, value: object = "ok") -> object:
    """Crash on the first call (counted in a file), then return ``value``."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls == 1:
        crash(how)
    return value


def spawn_child_then_block(child_pid_file: str, started: str, release: str) -> str:
    """Start a grandchild (``sleep 60``), record its pid, then block."""
    child = subprocess.Popen(["sleep", "60"])
    Path(child_pid_file).write_text(str(child.pid))
    return str(funcs.block(started, release, 60))


def make_lock() -> object:
    return threading.Lock()


def big_result(n: int) -> bytes:
    return b"\x01" * (n - 1) + b"\x02"


def slow_value(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i * 3


def meet(folder: str, parties: int, value: object, timeout: float = 30.0) -> object:
    """A barrier across processes: say we are here, then wait until ``parties`` calls are."""
    Path(folder, str(os.getpid())).touch()
    end = time.monotonic() + timeout
    while len(os.listdir(folder)) < parties:
        if time.monotonic() > end:
            raise TimeoutError(f"only {len(os.listdir(folder))} of {parties} calls ran at once")
        time.sleep(0.005)
    return value


@pytest.fixture
def runner() -> Iterator[ProcessRunner]:
    r = ProcessRunner(2)
    yield r
    r.shutdown(wait=True, stop_running=True)


@pytest.fixture
def files(tmp_path: Path) -> Any:
    """``files("name")`` is a fresh path under the test's tmp dir, as a str."""
    return lambda name: str(tmp_path / name)


# -- crashes -------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("retries", [0, 2], ids=["no-retries", "retries"])
def test_random_sigkills_under_load(retries: int) -> None:
    """500 tasks, 20 SIGKILLs of busy workers: the rest are right, the hit ones crash or retry."""
    rng = random.Random(1234)
    n, kills = 500, 20
    with ProcessRunner(2, retries=retries) as r:
        r.submit(funcs.add, 0).result(30)  # a worker is up before the clock starts
        runs = [r.submit(slow_value, i, 0.004) for i in range(n)]
        finished = [0]
        lock = threading.Lock()

        def count(_: object) -> None:
            with lock:
                finished[0] += 1

        for run in runs:
            run.add_done_callback(count)
        killed: list[int] = []
        for _ in range(kills):
            before = finished[0]
            wait_for(lambda: r.worker_pids and finished[0] >= min(before + 5, n), 30, "progress")
            if finished[0] >= n:
                break
            pid = rng.choice(r.worker_pids)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        assert len(killed) >= 10, "the load ended before the kills: make the tasks longer"
        crashed = 0
        for i, run in enumerate(runs):
            exc = run.exception(60)
            if exc is None:
                assert run.result() == i * 3
            else:
                assert retries == 0, f"run {i} failed despite retries: {exc!r}"
                assert isinstance(exc, WorkerCrashed), repr(exc)
                assert exc.exitcode == -signal.SIGKILL
                assert exc.worker in killed
                assert "SIGKILL" in str(exc)
                crashed += 1
            outcomes = [a.outcome for a in run.attempts]
            assert outcomes.count("crashed") == len(outcomes) - (exc is None)
            crashed_attempts = [a for a in run.attempts if a.outcome == "crashed"]
            assert all(a.worker in killed for a in crashed_attempts)
        hits = sum(1 for run in runs for a in run.attempts if a.outcome == "crashed")
        assert 1 <= hits <= len(killed)
        if retries == 0:
            assert crashed == hits
        # Still usable afterwards.
        assert r.submit(funcs.add, 2, 3).result(30) == 5


CRASHES = [
    ("segfault", -signal.SIGSEGV, "SIGSEGV"),
    ("os._exit", 3, "exit code 3"),
    ("sigkill", -signal.SIGKILL, "SIGKILL"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("how", "code", "text"), CRASHES, ids=[c[0] for c in CRASHES])
def test_crash_fails_only_its_run_and_is_retryable(
    runner: ProcessRunner, files: Any, how: str, code: int, text: str
) -> None:
    bystander = runner.submit(funcs.block, files("b.started"), files("b.release"))
    wait_for_file(files("b.started"), 30)
    run = runner.submit(crash, how)
    exc = run.exception(30)
    assert isinstance(exc, WorkerCrashed), repr(exc)
    assert exc.exitcode == code
    assert text in str(exc) and "crash" in str(exc)
    assert [a.outcome for a in run.attempts] == ["crashed"]
    assert run.attempts[0].worker == exc.worker
    wait_gone(exc.worker)  # type: ignore[arg-type]

    # Crashes on its first attempt only: the retry succeeds on a fresh worker.
    retried = runner.submit(woflo.task(crash_first, retries=1), files("count"), how, "second time")
    assert retried.result(30) == "second time"
    assert [a.outcome for a in retried.attempts] == ["crashed", "succeeded"]
    assert Path(files("count")).read_text() == "2"

    Path(files("b.release")).touch()
    assert bystander.result(30) == "released"
    assert bystander.attempts[-1].outcome == "succeeded"


# -- stop and timeout ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_stop_kills_the_worker_and_a_replacement_serves(runner: ProcessRunner, files: Any) -> None:
    victim = runner.submit(funcs.block, files("v.started"), files("v.release"))
    other = runner.submit(funcs.block, files("o.started"), files("o.release"))
    wait_running(victim, files("v.started"))
    wait_running(other, files("o.started"))
    pid = int(Path(files("v.started")).read_text())
    assert victim.attempts == [] and victim.running()

    assert victim.stop() is True
    assert victim.cancelled()
    with pytest.raises(CancelledError):
        victim.result(0)
    wait_gone(pid)
    assert [a.outcome for a in victim.attempts] == ["stopped"]
    assert victim.attempts[0].worker == pid

    # A replacement takes work while the other run is still busy.
    assert runner.submit(funcs.worker_pid).result(30) not in (pid, None)
    assert other.running()
    Path(files("o.release")).touch()
    assert other.result(30) == "released"
    assert pid not in runner.worker_pids


@pytest.mark.timeout(60)
def test_timeout_kills_the_worker_counts_as_a_failure_and_retries(runner: ProcessRunner, files: Any) -> None:
    other = runner.submit(funcs.block, files("o.started"), files("o.release"))
    wait_running(other, files("o.started"))
    # Slow on the first attempt only: the timeout kills it, the retry succeeds.
    counter = files("count")
    slow_once = woflo.task(funcs.fail_times, timeout=1.0, retries=1)
    hang = woflo.task(funcs.block, timeout=generous(1.0))

    run = runner.submit(hang, files("h.started"), files("never"))
    wait_for_file(files("h.started"), 30)
    pid = int(Path(files("h.started")).read_text())
    exc = run.exception(30)
    assert isinstance(exc, AttemptTimeout), repr(exc)
    assert [a.outcome for a in run.attempts] == ["timed_out"]
    wait_gone(pid)

    assert runner.submit(slow_once, counter, 0, "fine").result(30) == "fine"
    assert other.running()
    Path(files("o.release")).touch()
    assert other.result(30) == "released"
    assert pid not in runner.worker_pids


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["stop", "timeout"])
def test_stop_and_timeout_kill_the_task_children(runner: ProcessRunner, files: Any, how: str) -> None:
    # The task must start its child before its timeout: a limit that scales with the load.
    fn = woflo.task(spawn_child_then_block, timeout=generous(1.5)) if how == "timeout" else spawn_child_then_block
    run = runner.submit(fn, files("child"), files("started"), files("never"))
    wait_for_file(files("started"), 30)
    worker = int(Path(files("started")).read_text())
    child = int(Path(files("child")).read_text())
    assert not gone(child)
    if how == "stop":
        run.stop()
    else:
        assert isinstance(run.exception(30), AttemptTimeout)
    wait_gone(worker)
    wait_gone(child)
    assert runner.submit(funcs.add, 1, 1).result(30) == 2


# -- shutdown ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_shutdown_cancel_futures_cancels_pending_and_finishes_running(files: Any) -> None:
    r = ProcessRunner(1)
    running = r.submit(funcs.block, files("started"), files("release"))
    # Until the runner knows the run started, it may count the worker as free
    # and hand it a queued run, which cancel_futures then cannot cancel.
    wait_running(running, files("started"))
    pid = int(Path(files("started")).read_text())
    queued = [r.submit(funcs.add, i) for i in range(5)]
    r.shutdown(wait=False, cancel_futures=True)
    assert all(q.cancelled() for q in queued)
    with pytest.raises(RuntimeError, match="after shutdown"):
        r.submit(funcs.add, 1)
    assert running.running()
    Path(files("release")).touch()
    assert running.result(30) == "released"
    wait_gone(pid)
    wait_for(lambda: not r.worker_pids, 10, "workers to exit")


@pytest.mark.timeout(60)
def test_shutdown_stop_running_kills_running_work_at_once(files: Any) -> None:
    r = ProcessRunner(2)
    runs = [r.submit(funcs.block, files(f"{i}.started"), files("never"), 60) for i in range(2)]
    queued = [r.submit(funcs.add, i) for i in range(3)]
    for i, run in enumerate(runs):
        wait_running(run, files(f"{i}.started"))  # then each has an attempt to stop
    pids = r.worker_pids
    # The runs block for 60 s unless killed: ending cancelled proves they were.
    r.shutdown(wait=True, stop_running=True)
    assert all(run.cancelled() for run in runs + queued)
    assert [a.outcome for run in runs for a in run.attempts] == ["stopped", "stopped"]
    for pid in pids:
        wait_gone(pid)
    assert r.worker_pids == []


# -- bad payloads ---------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_unpicklable_argument_fails_that_run_only(runner: ProcessRunner) -> None:
    bad = runner.submit(funcs.identity, threading.Lock())
    exc = bad.exception(30)
    assert isinstance(exc, SerializationError), repr(exc)
    assert "cannot pickle argument of identity" in str(exc) and "lock" in str(exc)
    assert runner.submit(funcs.add, 1, 2).result(30) == 3


@pytest.mark.parametrize("error", [KeyError("key 'x'"), TypeError("a lock"), pickle.PicklingError("by value")])
def test_a_serialization_error_pickles_back_to_itself(error: Exception) -> None:
    # It crosses processes (a worker's, a Dask worker's): the message and the
    # classes survive round trips unchanged (a KeyError's str() quotes its
    # message, which each round trip used to add again).
    exc = SerializationError.wrap("cannot pickle argument 0 of f: x", error)
    back = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(exc))))
    assert isinstance(back, SerializationError) and isinstance(back, type(error))
    assert back.args == exc.args == ("cannot pickle argument 0 of f: x",)
    assert str(back) == str(exc)


@pytest.mark.timeout(60)
def test_unpicklable_result_fails_that_run_only(runner: ProcessRunner) -> None:
    pids = set(runner.worker_pids)
    bad = runner.submit(make_lock)
    exc = bad.exception(30)
    assert isinstance(exc, SerializationError), repr(exc)
    assert "cannot pickle the result of make_lock" in str(exc) and "lock" in str(exc)
    assert bad.attempts[0].worker in runner.worker_pids or not pids  # the worker lives on
    assert runner.submit(funcs.add, 1, 2).result(30) == 3


@pytest.mark.timeout(60)
def test_task_exception_comes_back_as_itself_with_remote_traceback(runner: ProcessRunner) -> None:
    run = runner.submit(funcs.boom, "remote failure")
    exc = run.exception(30)
    assert type(exc) is ValueError and str(exc) == "remote failure"
    cause = exc.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "funcs.py" in str(cause) and "raise ValueError(message)" in str(cause)
    with pytest.raises(ValueError, match="remote failure"):
        run.result()


@pytest.mark.timeout(60)
def test_100_mb_result_comes_back(runner: ProcessRunner) -> None:
    size = 100 << 20
    small = runner.submit(funcs.add, 1, 1)
    data = runner.submit(big_result, size).result(60)
    assert len(data) == size and data[0] == 1 and data[-1] == 2
    assert small.result(30) == 2
    del data


# -- the default runner, 0.8 names, events -----------------------------------------------


@pytest.fixture
def shared_cleanup() -> Iterator[None]:
    """Shut the shared runners down after the test, so their workers do not linger."""
    from woflo._shared import _shared

    yield
    for _, shared in list(_shared.values()):
        if isinstance(shared, ProcessRunner):
            shared.shutdown(wait=True, stop_running=True)


@pytest.mark.timeout(60)
def test_task_default_runner_runs_calls_in_parallel(shared_cleanup: None, tmp_path: Path) -> None:
    nap = woflo.task(funcs.sleep_then)
    first = nap(0.0, "warm")
    assert isinstance(first.runner, ProcessRunner)
    assert first.runner.max_workers == woflo.runners.process.default_task_workers() >= 16
    assert first.result(30) == "warm"
    # Each call waits until all 10 run at once: one after another they would
    # time out instead (no bound on elapsed time, which a busy machine breaks).
    folder = tmp_path / "met"
    folder.mkdir()
    runs = [woflo.task(meet)(str(folder), 10, i) for i in range(10)]
    assert [run.result(60) for run in runs] == list(range(10))
    assert len({run.attempts[0].worker for run in runs}) == 10
    assert all(run.runner is first.runner for run in runs)


@pytest.mark.timeout(60)
def test_process_type_spawn_selects_the_start_method(shared_cleanup: None) -> None:
    from woflo.runners.multiprocess import DefaultProcess, MultiprocessTaskRun, SpawnProcess

    before = MultiprocessTaskRun.process_type
    try:
        MultiprocessTaskRun.process_type = SpawnProcess
        add = woflo.task(funcs.add, runner=MultiprocessTaskRun)
        run = add(2, 3)
        assert run.result(30) == 5
        assert isinstance(run.runner, ProcessRunner) and run.runner.start_method == "spawn"
        MultiprocessTaskRun.process_type = DefaultProcess
        again = add(4, 5)
        assert again.result(30) == 9 and again.runner.start_method == "exec"  # type: ignore[attr-defined]
    finally:
        MultiprocessTaskRun.process_type = before


@pytest.mark.timeout(60)
def test_events_name_the_worker_pid(runner: ProcessRunner) -> None:
    with capture_events() as events:
        pid = runner.submit(funcs.worker_pid).result(30)
        crashed = runner.submit(crash, "os._exit").exception(30)
    started = events.of("attempt.started")
    assert [e["worker"] for e in events.of("attempt.succeeded")] == [pid]
    assert started[0]["worker"] == pid and started[0]["runner"] == "process"
    failed = events.of("attempt.failed")
    assert len(failed) == 1 and failed[0]["worker"] == crashed.worker  # type: ignore[union-attr]
    assert failed[0]["exception_type"] == "WorkerCrashed" and "exit code 3" in failed[0]["exception"]
