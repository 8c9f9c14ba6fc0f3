"""Details of the Executor contract that every runner keeps: reprs, reference
release in ``map``, what the default policy never retries, what a
CancelledError says, and that woflo names callables without their values."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import gc
import re
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from woflo import BrokenRunner, RunState, SerializationError, WorkerCrashed
from woflo.testing import tasks
from woflo.testing._contract.base import ContractBase
from woflo.testing._events import capture_events
from woflo.testing._kind import RunnerKind
from woflo.testing._wait import wait_for, wait_for_file, wait_freed

SECRET = "s3cr3t-t0ken-4242"


def _busy(make: Any, kind: RunnerKind, tmp_path: Path) -> tuple[Any, Any, Path]:
    """A runner of one worker, busy with a run that waits for the returned file."""
    if not kind.sized:
        pytest.skip("no run ever waits for a worker here")
    ex = make(max_workers=1)
    started, release = str(tmp_path / "started"), tmp_path / "release"
    blocker = ex.submit(tasks.block, started, str(release))
    wait_for_file(started)
    wait_for(blocker.running, what="the run to be marked running")
    return ex, blocker, release


def _waiting_to_retry(ex: Any, tmp_path: Path, kind: RunnerKind) -> Any:
    """A run whose first attempt failed and whose retry waits 60 s: on every runner but the inline one."""
    if kind.inline:
        pytest.skip("submit itself waits for the retry on this runner")
    run = ex.submit(tasks.fail_times, str(tmp_path / "n"), 1)
    wait_for(lambda: run.state is RunState.RETRYING, 30, "the run to wait for its retry")
    return run


# -- repr: the stdlib's words, then woflo's ----------------------------------------


def _stdlib_part(text: str) -> str:
    """``<Future at 0x... state=...>`` from a run's repr: its class, address and woflo's fields dropped."""
    match = re.fullmatch(r"<\w*TaskRun at 0x[0-9a-f]+ (state=.*?) name='\w+' run_id=[0-9a-f]{8} run_state=\w+>", text)
    assert match, text
    return f"<Future at 0x0 {match.group(1)}>"


def _stdlib(future: cf.Future[Any]) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x0", repr(future))


# -- map drops what it has handed out (CPython gh-58592) ------------------------------------


@contextlib.contextmanager
def _refcounting_only() -> Iterator[None]:
    # What is freed must be freed by its last reference going, not by a collection.
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _each_result_freed(results: Iterator[Any]) -> list[int]:
    values = []
    for result in results:
        values.append(result.value)
        ref = weakref.ref(result)
        del result
        # A worker thread may hold it for the moment it takes to return
        # from delivering it; not until the next result is asked for.
        wait_freed(ref, "the result")
    return values


# -- errors no retry can fix ------------------------------------------------------------------


# -- what a CancelledError says -------------------------------------------------------------


def _cancelled_with(run: Any, words: str) -> None:
    with pytest.raises(cf.CancelledError) as info:
        run.result(timeout=30)
    assert words in str(info.value) and run.name in str(info.value)
    with pytest.raises(cf.CancelledError, match=re.escape(words)):
        run.exception(timeout=30)


def _raise_cancelled() -> None:
    raise cf.CancelledError("the task's own")


# -- names, never values ---------------------------------------------------------------------


def _secret_free(events: Any, *texts: str) -> None:
    for event in events:
        assert SECRET not in repr(dict(event)), event
    for text in texts:
        assert SECRET not in text, text


class DetailsContract(ContractBase):
    """Reprs, reference release, errors never retried, what a CancelledError says, names without values."""

    def test_repr_of_finished_runs_keeps_the_stdlib_words(self, make: Any) -> None:
        ex = make()
        ok = ex.submit(tasks.add, 1, 2)
        bad = ex.submit(tasks.fail_times, "/nonexistent-dir/counter", 0)  # OSError writing the counter
        assert ok.result(timeout=30) == 3
        assert isinstance(bad.exception(timeout=30), OSError)
        done: cf.Future[Any] = cf.Future()
        done.set_result(3)
        failed: cf.Future[Any] = cf.Future()
        failed.set_exception(FileNotFoundError())
        assert _stdlib_part(repr(ok)) == _stdlib(done)
        assert _stdlib_part(repr(bad)) == _stdlib(failed)
        assert repr(ok).endswith(f"name='add' run_id={ok.run_id[:8]} run_state=succeeded>")
        assert repr(bad).endswith("run_state=failed>")
        assert f" at {id(ok):#x} " in repr(ok)

    def test_repr_of_pending_running_and_cancelled_runs(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex, blocker, release = _busy(make, kind, tmp_path)
        pending = ex.submit(tasks.add, 1)
        assert _stdlib_part(repr(pending)) == _stdlib(cf.Future())
        running: cf.Future[Any] = cf.Future()
        running.set_running_or_notify_cancel()
        assert _stdlib_part(repr(blocker)) == _stdlib(running)
        assert repr(blocker).endswith("run_state=running>")
        assert pending.cancel()
        cancelled: cf.Future[Any] = cf.Future()
        cancelled.cancel()
        assert _stdlib_part(repr(pending)) == _stdlib(cancelled)
        assert repr(pending).endswith("run_state=cancelled>")
        release.touch()
        assert blocker.result(timeout=30) == "released"

    def test_repr_of_a_run_waiting_to_retry(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make(retries=1, retry_wait_time=60)
        run = _waiting_to_retry(ex, tmp_path, kind)
        # A Future that is not done and not pending is running, for the stdlib.
        assert "state=running " in repr(run) and repr(run).endswith("run_state=retrying>")
        run.stop()

    @pytest.mark.parametrize("options", [{}, {"buffersize": 2}, {"chunksize": 3}, {"chunksize": 3, "buffersize": 1}])
    def test_map_frees_each_result_once_the_caller_drops_it(self, make: Any, options: dict[str, int]) -> None:
        ex = make()
        with _refcounting_only():
            assert _each_result_freed(ex.map(tasks.box, range(7), timeout=60, **options)) == list(range(7))

    def test_as_completed_frees_each_result_once_the_caller_drops_it(self, make: Any) -> None:
        ex = make()
        with _refcounting_only():
            values = []
            for run in cf.as_completed([ex.submit(tasks.box, i) for i in range(5)], timeout=60):
                ref = weakref.ref(run.result())
                values.append(run.result().value)
                del run
                wait_freed(ref, "the result")
        assert sorted(values) == list(range(5))

    def test_a_run_of_a_custom_policy_keeps_no_second_reference_to_its_result(self, make: Any) -> None:
        # tenacity's last outcome holds the value too: the run drops it at the end.
        import tenacity

        ex = make(retry=tenacity.retry_if_result(lambda v: False))
        run = ex.submit(tasks.box, 1)
        with _refcounting_only():
            ref = weakref.ref(run.result(timeout=30))
            del run
            wait_freed(ref, "the result")

    @pytest.mark.parametrize("fn", [tasks.raise_serialization_error, tasks.raise_broken_runner])
    def test_the_default_policy_does_not_retry_what_no_retry_fixes(self, make: Any, fn: Any) -> None:
        ex = make(retries=3, retry_wait_time=0)
        run = ex.submit(fn)
        with pytest.raises((SerializationError, BrokenRunner)):
            run.result(timeout=30)
        assert len(run.attempts) == 1
        # Other errors still are.
        other = ex.submit(tasks.boom)
        with pytest.raises(ValueError):
            other.result(timeout=30)
        assert len(other.attempts) == 4

    def test_an_argument_that_cannot_be_pickled_is_not_retried(self, make: Any, kind: RunnerKind) -> None:
        if not kind.serialization_errors:
            pytest.skip("this runner does not report SerializationError (RunnerKind.serialization_errors)")
        import threading

        run = make(retries=3, retry_wait_time=0).submit(tasks.identity, threading.Lock())
        with pytest.raises(SerializationError):
            run.result(timeout=30)
        assert len(run.attempts) == 1

    def test_a_custom_retry_predicate_decides_for_itself(self, make: Any) -> None:
        import tenacity

        ex = make(stop=tenacity.stop_after_attempt(2), retry=tenacity.retry_if_exception_type(SerializationError))
        run = ex.submit(tasks.raise_serialization_error)
        with pytest.raises(SerializationError):
            run.result(timeout=30)
        assert len(run.attempts) == 2

    def test_cancelled_error_names_cancel(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex, blocker, release = _busy(make, kind, tmp_path)
        pending = ex.submit(tasks.add, 1)
        assert pending.cancel()
        _cancelled_with(pending, "cancel()")
        release.touch()
        blocker.result(timeout=30)

    def test_cancelled_error_names_shutdown_cancel_futures(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex, blocker, release = _busy(make, kind, tmp_path)
        pending = ex.submit(tasks.add, 1)
        ex.shutdown(wait=False, cancel_futures=True)
        release.touch()
        _cancelled_with(pending, "shutdown(cancel_futures=True)")
        assert blocker.result(timeout=30) == "released"

    def test_cancelled_error_names_stop(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        run = _waiting_to_retry(make(retries=1, retry_wait_time=60), tmp_path, kind)
        assert run.stop()
        _cancelled_with(run, "stop()")

    def test_cancelled_error_of_a_stopped_running_attempt(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        if kind.inline:
            pytest.skip("submit returns when the attempt has ended")
        started = str(tmp_path / "started")
        run = make().submit(tasks.block, started, str(tmp_path / "never"), 5)
        wait_for_file(started)
        assert run.stop()
        _cancelled_with(run, "stop()")

    def test_cancelled_error_names_shutdown_stop_running(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make(retries=1, retry_wait_time=60)
        run = _waiting_to_retry(ex, tmp_path, kind)
        ex.shutdown(wait=True, stop_running=True)
        _cancelled_with(run, "shutdown(stop_running=True)")

    def test_cancelled_error_names_ctrl_c(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make(retries=1, retry_wait_time=60)
        with pytest.raises(KeyboardInterrupt), ex:
            run = _waiting_to_retry(ex, tmp_path, kind)
            raise KeyboardInterrupt
        _cancelled_with(run, "KeyboardInterrupt (Ctrl-C)")

    def test_the_task_cancelled_event_says_why(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make(retries=1, retry_wait_time=60)
        with capture_events() as events:
            run = _waiting_to_retry(ex, tmp_path, kind)
            run.stop()
            wait_for(lambda: events.of("task.cancelled"), 10, "the task.cancelled event")
        assert events.of("task.cancelled")[0]["reason"] == "stopped by stop()"

    def test_a_tasks_own_cancelled_error_is_kept(self, make: Any) -> None:
        # A task that raises CancelledError itself failed: its error, not woflo's message.
        run = make().submit(tasks.identity, 1)
        assert run.result(timeout=30) == 1
        from woflo import SequentialRunner

        failing = SequentialRunner().submit(_raise_cancelled)
        with pytest.raises(cf.CancelledError, match=r"^the task's own$"):
            failing.result()
        assert failing.state is RunState.FAILED

    @pytest.mark.parametrize(
        ("fn", "name"),
        [
            (functools.partial(tasks.refuse, SECRET), "refuse"),
            (tasks.Client(SECRET), "Client"),
            (tasks.Client(SECRET).fetch, "Client.fetch"),
            (functools.partial(functools.partial(tasks.Client(SECRET).fetch)), "Client.fetch"),
        ],
        ids=["partial", "callable-object", "bound-method", "nested-partial"],
    )
    def test_a_failing_task_is_named_without_its_values(self, make: Any, fn: Any, name: str) -> None:
        ex = make(retries=1, retry_wait_time=0)
        with capture_events() as events:
            run = ex.submit(fn)
            with pytest.raises(ValueError):
                run.result(timeout=30)
            wait_for(lambda: events.of("task.failed"), 10, "the task.failed event")
        assert run.name == name
        assert {e["task"] for e in events} == {name}
        assert events.of("attempt.failed") and events.of("task.failed")
        _secret_free(events, repr(run), str(run.exception()))

    def test_a_crashed_worker_is_named_without_its_values(self, make: Any, kind: RunnerKind) -> None:
        if not kind.crash_isolated:
            pytest.skip("a task here cannot end its worker alone (RunnerKind.crash_isolated)")
        ex = make()
        with capture_events() as events:
            run = ex.submit(functools.partial(tasks.exit_holding, SECRET))
            with pytest.raises(WorkerCrashed) as info:
                run.result(timeout=60)
            wait_for(lambda: events.of("task.failed"), 10, "the task.failed event")
        assert "exit_holding" in str(info.value)
        assert events.of("attempt.failed")[0]["exception_type"] == "WorkerCrashed"
        _secret_free(events, str(info.value), repr(info.value), repr(run))

    def test_a_callable_that_is_not_callable_is_named_by_its_type(self, make: Any) -> None:
        class Settings:
            def __repr__(self) -> str:
                return f"Settings(password={SECRET!r})"

        with pytest.raises(TypeError) as info:
            make().submit(Settings())
        assert "'Settings' object is not callable" in str(info.value)
        assert SECRET not in str(info.value)
