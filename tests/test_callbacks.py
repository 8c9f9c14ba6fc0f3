"""Done-callbacks nest as the stdlib's until the stack is deep: chains of runs started from callbacks stay bounded.

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

import asyncio
import io
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import funcs
import pytest
from helpers import wait_for

import woflo
from woflo import AsyncRunner, ProcessRunner, SequentialRunner, ThreadRunner
from woflo._each import MAX_NESTED_CALLBACKS
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
    if runner.runner_name == "sequential":  # every callback on this thread: the stack stops growing
        bound = min(depths) + 40 * MAX_NESTED_CALLBACKS
        assert max(depths) < bound < sys.getrecursionlimit(), (min(depths), max(depths))


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
    assert max(depths) < min(depths) + 40 * MAX_NESTED_CALLBACKS < sys.getrecursionlimit(), (min(depths), max(depths))


def test_outside_a_callback_a_done_run_calls_a_new_callback_at_once() -> None:
    # The stdlib's contract where nothing nests: called inside add_done_callback.
    run = SequentialRunner().submit(funcs.add, 1, 1)
    seen: list[int] = []
    run.add_done_callback(lambda r: seen.append(r.result()))
    assert seen == [2]


def test_inside_a_callback_a_done_run_still_calls_a_new_callback_at_once() -> None:
    # Code written for the stdlib relies on it there too (asyncio.wrap_future,
    # a progress bar that hands runs over through callbacks): a shallow
    # nesting keeps the stdlib's behaviour.
    runner = SequentialRunner()
    first, second = runner.submit(funcs.add, 1), runner.submit(funcs.add, 2)
    order: list[str] = []

    def outer(run: Any) -> None:
        order.append("outer starts")
        second.add_done_callback(lambda r: order.append(f"inner {r.result()}"))
        order.append("outer ends")

    first.add_done_callback(outer)
    assert order == ["outer starts", "inner 2", "outer ends"]


def test_asyncio_wrap_future_and_progress_work_inside_a_callback() -> None:
    # Both add a callback to a done run and wait for it: queued, it hung.
    runner = SequentialRunner()
    done = runner.submit(pow, 2, 5)
    got: list[object] = []

    def callback(run: Any) -> None:
        async def main() -> int:
            return await asyncio.wait_for(asyncio.wrap_future(done), 30)

        got.append(asyncio.run(main()))
        got.append(sorted(r.result() for r in woflo.progress([done, run], file=io.StringIO(), bar=False)))

    runner.submit(funcs.add, 1).add_done_callback(callback)
    assert got == [32, [1, 32]]


def _nest(levels: int, innermost: Callable[[], object]) -> None:
    """Call ``innermost`` inside ``levels`` done-callbacks, each added to a done run inside the last."""
    runner = SequentialRunner()

    def level(n: int) -> Callable[[Any], None]:
        def callback(run: Any) -> None:
            if n == levels:
                innermost()
            else:
                runner.submit(funcs.add, n).add_done_callback(level(n + 1))

        return callback

    runner.submit(funcs.add, 0).add_done_callback(level(1))


def _deep(fn: Callable[[], object], frames: int | None = None) -> None:
    """Call ``fn`` once the stack is ``frames`` deeper (default: past half the recursion limit)."""
    if frames is None:
        frames = sys.getrecursionlimit() // 2
    if frames <= 0:
        fn()
    else:
        _deep(fn, frames - 1)


def test_nested_and_deep_callbacks_are_queued_in_order() -> None:
    order: list[str] = []
    runner = SequentialRunner()
    done = runner.submit(funcs.add, 2)

    def innermost() -> None:
        order.append("innermost starts")
        done.add_done_callback(lambda r: order.append(f"queued a {r.result()}"))
        done.add_done_callback(lambda r: order.append(f"queued b {r.result()}"))
        order.append("innermost ends")

    _nest(MAX_NESTED_CALLBACKS, lambda: _deep(innermost))
    assert order == ["innermost starts", "innermost ends", "queued a 2", "queued b 2"]


def test_nested_but_shallow_callbacks_still_run_at_once() -> None:
    # 16 nested callbacks on a short stack: what code written for the stdlib
    # does there (here woflo.progress, which hands runs over through
    # add_done_callback) must work as it does one level down.
    runner = SequentialRunner()
    done = [runner.submit(funcs.add, n) for n in range(3)]
    got: list[list[int]] = []

    def innermost() -> None:
        got.append(sorted(r.result() for r in woflo.progress(done, file=io.StringIO(), bar=False)))

    _nest(MAX_NESTED_CALLBACKS + 1, innermost)
    assert got == [[0, 1, 2]]


def test_a_queued_callbacks_errors_are_reported_and_its_exit_reaches_the_outer_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Queued, a callback keeps the stdlib's outcomes: an Exception is logged on
    # concurrent.futures and the rest still run; a SystemExit propagates, here
    # out of the outermost add_done_callback, once every queued call was made.
    done = SequentialRunner().submit(funcs.add, 2)
    ran: list[str] = []

    def bad(run: Any) -> None:
        raise ValueError("a callback's bug")

    def leave(run: Any) -> None:
        raise SystemExit(4)

    def innermost() -> None:
        for callback in (bad, leave, lambda r: ran.append("after")):
            done.add_done_callback(callback)
        ran.append("innermost ends")

    with caplog.at_level(logging.ERROR, logger="concurrent.futures"), pytest.raises(SystemExit):
        _nest(MAX_NESTED_CALLBACKS, lambda: _deep(innermost))
    assert ran == ["innermost ends", "after"]
    assert any("exception calling callback" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_stopped_input_fails_its_consumer_before_the_callback_that_stopped_it_returns() -> None:
    runner = ThreadRunner(2)
    started = threading.Event()
    try:
        slow = runner.submit(started.wait, 60)
        consumer = runner.submit(funcs.identity, slow)
        seen: list[str] = []

        def stop_and_look(run: Any) -> None:
            slow.stop()
            try:
                consumer.result(timeout=30)
            except woflo.UpstreamFailed:
                seen.append("upstream failed")

        runner.submit(funcs.add, 1).add_done_callback(stop_and_look)
        wait_for(lambda: bool(seen), 60, "the callback saw its consumer fail")
        assert seen == ["upstream failed"]
    finally:
        started.set()
        runner.shutdown(wait=True)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_inside_a_callback_calls_its_own_callbacks() -> None:
    # The child inherited the thread's "inside a callback" state: its own
    # callbacks were queued for a loop that does not exist there.
    def in_child(run: Any) -> None:
        pid = os.fork()
        if pid == 0:
            seen: list[int] = []
            SequentialRunner().submit(funcs.add, 3).add_done_callback(lambda r: seen.append(r.result()))
            os._exit(0 if seen == [3] else 1)
        _, status = os.waitpid(pid, 0)
        codes.append(os.waitstatus_to_exitcode(status))

    codes: list[int] = []
    _nest(MAX_NESTED_CALLBACKS, lambda: SequentialRunner().submit(funcs.add, 1).add_done_callback(in_child))
    assert codes == [0]
