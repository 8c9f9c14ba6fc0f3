"""woflo.progress: completion order, counts, plain lines on a non-terminal stream, a tqdm bar, map's hook.

No test depends on elapsed time: the clock is injected where lines are drawn
on an interval, and runs are held and released with events.
"""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path
from typing import Any

import funcs
import pytest

import woflo
from woflo import RunState, SequentialRunner, ThreadRunner

pytestmark = pytest.mark.timeout(60)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _wait_event(event: threading.Event, value: object) -> object:
    if not event.wait(30):
        raise TimeoutError("never released")
    return value


def test_completion_order_is_the_order_runs_finish() -> None:
    gates = [threading.Event() for _ in range(3)]
    with ThreadRunner(3) as ex:
        runs = [ex.submit(_wait_event, gate, i) for i, gate in enumerate(gates)]
        shown = woflo.progress(runs, file=io.StringIO())
        order: list[Any] = []
        gates[2].set()
        for run in shown:
            order.append(run.result())
            # Release the next one only once this one came out: the order is forced.
            if len(order) == 1:
                gates[0].set()
            elif len(order) == 2:
                gates[1].set()
    assert order == [2, 0, 1]


def test_plain_lines_every_interval_on_the_injected_clock() -> None:
    clock = Clock()
    out = io.StringIO()
    runner = SequentialRunner()
    runs = [runner.submit(funcs.add, 1), runner.submit(funcs.boom, "x"), runner.submit(funcs.add, 2)]
    runs.append(runner.submit(funcs.add, 3))
    seen = []
    for run in woflo.progress(runs, file=out, interval=10, clock=clock, desc="batch"):
        seen.append(run)
        clock.now += 6  # 6 s per run: a line after the second run, at 12 s, and one at the end
    assert seen == runs
    # The counts are the runs' states (a SequentialRunner's are all over at submit).
    assert out.getvalue().splitlines() == [
        "batch: 4/4 done (3 ok, 1 failed), 0 retrying, 0 running, 0.3/s, in 12s",
        "batch: 4/4 done (3 ok, 1 failed), 0 retrying, 0 running, 0.2/s, in 24s",
    ]


def test_lines_count_unfinished_runs_and_give_an_eta() -> None:
    clock = Clock()
    out = io.StringIO()
    release = threading.Event()
    with ThreadRunner(1) as ex:
        runs = [ex.submit(funcs.add, 1), ex.submit(funcs.add, 2)]
        runs[1].result(timeout=30)
        runs += [ex.submit(_wait_event, release, 3), ex.submit(funcs.add, 4)]
        from helpers import wait_for

        wait_for(lambda: runs[2].state is RunState.RUNNING)
        shown = woflo.progress(runs, file=out, interval=10, clock=clock)
        clock.now += 20
        shown.draw()
        release.set()
        assert [run.result(timeout=30) for run in shown] == [1, 2, 3, 4]
    # 2 done in 20 s (0.1/s): 2 to go, 20 s.
    assert out.getvalue().splitlines()[0] == "runs: 2/4 done (2 ok, 0 failed), 0 retrying, 1 running, 0.1/s, ETA 20s"


def test_running_and_retrying_counts(tmp_path: Path) -> None:
    release = threading.Event()
    # One run that waits for its release, one that waits a minute to retry.
    with ThreadRunner(2) as ex, ThreadRunner(1, retries=1, retry_wait_time=60) as patient:
        running = ex.submit(_wait_event, release, "done")
        retrying = patient.submit(funcs.fail_times, str(tmp_path / "k"), 1, "ok")
        shown = woflo.progress([running, retrying], file=io.StringIO())
        _until(lambda: running.state is RunState.RUNNING and retrying.state is RunState.RETRYING)
        # Its one worker thread is free again only once the retry timer is armed:
        # stopping the run and shutting the runner down while that thread is
        # between the state change and the timer raised "scheduler is closed"
        # in that thread (a runner race, reported).
        assert patient.submit(funcs.add, 1).result(timeout=30) == 1
        counts = shown.counts()
        assert (counts["running"], counts["retrying"], counts["done"], counts["total"]) == (1, 1, 0, 2)
        assert ", 1 retrying, 1 running, " in shown.line()
        retrying.stop()  # ends it at once: it comes out first
        release.set()
        assert [run.state for run in shown] == [RunState.CANCELLED, RunState.SUCCEEDED]
    assert (shown.done, shown.succeeded, shown.cancelled) == (2, 1, 1)


def _until(predicate: Any) -> None:
    from helpers import wait_for

    wait_for(predicate, timeout=30)


def test_context_manager_over_a_runner_waits_for_its_runs() -> None:
    release = threading.Event()
    out = io.StringIO()
    with ThreadRunner(2) as ex:
        runs = [ex.submit(_wait_event, release, i) for i in range(3)]
        with woflo.progress(ex, file=out, interval=3600) as shown:
            release.set()
        assert all(run.done() for run in runs)  # the block's end waited for them
    assert shown.done == 3 and shown.succeeded == 3
    assert out.getvalue().splitlines()[-1].startswith("runs: 3/3 done (3 ok, 0 failed), 0 retrying, 0 running, ")


def test_a_runner_s_short_runs_are_all_counted() -> None:
    # Before: progress(runner) looked at the runs in flight every 50 ms, so a
    # run that started and ended between two looks was never counted: with an
    # inline runner, none of them was.
    out = io.StringIO()
    runner = SequentialRunner()
    with woflo.progress(runner, file=out, interval=3600) as shown:
        results = [runner.submit(funcs.add, i, 1).result() for i in range(50)]
        runner.submit(funcs.boom, "x")
    assert results == list(range(1, 51))
    assert (shown.done, shown.succeeded, shown.failed) == (51, 50, 1)
    runner.submit(funcs.add, 0, 0)  # after the block: no longer followed
    assert shown.counts()["total"] == 51


def test_iterating_a_runner_s_progress_hands_over_each_run_once() -> None:
    release = threading.Event()
    with ThreadRunner(2) as ex:
        before = ex.submit(_wait_event, release, 0)
        shown = woflo.progress(ex, file=io.StringIO(), interval=3600)
        after = [ex.submit(funcs.add, i, 0) for i in range(5)]
        release.set()
        handed = list(shown)
    assert sorted(handed, key=id) == sorted([before, *after], key=id)


def test_context_manager_over_runs() -> None:
    release = threading.Event()
    out = io.StringIO()
    with ThreadRunner(2) as ex:
        runs = [ex.submit(_wait_event, release, i) for i in range(4)]
        with woflo.progress(runs, file=out, interval=3600) as shown:
            release.set()
    assert shown.done == 4
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[-1]]  # one final line, no interval passed
    with pytest.raises(RuntimeError, match="cannot be iterated"), woflo.progress(runs, file=io.StringIO()) as again:
        iter(again).__next__()


def test_a_bar_with_tqdm() -> None:
    pytest.importorskip("tqdm")
    out = io.StringIO()
    runner = SequentialRunner()
    runs = [runner.submit(funcs.add, 1), runner.submit(funcs.boom, "x"), runner.submit(funcs.add, 2)]
    list(woflo.progress(runs, file=out, bar=True))
    final = out.getvalue().split("\r")[-1]
    assert "3/3" in final and "ok=2 failed=1 retrying=0 running=0" in final


def test_missing_tqdm_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # An interpreter without the extra: the import of tqdm fails.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    runs = [SequentialRunner().submit(funcs.add, 1)]
    with pytest.raises(ImportError, match=r"pip install 'woflo\[progress\]'") as info:
        woflo.progress(runs, bar=True)
    assert info.value.name == "tqdm"
    # Plain lines need no tqdm.
    assert len(list(woflo.progress(runs, file=io.StringIO()))) == 1

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    # On a terminal the bar is chosen, not asked for: lines, with a word on the extra.
    out = Terminal()
    assert len(list(woflo.progress(runs, file=out))) == 1
    hint, line = out.getvalue().splitlines()
    assert hint == "(pip install 'woflo[progress]' (or pip install tqdm) for a progress bar)"
    assert line.startswith("runs: 1/1 done (1 ok, 0 failed)")


def test_map_hook_shows_the_map_until_consumed(capsys: pytest.CaptureFixture[str]) -> None:
    from woflo._submit import map_total, submit_ahead

    with ThreadRunner(2) as ex:
        items = list(range(20))
        submissions = (ex.submit(funcs.fail_if_odd, x) for x in items)
        results = submit_ahead(submissions, None, None, progress=True, total=map_total((items,)))
        got = []
        for _ in range(20):
            try:
                got.append(next(results))
            except ValueError:
                got.append(None)
                break
        results.close()  # stops at the first failure, as map does: the progress still ends
    assert got == [0, None]
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("runs: ") and "/20 done (" in last


def test_map_total() -> None:
    from woflo._submit import map_total

    assert map_total(([1, 2, 3], "ab")) == 2
    assert map_total((range(10),), chunksize=3) == 4
    assert map_total((iter([1]),)) is None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunksize", [1, 4])
def test_map_with_progress_on_every_runner_kind(capsys: pytest.CaptureFixture[str], chunksize: int) -> None:
    # Through the public map(): the progress counts runs (chunks on a process runner).
    from woflo import ProcessRunner

    for make in (lambda: ThreadRunner(2), lambda: ProcessRunner(2)):
        with make() as ex:
            assert list(ex.map(abs, range(-10, 10), chunksize=chunksize, progress=True)) == [
                abs(x) for x in range(-10, 10)
            ]
        runs = 5 if chunksize == 4 and isinstance(ex, ProcessRunner) else 20
        last = capsys.readouterr().err.splitlines()[-1]
        assert last.startswith(f"runs: {runs}/{runs} done ({runs} ok, 0 failed)"), last
