"""CPython's ``InitializerMixin`` and ``FailingInitializerMixin`` (test_concurrent_futures/test_init.py).

``initializer``/``initargs`` exist on the runners that own workers:
`ThreadRunner` and `ProcessRunner`. A failing initializer makes the stdlib
pools broken: every pending future and every later ``submit`` raises
``BrokenThreadPool`` / ``BrokenProcessPool`` (both ``BrokenExecutor``).
"""

from __future__ import annotations

from concurrent.futures import BrokenExecutor
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

import funcs
import pytest
from cpython_helpers import kinds
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)

# WofloExecutor takes no initializer (it is a policy over a runner: pass
# runner=ThreadRunner(initializer=...)), and the other runners have no workers to set up.
with_initializer = kinds(lambda k: k.name in ("thread", "process", "process-spawn", "process-forkserver"))


def broken_class(kind: RunnerKind) -> type[BrokenExecutor]:
    return BrokenThreadPool if kind.name == "thread" else BrokenProcessPool


@pytest.fixture(autouse=True)
def reset_status() -> None:
    funcs.INITIALIZER_STATUS = "uninitialized"


@with_initializer
def test_initializer(make: Any) -> None:
    ex = make(max_workers=2, initializer=funcs.init, initargs=("initialized",))
    runs = [ex.submit(funcs.get_init_status) for _ in range(2)]
    assert [run.result(timeout=30) for run in runs] == ["initialized", "initialized"]


@with_initializer
def test_failing_initializer(make: Any, kind: RunnerKind) -> None:
    ex = make(max_workers=2, initializer=funcs.init_fail)
    expected = broken_class(kind)
    try:
        run = ex.submit(funcs.get_init_status)
    except BrokenExecutor as exc:  # the runner may already know it is broken
        assert isinstance(exc, expected)
    else:
        with pytest.raises(expected) as info:
            run.result(timeout=10)  # a runner that never starts a worker must not leave it pending
        # Better than the stdlib, which only logs it: the initializer's error is the cause.
        assert "error in initializer" in repr(info.value.__cause__) + str(info.value)
        # The stdlib's words ("A thread initializer failed, the thread pool is not usable anymore").
        assert "initializer failed" in str(info.value)
    # From now on, submit fails at the call.
    with pytest.raises(expected):
        ex.submit(funcs.get_init_status)
