"""Retries, timeouts and deadlines behave the same on every runner."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import tenacity

from woflo import AttemptTimeout, DeadlineExceeded, RunState, task
from woflo.testing import tasks
from woflo.testing._contract.base import ContractBase
from woflo.testing._kind import RunnerKind
from woflo.testing._wait import wait_for


def _outlasting(ex: Any, kind: RunnerKind, tmp_path: Path, release: Path, *, retried: bool = False) -> Any:
    """A run of ``ex`` whose attempts outlast a 0.3 s timeout: they wait for ``release`` to exist.

    On an inline runner, where the task runs inside ``submit`` and the
    timeout is checked when it returns, each attempt sleeps 0.5 s instead.
    Where a timeout cannot interrupt and attempts are ``retried``, an
    abandoned attempt keeps its worker, which the next attempt may need:
    each gives up waiting after 3 s, ten times the timeout.
    """
    if kind.inline:
        return ex.submit(tasks.sleep_then, 0.5)
    patience = 3.0 if retried and not kind.interrupts else 60.0
    return ex.submit(tasks.block, str(tmp_path / "started"), str(release), patience)


class PolicyContract(ContractBase):
    """Retries, timeouts and deadlines."""

    def test_retries_until_success(self, make: Any, tmp_path: Path) -> None:
        ex = make(retries=3, retry_wait_time=0)
        run = ex.submit(tasks.fail_times, str(tmp_path / "n"), 2, "third time")
        assert run.result(timeout=30) == "third time"
        assert [a.outcome for a in run.attempts] == ["failed", "failed", "succeeded"]
        assert [a.number for a in run.attempts] == [1, 2, 3]
        assert all(isinstance(a.exception, OSError) for a in run.attempts[:2])
        assert run.attempts[2].exception is None
        assert all(a.duration_s >= 0 and a.started_at > 0 for a in run.attempts)

    def test_final_failure_raises_the_tasks_own_exception(self, make: Any, tmp_path: Path) -> None:
        run = make(retries=2).submit(tasks.fail_times, str(tmp_path / "n"), 10)
        with pytest.raises(OSError, match="failure 3 of 10"):
            run.result(timeout=30)
        assert len(run.attempts) == 3 and run.state is RunState.FAILED

    def test_retry_sleep_time_is_an_alias(self, make: Any, tmp_path: Path) -> None:
        started = time.monotonic()
        run = make(retries=1, retry_sleep_time=0.2).submit(tasks.fail_times, str(tmp_path / "n"), 1)
        assert run.result(timeout=30) == "ok"
        assert time.monotonic() - started >= 0.2
        gap = run.attempts[1].started_at - (run.attempts[0].started_at + run.attempts[0].duration_s)
        assert gap >= 0.15

    def test_tenacity_objects_are_used_as_they_are(self, make: Any, tmp_path: Path) -> None:
        ex = make(
            stop=tenacity.stop_after_attempt(4) | tenacity.stop_after_delay(30),
            wait=tenacity.wait_exponential(multiplier=0.001, max=0.01),
            retry=tenacity.retry_if_exception_type(OSError),
        )
        run = ex.submit(tasks.fail_times, str(tmp_path / "n"), 3, 7)
        assert run.result(timeout=30) == 7
        assert len(run.attempts) == 4
        # The filter: a ValueError is not retried.
        other = ex.submit(tasks.boom)
        with pytest.raises(ValueError):
            other.result(timeout=30)
        assert len(other.attempts) == 1

    def test_a_whole_retrying_object(self, make: Any, tmp_path: Path) -> None:
        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(2), reraise=False)
        run = make(retrying=retrying).submit(tasks.fail_times, str(tmp_path / "n"), 5)
        # Even without reraise, the task's own exception comes back, not RetryError.
        with pytest.raises(OSError, match="failure 2"):
            run.result(timeout=30)

    def test_retry_on_result(self, make: Any) -> None:
        ex = make(stop=tenacity.stop_after_attempt(3), retry=tenacity.retry_if_result(lambda v: v is None))
        run = ex.submit(tasks.identity, None)
        with pytest.raises(tenacity.RetryError):
            run.result(timeout=30)
        assert len(run.attempts) == 3

    def test_timeout_fails_the_attempt(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make(timeout=0.3)
        # The task waits until the test has seen the run end: it can only end
        # with AttemptTimeout, however late the timer fires on a busy machine.
        release = tmp_path / "release"
        run = _outlasting(ex, kind, tmp_path, release)
        try:
            with pytest.raises(AttemptTimeout) as info:
                run.result(timeout=30)
        finally:
            release.touch()  # a runner that cannot interrupt gets its thread back
        assert isinstance(info.value, TimeoutError)
        assert [a.outcome for a in run.attempts] == ["timed_out"]
        # The runner carries on (a process runner with a new worker). Not
        # under the 0.3 s timeout: a busy machine may take longer than that
        # to get even this call through a worker that was just started.
        assert ex.submit(task(timeout=60)(tasks.add), 1, 1).result(timeout=30) == 2

    def test_timed_out_attempts_are_retried(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make(timeout=0.3, retries=2)
        release = tmp_path / "release"
        run = _outlasting(ex, kind, tmp_path, release, retried=True)
        try:
            with pytest.raises(AttemptTimeout):
                run.result(timeout=30)
        finally:
            release.touch()
        assert [a.outcome for a in run.attempts] == ["timed_out"] * 3

    def test_fast_attempts_are_not_timed_out(self, make: Any) -> None:
        ex = make(timeout=10)
        assert [r.result(timeout=30) for r in [ex.submit(tasks.add, i) for i in range(50)]] == list(range(50))

    def test_deadline_bounds_the_whole_run(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make(retries=100, retry_wait_time=0.1, deadline=0.5)
        # A worker that starts within the deadline is not what is tested: under
        # load, loky's start alone took longer than 0.5 s (no attempt ended).
        assert ex.submit(task(deadline=60)(tasks.add), 1).result(timeout=30) == 1
        run = ex.submit(tasks.fail_times, str(tmp_path / "n"), 1000)
        with pytest.raises(DeadlineExceeded) as info:
            run.result(timeout=30)
        assert isinstance(info.value.__cause__, OSError)
        # Waits of 0.1 s fit at most 5 times in 0.5 s, whatever the machine's load.
        assert 1 <= len(run.attempts) <= 6
        # Only the last attempt can have been running when the deadline passed.
        assert all(a.outcome == "failed" for a in run.attempts[:-1])
        assert run.attempts[-1].outcome in ("failed", "timed_out")

    def test_deadline_interrupts_a_running_attempt(self, make: Any, kind: RunnerKind) -> None:
        if not kind.interrupts:
            pytest.skip("checked when the attempt returns on this runner")
        ex = make()
        # A worker is up first, so the attempt starts well before the deadline.
        assert ex.submit(tasks.add, 1).result(timeout=30) == 1
        # The task would sleep longer than result() waits: DeadlineExceeded means it was stopped.
        run = ex.submit(task(deadline=1)(tasks.sleep_then), 60)
        with pytest.raises(DeadlineExceeded):
            run.result(timeout=30)
        assert [a.outcome for a in run.attempts] == ["timed_out"]

    def test_stop_during_a_retry_wait(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        if kind.inline:
            pytest.skip("inline runners wait inside submit")
        ex = make(retries=5, retry_wait_time=30)
        run = ex.submit(tasks.fail_times, str(tmp_path / "n"), 10)
        wait_for(lambda: run.state is RunState.RETRYING, 30, "the retry wait")
        assert run.stop()
        assert run.cancelled() and len(run.attempts) == 1

    def test_a_failing_before_hook_fails_the_run(self, make: Any) -> None:
        def before(state: tenacity.RetryCallState) -> None:
            raise RuntimeError("hook broke")

        ex = make(retrying=tenacity.Retrying(stop=tenacity.stop_after_attempt(2), before=before))
        run = ex.submit(tasks.add, 1)
        with pytest.raises(RuntimeError, match="hook broke"):
            run.result(timeout=30)
        assert run.state is RunState.FAILED and run.attempts == []
