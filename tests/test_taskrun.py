"""TaskRun's own additions to Future: state, attempts, stop and the 0.8 methods."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import funcs
import pytest
from helpers import wait_for_file

from woflo import AttemptRecord, RunState, SequentialRunner, TaskRun, ThreadRunner

pytestmark = pytest.mark.timeout(60)


def test_only_runners_make_taskruns() -> None:
    with pytest.raises(TypeError, match="created by runners"):
        TaskRun()


def test_get_result_returns_the_exception_object() -> None:
    run = SequentialRunner().submit(funcs.boom, "x")
    err = run.get_result()
    assert isinstance(err, ValueError) and str(err) == "x"
    assert run.get_result() is err  # any number of times
    with pytest.raises(ValueError):
        run.get_result(raise_exceptions=True)
    with pytest.raises(ValueError):
        run.result()


def test_attempts_are_records_in_a_list_of_the_callers_own(tmp_path: Path) -> None:
    run = SequentialRunner(retries=1).submit(funcs.fail_times, str(tmp_path / "n"), 1, "ok")
    assert run.result() == "ok"
    records = run.attempts
    assert all(isinstance(r, AttemptRecord) for r in records)
    assert [(r.number, r.outcome) for r in records] == [(1, "failed"), (2, "succeeded")]
    assert isinstance(records[0].exception, OSError) and records[1].exception is None
    records.clear()  # the caller's copy: the run keeps its history
    assert [r.number for r in run.attempts] == [1, 2]


def test_get_result_wait_false_and_timeout(tmp_path: Path) -> None:
    with ThreadRunner(1) as ex:
        started, release = str(tmp_path / "s"), str(tmp_path / "r")
        run = ex.submit(funcs.block, started, release)
        wait_for_file(started)
        with pytest.raises(RuntimeError, match="still running"):
            run.get_result(wait=False)
        with pytest.raises(cf.TimeoutError):
            run.get_result(timeout=0.05)
        assert run.is_running() and run.state is RunState.RUNNING
        assert run.wait(timeout=0.01) is False
        Path(release).touch()
        assert run.wait(timeout=30) is True
        assert run.get_result(wait=False) == "released"
        assert not run.is_running()


def test_stop_of_a_finished_run_is_false() -> None:
    run = SequentialRunner().submit(funcs.add, 1)
    assert run.stop() is False and run.state is RunState.SUCCEEDED


def test_stopped_run_get_result_returns_cancelled_error(tmp_path: Path) -> None:
    with ThreadRunner(1) as ex:
        started = str(tmp_path / "s")
        run = ex.submit(funcs.block, started, str(tmp_path / "r"), 2)
        wait_for_file(started)
        run.stop()
        assert isinstance(run.get_result(), cf.CancelledError)
        assert run.attempts[0].outcome == "stopped"


def test_run_id_is_unique_and_repr_is_readable() -> None:
    runner = SequentialRunner()
    ids = {runner.submit(funcs.add, i).run_id for i in range(100)}
    assert len(ids) == 100
    run = runner.submit(funcs.add, 1)
    assert "add" in repr(run) and "succeeded" in repr(run)
    assert str(RunState.FAILED) == "failed"


def test_cancelling_an_await_stops_the_run(tmp_path: Path) -> None:
    import asyncio

    with ThreadRunner(1) as ex:
        started = str(tmp_path / "s")
        run = ex.submit(funcs.block, started, str(tmp_path / "never"), 5)

        async def main() -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(run, 0.2)

        asyncio.run(main())
        assert run.cancelled() and run.state is RunState.CANCELLED


def test_await_a_finished_run_needs_no_loop_hop() -> None:
    import asyncio

    run = SequentialRunner().submit(funcs.add, 2, 3)

    async def main() -> int:
        return await run

    assert asyncio.run(main()) == 5


def test_a_finished_run_does_not_keep_its_arguments() -> None:
    import gc
    import weakref

    class Payload:
        pass

    payload = Payload()
    ref = weakref.ref(payload)
    run = SequentialRunner().submit(len, [payload])
    del payload
    gc.collect()
    assert run.result() == 1
    assert ref() is None  # the run holds its result, not its input


def test_run_id_is_a_uuid4_hex() -> None:
    import uuid

    from woflo import SequentialRunner

    ids = {SequentialRunner().submit(len, "x").run_id for _ in range(200)}
    assert len(ids) == 200
    for run_id in ids:
        parsed = uuid.UUID(hex=run_id)
        assert parsed.hex == run_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
