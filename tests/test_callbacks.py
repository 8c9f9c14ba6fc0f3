"""Done-callbacks are never nested: chains of runs started from callbacks take constant stack.

With the stdlib's ``Future``, a callback added to a finished future runs
inside ``add_done_callback``; a run that ends inside ``submit`` (an inline
runner) runs its callbacks there too. A chain of runs, each submitted from
the previous one's callback, then went one stack level deeper per run: on
``SequentialRunner`` it hit the recursion limit after about 490 runs, and the
``RecursionError`` left the last run running for ever (its ``result()`` never
returned). Users reported the same against amltk's ``SequentialExecutor`` and
Parsl's chains of fast tasks.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import funcs
import pytest

from woflo import AsyncRunner, ProcessRunner, SequentialRunner, ThreadRunner
from woflo._runner import Runner

pytestmark = pytest.mark.timeout(120)

CHAIN = 3 * sys.getrecursionlimit()  # far past what nesting could reach

MAKERS: dict[str, Callable[[], Runner]] = {
    "sequential": SequentialRunner,
    "thread": lambda: ThreadRunner(2),
    "async": AsyncRunner,
    "process": lambda: ProcessRunner(1),
}


def _depth() -> int:
    frame, n = sys._getframe(1), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


@pytest.fixture
def runner(request: pytest.FixtureRequest) -> Iterator[Runner]:
    r = MAKERS[request.param]()
    yield r
    r.shutdown(wait=True)


@pytest.mark.parametrize("runner", sorted(MAKERS), indirect=True)
def test_a_chain_resubmitted_from_callbacks_added_to_each_run_completes(runner: Runner) -> None:
    # The pattern of the bug reports: when a run is done, submit the next and
    # add the same callback to it (on an inline runner the run is done
    # already, so add_done_callback calls it at once).
    depths: list[int] = []
    last: list[Any] = []
    ended = threading.Event()

    def next_step(run: Any) -> None:
        k = run.result()
        depths.append(_depth())
        if k < CHAIN:
            nxt = runner.submit(funcs.add, k, 1)
            last[:] = [nxt]
            nxt.add_done_callback(next_step)
        else:
            ended.set()

    runner.submit(funcs.add, 0, 1).add_done_callback(next_step)
    assert ended.wait(100), f"the chain stopped at {len(depths)}; its last run: {last}"
    assert len(depths) == CHAIN
    if runner.runner_name == "sequential":  # every callback on this thread: the same depth each time
        assert max(depths) == min(depths), (min(depths), max(depths))


def test_a_chain_through_callbacks_registered_before_the_runs_end_completes() -> None:
    # The second path: each run's callback is registered at submit (here by
    # a submit callback), so the inline run calls it while it ends, inside
    # submit, inside the previous run's callback.
    runner = SequentialRunner()
    depths: list[int] = []

    def next_step(run: Any) -> None:
        k = run.result()
        depths.append(_depth())
        if k < CHAIN:
            runner.submit(funcs.add, k, 1)

    runner.add_submit_callback(lambda run: run.add_done_callback(next_step))
    runner.submit(funcs.add, 0, 1)
    runner.shutdown(wait=True)
    assert len(depths) == CHAIN
    assert max(depths) == min(depths), (min(depths), max(depths))


def test_outside_a_callback_a_done_run_calls_a_new_callback_at_once() -> None:
    # The stdlib's contract where nothing nests: called inside add_done_callback.
    run = SequentialRunner().submit(funcs.add, 1, 1)
    seen: list[int] = []
    run.add_done_callback(lambda r: seen.append(r.result()))
    assert seen == [2]


def test_a_callback_added_inside_a_callback_runs_right_after_it_in_order() -> None:
    runner = SequentialRunner()
    first, second = runner.submit(funcs.add, 1), runner.submit(funcs.add, 2)
    order: list[str] = []

    def outer(run: Any) -> None:
        order.append("outer starts")
        second.add_done_callback(lambda r: order.append(f"inner a {r.result()}"))
        second.add_done_callback(lambda r: order.append(f"inner b {r.result()}"))
        order.append("outer ends")

    first.add_done_callback(outer)
    assert order == ["outer starts", "outer ends", "inner a 2", "inner b 2"]


def test_a_queued_callbacks_errors_are_reported_and_its_exit_reaches_the_outer_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Queued, a callback keeps the stdlib's outcomes: an Exception is logged on
    # concurrent.futures and the rest still run; a SystemExit propagates, here
    # out of the outermost add_done_callback, once every queued call was made.
    runner = SequentialRunner()
    first, second = runner.submit(funcs.add, 1), runner.submit(funcs.add, 2)
    ran: list[str] = []

    def bad(run: Any) -> None:
        raise ValueError("a callback's bug")

    def leave(run: Any) -> None:
        raise SystemExit(4)

    def outer(run: Any) -> None:
        for callback in (bad, leave, lambda r: ran.append("after")):
            second.add_done_callback(callback)

    with caplog.at_level(logging.ERROR, logger="concurrent.futures"), pytest.raises(SystemExit):
        first.add_done_callback(outer)
    assert ran == ["after"]
    assert any("exception calling callback" in r.getMessage() and r.exc_info for r in caplog.records)
