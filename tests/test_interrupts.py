"""A KeyboardInterrupt or SystemExit raised by user code that woflo calls (a logging handler, a done-callback)
never leaves a run running or pending for ever, nor work running for a run that has ended.

`emit` lets only such exceptions out of a logging handler; the stdlib lets them out of a done-callback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import funcs
import pytest
from helpers import wait_for

from woflo import AsyncRunner, PoolRunner, ProcessRunner, SequentialRunner, ThreadRunner
from woflo._runner import Runner

pytestmark = pytest.mark.timeout(120)

MAKERS: dict[str, Callable[[], Runner]] = {
    "thread": lambda: ThreadRunner(1),
    "process": lambda: ProcessRunner(1),
    "pool": lambda: PoolRunner(ThreadPoolExecutor(1), max_workers=1, own=True),
}


class RaiseOnce(logging.Handler):
    """Raises ``exc`` the first time the ``woflo`` logger logs ``event`` while armed."""

    def __init__(self, event: str, exc: type[BaseException]) -> None:
        super().__init__(logging.DEBUG)
        self.event, self.exc, self.armed = event, exc, False
        self.raised_on: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.armed and getattr(record, "event", None) == self.event:
            self.armed = False
            self.raised_on.append(threading.current_thread().name)
            raise self.exc(f"from a handler of {self.event}")


@pytest.fixture
def woflo_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("woflo")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.setLevel(level)


def _installed(logger: logging.Logger, handler: logging.Handler) -> Any:
    logger.addHandler(handler)
    return handler


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_an_interrupted_attempt_end_event_still_ends_the_run(
    kind: str, exc: type[BaseException], woflo_logger: logging.Logger
) -> None:
    # The attempt was settled before its event was logged: the run stayed
    # running for ever (result() and shutdown(wait=True) hung).
    runner = MAKERS[kind]()
    handler = _installed(woflo_logger, RaiseOnce("attempt.succeeded", exc))
    try:
        assert runner.submit(funcs.add, 0).result(timeout=60) == 0  # a worker is up
        handler.armed = True
        try:
            run = runner.submit(funcs.add, 1)
        except exc:  # raised on this thread (a direct process start delivers the result here)
            wait_for(lambda: not runner.active_runs(), 60, "no run left active")
        else:
            assert run.result(timeout=60) == 1
        assert handler.raised_on, "the handler never ran"
        assert runner.submit(funcs.add, 2).result(timeout=60) == 2  # and the runner serves on
    finally:
        woflo_logger.removeHandler(handler)
        runner.shutdown(wait=True)


@pytest.mark.parametrize("kind", ["sequential", *sorted(MAKERS)])
def test_an_interrupted_waiting_event_leaves_no_pending_run(kind: str, woflo_logger: logging.Logger) -> None:
    # A run with an input logs task.waiting before it waits: a handler's
    # Ctrl-C there left it pending for ever (shutdown(wait=True) hung).
    runner = SequentialRunner() if kind == "sequential" else MAKERS[kind]()
    handler = _installed(woflo_logger, RaiseOnce("task.waiting", KeyboardInterrupt))
    try:
        source = runner.submit(funcs.add, 1)
        handler.armed = True
        with pytest.raises(KeyboardInterrupt):
            runner.submit(funcs.add, source, 1)
        assert handler.raised_on, "the handler never ran"
        wait_for(lambda: not runner.active_runs(), 60, "no run left active")
        assert source.result(timeout=60) == 1
        assert runner.submit(funcs.add, runner.submit(funcs.add, 2), 1).result(timeout=60) == 3
    finally:
        woflo_logger.removeHandler(handler)
        runner.shutdown(wait=True)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_an_interrupted_submitted_event_leaves_no_pending_run(kind: str, woflo_logger: logging.Logger) -> None:
    runner = MAKERS[kind]()
    handler = _installed(woflo_logger, RaiseOnce("task.submitted", KeyboardInterrupt))
    try:
        handler.armed = True
        with pytest.raises(KeyboardInterrupt):
            runner.submit(funcs.add, 1)
        assert runner.active_runs() == []  # shutdown(wait=True) below would wait for it
        assert runner.submit(funcs.add, 2).result(timeout=60) == 2
    finally:
        woflo_logger.removeHandler(handler)
        runner.shutdown(wait=True)


def test_a_direct_process_job_whose_start_event_is_interrupted_is_stopped(
    tmp_path: Path, woflo_logger: logging.Logger
) -> None:
    # The job went straight to the idle worker, then the start's event, logged
    # by the submitting thread, raised: the run failed but its job ran on,
    # holding the only worker, past its timeout.
    runner = ProcessRunner(1, timeout=600)
    handler = _installed(woflo_logger, RaiseOnce("attempt.started", KeyboardInterrupt))
    try:
        assert runner.submit(funcs.add, 0).result(timeout=60) == 0  # the worker is up and idle
        handler.armed = True
        with pytest.raises(KeyboardInterrupt):
            runner.submit(funcs.block, str(tmp_path / "started"), str(tmp_path / "never"), 600.0)
        assert handler.raised_on == [threading.current_thread().name]
        # The only worker is free again: the blocked job was stopped.
        assert runner.submit(funcs.add, 2).result(timeout=60) == 2
        assert runner.active_runs() == []
    finally:
        woflo_logger.removeHandler(handler)
        runner.shutdown(wait=True)


def test_a_ctrl_c_while_submit_delivers_its_held_result_reaches_the_caller(woflo_logger: logging.Logger) -> None:
    # A direct job's result arrives while the submitting thread still fires its
    # start (held back), then is delivered by that thread: an interrupt there
    # was logged and swallowed as if on the manager thread.
    runner = ProcessRunner(1)
    pool_state = runner._pool._state

    class HoldStart(logging.Handler):
        armed = False

        def emit(self, record: logging.LogRecord) -> None:
            if self.armed and getattr(record, "event", None) == "attempt.started":
                self.armed = False
                # Until the manager has read the result and held it back.
                wait_for(lambda: any(pool_state.announcing.values()), 60, "the result held back")

    hold = _installed(woflo_logger, HoldStart(logging.DEBUG))
    interrupt = _installed(woflo_logger, RaiseOnce("attempt.succeeded", KeyboardInterrupt))
    try:
        assert runner.submit(funcs.add, 0).result(timeout=60) == 0
        hold.armed = interrupt.armed = True
        with pytest.raises(KeyboardInterrupt):
            runner.submit(funcs.add, 1)
        assert interrupt.raised_on == [threading.current_thread().name]
        assert runner.active_runs() == []  # the run ended all the same
    finally:
        woflo_logger.removeHandler(hold)
        woflo_logger.removeHandler(interrupt)
        runner.shutdown(wait=True)


def test_an_inline_runs_done_callback_system_exit_reaches_the_caller() -> None:
    # SequentialRunner ends the run inside submit: a done-callback's SystemExit
    # was swallowed there (only KeyboardInterrupt was let through).
    runner = SequentialRunner()
    after: list[object] = []

    def exit_from_callback(run: Any) -> None:
        raise SystemExit(3)

    runner.add_submit_callback(
        lambda run: (run.add_done_callback(exit_from_callback), run.add_done_callback(after.append))
    )
    with pytest.raises(SystemExit):
        runner.submit(funcs.add, 1)
    assert len(after) == 1 and after[0].result() == 1  # type: ignore[attr-defined]
    runner.shutdown(wait=True)


class _GatedPickle:
    """An argument whose pickling waits for ``gate`` (and says when it began)."""

    entered = threading.Event()
    gate = threading.Event()

    def __reduce__(self) -> tuple[Any, ...]:
        _GatedPickle.entered.set()
        assert _GatedPickle.gate.wait(60)
        return (_GatedPickle, ())


def test_a_shutdown_while_submit_still_pickles_a_direct_job_returns() -> None:
    # Not an interrupt, the same kind of loose end: shutdown(stop_running=True)
    # stopped the run whose argument the submitting thread was still pickling;
    # that thread then dropped the job without waking the manager, which
    # waited for it for ever, and so did shutdown(wait=True).
    _GatedPickle.entered.clear()
    _GatedPickle.gate.clear()
    runner = ProcessRunner(1)
    assert runner.submit(funcs.add, 0).result(timeout=60) == 0  # the worker is idle: the next job goes direct
    submitter = threading.Thread(target=lambda: runner.submit(funcs.identity, _GatedPickle()))
    submitter.start()
    closer = threading.Thread(target=runner.shutdown, kwargs={"wait": True, "stop_running": True})
    try:
        assert _GatedPickle.entered.wait(60)
        closer.start()
        wait_for(lambda: not runner.active_runs(), 60, "the run stopped by the shutdown")
    finally:
        _GatedPickle.gate.set()
        submitter.join(60)
    closer.join(60)
    assert not closer.is_alive(), "shutdown(wait=True) never returned"


class _InterruptCallbackLog(logging.Handler):
    """Raises KeyboardInterrupt when ``concurrent.futures`` logs a failed done-callback."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.raised = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("exception calling callback"):
            self.raised += 1
            raise KeyboardInterrupt("from the handler of a failed callback")


@pytest.mark.parametrize("kind", ["sequential", "async", *sorted(MAKERS)])
def test_a_handler_interrupting_a_callbacks_error_log_skips_no_callback(kind: str) -> None:
    # A done-callback raises ValueError; logging it, a handler raises
    # KeyboardInterrupt. That escaped the callback loop at once: the callbacks
    # after it (a wait(), an as_completed(), a run waiting for this one as
    # its input) never ran.
    makers = {**MAKERS, "sequential": SequentialRunner, "async": AsyncRunner}
    runner = makers[kind]()
    logger = logging.getLogger("concurrent.futures")
    handler = _InterruptCallbackLog()
    after: list[Any] = []
    ended = threading.Event()

    def bad_callback(run: Any) -> None:
        raise ValueError("a callback's bug")

    def add_callbacks(run: Any) -> None:
        run.add_done_callback(bad_callback)
        run.add_done_callback(after.append)
        run.add_done_callback(lambda run: ended.set())

    runner.add_submit_callback(add_callbacks)
    logger.addHandler(handler)
    try:
        try:
            runner.submit(funcs.add, 1)
        except KeyboardInterrupt:  # an inline run ends inside submit: the caller is interrupted
            assert kind == "sequential"
        assert ended.wait(60), "the callbacks after the failing one never ran"
        assert handler.raised == 1
        assert len(after) == 1 and after[0].result() == 1
        runner.remove_submit_callback(add_callbacks)
        assert runner.submit(funcs.add, 2).result(timeout=60) == 2  # the runner serves on
    finally:
        logger.removeHandler(handler)
        runner.shutdown(wait=True)


class _InterruptReport(logging.Handler):
    """Raises KeyboardInterrupt, once, when woflo logs an error carrying a SystemExit."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.raised_on: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not self.raised_on and record.exc_info and record.exc_info[0] is SystemExit:
            self.raised_on.append(threading.current_thread().name)
            raise KeyboardInterrupt("from the handler of woflo's error report")


@pytest.mark.parametrize("kind", ["async", *sorted(MAKERS)])
def test_a_handler_interrupting_an_error_report_leaves_the_runners_thread_serving(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A done-callback's SystemExit on one of the runner's own threads (a
    # worker thread, the process pool's manager, the event loop) is logged
    # and the thread serves on; a logging handler raising KeyboardInterrupt
    # while it was logged ended that thread: the pool then hung.
    runner = {**MAKERS, "async": AsyncRunner}[kind]()
    logger = logging.getLogger("woflo")
    handler = _InterruptReport()
    started, release = tmp_path / "started", tmp_path / "release"

    def exit_from_callback(run: Any) -> None:
        raise SystemExit(5)

    def attach(run: Any) -> None:
        run.add_done_callback(exit_from_callback)

    logger.addHandler(handler)
    try:
        # The only worker is busy: the next run is queued, and ends on the
        # runner's own thread, not this one.
        blocker = runner.submit(funcs.block, str(started), str(release))
        wait_for(started.exists, 60, "the blocking task started")
        runner.add_submit_callback(attach)
        target = runner.submit(funcs.add, 1)
        runner.remove_submit_callback(attach)
        release.touch()
        assert blocker.result(timeout=60) == "released"
        assert target.result(timeout=60) == 1
        wait_for(lambda: bool(handler.raised_on), 60, "the error report was logged")
        assert runner.submit(funcs.add, 2).result(timeout=60) == 2  # the runner's thread serves on
    finally:
        logger.removeHandler(handler)
        release.touch()
        runner.shutdown(wait=True)
    assert "and logging it raised KeyboardInterrupt" in capsys.readouterr().err


class _InterruptStartOffMain(logging.Handler):
    """Raises KeyboardInterrupt, once, when woflo logs attempt.started off the main thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.raised_on: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if (
            not self.raised_on
            and getattr(record, "event", None) == "attempt.started"
            and threading.current_thread() is not threading.main_thread()
        ):
            self.raised_on.append(threading.current_thread().name)
            raise KeyboardInterrupt("from a handler of attempt.started")


def test_a_pool_runner_handing_a_waiting_attempt_over_survives_an_interrupted_start(
    tmp_path: Path, woflo_logger: logging.Logger
) -> None:
    # PoolRunner(max_workers=1): as an attempt ends, the executor's thread
    # hands the slot to the next waiting attempt, whose attempt.started
    # handler raised KeyboardInterrupt. That escaped into the executor's
    # thread (which died), the ending attempt was never settled, and every
    # run stayed running or pending for ever.
    runner = PoolRunner(ThreadPoolExecutor(1), max_workers=1, own=True)
    handler = _installed(woflo_logger, _InterruptStartOffMain())
    started, release = tmp_path / "started", tmp_path / "release"
    try:
        first = runner.submit(funcs.block, str(started), str(release))  # holds the only slot
        wait_for(started.exists, 60, "the first task started")
        waiting = [runner.submit(funcs.add, n) for n in range(3)]
        release.touch()
        assert first.result(timeout=60) == "released"
        for run in waiting:
            run.wait(60)
        assert handler.raised_on, "the handler never ran off the main thread"
        # The one whose start was interrupted failed with it; the others ran.
        assert isinstance(waiting[0].exception(timeout=0), KeyboardInterrupt)
        assert [run.result(timeout=0) for run in waiting[1:]] == [1, 2]
        assert runner.submit(funcs.add, 5).result(timeout=60) == 5  # the slot was not lost
    finally:
        woflo_logger.removeHandler(handler)
        release.touch()
        runner.shutdown(wait=True)


def test_a_pool_runner_start_interrupted_on_the_caller_keeps_its_slot(woflo_logger: logging.Logger) -> None:
    # The submitting thread hands the attempt over when a slot is free; its
    # attempt.started handler raised KeyboardInterrupt there: the slot stayed
    # taken, and with max_workers=1 every later run waited for ever.
    runner = PoolRunner(ThreadPoolExecutor(1), max_workers=1, own=True)
    handler = _installed(woflo_logger, RaiseOnce("attempt.started", KeyboardInterrupt))
    try:
        handler.armed = True
        with pytest.raises(KeyboardInterrupt):
            runner.submit(funcs.add, 1)
        assert handler.raised_on == [threading.current_thread().name]
        wait_for(lambda: not runner.active_runs(), 60, "the interrupted run ended")
        assert runner.submit(funcs.add, 2).result(timeout=60) == 2
    finally:
        woflo_logger.removeHandler(handler)
        runner.shutdown(wait=True)
