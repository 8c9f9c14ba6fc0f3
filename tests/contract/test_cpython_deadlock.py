"""CPython's ``ExecutorDeadlockTest`` (test_concurrent_futures/test_deadlock.py), on the process runners.

A worker that crashes, exits or fails while (un)pickling a task or its result.
The stdlib breaks the whole pool in most of these cases (every pending future
and every later submit raise ``BrokenProcessPool``); woflo fails only the run
concerned and the runner keeps working (deliberate, docs/compat.md), which
every case here checks after the expected exception.
"""

from __future__ import annotations

import pickle
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import funcs
import pytest
from cpython_helpers import is_process, kinds, run_script
from runners import RUNNER_KINDS

from woflo import SerializationError

pytestmark = pytest.mark.timeout(60)

PROCESS_KINDS = [k for k in RUNNER_KINDS if is_process(k)]


@pytest.fixture(scope="module", params=PROCESS_KINDS, ids=[k.name for k in PROCESS_KINDS])
def pool(request: pytest.FixtureRequest) -> Any:
    """One runner per process kind for every case: a case must not break it."""
    runner = request.param.make(max_workers=2)
    yield runner
    runner.shutdown(wait=True, stop_running=True)


# (what happens, function, its argument, what result() raises in woflo, what the stdlib raises)
CASES = [
    ("error at task pickle", id, funcs.ErrorAtPickle, (pickle.PicklingError,), "PicklingError"),
    ("exit at task unpickle", id, funcs.ExitAtUnpickle, (BrokenProcessPool,), "BrokenProcessPool"),
    # Deliberate: woflo says what failed (the arguments could not be unpickled);
    # the pool is not broken, so BrokenProcessPool would be a lie.
    (
        "error at task unpickle",
        id,
        funcs.ErrorAtUnpickle,
        (SerializationError, pickle.UnpicklingError),
        "BrokenProcessPool",
    ),
    ("crash at task unpickle", id, funcs.CrashAtUnpickle, (BrokenProcessPool,), "BrokenProcessPool"),
    ("crash during the call", funcs.segfault, None, (BrokenProcessPool,), "BrokenProcessPool"),
    ("exit during the call", funcs.exit_now, None, (SystemExit,), "SystemExit"),
    ("error during the call", funcs.raise_runtime_error_123, None, (RuntimeError,), "RuntimeError"),
    ("crash at result pickle", funcs.return_instance, funcs.CrashAtPickle, (BrokenProcessPool,), "BrokenProcessPool"),
    ("exit at result pickle", funcs.return_instance, funcs.ExitAtPickle, (SystemExit,), "SystemExit"),
    ("error at result pickle", funcs.return_instance, funcs.ErrorAtPickle, (pickle.PicklingError,), "PicklingError"),
    # Deliberate, as at task unpickle.
    (
        "error at result unpickle",
        funcs.return_instance,
        funcs.ErrorAtUnpickle,
        (SerializationError, pickle.UnpicklingError),
        "BrokenProcessPool",
    ),
]


@pytest.mark.parametrize(("what", "fn", "arg", "expected", "stdlib"), CASES, ids=[c[0] for c in CASES])
def test_only_the_run_fails(pool: Any, what: str, fn: Any, arg: Any, expected: tuple[type, ...], stdlib: str) -> None:
    if arg is None:
        run = pool.submit(fn)
    elif fn is id:
        run = pool.submit(fn, arg())  # the object itself travels
    else:
        run = pool.submit(fn, arg)  # the class travels, the worker makes the object
    exc = run.exception(timeout=30)
    for cls in expected:
        assert isinstance(exc, cls), f"{what}: got {exc!r}, wanted an instance of every one of {expected}"
    # Deliberate deviation: the runner keeps working.
    assert pool.submit(pow, 2, 8).result(timeout=30) == 256


def test_exit_at_result_unpickle_fails_only_the_run() -> None:
    # SystemExit raised in the parent while it unpickles a result. Run in a
    # child interpreter: a runner whose result delivery dies would hang this
    # one. One kind only: the parent's side is the same for every start method.
    proc = run_script(
        """
        import os, sys
        from concurrent.futures.process import BrokenProcessPool
        from pickle import PicklingError
        from woflo import ProcessRunner
        import funcs
        if __name__ == "__main__":
            ex = ProcessRunner(1)
            try:
                ex.submit(funcs.return_instance, funcs.ExitAtUnpickle).result(timeout=5)
            except (BrokenProcessPool, PicklingError) as exc:
                print("failed", type(exc).__name__, flush=True)
            except BaseException as exc:
                print("wrong", repr(exc), flush=True)
            try:
                print("later", ex.submit(pow, 2, 3).result(timeout=3), flush=True)
            except BaseException as exc:
                print("later wrong", repr(exc), flush=True)
            for pid in ex.worker_pids:
                os.kill(pid, 9)
            os._exit(0)  # whatever state the runner is in, do not wait for it
        """
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("failed "), proc.stdout + proc.stderr
    assert lines[1] == "later 8", proc.stdout + proc.stderr


@kinds(is_process)
def test_crash_after_shutdown_began(make: Any) -> None:
    # A worker that dies after shutdown(wait=True) began: shutdown returns,
    # the run fails with BrokenProcessPool.
    ex = make(max_workers=2)
    run = ex.submit(funcs.segfault_after, 0.1)
    ex.shutdown(wait=True)
    with pytest.raises(BrokenProcessPool):
        run.result(timeout=0)


@kinds(is_process)
def test_pickling_error_after_shutdown_without_wait_bpo39104(make: Any) -> None:
    ex = make(max_workers=2)
    assert isinstance(ex.submit(id, 42).result(timeout=30), int)
    run = ex.submit(id, funcs.ErrorAtPickle())
    ex.shutdown(wait=False)
    with pytest.raises(pickle.PicklingError):
        run.result(timeout=30)


@kinds(is_process)
def test_crash_with_big_data_gh94777(make: Any) -> None:
    # A worker dies while a large argument is still being written to it.
    ex = make(max_workers=2)
    data = "a" * (4 * 1024 * 1024 + 1)
    with pytest.raises(BrokenProcessPool):
        list(ex.map(funcs.segfault_with_data, [data] * 3))
    assert ex.submit(pow, 2, 8).result(timeout=30) == 256
