"""Faults of the non-process runners: broken initializers, bad options, nested waits, cancel().

Each test here failed on the code before its fix (see the commit that added it).
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures.thread import BrokenThreadPool
from pathlib import Path
from typing import Any

import pytest

import woflo
from woflo import BrokenThreadRunner, ProcessRunner, RunState, ThreadRunner

pytestmark = pytest.mark.timeout(60)

# The checkout under test: scripts run in a subprocess must import this woflo,
# not whichever one is installed.
REPO = str(Path(woflo.__file__).resolve().parent.parent)


def run_script(body: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter; a hang (at exit too) fails the test."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, str(Path(__file__).parent)])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


# -- 1. ThreadRunner's initializer ---------------------------------------------------------


class InitFailed(Exception):
    pass


def failing_init(calls: list[int] | None = None) -> None:
    if calls is not None:
        calls.append(1)
    raise InitFailed("cannot set up")


def test_thread_initializer_failure_breaks_the_runner_like_the_stdlib_pool() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def init() -> None:
        gate.wait(20)  # fail only once every run below is queued
        failing_init()

    runner = ThreadRunner(2, initializer=init, retries=5)
    try:
        runs = [runner.submit(ran.append, n) for n in range(4)]
        gate.set()
        errors = [run.exception(timeout=20) for run in runs]
        for run, err in zip(runs, errors, strict=True):
            assert isinstance(err, BrokenThreadRunner) and isinstance(err, BrokenThreadPool)
            assert isinstance(err.__cause__, InitFailed)
            assert run.state is RunState.FAILED
            assert len(run.attempts) <= 1, "a broken runner's run must not be retried"
        # One exception object per run (CPython gh-101267: a shared one chains
        # every raiser's traceback onto it).
        assert len({id(err) for err in errors}) == len(errors)
        # Later submissions raise at the call, each a new exception.
        with pytest.raises(BrokenThreadRunner) as first:
            runner.submit(ran.append, 99)
        with pytest.raises(BrokenThreadPool) as second:
            runner.submit(ran.append, 100)
        assert first.value is not second.value
        assert isinstance(first.value.__cause__, InitFailed)
        with pytest.raises(BrokenThreadRunner):
            list(runner.map(ran.append, [1, 2]))
        assert ran == []
    finally:
        runner.shutdown(wait=True)


def test_stdlib_thread_pool_behaves_the_same_way() -> None:
    # The reference behaviour the test above holds woflo to.
    with concurrent.futures.ThreadPoolExecutor(2, initializer=failing_init) as pool:
        fut = pool.submit(abs, -1)
        assert isinstance(fut.exception(timeout=20), BrokenThreadPool)
        with pytest.raises(BrokenThreadPool):
            pool.submit(abs, -1)


def test_thread_initializer_failure_does_not_hang_interpreter_exit() -> None:
    proc = run_script(
        """
        import threading
        from woflo import ThreadRunner

        gate = threading.Event()

        def init():
            gate.wait(20)  # fail once every run is queued
            raise RuntimeError("no setup")

        runner = ThreadRunner(2, initializer=init, retries=3)
        runs = [runner.submit(abs, -n) for n in range(3)]  # never waited for, never shut down
        gate.set()
        print("submitted", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "submitted"


@pytest.mark.parametrize("cls", [ThreadRunner, ProcessRunner])
@pytest.mark.parametrize("initargs", [5, None, 1.5])
def test_initargs_that_are_not_a_tuple_raise_at_the_constructor(cls: type[Any], initargs: Any) -> None:
    with pytest.raises(TypeError, match="initargs"):
        cls(1, initializer=print, initargs=initargs)


@pytest.mark.parametrize("cls", [ThreadRunner, ProcessRunner])
def test_initializer_that_is_not_callable_raises_at_the_constructor(cls: type[Any]) -> None:
    with pytest.raises(TypeError, match="initializer"):
        cls(1, initializer="setup")


def test_initargs_as_a_list_still_works() -> None:
    # The stdlib takes any iterable; so does woflo (stored as a tuple).
    seen: list[Any] = []
    with ThreadRunner(1, initializer=seen.append, initargs=["x"]) as runner:
        assert runner.submit(abs, -3).result(timeout=20) == 3
    assert seen == ["x"]


@pytest.mark.parametrize("bad", [True, "x", b"1", [1.0]])
def test_idle_timeout_of_the_wrong_type_raises_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="idle_timeout"):
        ProcessRunner(1, idle_timeout=bad)


@pytest.mark.parametrize("bad", [math.nan, 0, -1.0, -math.inf])
def test_idle_timeout_nan_or_not_positive_raises_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        ProcessRunner(1, idle_timeout=bad)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("idle_timeout", [1e10, math.inf, 2**40])
def test_a_huge_idle_timeout_keeps_the_pool_working(idle_timeout: float) -> None:
    # select() overflowed on the manager's idle deadline and the manager thread
    # died after the first result: the second run never finished.
    with ProcessRunner(1, idle_timeout=idle_timeout) as runner:
        for n in range(3):
            assert runner.submit(abs, -n).result(timeout=30) == n
        (pid,) = runner.worker_pids
        assert runner.submit(os.getpid).result(timeout=30) == pid
