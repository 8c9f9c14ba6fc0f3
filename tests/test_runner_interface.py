"""The public runner interface (issue #10): hooks, misuse, the run's one state machine."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from concurrent.futures import Future
from typing import Any

import pytest

import woflo
from tests import funcs
from woflo import Attempt, Runner, RunState, SequentialRunner, ThreadRunner
from woflo._taskrun import FUTURE_STATE, TRANSITIONS


class HoldingRunner(Runner):
    """Starts nothing: keeps every attempt, so a test decides how each ends."""

    runner_name = "holding"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.attempts: list[Attempt] = []

    def start_attempt(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


def test_a_runner_without_start_attempt_cannot_be_built() -> None:
    class Incomplete(Runner):
        pass

    with pytest.raises(TypeError, match="start_attempt"):
        Incomplete()  # type: ignore[abstract]


def test_succeed_before_begin_ends_the_run_as_future_set_result_does() -> None:
    runner = HoldingRunner()
    run = runner.submit(len, "abc")
    attempt = runner.attempts[0]
    assert run.state is RunState.PENDING
    attempt.succeed(3)
    assert run.result(timeout=0) == 3
    assert run.state is RunState.SUCCEEDED
    record = run.attempts[0]
    assert (record.outcome, record.duration_s, record.exception) == ("succeeded", 0.0, None)
    assert not attempt.begin("late")  # settled: it must not run any more
    runner.shutdown()


def test_fail_before_begin_goes_through_the_retry_policy() -> None:
    runner = HoldingRunner(retries=1, retry_wait_time=0)
    run = runner.submit(len, "abc")
    runner.attempts[0].fail(ValueError("could not send"))
    assert len(runner.attempts) == 2  # retried at once
    second = runner.attempts[1]
    assert second.number == 2 and second.begin("w")
    second.succeed(3)
    assert run.result(timeout=0) == 3
    assert [r.outcome for r in run.attempts] == ["failed", "succeeded"]
    runner.shutdown()


def test_a_settled_attempt_drops_its_call() -> None:
    # A backend may hold an attempt after it was settled (a batch of results
    # being reported): the call's arguments must not live on with it.
    runner = HoldingRunner()
    arg = funcs.MyObject()
    ref = weakref.ref(arg)
    run = runner.submit(id, arg)
    attempt = runner.attempts[0]
    assert attempt.args == (arg,)
    assert attempt.begin("w")
    attempt.succeed(1)
    del arg
    gc.collect()
    assert run.result(timeout=0) == 1
    assert ref() is None, "a settled attempt still holds its arguments"
    assert attempt.args == () and attempt.kwargs == {}
    with pytest.raises(RuntimeError, match="settled"):
        attempt.fn()
    runner.shutdown()


def test_reports_after_a_stop_are_ignored() -> None:
    runner = HoldingRunner()
    run = runner.submit(len, "abc")
    attempt = runner.attempts[0]
    assert attempt.begin("w")
    assert run.stop()
    attempt.succeed(3)  # late: dropped
    attempt.fail(ValueError("late"))
    assert run.cancelled() and run.state is RunState.CANCELLED
    assert [r.outcome for r in run.attempts] == ["stopped"]
    runner.shutdown()


def test_set_running_makes_cancel_return_false() -> None:
    runner = HoldingRunner()
    run = runner.submit(len, "abc")
    attempt = runner.attempts[0]
    assert attempt.set_running()
    assert not run.cancel()  # the stdlib's rule for a call handed to a worker
    assert run.running() and attempt.started is None
    assert attempt.begin("w")
    attempt.succeed(3)
    assert run.result(timeout=0) == 3
    # After a cancel, set_running says: do not send it.
    other = runner.submit(len, "x")
    assert other.cancel()
    assert not runner.attempts[1].set_running()
    runner.shutdown()


def test_the_executor_side_future_methods_refuse_on_a_task_run() -> None:
    runner = HoldingRunner()
    run = runner.submit(len, "abc")
    for call in (lambda: run.set_result(1), lambda: run.set_exception(ValueError()), run.set_running_or_notify_cancel):
        with pytest.raises(RuntimeError, match="Attempt"):
            call()
    assert run.state is RunState.PENDING and not run.done()
    run.cancel()
    runner.shutdown()


def test_every_built_in_runner_implements_the_interface() -> None:
    for cls in (SequentialRunner, ThreadRunner, woflo.ProcessRunner, woflo.AsyncRunner):
        assert "start_attempt" not in getattr(cls, "__abstractmethods__", ())
        assert issubclass(cls, Runner)


def test_hooks_are_called_on_the_threads_their_docstrings_name() -> None:
    # stop_attempt on the thread that stopped the run; close_workers on shutdown's caller.
    seen: dict[str, str] = {}

    class Recording(HoldingRunner):
        def stop_attempt(self, attempt: Attempt) -> None:
            seen["stop"] = threading.current_thread().name

        def close_workers(self, wait: bool) -> None:
            seen["close"] = threading.current_thread().name

    runner = Recording()
    run = runner.submit(len, "abc")
    assert runner.attempts[0].begin("w")
    stopper = threading.Thread(target=run.stop, name="the-stopper")
    stopper.start()
    stopper.join(timeout=30)
    runner.shutdown()
    assert seen == {"stop": "the-stopper", "close": threading.current_thread().name}


def test_the_state_table_is_the_one_truth() -> None:
    # Each live state may end; ended states move nowhere; the Future state follows.
    ended = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}
    for state, allowed in TRANSITIONS.items():
        if state in ended:
            assert allowed == ()
        else:
            assert ended <= set(allowed)
    assert set(FUTURE_STATE) == set(RunState)
    runner = HoldingRunner()
    run = runner.submit(len, "abc")
    attempt = runner.attempts[0]
    assert attempt.begin("w")
    assert run._state == FUTURE_STATE[RunState.RUNNING]
    attempt.succeed(3)
    assert run._state == FUTURE_STATE[RunState.SUCCEEDED]
    assert not run._move(RunState.RUNNING)  # not in the table: refused
    assert run.state is RunState.SUCCEEDED
    runner.shutdown()


def test_started_at_is_wall_clock_time() -> None:
    before = time.time()
    run = ThreadRunner(1).submit(len, "abc")
    assert run.result(timeout=30) == 3
    after = time.time()
    assert before <= run.attempts[0].started_at <= after
    run.runner.shutdown()


def test_a_task_run_is_a_future_of_its_runner() -> None:
    runner = HoldingRunner()
    run = runner.submit(len, "abc")
    assert isinstance(run, Future) and run.runner is runner
    run.cancel()
    runner.shutdown()


def test_attempts_that_never_began_are_retried_each_time() -> None:
    # Each attempt fails before it begins (it waited for a worker that never
    # came): the run waits to retry again and again, until the policy gives up.
    runner = HoldingRunner(retries=2, retry_wait_time=0)
    run = runner.submit(len, "abc")
    for n in range(3):
        assert run.state in (RunState.PENDING, RunState.RETRYING)
        runner.attempts[n].fail(TimeoutError(f"no worker for attempt {n + 1}"), outcome="timed_out")
    assert isinstance(run.exception(timeout=0), TimeoutError)
    assert [r.outcome for r in run.attempts] == ["timed_out"] * 3
    runner.shutdown()
