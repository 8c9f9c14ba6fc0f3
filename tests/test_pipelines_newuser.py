"""Faults a demanding new user found in runs-as-inputs and limits (issue #12)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import CancelledError

import pytest

from woflo import ThreadRunner, UpstreamFailed
from woflo.testing import capture_events


def _inc(x: int) -> int:
    return x + 1


def _boom() -> int:
    raise ValueError("bad page")


@pytest.mark.timeout(120)
def test_a_stopped_input_fails_every_run_of_a_long_chain() -> None:
    """Stopping the head of a 500-run chain fails all of it; none stays pending.

    The failure used to travel down the chain by nested done-callbacks (each
    failed run's callback failed the next one inside it): past the recursion
    limit a RecursionError, swallowed by the stdlib's callback loop, left the
    rest of the chain pending for ever, and ``result()`` hung.
    """
    release = threading.Event()
    with ThreadRunner(2) as runner:
        head = runner.submit(release.wait, 60)
        runs = []
        run = head
        for _ in range(500):
            run = runner.submit(_inc, run)
            runs.append(run)
        assert head.stop()
        release.set()
        with pytest.raises(UpstreamFailed) as info:
            runs[-1].result(timeout=60)
        assert isinstance(info.value, CancelledError), "the root of the chain was a stopped run"
        assert all(r.done() and not r.cancelled() for r in runs)
        assert all(isinstance(r.exception(0), UpstreamFailed) for r in runs)


@pytest.mark.timeout(120)
def test_a_failure_down_a_long_chain_keeps_messages_short() -> None:
    """Each UpstreamFailed names its input and the root error, not the whole chain.

    Each message used to quote the one before it in full: the run N steps down
    held an N-line message, and a failed chain of 3,000 runs some 250 MB.
    """
    with ThreadRunner(2) as runner:
        run = runner.submit(_boom)
        first = None
        for _ in range(300):
            run = runner.submit(_inc, run)
            first = first or run
        with pytest.raises(ValueError, match="bad page") as info:
            run.result(timeout=60)
    assert first is not None
    short = len(str(first.exception(0)))
    message = str(info.value)
    assert "ValueError: bad page" in message and run.name in message
    assert len(message) <= 2 * short, "the last message of the chain is as long as the first's"


@pytest.mark.timeout(120)
def test_a_failed_chain_s_events_show_the_root_failure_not_the_whole_chain() -> None:
    """The task.failed event of a run N steps down a failed chain shows the root error's traceback once.

    It used to format the whole cause chain, N chained exceptions for the run N
    steps down: logging a failed chain cost the square of its length (47 s for
    3,000 runs under pytest's log capture).
    """
    with capture_events() as events, ThreadRunner(2) as runner:  # structlog's side: the traceback field
        run = runner.submit(_boom)
        for _ in range(50):
            run = runner.submit(_inc, run)
        with pytest.raises(UpstreamFailed):
            run.result(timeout=60)
    (event,) = [e for e in events if e["event"] == "task.failed" and e["run_id"] == run.run_id]
    assert event["exception_type"] == "UpstreamFailed"
    assert event["traceback"].count("ValueError: bad page") == 1
    assert "UpstreamFailed" not in event["traceback"]

    records: list[logging.LogRecord] = []  # the standard library's side: the record's exc_info

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("woflo")
    handler, old_level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    try:
        with ThreadRunner(2) as runner:
            run = runner.submit(_boom)
            for _ in range(50):
                run = runner.submit(_inc, run)
            with pytest.raises(UpstreamFailed):
                run.result(timeout=60)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    (record,) = [r for r in records if getattr(r, "run_id", None) == run.run_id]
    assert record.exc_info is not None and record.exc_info[0] is ValueError
