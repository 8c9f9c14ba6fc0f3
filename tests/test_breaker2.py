"""Breaking this session's per-run path changes as a demanding user would (breaker2).

Each test here failed on the code before its fix (see the commit that adds it).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

import pytest
from helpers import Collect

from woflo import AsyncRunner, ProcessRunner, SequentialRunner, ThreadRunner, unresolved
from woflo._runner import Runner

_IN_PROCESS = [
    pytest.param(lambda: SequentialRunner(), id="sequential"),
    pytest.param(lambda: ThreadRunner(2), id="thread"),
    pytest.param(lambda: AsyncRunner(), id="async"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("make", _IN_PROCESS)
def test_a_context_copied_in_a_task_logs_with_the_runs_fields_after_the_attempt_ended(make: Any) -> None:
    # docs/logging.md: a context copied inside a task (a thread started with
    # contextvars.copy_context()) keeps logging with the run's fields while
    # the run lives. The binding was a weak reference to the attempt, which
    # is gone once the run ended: the record lost its fields.
    logger = logging.getLogger("tests.breaker2.copied")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    go = threading.Event()

    def later() -> None:
        assert go.wait(30)
        logger.info("after the task")

    def task() -> threading.Thread:
        thread = threading.Thread(target=contextvars.copy_context().run, args=(later,))
        thread.start()
        return thread

    runner: Runner = make()
    try:
        run = runner.submit(task)
        thread = run.result(timeout=30)
        go.set()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        runner.shutdown(wait=True)
        logger.removeHandler(handler)
    [record] = [r for r in handler.records if r.getMessage() == "after the task"]
    assert getattr(record, "run_id", None) == run.run_id
    assert getattr(record, "task", None) == run.name
    assert getattr(record, "attempt", None) == 1


class _FailFast(logging.Filter):
    """Stops every other run of ``runs`` when one logs task.failed: a user's fail-fast, written as a filter.

    Both runs' events must be in the filter at once (a barrier) before either
    stops the other: the deadlock needs each run's end in progress.
    """

    def __init__(self, runs: dict[str, Any]) -> None:
        super().__init__()
        self.runs = runs
        self.barrier = threading.Barrier(2)
        self.stopped: dict[str, bool] = {}
        self.done = threading.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "event", None) != "task.failed":
            return True
        me = self.runs[record.run_id]  # type: ignore[attr-defined]
        self.barrier.wait(30)
        for run in self.runs.values():
            if run is not me:
                self.stopped[me.run_id] = run.stop()
        if len(self.stopped) == 2:
            self.done.set()
        return True


@pytest.mark.timeout(90)
def test_a_handler_that_stops_the_other_runs_on_task_failed_does_not_deadlock() -> None:
    # task.failed was logged with the run's lock held: two runs failing at
    # once, each stopping the other from the event (a fail-fast handler),
    # each held its own run's lock and waited for the other's, and so did
    # any caller of result()/exception() on them, timeout or not.
    woflo_logger = logging.getLogger("woflo")
    level = woflo_logger.level
    runs: dict[str, Any] = {}
    fail_fast = _FailFast(runs)
    registered = threading.Event()
    both = threading.Barrier(2)

    def task() -> None:
        assert registered.wait(30)
        both.wait(30)  # both fail together
        raise ValueError("boom")

    woflo_logger.addFilter(fail_fast)
    woflo_logger.setLevel(logging.INFO)
    runner = ThreadRunner(2)
    try:
        a, b = runner.submit(task), runner.submit(task)
        runs[a.run_id], runs[b.run_id] = a, b
        registered.set()
        # Not a.exception(timeout): that takes the run's lock, held forever
        # by a deadlocked end.
        assert fail_fast.done.wait(30), "the two runs' ends deadlocked"
        assert isinstance(a.exception(timeout=30), ValueError)
        assert isinstance(b.exception(timeout=30), ValueError)
        # Each was ending already when the other stopped it: not stopped.
        assert fail_fast.stopped == {a.run_id: False, b.run_id: False}
    finally:
        woflo_logger.removeFilter(fail_fast)
        woflo_logger.setLevel(level)
        runner.shutdown(wait=fail_fast.done.is_set())


@pytest.mark.timeout(60)
def test_a_handler_that_submits_to_a_limit_while_another_thread_waits_for_it_does_not_deadlock() -> None:
    # task.waiting was logged with the limit's lock held: a thread waiting
    # for a slot held the limit's lock while it waited for a logging
    # handler's lock, and the handler (on another thread, emitting some
    # record) submitted a run with that limit: it waited for the limit's
    # lock. Each held what the other waited for.
    import woflo
    from woflo import task

    gate = woflo.limit(f"breaker2-{id(threading)}-{threading.get_ident()}", max_concurrency=1)
    release = threading.Event()
    waiting_logged = threading.Event()
    from_handler: list[Any] = []
    woflo_logger = logging.getLogger("woflo")
    user_logger = logging.getLogger("tests.breaker2.resubmit")
    level = woflo_logger.level
    runner = ThreadRunner(3)
    hold = task(release.wait, limits=gate)
    later = task(threading.get_ident, limits=gate)
    other: list[Any] = []

    class SeesWaiting(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if getattr(record, "event", None) == "task.waiting" and threading.current_thread() is not main:
                waiting_logged.set()
            return True

    class Resubmits(logging.Handler):
        # Handles its own logger's records and task.waiting (a handler's
        # filters run before it takes its lock; emit runs under it).
        def filter(self, record: logging.LogRecord) -> bool:
            return record.name == user_logger.name or getattr(record, "event", None) == "task.waiting"

        def emit(self, record: logging.LogRecord) -> None:
            if record.name == user_logger.name:
                thread = threading.Thread(target=lambda: other.append(runner.submit(later)))
                thread.start()
                assert waiting_logged.wait(30)
                from_handler.append(runner.submit(later))

    main = threading.current_thread()
    sees, handler = SeesWaiting(), Resubmits()
    woflo_logger.addFilter(sees)
    woflo_logger.addHandler(handler)
    user_logger.addHandler(handler)
    woflo_logger.setLevel(logging.DEBUG)
    try:
        holder = runner.submit(hold, 30)
        user_logger.warning("resubmit")
        release.set()
        assert holder.result(timeout=30)
        wait_all = [from_handler[0], *_wait_for_list(other)]
        for run in wait_all:
            run.result(timeout=30)
    finally:
        release.set()
        woflo_logger.removeFilter(sees)
        woflo_logger.removeHandler(handler)
        user_logger.removeHandler(handler)
        woflo_logger.setLevel(level)
        runner.shutdown(wait=True)


def _wait_for_list(items: list[Any]) -> list[Any]:
    from woflo.testing import wait_for

    wait_for(lambda: bool(items), what="the other thread's run submitted")
    return items


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunksize", [1, 2])
def test_a_chunked_process_map_takes_runs_one_level_down_in_an_argument_as_submit_does(chunksize: int) -> None:
    # A run one level down in a list, tuple or dict argument is an input of
    # submit, map and map(chunksize=1); map(chunksize>1) passed each call's
    # arguments as one tuple, so such a run was two levels down in the chunk
    # run's arguments: not looked for, pickled, SerializationError.
    import funcs

    with ThreadRunner(2) as threads, ProcessRunner(2) as ex:
        five = threads.submit(funcs.add, 2, 3)
        got = ex.map(funcs.capture, [[five, 1], (five,), {"k": five}, five, 7], chunksize=chunksize, timeout=60)
        assert list(got) == [(([5, 1],), {}), (((5,),), {}), (({"k": 5},), {}), ((5,), {}), ((7,), {})]
        # Two iterables: each call's arguments stay apart.
        got = ex.map(funcs.add, [five, 1, 2], [[five][0], 10, five], chunksize=chunksize, timeout=60)
        assert list(got) == [10, 11, 7]
        # unresolved() one level down passes the run itself (a pickling error, as chunksize=1).
        with pytest.raises(TypeError, match="cannot pickle"):
            list(ex.map(funcs.identity, [[unresolved(five)]], chunksize=chunksize, timeout=60))
