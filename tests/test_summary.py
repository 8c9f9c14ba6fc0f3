"""woflo.summary: counts, retries, timeouts, crashes, durations, failures and workers of a real batch."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import funcs
import pytest

import woflo
from woflo import ProcessRunner, SequentialRunner, ThreadRunner

pytestmark = pytest.mark.timeout(60)


def _wait_event(event: threading.Event) -> None:
    event.wait(30)


def test_a_mixed_batch(tmp_path: Path) -> None:
    release = threading.Event()
    with ThreadRunner(2, retries=1, retry_wait_time=0) as ex:
        runs = [ex.submit(funcs.add, i) for i in range(4)]
        runs.append(ex.submit(funcs.fail_times, str(tmp_path / "a"), 1))  # one retry, then ok
        runs += [ex.submit(funcs.boom, "same") for _ in range(2)]  # two attempts each
        runs.append(ex.submit(funcs.boom, "other"))
        slow = ThreadRunner(1, timeout=0.05)
        runs.append(slow.submit(_wait_event, release))  # one timeout, the run fails
        for run in runs:
            run.exception(timeout=30)
        release.set()
        slow.shutdown()
    s = woflo.summary(runs)
    assert s.runs == 9
    assert s.states == {"succeeded": 5, "failed": 4}
    assert s.attempts == sum(len(run.attempts) for run in runs) == 5 + 1 + 2 * 3 + 1
    assert s.retries == 1 + 3 and s.timeouts == 1 and s.crashes == 0
    assert [g.count for g in s.failures] == [2, 1, 1]  # the largest group first
    groups = {(g.exception_type, g.message): g for g in s.failures}
    same, other = groups["ValueError", "same"], groups["ValueError", "other"]
    (timeout,) = [g for g in s.failures if g.exception_type == "AttemptTimeout"]
    assert same.count == 2
    assert same.examples == [f"boom [{run.run_id[:8]}]" for run in runs[5:7]]
    assert other.count == 1 and other.examples == [f"boom [{runs[7].run_id[:8]}]"]
    assert "timed out after 0.05s" in timeout.message

    durations = sorted(
        max(r.started_at + r.duration_s for r in run.attempts) - run.attempts[0].started_at for run in runs
    )
    assert s.duration_max_s == durations[-1]
    assert s.duration_p50_s == durations[math.ceil(0.5 * 9) - 1]
    assert s.duration_p95_s == durations[math.ceil(0.95 * 9) - 1]
    assert [line.duration_s for line in s.slowest] == durations[::-1][:5]

    busy = {}
    for run in runs:
        for r in run.attempts:
            busy[str(r.worker)] = busy.get(str(r.worker), 0.0) + r.duration_s
    assert {w.worker: w.busy_s for w in s.workers} == pytest.approx(busy)
    assert sum(w.attempts for w in s.workers) == s.attempts
    starts = [r.started_at for run in runs for r in run.attempts]
    ends = [r.started_at + r.duration_s for run in runs for r in run.attempts]
    assert s.wall_s == pytest.approx(max(ends) - min(starts))
    assert s.busy_share == pytest.approx(min(1.0, sum(busy.values()) / (s.wall_s * len(busy))))

    data = json.loads(json.dumps(s.as_dict()))
    assert data["states"] == {"succeeded": 5, "failed": 4} and data["duration_s"]["max"] == s.duration_max_s
    assert data["failures"][0] == {
        "exception_type": "ValueError",
        "message": "same",
        "count": 2,
        "examples": same.examples,
    }
    text = str(s)
    assert text.splitlines()[:2] == ["9 runs: 5 succeeded, 4 failed", "attempts 13, retries 4, timeouts 1, crashes 0"]
    assert "slowest runs:" in text and "failures:" in text and f"workers: {len(busy)}, busy " in text
    assert "  2      ValueError: same" in text


def test_crashes_on_a_process_runner() -> None:
    with ProcessRunner(1, retries=1, retry_wait_time=0) as ex:
        run = ex.submit(funcs.crash, "os._exit")
        assert isinstance(run.exception(timeout=30), woflo.WorkerCrashed)
    s = woflo.summary([run])
    assert s.crashes == 2 and s.retries == 1 and s.states == {"failed": 1}
    assert s.failures[0].exception_type == "WorkerCrashed"
    assert {w.worker for w in s.workers} == {str(r.worker) for r in run.attempts}


def test_unfinished_and_cancelled_runs() -> None:
    release = threading.Event()
    with ThreadRunner(1) as ex:
        running = ex.submit(_wait_event, release)
        queued = ex.submit(funcs.add, 1)
        assert queued.cancel()
        s = woflo.summary([running, queued])
        release.set()
    assert s.states.get("cancelled") == 1 and sum(s.states.values()) == 2
    assert s.failures == []


def test_empty() -> None:
    s = woflo.summary([])
    assert s.runs == 0 and s.states == {} and s.duration_max_s is None and s.busy_share is None
    assert str(s).splitlines() == ["0 runs: ", "attempts 0, retries 0, timeouts 0, crashes 0"]
    assert json.dumps(s.as_dict())


def test_a_multiline_message_stays_on_its_row() -> None:
    runs = [SequentialRunner().submit(funcs.boom, "first line\nsecond line")]
    text = str(woflo.summary(runs))
    assert "ValueError: first line second line" in text
