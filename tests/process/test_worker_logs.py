"""What a task logs in a worker process reaches the parent's logging, with its run (issue #11, item 1).

Real worker processes on every start method, real handlers in the parent, real
structlog capture: a record or event is forwarded as it is emitted and
re-emitted through the parent's configuration with ``task``, ``run_id``,
``attempt`` and ``worker``; nothing is lost when the worker is SIGKILLed right
after logging; the worker's levels follow the parent's.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import funcs
import pytest
import structlog
import structlog.testing
from helpers import Collect, wait_for_file

from woflo import ProcessRunner, WorkerCrashed, _tasklog
from woflo._events import EVENTS

pytestmark = pytest.mark.timeout(120)

START_METHODS = ["exec", "spawn", "forkserver", "loky"]


@pytest.fixture
def collect() -> Iterator[Collect]:
    """A handler on ``tests.tasklog`` (level INFO) and on ``py.warnings``, for the test."""
    handler = Collect()
    loggers = [logging.getLogger(funcs.TASKLOG), logging.getLogger("py.warnings")]
    levels = [lg.level for lg in loggers]
    loggers[0].setLevel(logging.INFO)
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """Leave structlog as it was: ``capture_logs`` leaves it configured, which turns woflo's events on."""
    was_configured, old = structlog.is_configured(), structlog.get_config()
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**old)
        else:
            structlog.reset_defaults()


def fields(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, name, None) for name in _tasklog.FIELDS)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_records_warnings_and_events_reach_the_parent(start_method: str, collect: Collect) -> None:
    with ProcessRunner(1, start_method=start_method) as ex, structlog.testing.capture_logs() as events:
        runs = [
            ex.submit(funcs.log_records, 2),
            ex.submit(funcs.log_exception),
            ex.submit(funcs.warn_with, f"careful on {start_method}"),
            ex.submit(funcs.log_structlog, 2),
        ]
        for run in runs:
            run.result(timeout=60)
    plain, exc, warned, struct = runs
    pid = plain.attempts[0].worker
    assert isinstance(pid, int) and pid != os.getpid()

    records = collect.of(plain)
    assert [r.getMessage() for r in records] == ["record 0", "record 1"]  # the DEBUG one: not even sent
    for r in records:
        assert fields(r) == (plain.name, plain.run_id, 1, pid)
        assert (r.name, r.levelno, r.process) == (funcs.TASKLOG, logging.INFO, pid)

    failed, locked = collect.of(exc)
    assert (failed.getMessage(), failed.levelno, failed.exc_info) == ("it failed", logging.ERROR, None)
    assert "ZeroDivisionError: division by zero" in (failed.exc_text or "")
    assert "ZeroDivisionError" in logging.Formatter().format(failed)  # the parent's formatter shows it
    assert locked.color == "blue" and "lock" in locked.lock  # type: ignore[attr-defined]  # unpicklable: its repr

    (warning,) = collect.of(warned)
    assert warning.name == "py.warnings" and f"UserWarning: careful on {start_method}" in warning.getMessage()
    assert fields(warning) == (warned.name, warned.run_id, 1, pid)

    mine = [e for e in events if e.get("run_id") == struct.run_id and e["event"] in ("step", "struct failed")]
    assert [(e["event"], e.get("i"), e["log_level"]) for e in mine] == [
        ("step", 0, "info"),
        ("step", 1, "info"),
        ("struct failed", None, "error"),
    ]
    for event in mine:
        assert (event["task"], event["attempt"], event["worker"], event["bound"]) == (struct.name, 1, pid, "yes")
    assert "ZeroDivisionError" in mine[-1]["exception"]


@pytest.mark.parametrize("start_method", ["exec", "spawn"])
def test_nothing_is_lost_when_the_worker_is_killed_right_after_logging(
    start_method: str, collect: Collect, tmp_path: Path
) -> None:
    ready = str(tmp_path / "ready")
    with ProcessRunner(1, start_method=start_method) as ex, structlog.testing.capture_logs() as events:
        run = ex.submit(funcs.log_then_block, ready)
        wait_for_file(ready, 60)
        # The task logged, then wrote the file: kill it now, with no grace.
        os.kill(int(Path(ready).read_text()), signal.SIGKILL)
        assert isinstance(run.exception(timeout=60), WorkerCrashed)
    (record,) = collect.of(run)
    assert record.getMessage() == "last words" and record.attempt == 1  # type: ignore[attr-defined]
    assert [e["event"] for e in events if e.get("run_id") == run.run_id and e["event"] not in EVENTS] == ["last event"]


def test_per_run_order_is_kept(collect: Collect) -> None:
    with ProcessRunner(2) as ex:
        runs = [ex.submit(funcs.log_records, 300, f"r{i}") for i in range(4)]
        for run in runs:
            run.result(timeout=60)
    for i, run in enumerate(runs):
        assert [r.getMessage() for r in collect.of(run)] == [f"r{i} {k}" for k in range(300)]


def test_worker_levels_follow_the_parent(collect: Collect) -> None:
    logger = logging.getLogger(funcs.TASKLOG)
    child = f"{funcs.TASKLOG}.child"
    with ProcessRunner(1) as ex:
        # INFO in the parent: enabled in the worker, for the logger and its child.
        assert ex.submit(funcs.enabled_for, child, logging.INFO).result(timeout=60) is True
        logger.setLevel(logging.WARNING)
        assert ex.submit(funcs.enabled_for, child, logging.INFO).result(timeout=60) is False
        assert ex.submit(funcs.enabled_for, child, logging.WARNING).result(timeout=60) is True
        run = ex.submit(funcs.log_records, 2)  # INFO records: the worker drops them
        run.result(timeout=60)
        assert collect.of(run) == []
        logger.setLevel(logging.DEBUG)
        assert ex.submit(funcs.enabled_for, child, logging.DEBUG).result(timeout=60) is True
        logging.disable(logging.CRITICAL)
        try:
            assert ex.submit(funcs.enabled_for, child, logging.CRITICAL).result(timeout=60) is False
        finally:
            logging.disable(logging.NOTSET)
        assert ex.submit(funcs.enabled_for, child, logging.DEBUG).result(timeout=60) is True
        assert len(set(ex.worker_pids)) == 1  # one worker saw every change


def test_structlog_level_follows_the_parent() -> None:
    with ProcessRunner(1) as ex:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        assert ex.submit(funcs.structlog_level).result(timeout=60) == logging.WARNING
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        assert ex.submit(funcs.structlog_level).result(timeout=60) == logging.DEBUG


@pytest.mark.parametrize("inner", ["thread", "sequential"])
def test_nested_runs_in_a_worker_carry_the_inner_run(inner: str, collect: Collect) -> None:
    with ProcessRunner(1) as ex:
        run = ex.submit(funcs.nested_logs, inner)
        inner_id, inner_name = run.result(timeout=60)
    by_message = {r.getMessage(): r for r in collect.records}
    assert set(by_message) == {"outer before", "inner 0", "inner 1", "outer after"}
    for message in ("outer before", "outer after"):
        assert fields(by_message[message])[:3] == (run.name, run.run_id, 1)
    for message in ("inner 0", "inner 1"):
        assert fields(by_message[message])[:3] == (inner_name, inner_id, 1)


def test_initializer_records_carry_the_worker(collect: Collect) -> None:
    with ProcessRunner(1, initializer=funcs.log_in_initializer) as ex:
        pid = ex.submit(funcs.worker_pid).result(timeout=60)
    (record,) = collect.records
    assert record.getMessage() == "initializing"
    assert fields(record) == (None, None, None, pid)  # no run: only the worker


def test_a_worker_imports_structlog_only_for_a_task_that_uses_it() -> None:
    # Forwarding is set up when the task imports structlog, not before: a
    # worker whose tasks never use it does not pay for the import.
    with ProcessRunner(1) as ex, structlog.testing.capture_logs() as events:
        assert ex.submit(funcs.loaded_modules, "structlog").result(timeout=60) == []
        run = ex.submit(funcs.log_structlog, 1)
        run.result(timeout=60)
    assert [e["i"] for e in events if e["event"] == "step" and e["run_id"] == run.run_id] == [0]


def test_a_signal_handler_that_logs_mid_frame_neither_deadlocks_nor_garbles(collect: Collect) -> None:
    with ProcessRunner(1) as ex:
        run = ex.submit(funcs.log_from_signal_handler, 3000, keep_alarm=True)
        assert run.result(timeout=100) > 0
        # The handler keeps firing while the worker writes these results: the
        # pipe stays intact and the worker goes on serving.
        for _ in range(3):
            assert [r.result(timeout=100) for r in [ex.submit(funcs.add, i, 1) for i in range(300)]] == [
                i + 1 for i in range(300)
            ]
        ex.submit(funcs.log_from_signal_handler, 0).result(timeout=100)  # disarms it
    assert [r.getMessage() for r in collect.of(run) if r.getMessage() != "from the handler"] == [
        f"record {i}" for i in range(3000)
    ]
