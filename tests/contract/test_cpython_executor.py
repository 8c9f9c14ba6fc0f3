"""CPython's ``ExecutorTest`` (test_concurrent_futures/executor.py), on every runner.

What a user sees through ``submit``: results, keyword arguments, exceptions and
their tracebacks, ``sys.exit`` inside a task, ``max_workers`` checks, and that
the runner lets go of a task's objects once the run is over.
"""

from __future__ import annotations

import gc
import operator
import sys
import traceback
import weakref
from typing import Any

import funcs
import pytest
from cpython_helpers import is_process, kinds
from helpers import wait_freed
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)


def test_submit(make: Any) -> None:
    assert make().submit(pow, 2, 8).result(timeout=30) == 256


def test_submit_keyword(make: Any) -> None:
    ex = make()
    assert ex.submit(operator.mul, 2, 8).result(timeout=30) == 16
    # "self" and "fn" are the task's keywords, not submit's own parameters.
    assert ex.submit(funcs.capture, 1, self=2, fn=3).result(timeout=30) == ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        ex.submit(fn=funcs.capture, arg=1)
    with pytest.raises(TypeError):
        ex.submit(arg=1)


def test_exception_in_task(make: Any) -> None:
    with pytest.raises(ZeroDivisionError):
        make().submit(divmod, 1, 0).result(timeout=30)


def test_traceback_of_the_task_is_kept(make: Any) -> None:
    # ProcessPoolExecutor: the exception comes back as its own type with its
    # args, and its printed traceback shows the line that raised it.
    run = make().submit(funcs.raise_runtime_error_123)
    exc = run.exception(timeout=30)
    assert type(exc) is RuntimeError
    assert exc.args == (123,)
    printed = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert "raise RuntimeError(123)  # the line the remote traceback must show" in printed


def test_sys_exit_in_a_task_is_its_result(make: Any, kind: RunnerKind) -> None:
    # Both stdlib pools catch BaseException around the call: result() raises
    # SystemExit and the worker (thread or process) carries on.
    if kind.name == "dask":
        pytest.skip("sys.exit in a Dask task ends the Dask worker process (distributed's own behaviour)")
    ex = make()
    run = ex.submit(sys.exit, 3)
    with pytest.raises(SystemExit) as info:
        run.result(timeout=30)
    assert info.value.code == 3
    assert ex.submit(pow, 2, 3).result(timeout=30) == 8


def test_no_stale_references(make: Any) -> None:
    # Issue #16284: the runner must not keep the task's objects once the run is over.
    ex = make()
    obj = funcs.MyObject()
    ref = weakref.ref(obj)
    run = ex.submit(obj.my_method)  # the bound method holds obj
    del obj
    run.result(timeout=30)
    del run  # CPython's test drops the future at once
    # The runner lets go just after the result is set.
    wait_freed(ref, "the task's callable")


def test_a_finished_run_holds_its_result_not_its_arguments(make: Any) -> None:
    # As the stdlib's futures: a list of finished runs must not keep every input alive.
    arg = funcs.MyObject()
    ref = weakref.ref(arg)
    run = make().submit(id, arg)
    assert isinstance(run.result(timeout=30), int)
    del arg
    gc.collect()
    assert ref() is None, "a finished run still holds its arguments"
    assert run.done()


@kinds(lambda k: k.sized)
def test_max_workers_must_be_positive(kind: RunnerKind) -> None:
    for number in (0, -1):
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            kind.make(max_workers=number)


def test_shutdown_race_issue12456(make: Any) -> None:
    # Issue #12456: shutdown right after a map that is never iterated.
    ex = make()
    ex.map(str, [2] * 3)
    ex.shutdown()


@kinds(is_process)
def test_each_call_gets_a_fresh_copy_of_a_callable_object(make: Any) -> None:
    # ProcessPoolExecutor pickles the callable with every call: state set in
    # the worker by one call never reaches the next.
    ex = make(max_workers=1)
    counter = funcs.CallCounter()
    assert [ex.submit(counter).result(timeout=30) for _ in range(3)] == [1, 1, 1]
    assert counter.calls == 0
