"""woflo's events through the application's own logging: the standard library, structlog, or nothing.

Real handlers throughout: a `logging.Handler` that keeps the records, and
subprocesses for what only a fresh interpreter shows (nothing configured,
``basicConfig``, ``dictConfig``, the fast paths switched off).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import funcs
import helpers
import pytest
import structlog

import woflo
from woflo import SequentialRunner, ThreadRunner, task
from woflo.testing import capture_events

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


class Collect(helpers.Collect):
    """Keeps every record it is handed, and lists woflo's events."""

    def events(self) -> list[str]:
        return [getattr(r, "event", "?") for r in self.records if r.name == "woflo"]

    def of(self, event: str) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "event", None) == event]


@pytest.fixture
def stdlib() -> Iterator[Collect]:
    """The standard library configured (a handler on the root logger at INFO), structlog not."""
    structlog.reset_defaults()
    root = logging.getLogger()
    handler = Collect()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("woflo").setLevel(logging.NOTSET)
        structlog.reset_defaults()


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=50,
        env=environ,
        check=False,
    )


@pytest.mark.parametrize("runner", [SequentialRunner, ThreadRunner])
def test_a_run_is_one_info_record_with_the_fields_as_attributes(stdlib: Collect, runner: Any) -> None:
    with runner() as ex:
        run = ex.submit(funcs.add, 1, 2)
        assert run.result(timeout=30) == 3
    assert stdlib.events() == ["task.succeeded"]
    (record,) = stdlib.records
    assert record.name == "woflo" and record.levelno == logging.INFO
    fields: Any = record
    assert fields.task == "add" and fields.run_id == run.run_id and fields.runner == ex.runner_name
    assert fields.attempt == 1 and fields.worker == run.attempts[0].worker and fields.duration_s >= 0
    assert record.getMessage().startswith(f"add [{run.run_id[:8]}] succeeded in ")
    assert record.exc_info is None


def test_the_process_runner_reports_in_the_parent(stdlib: Collect) -> None:
    with woflo.ProcessRunner(1) as ex:
        run = ex.submit(funcs.worker_pid)
        pid = run.result(timeout=30)
    (record,) = stdlib.of("task.succeeded")
    assert record.process == os.getpid()  # emitted here, not in the worker
    assert record.worker == pid and record.runner == "process"


def test_attempts_are_debug_records(stdlib: Collect) -> None:
    logging.getLogger("woflo").setLevel(logging.DEBUG)
    SequentialRunner().submit(funcs.add, 1).result()
    assert stdlib.events() == ["task.submitted", "attempt.started", "attempt.succeeded", "task.succeeded"]
    assert [r.levelname for r in stdlib.records] == ["DEBUG", "DEBUG", "DEBUG", "INFO"]


def test_a_retry_is_one_warning_and_the_final_failure_one_error_with_its_traceback(
    stdlib: Collect, tmp_path: Path
) -> None:
    with ThreadRunner(1, retries=1, retry_wait_time=0) as ex:
        run = ex.submit(funcs.fail_times, str(tmp_path / "n"), 5)
        with pytest.raises(OSError):
            run.result(timeout=30)
    assert stdlib.events() == ["task.retrying", "task.failed"]
    retrying, failed = stdlib.records
    assert retrying.levelno == logging.WARNING and retrying.exc_info is None
    assert retrying.exception == "OSError: failure 1 of 5" and retrying.wait_s == 0
    assert "attempt 1 failed (OSError: failure 1 of 5); retrying in 0s" in retrying.getMessage()
    assert failed.levelno == logging.ERROR and failed.attempt == 2
    assert failed.exc_info is not None and failed.exc_info[1] is run.exception()
    text = logging.Formatter().format(failed)
    assert text.count("Traceback (most recent call last)") == 1
    assert text.count("OSError: failure 2 of 5") == 2  # the line, and the traceback's last line


def test_the_level_of_the_woflo_logger_is_followed_at_once(stdlib: Collect) -> None:
    from woflo._events import events_switch, stdlib_switch

    gate = stdlib_switch()
    woflo_logger = logging.getLogger("woflo")
    woflo_logger.setLevel(logging.WARNING)
    assert gate.enabled is False and events_switch().is_configured is False
    SequentialRunner().submit(funcs.add, 1).result()
    assert stdlib.events() == []
    woflo_logger.setLevel(logging.INFO)
    assert gate.enabled is True
    SequentialRunner().submit(funcs.add, 1).result()
    assert stdlib.events() == ["task.succeeded"]
    logging.disable(logging.INFO)
    try:
        assert gate.enabled is False
    finally:
        logging.disable(logging.NOTSET)
    assert gate.enabled is True


def test_a_final_failure_reaches_a_basic_config_at_warning() -> None:
    # basicConfig() keeps the root at WARNING: retries and final failures must still show.
    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.events: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.events.append(getattr(record, "event", "?"))

    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        SequentialRunner(retries=1, retry_wait_time=0).submit(funcs.boom, "x").exception()
    finally:
        root.removeHandler(handler)
    assert handler.events == ["task.retrying", "task.failed"]


def test_a_disabled_logger_gets_nothing(stdlib: Collect) -> None:
    # dictConfig(disable_existing_loggers=True) does this to a logger it does not name.
    woflo_logger = logging.getLogger("woflo")
    woflo_logger.disabled = True
    try:
        SequentialRunner().submit(funcs.boom).exception()
    finally:
        woflo_logger.disabled = False
    assert stdlib.records == []


def test_structlog_configured_wins(stdlib: Collect) -> None:
    with capture_events() as events:
        SequentialRunner().submit(funcs.add, 1).result()
    assert events.names()[-1] == "task.succeeded"
    assert stdlib.records == []


def test_the_gate_is_the_woflo_loggers_level_cache() -> None:
    # Canary for the private parts of logging the fast gate uses (woflo/_events.py).
    from woflo._events import _StdlibGate, stdlib_switch

    gate = stdlib_switch()
    woflo_logger = logging.getLogger("woflo")
    assert isinstance(gate, _StdlibGate), "woflo/_events.py: the fast stdlib gate is not in use"
    assert type(woflo_logger._cache) is dict, "logging.Logger._cache changed: woflo/_events.py _StdlibGate"  # type: ignore[attr-defined]
    assert gate.__dict__ is woflo_logger._cache  # type: ignore[attr-defined]
    assert hasattr(logging._lock, "__enter__"), "logging._lock changed: woflo/_events.py _StdlibGate"  # type: ignore[attr-defined]
    _ = gate.enabled
    assert "enabled" in woflo_logger._cache  # type: ignore[attr-defined]
    logging.getLogger("some.other.logger").setLevel(logging.ERROR)  # any level change empties every cache
    assert "enabled" not in woflo_logger._cache  # type: ignore[attr-defined]


def test_the_fallback_gate_without_fast_paths() -> None:
    done = _python(
        """
        import logging, woflo
        from woflo._events import stdlib_switch, _AskLogging
        assert isinstance(stdlib_switch(), _AskLogging)
        logging.basicConfig(level="INFO", format="%(levelname)s %(event)s %(task)s")
        woflo.SequentialRunner().submit(len, "abc").result()
        """,
        WOFLO_NO_FAST_PATHS="1",
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["INFO task.succeeded len"]


def test_nothing_configured_prints_nothing() -> None:
    # Not even the failure, which logging's "last resort" would print at WARNING.
    done = _python(
        """
        import funcs, woflo
        run = woflo.ThreadRunner(1, retries=1, retry_wait_time=0).submit(funcs.boom, "secret-free failure")
        print(type(run.exception(timeout=30)).__name__)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ValueError\n" and done.stderr == ""


def test_basic_config_example_of_the_docs() -> None:
    done = _python(
        """
        import logging
        import funcs, woflo

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        with woflo.ThreadRunner(2, retries=1, retry_wait_time=0) as ex:
            ex.submit(funcs.add, 1, 2).result()
            ex.submit(funcs.boom, "bad input").exception()
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("INFO woflo add [") and " succeeded in " in lines[0]
    assert lines[1].startswith("WARNING woflo boom [") and "(ValueError: bad input); retrying in 0s" in lines[1]
    assert lines[2].startswith("ERROR woflo boom [") and lines[2].endswith(
        "(2 attempts on woflo-thread-" + lines[2].split("woflo-thread-")[1]
    )
    assert lines[3] == "Traceback (most recent call last):" and lines[-1] == "ValueError: bad input"
    assert done.stderr.count("Traceback") == 1


def test_dict_config_example_of_the_docs() -> None:
    done = _python(
        """
        import logging.config
        import funcs, woflo

        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"runs": {"format": "%(levelname)s %(event)s task=%(task)s attempt=%(attempt)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "runs"}},
            "loggers": {"woflo": {"level": "INFO", "handlers": ["console"], "propagate": False}},
        })
        woflo.SequentialRunner().submit(funcs.add, 1, 2).result()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["INFO task.succeeded task=add attempt=1"]


# -- configure_logging's console ---------------------------------------------------------


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    woflo.configure_logging(file=sink)
    yield sink
    structlog.reset_defaults()


def test_console_one_line_per_run_one_per_retry_traceback_once(console: io.StringIO, tmp_path: Path) -> None:
    with ThreadRunner(2, retries=2, retry_wait_time=0) as ex:
        ok = [ex.submit(funcs.add, i) for i in range(3)]
        flaky = ex.submit(funcs.fail_times, str(tmp_path / "n"), 1)
        bad = ex.submit(funcs.boom, "bad input")
        for run in [*ok, flaky]:
            run.result(timeout=30)
        assert isinstance(bad.exception(timeout=30), ValueError)
    lines = console.getvalue().splitlines()
    first_lines = [line for line in lines if line.startswith("20")]  # each starts with its timestamp
    assert sum("[info   ]" in line and " succeeded in " in line for line in first_lines) == 4  # 3 adds + flaky
    assert sum("[warning]" in line for line in first_lines) == 1 + 2  # flaky's retry, boom's two retries
    (error,) = [line for line in first_lines if "[error  ]" in line]
    assert f"boom [{bad.run_id[:8]}] failed in " in error and error.endswith(": ValueError: bad input")
    assert len(first_lines) == 4 + 3 + 1
    assert console.getvalue().count("Traceback (most recent call last)") == 1
    start = lines.index(error) + 1
    trace = lines[start : next((i for i in range(start, len(lines)) if lines[i].startswith("20")), len(lines))]
    assert trace[0] == "Traceback (most recent call last):" and trace[-1] == "ValueError: bad input"


def test_console_timeout_said_once(console: io.StringIO) -> None:
    with ThreadRunner(1, timeout=0.05) as ex:
        run = ex.submit(funcs.sleep_then, 5)
        with pytest.raises(woflo.AttemptTimeout):
            run.result(timeout=30)
    assert console.getvalue().count("timed out after 0.05s") == 1  # was twice: attempt.timed_out and task.failed
    assert "Traceback" not in console.getvalue()  # woflo made the exception: nothing to trace


def test_console_renders_the_applications_own_events(console: io.StringIO) -> None:
    structlog.get_logger("app").info("hello", user="ann")
    assert "hello" in console.getvalue() and "user=ann" in console.getvalue()


# -- run names ------------------------------------------------------------------------------


def test_run_name_from_a_template(stdlib: Collect) -> None:
    @task(run_name="fetch {url}", runner=SequentialRunner)
    def fetch(url: str, token: str = "s3cret") -> str:
        return url

    run = fetch("https://example.org")
    assert run.name == "fetch https://example.org" and run.name.task == "fetch"  # type: ignore[attr-defined]
    (record,) = stdlib.records
    assert record.task == "fetch" and record.run_name == "fetch https://example.org"
    assert record.getMessage().startswith("fetch https://example.org [")
    assert "s3cret" not in repr(record.__dict__)  # arguments are never logged unless named


def test_run_name_from_a_callable_and_the_default_keeps_arguments_out(stdlib: Collect) -> None:
    named = task(funcs.add, run_name=lambda a, b=0: f"add {a}+{b}", runner=SequentialRunner)
    plain = task(funcs.add, runner=SequentialRunner)
    assert named(40, b=2).name == "add 40+2"
    plain(1234567, 7654321).result()
    assert [getattr(r, "run_name", None) for r in stdlib.records] == ["add 40+2", None]
    assert "1234567" not in repr([r.__dict__ for r in stdlib.records])


def test_run_name_errors() -> None:
    with pytest.raises(ValueError, match=r"\{nope\} is not a parameter of add"):
        task(funcs.add, run_name="add {nope}")
    with pytest.raises(ValueError, match="use parameter names"):
        task(funcs.add, run_name="add {0}")
    with pytest.raises(TypeError, match="run_name must be"):
        task(funcs.add, run_name=42)  # type: ignore[arg-type]
    broken = task(funcs.add, run_name=lambda a, b=0: 1 / 0, runner=SequentialRunner)
    with pytest.raises(ValueError, match="run_name of task add failed: ZeroDivisionError") as info:
        broken(1)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_run_name_applies_wherever_the_task_is_submitted() -> None:
    # Before: executor.submit(task, ...), executor.map(task, ...) and task.map(...)
    # named every run after the task only; run_name applied to task(...) alone.
    named = task(funcs.add, run_name="add {a}+{b}")
    with (
        capture_events() as events,
        ThreadRunner(2) as runner,
        woflo.WofloExecutor(runner=ThreadRunner) as executor,
    ):
        names = [
            runner.submit(named, 1, 2).name,
            executor.submit(named, 3, b=4).name,
            named.submit(5, 6, executor=runner).name,
        ]
        assert list(named.map([7, 8], [1, 1], executor=runner)) == [8, 9]
        assert list(runner.map(named, [9], [1])) == [10]
    assert names == ["add 1+2", "add 3+4", "add 5+6"]
    submitted = [e.get("run_name") for e in events if e["event"] == "task.submitted"]
    assert sorted(submitted) == ["add 1+2", "add 3+4", "add 5+6", "add 7+1", "add 8+1", "add 9+1"]
