"""``Executor.map`` as CPython's executor.py, test_thread_pool.py and test_process_pool.py see it, on every runner."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import operator
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import funcs
import pytest
from cpython_helpers import Gates, module_runner_fixtures, skip_inline, skip_unsized
from helpers import wait_freed
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)

# One runner per kind for the tests that leave it as they found it; `make` for the others.
kind, ex, gates = module_runner_fixtures()


def test_map(ex: Any) -> None:
    assert list(ex.map(pow, range(10), range(10))) == list(map(pow, range(10), range(10)))
    assert list(ex.map(pow, range(10), range(10), chunksize=3)) == list(map(pow, range(10), range(10)))


def test_map_chunksize(ex: Any) -> None:
    expected = list(map(pow, range(40), range(40)))
    for chunksize in (6, 50, 40):
        assert list(ex.map(pow, range(40), range(40), chunksize=chunksize)) == expected
    with pytest.raises(ValueError):
        list(ex.map(pow, range(40), range(40), chunksize=-1))


def test_map_exception(ex: Any) -> None:
    results = ex.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(results) == (0, 1)
    assert next(results) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout(ex: Any, kind: RunnerKind, gates: Gates, tmp_path: Path) -> None:
    # CPython: map(time.sleep, [0, 0, 6], timeout=5) yields two results, then times out.
    skip_inline(kind)
    gate = gates.new()
    quick = [str(tmp_path / "a"), str(tmp_path / "b")]  # each call releases itself
    results = []
    with pytest.raises(cf.TimeoutError):  # not the builtin TimeoutError before 3.11
        for value in ex.map(funcs.block, [*quick, gate.started], [*quick, str(gate.release_file)], timeout=0.5):
            results.append(value)
    assert results == ["released", "released"]


def test_map_of_an_iterator_that_raises(make: Any, tmp_path: Path) -> None:
    # The stdlib's map submits every call before it returns: an input that
    # raises makes map() itself raise, and the calls submitted before it still run.
    ex = make()

    def inputs() -> Iterator[str]:
        yield str(tmp_path / "first")
        yield str(tmp_path / "second")
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        ex.map(funcs.touch, inputs())
    ex.shutdown(wait=True)
    assert (tmp_path / "first").exists() and (tmp_path / "second").exists()


def test_map_submits_without_iteration_issue11777(make: Any, tmp_path: Path) -> None:
    ex = make()
    ex.map(funcs.touch, [str(tmp_path / str(i)) for i in range(10)])
    ex.shutdown(wait=True)
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == list(range(10))


def test_free_reference_issue14406(ex: Any) -> None:
    # The result iterator must not keep a reference to the results it yielded.
    for obj in ex.map(funcs.make_dummy_object, range(10)):
        ref = weakref.ref(obj)
        del obj
        wait_freed(ref, "a result map's iterator yielded")


def test_timeout_cancels_the_calls_not_started(make: Any, kind: RunnerKind, gates: Gates, tmp_path: Path) -> None:
    # CPython's test_executor_map_current_future_cancel: once map's iterator
    # raises TimeoutError and is closed, the calls still waiting never run.
    skip_inline(kind)
    skip_unsized(kind)
    ex = make(max_workers=1)
    first, first_gate = gates.hold(ex)
    first_gate.wait_started()
    later = [gates.new() for _ in range(2)]
    results = ex.map(funcs.block, [g.started for g in later], [str(g.release_file) for g in later], timeout=0)
    with pytest.raises(cf.TimeoutError):  # not the builtin TimeoutError before 3.11
        next(results)
    results.close()
    first_gate.release()
    assert first.result(timeout=30) == "released"
    # A marker run: once it is done, the single worker is past the cancelled calls.
    assert ex.submit(operator.add, 1, 1).result(timeout=30) == 2
    assert not any(g.has_started() for g in later), "a call cancelled by map's timeout ran anyway"


def test_map_of_an_endless_input_with_buffersize(ex: Any) -> None:
    # Python 3.14's buffersize: the input is read only as results are consumed.
    results = ex.map(operator.mul, itertools.count(), itertools.repeat(2), buffersize=2)
    assert [next(results) for _ in range(4)] == [0, 2, 4, 6]
    results.close()
