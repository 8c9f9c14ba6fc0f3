"""CPython's ``ThreadPoolExecutorTest`` and ``ThreadPoolShutdownTest``, on the thread runners."""

from __future__ import annotations

import gc
import operator
import os
import re
import threading
from typing import Any

import pytest
from cpython_helpers import is_thread, kinds

from woflo import ThreadRunner, WofloExecutor

pytestmark = pytest.mark.timeout(60)


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "_")]


def test_default_max_workers() -> None:
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1  # 3.13 counts the usable CPUs
    expected = min(32, cpus + 4)
    with ThreadRunner() as ex:
        assert ex.max_workers == expected
    with WofloExecutor(runner=ThreadRunner) as wex:
        assert wex.runner.max_workers == expected  # type: ignore[attr-defined]


def test_saturation() -> None:
    ex = ThreadRunner(4, thread_name_prefix="saturation")
    sem = threading.Semaphore(0)
    runs = [ex.submit(sem.acquire, timeout=30) for _ in range(15 * 4)]
    assert len(threads_named("saturation")) == 4
    for _ in runs:
        sem.release()
    ex.shutdown(wait=True)
    assert all(run.result() for run in runs)


def test_idle_thread_reuse() -> None:
    ex = ThreadRunner(thread_name_prefix="reuse")
    assert ex.submit(operator.mul, 21, 2).result(timeout=30) == 42
    assert ex.submit(operator.mul, 6, 7).result(timeout=30) == 42
    assert ex.submit(operator.mul, 3, 14).result(timeout=30) == 42
    assert len(threads_named("reuse")) == 1
    ex.shutdown(wait=True)


def test_thread_names_assigned() -> None:
    ex = ThreadRunner(5, thread_name_prefix="SpecialPool")
    sem = threading.Semaphore(0)
    runs = [ex.submit(sem.acquire, timeout=30) for _ in range(5)]
    threads = threads_named("SpecialPool")
    for _ in runs:
        sem.release()
    ex.shutdown(wait=True)
    assert len(threads) == 5
    for t in threads:
        assert re.match(r"^SpecialPool_[0-4]$", t.name), t.name  # the stdlib numbers them from 0


def test_thread_names_default_are_unique_per_runner() -> None:
    names = []
    for _ in range(2):
        with ThreadRunner(1) as ex:
            names.append(ex.submit(lambda: threading.current_thread().name).result(timeout=30))
    assert names[0] != names[1]
    assert all(re.search(r"_\d+$", n) for n in names), names


def test_threads_end_at_shutdown() -> None:
    ex = ThreadRunner(5, thread_name_prefix="terminate")
    sem = threading.Semaphore(0)
    runs = [ex.submit(sem.acquire, timeout=30) for _ in range(3)]
    threads = threads_named("terminate")
    assert len(threads) == 3  # started on demand
    for _ in runs:
        sem.release()
    ex.shutdown()
    for t in threads:
        t.join(30)
        assert not t.is_alive()


@kinds(is_thread)
def test_context_manager_shutdown(make: Any) -> None:
    with make(max_workers=5) as ex:
        assert list(ex.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(abs, 1)


@kinds(is_thread)
def test_dropped_runner_still_delivers(kind: Any) -> None:
    # CPython's test_del_shutdown: the results were all computed.
    ex = kind.make(max_workers=5)
    results = ex.map(abs, range(-5, 5))
    del ex
    gc.collect()
    assert list(results) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]


@kinds(is_thread)
def test_shutdown_without_wait_still_delivers(make: Any) -> None:
    ex = make(max_workers=5)
    results = ex.map(abs, range(-5, 5))
    ex.shutdown(wait=False)
    assert list(results) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
