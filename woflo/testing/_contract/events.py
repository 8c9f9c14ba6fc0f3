"""The event schema (docs/events.md) on every runner, read with structlog.testing."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog

from woflo.testing import tasks
from woflo.testing._contract.base import ContractBase
from woflo.testing._events import capture_events
from woflo.testing._wait import wait_for, wait_running

COMMON = {"task", "run_id", "runner"}


def _settle(events: Any, count: int) -> None:
    # Events of other threads land shortly after result() returns.
    wait_for(lambda: len(events) >= count, 10, f"{count} events")


class EventsContract(ContractBase):
    """One event per attempt transition, with the documented fields."""

    def test_success_emits_one_event_per_transition(self, make: Any) -> None:
        ex = make()
        with capture_events() as events:
            run = ex.submit(tasks.add, 1, 2)
            run.result(timeout=30)
            _settle(events, 4)
        assert events.names() == ["task.submitted", "attempt.started", "attempt.succeeded", "task.succeeded"]
        for e in events:
            assert set(e) >= COMMON
            assert e["task"] == "add" and e["run_id"] == run.run_id
            assert e["runner"] == ex.runner.runner_name if hasattr(ex, "runner") else e["runner"] == ex.runner_name
        started, succeeded = events[1], events[2]
        assert started["attempt"] == 1 and started["worker"] is not None
        assert succeeded["duration_s"] >= 0 and succeeded["worker"] == started["worker"]
        assert events[3]["log_level"] == "info"

    def test_a_runs_last_event_is_logged_before_its_end_is_seen(self, make: Any) -> None:
        # A caller that reads the log right after result() or exception()
        # returns finds the run's end there, whichever thread ended the run
        # (it used to be logged just after the waiters were woken).
        ex = make()
        with capture_events() as events:
            for i in range(30):
                run = ex.submit(tasks.add, i, 1)
                assert run.result(timeout=30) == i + 1
                assert events.of("task.succeeded")[-1]["run_id"] == run.run_id
                failing = ex.submit(tasks.boom, f"boom {i}")
                assert isinstance(failing.exception(timeout=30), ValueError)
                assert events.of("task.failed")[-1]["run_id"] == failing.run_id

    def test_a_stopped_runs_task_cancelled_is_logged_before_its_end_is_seen(
        self, make: Any, kind: Any, tmp_path: Path
    ) -> None:
        # stop() from another thread while this one waits: once wait()
        # returns, the run's task.cancelled is in the log (it used to be
        # logged after the waiters were woken).
        if kind.inline:
            pytest.skip("submit returns when the attempt has ended")
        ex = make()
        release = str(tmp_path / "release")
        try:
            with capture_events() as events:
                for i in range(12):
                    run = ex.submit(tasks.block, str(tmp_path / f"started-{i}"), release)
                    stopper = threading.Thread(target=run.stop)
                    stopper.start()
                    assert run.wait(timeout=30) and run.cancelled()
                    assert events.of("task.cancelled")[-1]["run_id"] == run.run_id
                    stopper.join(30)
        finally:
            Path(release).touch()  # the calls that were running when stopped end now

    def test_failure_and_retry_events(self, make: Any, tmp_path: Path) -> None:
        ex = make(retries=1)
        with capture_events() as events:
            run = ex.submit(tasks.fail_times, str(tmp_path / "n"), 5)
            with pytest.raises(OSError):
                run.result(timeout=30)
            _settle(events, 7)
        assert events.names() == [
            "task.submitted",
            "attempt.started",
            "attempt.failed",
            "task.retrying",
            "attempt.started",
            "attempt.failed",
            "task.failed",
        ]
        failed = events.of("attempt.failed")[0]
        assert failed["exception"] == "OSError: failure 1 of 5"
        assert failed["exception_type"] == "OSError"
        assert failed["log_level"] == "debug"  # the retry's WARNING line says it (docs/events.md)
        retrying = events.of("task.retrying")[0]
        assert retrying["wait_s"] == 0 and retrying["next_attempt"] == 2
        assert retrying["log_level"] == "warning" and retrying["exception"] == "OSError: failure 1 of 5"
        final = events.of("task.failed")[0]
        assert final["attempt"] == 2 and final["log_level"] == "error"
        assert "failure 2 of 5" in final["exception"]
        assert final["traceback"].endswith("OSError: failure 2 of 5") and final["worker"] is not None

    def test_timeout_event(self, make: Any, kind: Any, tmp_path: Path) -> None:
        ex = make(timeout=0.2)
        release = tmp_path / "release"
        with capture_events() as events:
            # The task outlasts the timeout however late its timer fires: it
            # waits for the test (an inline runner checks the timeout when
            # the task returns, so there it just sleeps past it).
            if kind.inline:
                run = ex.submit(tasks.sleep_then, 0.4)
            else:
                run = ex.submit(tasks.block, str(tmp_path / "started"), str(release), 60.0)
            try:
                cf.wait([run], timeout=30)
            finally:
                release.touch()
            _settle(events, 4)
        timed_out = events.of("attempt.timed_out")
        assert len(timed_out) == 1 and timed_out[0]["exception_type"] == "AttemptTimeout"

    def test_cancel_event(self, make: Any, kind: Any, tmp_path: Path) -> None:
        if not kind.sized:
            pytest.skip("nothing waits for a worker")
        ex = make(max_workers=1)
        started, release = str(tmp_path / "s"), str(tmp_path / "r")
        with capture_events() as events:
            blocker = ex.submit(tasks.block, started, release)
            wait_running(blocker, started)  # so the worker is busy and the next run waits
            queued = ex.submit(tasks.add, 1)
            queued.cancel()
            Path(release).touch()
            blocker.result(timeout=30)
        cancelled = events.of("task.cancelled")
        assert len(cancelled) == 1 and cancelled[0]["run_id"] == queued.run_id

    def test_silent_unless_configured(self, make: Any, capsys: pytest.CaptureFixture[str]) -> None:
        if structlog.is_configured():
            pytest.skip("structlog was configured earlier in this process")
        make().submit(tasks.add, 1).result(timeout=30)
        out = capsys.readouterr()
        assert out.out == "" and out.err == ""

    def test_a_broken_logging_setup_does_not_break_runs(self, make: Any) -> None:
        def explode(logger: Any, name: str, event: Any) -> Any:
            raise ValueError("processor broke")

        ex = make(retries=1)
        was_configured = structlog.is_configured()
        config = structlog.get_config()
        structlog.configure(processors=[explode])
        try:
            assert [ex.submit(tasks.add, i).result(timeout=30) for i in range(3)] == [0, 1, 2]
        finally:
            structlog.reset_defaults()
            if was_configured:
                structlog.configure(**config)
