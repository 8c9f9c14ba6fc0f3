"""CPython's ``WaitTests`` (test_concurrent_futures/test_wait.py), on every runner.

``concurrent.futures.wait`` over runs mixed with plain futures in every state.
One runner of each kind serves the whole module (see `module_runner_fixtures`).
"""

from __future__ import annotations

import concurrent.futures as cf
import operator
import sys
import threading
from typing import Any

import funcs
import pytest
from cpython_helpers import Gates, module_runner_fixtures, skip_inline, stdlib_futures
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)

kind, ex, gates = module_runner_fixtures()


def test_same_run_twice_issue20369(ex: Any) -> None:
    run = ex.submit(operator.mul, 1, 2)
    done, not_done = cf.wait([run, run], timeout=30, return_when=cf.ALL_COMPLETED)
    assert done == {run}
    assert not_done == set()


def test_first_completed(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    std = stdlib_futures()
    run1 = ex.submit(operator.mul, 21, 2)
    run2, _ = gates.hold(ex)
    done, not_done = cf.wait([std.cancelled, run1, run2], timeout=30, return_when=cf.FIRST_COMPLETED)
    assert done == {run1}
    assert not_done == {std.cancelled, run2}


def test_first_completed_some_already_completed(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    std = stdlib_futures()
    run, _ = gates.hold(ex)
    finished, pending = cf.wait(
        [std.cancelled_and_notified, std.successful, run], timeout=30, return_when=cf.FIRST_COMPLETED
    )
    assert finished == {std.cancelled_and_notified, std.successful}
    assert pending == {run}


def test_first_exception(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    run1 = ex.submit(operator.mul, 2, 21)
    run2, raise_gate = gates.hold(ex, funcs.block_then_raise)
    run3, _ = gates.hold(ex)

    def release_once_run1_is_done() -> None:
        # run1 must be finished before run2 raises.
        run1.result(timeout=30)
        raise_gate.release()

    helper = threading.Thread(target=release_once_run1_is_done)
    helper.start()
    try:
        finished, pending = cf.wait([run1, run2, run3], timeout=30, return_when=cf.FIRST_EXCEPTION)
    finally:
        helper.join(30)
    assert finished == {run1, run2}
    assert pending == {run3}
    assert str(run2.exception()) == "this is an exception"


def test_first_exception_some_already_complete(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    std = stdlib_futures()
    run1 = ex.submit(divmod, 21, 0)
    run2, _ = gates.hold(ex)
    finished, pending = cf.wait(
        [std.successful, std.cancelled, std.cancelled_and_notified, run1, run2],
        timeout=30,
        return_when=cf.FIRST_EXCEPTION,
    )
    assert finished == {std.successful, std.cancelled_and_notified, run1}
    assert pending == {std.cancelled, run2}


def test_first_exception_one_already_failed(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    std = stdlib_futures()
    run, _ = gates.hold(ex)
    finished, pending = cf.wait([std.exception, run], timeout=30, return_when=cf.FIRST_EXCEPTION)
    assert finished == {std.exception}
    assert pending == {run}


def test_all_completed(ex: Any) -> None:
    std = stdlib_futures()
    run1 = ex.submit(divmod, 2, 0)
    run2 = ex.submit(operator.mul, 2, 21)
    everything = [std.successful, std.cancelled_and_notified, std.exception, run1, run2]
    finished, pending = cf.wait(everything, timeout=30, return_when=cf.ALL_COMPLETED)
    assert finished == set(everything)
    assert pending == set()
    assert isinstance(run1.exception(), ZeroDivisionError) and run2.result() == 42


def test_timeout(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    std = stdlib_futures()
    run, _ = gates.hold(ex)
    finished, pending = cf.wait(
        [std.cancelled_and_notified, std.exception, std.successful, run],
        timeout=0.05,
        return_when=cf.ALL_COMPLETED,
    )
    assert finished == {std.cancelled_and_notified, std.exception, std.successful}
    assert pending == {run}


def test_pending_calls_race_issue14406(ex: Any, kind: RunnerKind) -> None:
    # Many runs ending at once while wait() registers its waiter on each.
    skip_inline(kind)
    if kind.remote:
        pytest.skip("the runs wait on a threading.Event of this process")
    event = threading.Event()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        runs = {ex.submit(event.wait, 30) for _ in range(100)}
        event.set()
        done, not_done = cf.wait(runs, timeout=30, return_when=cf.ALL_COMPLETED)
    finally:
        sys.setswitchinterval(old)
    assert not not_done and len(done) == 100
