"""Logs from inside a task carry their run, on every runner (issue #11, item 1).

The in-process runners (Sequential, Thread, Async, WofloExecutor) bind the run
in a context variable around the call; the process runner forwards records from
its workers (tests/process/test_worker_logs.py has the worker-specific cases).
Real handlers, real structlog capture, real runners: nothing is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Iterator
from typing import Any

import funcs
import pytest
import structlog
import structlog.testing
from helpers import Collect

from woflo import AsyncRunner, SequentialRunner, ThreadRunner, _tasklog
from woflo._tasklog import add_task_context


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


@pytest.fixture
def collect() -> Iterator[Collect]:
    """A handler on the ``tests.tasklog`` logger, whose level is INFO for the test."""
    logger = logging.getLogger(funcs.TASKLOG)
    handler = Collect()
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def no_dask(kind: Any) -> None:
    if kind.name == "dask":
        pytest.skip("a Dask worker's records are not forwarded with their run (docs/dask.md)")


def fields(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, name, None) for name in _tasklog.FIELDS)


@pytest.mark.timeout(60)
def test_records_carry_their_run_on_every_runner(kind: Any, make: Any, collect: Collect) -> None:
    no_dask(kind)
    ex = make(max_workers=2)
    runs = [ex.submit(funcs.log_records, 3, f"run{i}") for i in range(4)]
    for run in runs:
        assert run.result(timeout=60) == 3
    for i, run in enumerate(runs):
        mine = collect.of(run)
        # Per-run order kept, the DEBUG record dropped by the logger's level.
        assert [r.getMessage() for r in mine] == [f"run{i} {k}" for k in range(3)]
        worker = run.attempts[-1].worker
        for record in mine:
            assert fields(record) == (run.name, run.run_id, 1, worker)
            assert record.name == funcs.TASKLOG and record.levelno == logging.INFO
    assert len(collect.records) == 12  # every record belongs to one of the runs


@pytest.mark.timeout(60)
def test_a_retry_logs_with_its_attempt_number(kind: Any, make: Any, collect: Collect, tmp_path: Any) -> None:
    no_dask(kind)
    ex = make(max_workers=2, retries=1, retry_sleep_time=0)
    run = ex.submit(_log_and_fail_once, str(tmp_path / "count"))
    assert run.result(timeout=60) == "ok"
    assert [(r.getMessage(), r.attempt) for r in collect.of(run)] == [("try 1", 1), ("try 2", 2)]


def _log_and_fail_once(counter: str) -> str:
    from pathlib import Path

    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    logging.getLogger(funcs.TASKLOG).info("try %d", calls)
    if calls == 1:
        raise OSError("first")
    return "ok"


@pytest.mark.timeout(60)
def test_structlog_events_carry_their_run_on_every_runner(kind: Any, make: Any) -> None:
    no_dask(kind)
    ex = make(max_workers=2)
    with structlog.testing.capture_logs(processors=[add_task_context]) as logs:
        run = ex.submit(funcs.log_structlog, 2)
        assert run.result(timeout=60) == 2
    worker = run.attempts[-1].worker
    mine = [e for e in logs if e.get("run_id") == run.run_id and e["event"] in ("step", "struct failed")]
    assert [e.get("i") for e in mine] == [0, 1, None]
    for event in mine:
        assert (event["task"], event["attempt"], event["worker"], event["bound"]) == (run.name, 1, worker, "yes")
    if kind.remote:  # formatted in the worker: the traceback travels as text
        assert "ZeroDivisionError" in mine[-1]["exception"]
    else:  # in-process, the application's processors format it
        assert mine[-1]["exc_info"] is True


def test_outside_a_task_records_and_events_are_untouched(collect: Collect) -> None:
    logging.getLogger(funcs.TASKLOG).info("plain")
    (record,) = collect.records
    assert not any(hasattr(record, name) for name in _tasklog.FIELDS)
    assert add_task_context(None, "info", {"event": "x"}) == {"event": "x"}
    assert _tasklog.current_fields() is None


@pytest.mark.timeout(60)
def test_extra_fields_of_the_same_name_are_kept(collect: Collect) -> None:
    def log_with_extra() -> None:
        logging.getLogger(funcs.TASKLOG).info("mine", extra={"task": "chosen by me"})

    with ThreadRunner(1) as ex:
        run = ex.submit(log_with_extra)
        run.result(timeout=60)
    (record,) = collect.records
    assert record.task == "chosen by me"  # type: ignore[attr-defined]
    assert record.run_id == run.run_id  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("outer", ["thread", "sequential"])
@pytest.mark.parametrize("inner", ["thread", "sequential"])
def test_nested_runs_carry_the_inner_run(outer: str, inner: str, collect: Collect) -> None:
    with ThreadRunner(1) if outer == "thread" else SequentialRunner() as ex:
        run = ex.submit(funcs.nested_logs, inner)
        inner_id, inner_name = run.result(timeout=60)
    by_message = {r.getMessage(): r for r in collect.records}
    assert set(by_message) == {"outer before", "inner 0", "inner 1", "outer after"}
    for message in ("outer before", "outer after"):
        assert by_message[message].run_id == run.run_id  # type: ignore[attr-defined]
    for message in ("inner 0", "inner 1"):
        assert by_message[message].run_id == inner_id  # type: ignore[attr-defined]
        assert by_message[message].task == inner_name  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_async_runner_binds_coroutines_and_plain_functions(collect: Collect) -> None:
    async def coro(tag: str) -> None:
        log = logging.getLogger(funcs.TASKLOG)
        log.info("%s before", tag)
        await asyncio.sleep(0)  # another run's task runs meanwhile: each keeps its own
        log.info("%s after", tag)

    with AsyncRunner() as ex:
        runs = [ex.submit(coro, f"c{i}") for i in range(3)]
        plain = ex.submit(funcs.log_records, 1, "plain")
        for run in [*runs, plain]:
            run.result(timeout=60)
    for i, run in enumerate(runs):
        assert [r.getMessage() for r in collect.of(run)] == [f"c{i} before", f"c{i} after"]
    # A plain function runs on a thread, in a copy of the attempt's context.
    (record,) = collect.of(plain)
    assert fields(record) == (plain.name, plain.run_id, 1, plain.attempts[0].worker)


@pytest.mark.timeout(60)
def test_a_context_copied_in_a_task_does_not_keep_the_run_alive() -> None:
    import contextvars
    import gc
    import weakref

    kept: list[contextvars.Context] = []

    def task() -> bytes:
        kept.append(contextvars.copy_context())
        return b"x" * 1000

    with ThreadRunner(1) as ex:
        run = ex.submit(task)
        run.result(timeout=60)
    ref = weakref.ref(run)
    del run
    gc.collect()
    assert ref() is None  # the copied context holds only a weak reference to it
    assert kept[0].run(_tasklog.current_fields) is None


def test_record_factory_is_installed_once_and_chains() -> None:
    made: list[str] = []
    before = logging.getLogRecordFactory()

    def mine(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append("mine")
        return before(*args, **kwargs)

    logging.setLogRecordFactory(mine)
    try:
        _tasklog.install()
        _tasklog.install()  # the second call sees woflo's factory on top: no second layer
        factory = logging.getLogRecordFactory()
        assert factory is not mine and getattr(factory, "__woflo__", False)
        logging.getLogger(funcs.TASKLOG).error("through both")
        assert made == ["mine"]
    finally:
        logging.setLogRecordFactory(before)


def test_logging_level_cache_canary() -> None:
    # levels_item relies on logging's private level cache being emptied on
    # every level change (Manager._clear_cache). If this fails, Python changed
    # it: levels_item must then take the snapshot for every batch.
    assert isinstance(logging.root._cache, dict)  # type: ignore[attr-defined]
    first = _tasklog._levels_item_fast()
    assert _tasklog._levels_item_fast() is first  # unchanged: the cached item
    logger = logging.getLogger("tests.tasklog.canary")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        second = _tasklog._levels_item_fast()
        assert second is not first
        assert ("tests.tasklog.canary", logging.ERROR, False) in pickle.loads(second[3])[2]
    finally:
        logger.setLevel(old)
    assert ("tests.tasklog.canary", logging.ERROR, False) not in pickle.loads(_tasklog._levels_item_fast()[3])[2]


def test_structlog_config_canary() -> None:
    # (The fast path's; the public fallback, WOFLO_NO_FAST_PATHS=1, asks get_config().)
    # levels_item reads structlog's private _CONFIG to notice a new wrapper class.
    from structlog import _config

    assert _config._CONFIG.default_wrapper_class is structlog.get_config()["wrapper_class"]
    was_configured, old = structlog.is_configured(), structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        assert pickle.loads(_tasklog.levels_item()[3])[3] == logging.ERROR
    finally:
        if was_configured:
            structlog.configure(**old)
        else:
            structlog.reset_defaults()


@pytest.mark.timeout(60)
def test_woflo_events_of_a_run_nested_in_a_task_keep_their_own_fields() -> None:
    # woflo's events through the stdlib (no structlog configured): the inner
    # run's events are about the inner run, not the task that submitted it.
    events = Collect()
    woflo_logger = logging.getLogger("woflo")
    old_level = woflo_logger.level
    woflo_logger.setLevel(logging.DEBUG)
    woflo_logger.addHandler(events)
    was_configured, old_config = structlog.is_configured(), structlog.get_config()
    structlog.reset_defaults()  # woflo's events go through structlog when it is configured
    try:
        with ThreadRunner(1) as ex:
            run = ex.submit(funcs.nested_logs, "sequential")
            inner_id, inner_name = run.result(timeout=60)
    finally:
        woflo_logger.removeHandler(events)
        woflo_logger.setLevel(old_level)
        if was_configured:
            structlog.configure(**old_config)
    inner = [r for r in events.records if getattr(r, "run_id", None) == inner_id]
    assert {r.event for r in inner} >= {"task.submitted", "task.succeeded"}  # type: ignore[attr-defined]
    for record in inner:
        assert record.task == inner_name  # type: ignore[attr-defined]
        assert not hasattr(record, "woflo_task") and not hasattr(record, "woflo_run_id")
    submitted = next(r for r in inner if r.event == "task.submitted")  # type: ignore[attr-defined]
    assert not hasattr(submitted, "attempt")  # not the outer run's attempt


@pytest.mark.timeout(60)
def test_structlog_woflo_events_of_a_nested_run_get_nothing_from_the_task() -> None:
    with structlog.testing.capture_logs(processors=[add_task_context]) as logs, ThreadRunner(1) as ex:
        run = ex.submit(funcs.nested_logs, "sequential")
        inner_id, _ = run.result(timeout=60)
    (submitted,) = [e for e in logs if e["event"] == "task.submitted" and e["run_id"] == inner_id]
    assert "attempt" not in submitted and "worker" not in submitted
