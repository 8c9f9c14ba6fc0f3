"""Breaking this session's per-run path changes as a demanding user would (breaker2).

Each test here failed on the code before its fix (see the commit that adds it).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

import pytest

from woflo import AsyncRunner, SequentialRunner, ThreadRunner
from woflo._runner import Runner


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


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
    handler = _Records()
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
