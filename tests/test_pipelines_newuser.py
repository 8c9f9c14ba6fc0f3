"""Faults a demanding new user found in runs-as-inputs and limits (issue #12)."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from woflo import ThreadRunner, UpstreamFailed


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
    held an N-line message, and a failed chain of 3,000 runs some 250 MB (each
    failure's task.failed event still formats the whole cause chain: see the report).
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
