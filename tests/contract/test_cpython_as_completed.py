"""CPython's ``AsCompletedTests`` (test_concurrent_futures/test_as_completed.py), on every runner.

One runner of each kind serves the whole module (see `module_runner_fixtures`).
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import operator
import weakref
from typing import Any

import funcs
import pytest
from cpython_helpers import Gates, module_runner_fixtures, skip_inline, stdlib_futures
from helpers import wait_freed
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)

kind, ex, gates = module_runner_fixtures()


def test_no_timeout(ex: Any) -> None:
    std = stdlib_futures()
    run1 = ex.submit(operator.mul, 2, 21)
    run2 = ex.submit(operator.mul, 7, 6)
    everything = {std.cancelled_and_notified, std.exception, std.successful, run1, run2}
    assert set(cf.as_completed(everything)) == everything
    assert run1.result() == run2.result() == 42


@pytest.mark.parametrize("timeout", [0, 0.1])
def test_run_times_out(ex: Any, kind: RunnerKind, gates: Gates, timeout: float) -> None:
    skip_inline(kind)
    std = stdlib_futures()
    already_completed = {std.cancelled_and_notified, std.exception, std.successful}
    run, _ = gates.hold(ex)
    completed = set()
    with pytest.raises(cf.TimeoutError):
        for f in cf.as_completed(already_completed | {run}, timeout):
            completed.add(f)
    assert completed == already_completed
    assert not run.done()


def test_finished_runs_with_zero_timeout(ex: Any) -> None:
    runs = [ex.submit(operator.mul, i, 2) for i in range(4)]
    cf.wait(runs, timeout=30)
    # Everything is finished: a zero timeout yields them all and raises nothing.
    assert set(cf.as_completed(runs, timeout=0)) == set(runs)


def test_duplicate_runs_issue20367(ex: Any) -> None:
    # Issue #31641: any iterable, duplicates yielded once.
    run = ex.submit(operator.mul, 3, 3)
    assert list(cf.as_completed(itertools.repeat(run, 3), timeout=30)) == [run]


def test_yielded_runs_are_not_kept_issue14406(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    # as_completed keeps no reference to what it has yielded, and neither may
    # the runner once a run is over: dropping the last reference frees it.
    skip_inline(kind)
    runs = [ex.submit(operator.mul, i, 2) for i in range(4)]
    cf.wait(runs, timeout=30)
    gate = gates.new()
    held = ex.submit(funcs.block, *gate.args)  # not gates.hold: the fixture would keep it
    runs.append(held)
    with pytest.raises(cf.TimeoutError):
        for run in cf.as_completed(runs, timeout=0):
            runs.remove(run)
            ref = weakref.ref(run)
            del run
            wait_freed(ref, "a finished run")
    assert runs == [held]
    gate.release()
    del held
    for run in cf.as_completed(runs, timeout=30):
        runs.remove(run)
        ref = weakref.ref(run)
        del run
        wait_freed(ref, "a finished run")


def test_timeout_message(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    std = stdlib_futures()
    run, _ = gates.hold(ex)
    with pytest.raises(cf.TimeoutError) as info:
        list(cf.as_completed([std.cancelled_and_notified, run, std.pending, std.successful], timeout=0))
    assert str(info.value) == "2 (of 4) futures unfinished"
