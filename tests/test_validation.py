"""Bad input fails at the call with a clear error, not later inside a run."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import funcs
import pytest
import tenacity

from woflo import Policy, ProcessRunner, SequentialRunner, ThreadRunner, WofloExecutor, task

pytestmark = pytest.mark.timeout(60)


# -- strategies tenacity could not call ----------------------------------------------------


@pytest.mark.parametrize("option", ["wait", "stop", "retry"])
def test_a_strategy_with_the_wrong_signature_is_refused_at_the_call(option: str) -> None:
    def no_arguments() -> float:
        return 0.0

    with pytest.raises(TypeError, match=rf"{option}=no_arguments cannot be called with one argument"):
        ThreadRunner(1, **{option: no_arguments})
    with pytest.raises(TypeError, match=option):
        task(funcs.add, **{option: lambda a, b: 0})
    with pytest.raises(TypeError, match=option):
        Policy.build(**{option: no_arguments})


def test_hooks_of_a_whole_retrying_are_checked_too() -> None:
    with pytest.raises(TypeError, match=r"retrying\.before_sleep"):
        WofloExecutor(retrying=tenacity.Retrying(before_sleep=lambda: None))


def test_strategies_that_take_the_retry_state_are_accepted() -> None:
    def wait(retry_state: Any, extra: float = 1.0) -> float:
        return 0.0

    def anything(*args: Any) -> bool:
        return True

    Policy.build(wait=wait, retry=anything, stop=tenacity.stop_after_attempt(2))
    Policy.build(wait=tenacity.wait_exponential_jitter(1, 30) + tenacity.wait_fixed(1))


def test_a_strategy_that_fails_at_run_time_keeps_the_tasks_error(tmp_path: Path) -> None:
    def wait(retry_state: Any) -> float:
        raise RuntimeError("the wait strategy broke")

    # A process runner reports the task's error outside any except block:
    # nothing chains it implicitly there.
    with ProcessRunner(1, wait=wait, retries=1) as ex:
        run = ex.submit(funcs.fail_times, str(tmp_path / "n"), 5)
        with pytest.raises(RuntimeError, match="the wait strategy broke") as info:
            run.result(timeout=30)
    assert isinstance(info.value.__context__, OSError)


@pytest.mark.parametrize("bad", [math.inf, math.nan, -1.0])
def test_a_wait_that_is_not_a_finite_delay_fails_the_run_clearly(bad: float, tmp_path: Path) -> None:
    with ThreadRunner(1, wait=lambda rs: bad, retries=2) as ex:
        run = ex.submit(funcs.fail_times, str(tmp_path / "n"), 5)
        with pytest.raises(ValueError, match="the wait strategy of fail_times returned") as info:
            run.result(timeout=30)
    assert isinstance(info.value.__cause__, OSError)
    assert len(run.attempts) == 1


def test_a_stop_strategy_returning_none_retries_as_tenacity_does(tmp_path: Path) -> None:
    # tenacity reads a false answer as "do not stop": documented, not refused.
    def forgetful_stop(retry_state: Any) -> None:
        return None

    expected = tenacity.Retrying(stop=forgetful_stop)(funcs.fail_times, str(tmp_path / "t"), 3)
    run = SequentialRunner(stop=forgetful_stop).submit(funcs.fail_times, str(tmp_path / "w"), 3)
    assert run.result() == expected == "ok"
    assert len(run.attempts) == 4


# -- map's arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("runner", [SequentialRunner, ThreadRunner])
@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"chunksize": "2"}, TypeError, "chunksize must be an int, not str"),
        ({"chunksize": 2.5}, TypeError, "chunksize must be an int, not float"),
        ({"chunksize": True}, TypeError, "chunksize must be an int, not bool"),
        ({"chunksize": 0}, ValueError, "chunksize must be >= 1"),
        ({"buffersize": True}, TypeError, "buffersize"),
        ({"timeout": "1"}, TypeError, "timeout must be a number"),
        ({"timeout": True}, TypeError, "timeout must be a number"),
        ({"timeout": math.nan}, ValueError, "NaN"),
    ],
)
def test_map_refuses_bad_arguments_at_the_call(runner: Any, options: dict[str, Any], error: type, words: str) -> None:
    ex = runner()
    try:
        with pytest.raises(error, match=words):
            ex.map(funcs.add, [1, 2], **options)
    finally:
        ex.shutdown()


@pytest.mark.parametrize(
    ("chunksize", "error"), [("2", TypeError), (2.5, TypeError), (True, TypeError), (0, ValueError)]
)
def test_process_map_refuses_bad_chunksize_at_the_call(chunksize: Any, error: type) -> None:
    with ProcessRunner(1) as ex, pytest.raises(error, match="chunksize"):
        ex.map(funcs.add, [1, 2], chunksize=chunksize)


# -- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["timeout", "deadline", "retry_wait_time"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(option: str, bad: float) -> None:
    with pytest.raises(ValueError, match=option):
        ThreadRunner(1, **{option: bad})


@pytest.mark.parametrize("option", ["timeout", "deadline", "retry_wait_time", "retries"])
def test_bools_are_not_numbers(option: str) -> None:
    with pytest.raises(TypeError, match=option):
        SequentialRunner(**{option: True})


@pytest.mark.parametrize("huge", [1e300, sys.maxsize, 1e10])
def test_a_huge_timeout_does_not_break_the_runners_timers(huge: float) -> None:
    # Before, the timer thread died of an OverflowError on a wait this long,
    # and no later timeout or retry of that runner ever fired.
    with ThreadRunner(2) as ex:
        patient = task(funcs.sleep_then, timeout=huge, deadline=huge)
        assert patient.submit(0.01, "done", executor=ex).result(timeout=30) == "done"
        # The timer thread now sleeps toward that far deadline: a short
        # timeout armed after it must still fire.
        slow = task(funcs.sleep_then, timeout=0.2).submit(5, executor=ex)
        with pytest.raises(TimeoutError):
            slow.result(timeout=30)
        long_wait = task(funcs.sleep_then, timeout=huge).submit(0.01, "after", executor=ex)
        assert long_wait.result(timeout=30) == "after"


def test_a_huge_retry_wait_does_not_break_the_runners_timers(tmp_path: Path) -> None:
    with ThreadRunner(2) as ex:
        waiting = task(funcs.fail_times, retries=1, retry_wait_time=1e300).submit(str(tmp_path / "n"), 5, executor=ex)
        slow = task(funcs.sleep_then, timeout=0.2).submit(5, executor=ex)
        with pytest.raises(TimeoutError):
            slow.result(timeout=30)
        assert waiting.stop()
