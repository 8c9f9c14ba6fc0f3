"""A run's retries go exactly as tenacity's own loop, ``Retrying(...)(fn)``, would go.

Each case runs the same scripted function twice with two identical
``Retrying`` objects: once through tenacity's loop, once as a woflo run (on
every runner; the hooks run in the submitting process, remote runners
included). Every call tenacity makes to ``before``, ``after``,
``before_sleep``, ``retry_error_callback`` and a ``retry_if_result``
predicate is recorded with what it saw, and both records must be equal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import funcs
import pytest
import tenacity

from woflo import SequentialRunner, task
from woflo.testing import capture_events

pytestmark = pytest.mark.timeout(120)

Log = list[tuple[Any, ...]]

# Scripts of outcomes, one per call (the last repeats); see funcs.outcomes.
SCRIPTS: dict[str, list[object]] = {
    "fails twice then succeeds": [OSError("one"), OSError("two"), "ok"],
    "always fails": [OSError("always")],
    "not retried error": [ValueError("no retry for me")],
    "retried result then value": [None, None, 5],
    "always a retried result": [None],
}


def _outcome(rs: tenacity.RetryCallState) -> Any:
    fut = rs.outcome
    if fut is None:
        return None
    if fut.failed:
        exc = fut.exception()
        return ("raised", type(exc).__name__, str(exc))
    return ("returned", fut.result())


def _seen(kind: str, rs: tenacity.RetryCallState) -> tuple[Any, ...]:
    """What a hook saw: the RetryCallState's fields that do not depend on the clock."""
    stats = rs.retry_object.statistics
    return (
        kind,
        rs.attempt_number,
        _outcome(rs),
        round(rs.idle_for, 9),
        None if rs.next_action is None else round(rs.next_action.sleep, 9),
        round(rs.upcoming_sleep, 9),
        stats.get("attempt_number"),
        round(stats.get("idle_for", -1), 9),
    )


def _hook(log: Log, kind: str, returns: object = None) -> Callable[[tenacity.RetryCallState], object]:
    def hook(rs: tenacity.RetryCallState) -> object:
        log.append(_seen(kind, rs))
        return returns

    return hook


def _result_predicate(log: Log) -> Callable[[object], bool]:
    def retry_this(value: object) -> bool:
        log.append(("retry_if_result", value))
        return value is None

    return retry_this


def _hooks(log: Log) -> dict[str, Any]:
    return {"before": _hook(log, "before"), "after": _hook(log, "after"), "before_sleep": _hook(log, "before_sleep")}


# Each policy builds a fresh Retrying that records into ``log``.
POLICIES: dict[str, Callable[[Log], tenacity.Retrying]] = {
    "fixed wait, exception filter, reraise": lambda log: tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_fixed(0.002),
        retry=tenacity.retry_if_exception_type(OSError),
        reraise=True,
        **_hooks(log),
    ),
    "exponential wait, results too, no reraise": lambda log: tenacity.Retrying(
        stop=tenacity.stop_after_attempt(4),
        wait=tenacity.wait_exponential(multiplier=0.001, max=0.003),
        retry=tenacity.retry_if_exception_type(OSError) | tenacity.retry_if_result(_result_predicate(log)),
        reraise=False,
        **_hooks(log),
    ),
    "results, error callback": lambda log: tenacity.Retrying(
        stop=tenacity.stop_after_attempt(2),
        wait=tenacity.wait_fixed(0.001),
        retry=tenacity.retry_if_result(_result_predicate(log)),
        retry_error_callback=_hook(log, "retry_error_callback", returns="fallback"),
        **_hooks(log),
    ),
    "default retry, error callback, reraise": lambda log: tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        retry_error_callback=_hook(log, "retry_error_callback", returns="given up"),
        reraise=True,
        **_hooks(log),
    ),
    "no hooks, exponential wait": lambda log: tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.001, max=0.002),
        retry=tenacity.retry_if_exception_type(),
    ),
}


def _final(outcome: Callable[[], object]) -> tuple[Any, ...]:
    """How a call ended, comparable across the two loops."""
    try:
        return ("returned", outcome())
    except tenacity.RetryError as err:
        last = err.last_attempt
        if last.failed:
            # woflo ends with the task's own exception, never RetryError
            # (README, "Policy"): compare with what tenacity wraps.
            exc = last.exception()
            assert exc is not None
            return ("raised", type(exc).__name__, str(exc))
        return ("RetryError", last.attempt_number, last.result())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def _tenacity_loop(make_retrying: Callable[[Log], tenacity.Retrying], script: list[object], counter: Path) -> Any:
    log: Log = []
    retrying = make_retrying(log)
    final = _final(lambda: retrying(funcs.outcomes, str(counter), script))
    stats = {k: retrying.statistics[k] for k in ("attempt_number", "idle_for")}
    return log, final, stats


def _woflo_run(ex: Any, make_retrying: Callable[[Log], tenacity.Retrying], script: list[object], counter: Path) -> Any:
    log: Log = []
    retrying = make_retrying(log)
    # A @task's own policy, on the runner under test: one runner for every case.
    run = task(funcs.outcomes, retrying=retrying).submit(str(counter), script, executor=ex)
    final = _final(lambda: run.result(timeout=60))
    # As after tenacity's loop: the Retrying shows the latest run's statistics
    # in the thread that submitted it.
    stats = {k: retrying.statistics[k] for k in ("attempt_number", "idle_for")}
    return log, final, stats, run


@pytest.mark.parametrize("policy", list(POLICIES))
def test_hooks_and_outcome_match_tenacity(make: Any, tmp_path: Path, policy: str) -> None:
    ex = make()
    for i, script in enumerate(SCRIPTS.values()):
        expected_log, expected_final, expected_stats = _tenacity_loop(POLICIES[policy], script, tmp_path / f"t{i}")
        log, final, stats, run = _woflo_run(ex, POLICIES[policy], script, tmp_path / f"w{i}")
        assert log == expected_log, script
        assert final == expected_final, script
        assert stats == expected_stats, script
        calls = int((tmp_path / f"t{i}").read_text())
        assert len(run.attempts) == calls, script


def test_the_runner_option_matches_tenacity_too(make: Any, tmp_path: Path) -> None:
    # retrying= given to the runner itself, not through a task.
    make_retrying = POLICIES["exponential wait, results too, no reraise"]
    for i, script in enumerate(SCRIPTS.values()):
        expected_log, expected_final, _ = _tenacity_loop(make_retrying, script, tmp_path / f"t{i}")
        log: Log = []
        ex = make(retrying=make_retrying(log))
        run = ex.submit(funcs.outcomes, str(tmp_path / f"w{i}"), script)
        assert _final(lambda run=run: run.result(timeout=60)) == expected_final
        assert log == expected_log


def test_short_options_are_the_equivalent_retrying(make: Any, tmp_path: Path) -> None:
    equivalent = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_fixed(0.01),
        retry=tenacity.retry_if_exception_type(Exception),
        reraise=True,
    )
    ex = make(retries=2, retry_wait_time=0.01)
    for i, script in enumerate(SCRIPTS.values()):
        sleeps: Log = []
        expected = _final(
            lambda: equivalent.copy(before_sleep=lambda rs: sleeps.append((rs.next_action.sleep,)))(
                funcs.outcomes, str(tmp_path / f"t{i}"), script
            )
        )
        with capture_events() as events:
            run = ex.submit(funcs.outcomes, str(tmp_path / f"w{i}"), script)
            assert _final(lambda run=run: run.result(timeout=60)) == expected
        calls = int((tmp_path / f"t{i}").read_text())
        assert len(run.attempts) == calls == int((tmp_path / f"w{i}").read_text())
        assert [(e["wait_s"],) for e in events.of("task.retrying")] == sleeps


def test_statistics_are_the_runs_own_whichever_thread_runs_a_hook(tmp_path: Path) -> None:
    # Concurrent runs of one Retrying, their steps on several threads: each
    # run's hooks read that run's own statistics, as in tenacity's loop.
    from woflo import ThreadRunner

    seen: Log = []
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(4),
        wait=tenacity.wait_fixed(0.001),
        before=lambda rs: seen.append((rs.args[0], rs.attempt_number, rs.retry_object.statistics["attempt_number"])),
    )
    with ThreadRunner(4, retrying=retrying) as ex:
        runs = [ex.submit(funcs.fail_times, str(tmp_path / f"n{i}"), 3, i) for i in range(8)]
        assert [r.result(timeout=60) for r in runs] == list(range(8))
    assert len(seen) == 8 * 4
    assert all(number == stats_number for _, number, stats_number in seen)


def test_a_failing_before_hook_on_a_later_attempt_ends_the_run(tmp_path: Path) -> None:
    def before(rs: tenacity.RetryCallState) -> None:
        if rs.attempt_number == 2:
            raise RuntimeError("before hook broke")

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), before=before)
    expected = _final(lambda: retrying(funcs.fail_times, str(tmp_path / "t"), 5))
    run = SequentialRunner(retrying=retrying).submit(funcs.fail_times, str(tmp_path / "w"), 5)
    assert _final(lambda: run.result(timeout=30)) == expected == ("raised", "RuntimeError", "before hook broke")
    assert len(run.attempts) == 1


def test_a_disabled_retrying_calls_once_without_hooks(make: Any, tmp_path: Path) -> None:
    log: Log = []
    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), enabled=False, **_hooks(log))
    expected = _final(lambda: retrying(funcs.fail_times, str(tmp_path / "t"), 5))
    run = make(retrying=retrying).submit(funcs.fail_times, str(tmp_path / "w"), 5)
    assert _final(lambda: run.result(timeout=30)) == expected
    assert log == [] and len(run.attempts) == 1
