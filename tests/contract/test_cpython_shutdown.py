"""CPython's ``ExecutorShutdownTest`` (test_concurrent_futures/test_shutdown.py), on every runner.

Thread- and process-specific shutdown tests are in test_cpython_thread_pool.py
and test_cpython_process_pool.py.
"""

from __future__ import annotations

import operator
from typing import Any

import funcs
import pytest
from cpython_helpers import run_script
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)

# One of each runner class for the tests that need a fresh interpreter: a
# LocalCluster would cost more than the rest of this module (Dask: not run).
CONSTRUCTORS = {
    "sequential": "SequentialRunner()",
    "thread": "ThreadRunner(5)",
    "async": "AsyncRunner(max_concurrency=5)",
    "process": "ProcessRunner(5)",
    "executor-process": "WofloExecutor(5)",
}
IMPORTS = "from woflo import AsyncRunner, ProcessRunner, SequentialRunner, ThreadRunner, WofloExecutor"


def test_run_after_shutdown(make: Any) -> None:
    ex = make()
    ex.shutdown()
    with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):
        ex.submit(pow, 2, 5)


def test_shutdown_inside_a_with_block(make: Any) -> None:
    with make() as ex:
        run = ex.submit(operator.mul, 6, 7)
        ex.shutdown()
        assert run.result() == 42
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            ex.submit(pow, 2, 5)
    # Leaving the block shuts down again: nothing more happens.
    assert run.done()


def test_shutdown_waits_for_every_run_issue12364(make: Any) -> None:
    ex = make()
    runs = [ex.submit(funcs.sleep_then, 0.01, i) for i in range(20)]
    ex.shutdown()
    assert all(run.done() for run in runs)
    assert [run.result() for run in runs] == list(range(20))


def test_shutdown_cancel_futures(make: Any, kind: RunnerKind) -> None:
    # CPython: 50 submits of time.sleep(0.1) on few workers, then
    # shutdown(cancel_futures=True): more than 20 cancelled, the rest finished
    # without error, and at least one finished. woflo starts its workers on
    # demand, so right after the submits it may have started none: every run
    # may be cancelled (deliberate; docs/compat.md).
    ex = make(max_workers=2)
    count = 50 if kind.sized else 10
    runs = [ex.submit(funcs.sleep_then, 0.05, i) for i in range(count)]
    ex.shutdown(cancel_futures=True)
    assert all(run.done() for run in runs)
    cancelled = [run for run in runs if run.cancelled()]
    for run in runs:
        if not run.cancelled():
            assert run.exception() is None
    if kind.inline:
        assert not cancelled  # each run finished inside its submit
    elif kind.sized:
        assert len(cancelled) > 20
    else:
        # Dask: every run went to the scheduler at submit; none is cancellable.
        assert not cancelled


def test_cancel_then_shutdown_does_not_hang_gh94440(make: Any) -> None:
    ex = make(max_workers=1)
    assert ex.submit(int).result(timeout=30) == 0
    ex.submit(int).cancel()
    ex.shutdown(wait=True)


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_interpreter_exit_runs_pending_work(name: str) -> None:
    # CPython's test_interpreter_shutdown and test_hang_gh83386: work submitted
    # and never waited for, with or without shutdown(wait=False), still runs
    # before the interpreter exits, and nothing is printed on stderr.
    proc = run_script(
        f"""
        {IMPORTS}
        import funcs
        if __name__ == "__main__":
            t = {CONSTRUCTORS[name]}
            t.submit(funcs.sleep_and_print, 0.1, "apple")
            u = {CONSTRUCTORS[name]}
            u.submit(funcs.sleep_and_print, 0.1, "banana")
            u.shutdown(wait=False)
        """
    )
    assert proc.stderr == ""
    assert sorted(proc.stdout.split()) == ["apple", "banana"]
    assert proc.returncode == 0


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_submit_after_interpreter_shutdown(name: str) -> None:
    proc = run_script(
        f"""
        import atexit
        @atexit.register
        def run_last():
            try:
                t.submit(id, None)
            except RuntimeError:
                print("runtime-error")
                raise
        {IMPORTS}
        if __name__ == "__main__":
            t = {CONSTRUCTORS[name]}
            t.submit(id, 42).result()
        """
    )
    assert "RuntimeError: cannot schedule new futures" in proc.stderr
    assert proc.stdout.strip() == "runtime-error"


def test_thread_cancel_futures_without_wait() -> None:
    # CPython's test_cancel_futures_wait_false: the run may or may not have
    # started; either way the exit is clean.
    proc = run_script(
        f"""
        {IMPORTS}
        import funcs
        if __name__ == "__main__":
            t = ThreadRunner()
            t.submit(funcs.sleep_and_print, 0.1, "apple")
            t.shutdown(wait=False, cancel_futures=True)
        """
    )
    assert proc.stderr == ""
    assert proc.stdout.strip() in ("apple", "")
