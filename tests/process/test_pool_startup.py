"""How ProcessRunner's workers start, fail to start, and go away with what they started.

A failing or hanging initializer, workers that die or stop while starting, a
process start that fails for want of file descriptors, runners left open inside
a worker, and a parent killed outright: each with real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import funcs
import psutil
import pytest
from helpers import gone, wait_for_file, wait_gone

from woflo import AttemptTimeout, BrokenProcessRunner, DeadlineExceeded, ProcessRunner, SerializationError
from woflo._process.wire import RemoteTraceback

TESTS = str(Path(__file__).parent.parent)
REPO = str(Path(__file__).parent.parent.parent)


def read_pid(path: Path, timeout: float = 30.0) -> int:
    wait_for_file(str(path), timeout)
    return int(path.read_text())


# -- 1. a failing initializer, workers dying while starting ----------------------------


@pytest.mark.timeout(60)
def test_failing_initializer_breaks_the_runner_with_its_cause() -> None:
    r = ProcessRunner(2, initializer=funcs.init_fails, initargs=("no database",), retries=5)
    try:
        runs = [r.submit(funcs.add, i) for i in range(4)]
        errors = [run.exception(30) for run in runs]
        for run, err in zip(runs, errors, strict=True):
            assert isinstance(err, BrokenProcessRunner) and isinstance(err, BrokenProcessPool)
            assert "initializer" in str(err)
            assert isinstance(err.__cause__, RuntimeError) and str(err.__cause__) == "no database"
            assert isinstance(err.__cause__.__cause__, RemoteTraceback)  # as other remote exceptions
            assert "init_fails" in str(err.__cause__.__cause__)
            assert len(run.attempts) == 1  # retries=5, yet never retried
        # Never one exception object shared by many runs (CPython gh-101267).
        assert len({id(e) for e in errors}) == len(errors)
        assert len({id(e.__cause__) for e in errors}) == len(errors)
        # Once broken, submit refuses at the call, with a fresh error each time.
        raised = []
        for _ in range(2):
            with pytest.raises(BrokenProcessRunner, match="initializer") as info:
                r.submit(funcs.add, 1)
            raised.append(info.value)
            assert isinstance(info.value.__cause__, RuntimeError)
        assert raised[0] is not raised[1]
    finally:
        r.shutdown(wait=True)


@pytest.mark.timeout(60)
def test_workers_dying_while_starting_break_the_runner() -> None:
    r = ProcessRunner(1, initializer=funcs.init_exits, retries=5)
    try:
        run = r.submit(funcs.add, 1)
        err = run.exception(45)
        assert isinstance(err, BrokenProcessRunner), repr(err)
        assert "3 worker processes in a row failed to start" in str(err) and "exit code 5" in str(err)
        assert len(run.attempts) == 1
        with pytest.raises(BrokenProcessRunner):
            r.submit(funcs.add, 1)
    finally:
        r.shutdown(wait=True)


# -- 2. a hanging initializer, a worker stopped while starting ---------------------------


@pytest.mark.timeout(60)
def test_timeout_fires_while_waiting_for_a_hanging_initializer(tmp_path: Path) -> None:
    r = ProcessRunner(1, initializer=funcs.init_then_hang, initargs=(str(tmp_path / "pid"),), timeout=0.5)
    run = r.submit(funcs.add, 1)
    err = run.exception(30)
    assert isinstance(err, AttemptTimeout), repr(err)
    assert "waiting for the worker initializer to finish" in str(err)
    assert [a.outcome for a in run.attempts] == ["timed_out"]
    pid = read_pid(tmp_path / "pid")
    r.shutdown(wait=True, stop_running=True)
    wait_gone(pid)


@pytest.mark.timeout(60)
def test_retries_of_an_attempt_waiting_for_a_worker_each_time_out(tmp_path: Path) -> None:
    r = ProcessRunner(1, initializer=funcs.init_then_hang, initargs=(str(tmp_path / "pid"),), timeout=0.2, retries=2)
    try:
        run = r.submit(funcs.add, 1)
        assert isinstance(run.exception(30), AttemptTimeout)
        assert [a.outcome for a in run.attempts] == ["timed_out"] * 3
    finally:
        r.shutdown(wait=True, stop_running=True)


@pytest.mark.timeout(60)
def test_deadline_fires_while_waiting_for_a_hanging_initializer(tmp_path: Path) -> None:
    r = ProcessRunner(1, initializer=funcs.init_then_hang, initargs=(str(tmp_path / "pid"),), deadline=0.5)
    try:
        assert isinstance(r.submit(funcs.add, 1).exception(30), DeadlineExceeded)
    finally:
        r.shutdown(wait=True, stop_running=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["hanging", "sigstop"])
def test_shutdown_stop_running_returns_while_a_worker_is_starting(how: str, tmp_path: Path) -> None:
    # What Ctrl-C in a `with` block does, while the only worker never gets ready.
    r = ProcessRunner(1, initializer=funcs.init_then_hang, initargs=(str(tmp_path / "pid"),))
    run = r.submit(funcs.add, 1)
    pid = read_pid(tmp_path / "pid")
    if how == "sigstop":
        os.kill(pid, signal.SIGSTOP)
    r.shutdown(wait=True, stop_running=True)
    assert run.cancelled()
    wait_gone(pid)
    assert r.worker_pids == []


@pytest.mark.timeout(60)
def test_worker_start_timeout_kills_a_worker_never_ready(tmp_path: Path) -> None:
    r = ProcessRunner(
        1, initializer=funcs.init_then_hang, initargs=(str(tmp_path / "pid"),), worker_start_timeout=0.3, retries=3
    )
    try:
        run = r.submit(funcs.add, 1)
        err = run.exception(45)  # no timeout, no deadline: the start timeout ends it
        assert isinstance(err, BrokenProcessRunner), repr(err)
        assert "worker_start_timeout=0.3s" in str(err)
        assert len(run.attempts) == 1
        if (tmp_path / "pid").exists():  # on a loaded machine a worker may be killed before its initializer
            wait_gone(int((tmp_path / "pid").read_text()))
    finally:
        r.shutdown(wait=True)
    assert r.worker_pids == []


@pytest.mark.timeout(60)
def test_worker_start_timeout_lets_a_slow_start_through() -> None:
    # Each start failure alone does not break the runner: a worker that gets
    # ready resets the count.
    with ProcessRunner(1, worker_start_timeout=30) as r:
        assert r.submit(funcs.add, 1, 2).result(30) == 3


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("1", TypeError)],
)
def test_worker_start_timeout_is_validated(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="worker_start_timeout"):
        ProcessRunner(1, worker_start_timeout=value)  # type: ignore[arg-type]


def test_worker_start_timeout_bool_is_refused() -> None:
    with pytest.raises(TypeError, match="worker_start_timeout"):
        ProcessRunner(1, worker_start_timeout=True)


# -- 3. out of file descriptors for a moment ------------------------------------------------


_EMFILE_SCRIPT = """
import os, resource, sys, time
sys.path.insert(0, {tests!r})
import funcs
from woflo import ProcessRunner, WorkerCrashed

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
r = ProcessRunner(1, max_tasks_per_child=1)  # each run needs a fresh worker
assert r.submit(funcs.add, 1, 1).result(60) == 2
# Wait until the first worker is reaped: the next run must start a replacement.
end = time.monotonic() + 30
while r.worker_pids:
    assert time.monotonic() < end
    time.sleep(0.01)
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
err = r.submit(funcs.add, 2, 2).exception(60)
for fd in held:
    os.close(fd)
print("ERROR", type(err).__name__, err, flush=True)
assert isinstance(err, WorkerCrashed), repr(err)
assert "EMFILE" in str(err), str(err)
assert r.submit(funcs.add, 3, 3).result(60) == 6
r.shutdown(wait=True)
print("OK", flush=True)
"""


@pytest.mark.timeout(120)
def test_out_of_file_descriptors_for_a_moment_does_not_break_the_runner() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _EMFILE_SCRIPT.format(tests=TESTS)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=100,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


# -- 4. runners left open inside a worker --------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["ProcessRunner", "@task"])
def test_a_runner_left_open_in_a_task_does_not_wedge_the_worker_exit(how: str) -> None:
    r = ProcessRunner(1)
    if how == "ProcessRunner":
        inner = r.submit(funcs.leave_runner_open, 2).result(60)
    else:
        value, inner = r.submit(funcs.call_task_inside, 1).result(60)
        assert value == 2
    assert inner and not any(gone(pid) for pid in inner)
    outer = r.worker_pids
    r.shutdown(wait=True)  # bounded by the test's timeout: it used to wait for ever, or 10 s
    for pid in [*outer, *inner]:
        wait_gone(pid)


# -- 6. a parent killed outright --------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_sigkilled_parent_takes_the_tasks_own_children_down(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {TESTS!r})
        import funcs
        from woflo import ProcessRunner
        r = ProcessRunner(1)
        run = r.submit(funcs.spawn_sleeper, {str(tmp_path / "child")!r})
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        grandchild = read_pid(tmp_path / "child")
        assert not gone(grandchild)
        worker = psutil.Process(grandchild).ppid()
    finally:
        proc.kill()
        proc.wait(10)
    wait_gone(worker)
    wait_gone(grandchild)


@pytest.mark.timeout(90)
def test_initializer_error_whose_unpickling_raises_system_exit_breaks_the_runner_cleanly() -> None:
    r = ProcessRunner(1, initializer=funcs.raise_exit_on_unpickle, initargs=(os.getpid(),))
    try:
        err = r.submit(funcs.add, 1, 2).exception(60)
        assert isinstance(err, BrokenProcessRunner), repr(err)
        assert isinstance(err.__cause__, SerializationError), repr(err.__cause__)
        with pytest.raises(BrokenProcessRunner):
            r.submit(funcs.add, 1, 2)
    finally:
        r.shutdown(wait=True)
    assert r.worker_pids == []
