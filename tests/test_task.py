"""``@task``: the decorator, its options, and what calling it returns."""

from __future__ import annotations

import inspect
from pathlib import Path

import funcs
import pytest
import tenacity

from woflo import SequentialRunner, Task, TaskRun, ThreadRunner, WofloExecutor, task

pytestmark = pytest.mark.timeout(60)


def test_bare_and_called_forms() -> None:
    @task
    def bare(x: int) -> int:
        """Doubles."""
        return 2 * x

    @task(runner=ThreadRunner, retries=1)
    def configured(x: int) -> int:
        return 3 * x

    run = bare(4)
    assert isinstance(run, TaskRun) and run.result(timeout=30) == 8
    assert configured(4).result(timeout=30) == 12
    assert isinstance(bare, Task)


def test_metadata_is_kept() -> None:
    def original(a: int, b: str = "x") -> str:
        """The doc."""
        return b * a

    wrapped = task(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "The doc."
    assert wrapped.__wrapped__ is original
    assert wrapped.fn is original
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.name == "original"


def test_name_option() -> None:
    named = task(name="fetch-data", runner=SequentialRunner)(funcs.add)
    run = named(1, 2)
    assert run.name == "fetch-data" and run.result() == 3


def test_submit_on_an_executor_and_map() -> None:
    double = task(runner=SequentialRunner)(lambda x: 2 * x)
    with ThreadRunner(2) as ex:
        run = double.submit(5, executor=ex)
        assert run.runner is ex and run.result(timeout=30) == 10
    with WofloExecutor(2, runner=ThreadRunner) as wex:
        assert double.submit(6, executor=wex).result(timeout=30) == 12
        assert list(double.map([1, 2, 3], executor=wex)) == [2, 4, 6]
    assert list(double.map([1, 2, 3])) == [2, 4, 6]


def test_submit_refuses_foreign_executors() -> None:
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(1) as tpe, pytest.raises(TypeError, match="woflo runner"):
        task(funcs.add).submit(1, executor=tpe)


def test_a_task_given_to_an_executor_keeps_its_own_policy(tmp_path: Path) -> None:
    flaky = task(retries=2, runner=SequentialRunner)(funcs.fail_times)
    with ThreadRunner(2) as ex:  # no retries of its own
        run = ex.submit(flaky, str(tmp_path / "n"), 2)
        assert run.result(timeout=30) == "ok"
        assert len(run.attempts) == 3 and run.name == "fail_times"


def test_options_returns_a_changed_copy(tmp_path: Path) -> None:
    base = task(runner=SequentialRunner)(funcs.fail_times)
    patient = base.options(retries=3, name="patient")
    assert patient is not base and patient.name == "patient"
    assert patient(str(tmp_path / "a"), 2).result() == "ok"
    with pytest.raises(OSError):
        base(str(tmp_path / "b"), 2).result()
    with pytest.raises(ValueError, match="retries"):
        base.options(retries=-2)


def test_runner_instance_or_class() -> None:
    own = ThreadRunner(1)
    try:
        assert task(runner=own)(funcs.add)(1, 1).runner is own
    finally:
        own.shutdown()
    a = task(runner=ThreadRunner)(funcs.add)(1)
    b = task(runner=ThreadRunner)(funcs.add)(2)
    assert a.runner is b.runner  # one shared instance per class


def test_tenacity_strategies_on_a_task(tmp_path: Path) -> None:
    flaky = task(
        runner=ThreadRunner,
        wait=tenacity.wait_exponential_jitter(multiplier=0.001, max=0.01, jitter=0.001),
        stop=tenacity.stop_after_attempt(5),
        retry=tenacity.retry_if_exception_type(IOError),
    )(funcs.fail_times)
    assert flaky(str(tmp_path / "n"), 3).result(timeout=30) == "ok"


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": 1.5}, TypeError, "retries"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -3}, ValueError, "timeout"),
        ({"deadline": 0}, ValueError, "deadline"),
        ({"retry_wait_time": -1}, ValueError, "retry_wait_time"),
        ({"retry_wait_time": 1, "retry_sleep_time": 2}, ValueError, "same option"),
        ({"retries": 2, "stop": tenacity.stop_after_attempt(2)}, ValueError, "not both"),
        ({"retrying": tenacity.Retrying(), "retries": 1}, ValueError, "retrying"),
        ({"retrying": "yes"}, TypeError, "tenacity.Retrying"),
        ({"retires": 3}, TypeError, "unknown option"),
        ({"runner": "threads"}, TypeError, "runner"),
    ],
)
def test_bad_options_fail_at_the_decorator(options: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        task(**options)  # type: ignore[call-overload]
    with pytest.raises(error, match=match):
        task(funcs.add, **options)  # type: ignore[call-overload]


def test_non_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        task(42)  # type: ignore[call-overload]


def test_executor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        WofloExecutor(max_workers=0)
    with pytest.raises(TypeError, match="runner"):
        WofloExecutor(runner="threads")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes no max_workers"):
        WofloExecutor(4, runner=SequentialRunner)
    with pytest.raises(ValueError, match="already sized"):
        WofloExecutor(2, runner=ThreadRunner(2))
    with pytest.raises(TypeError, match="unknown option"):
        WofloExecutor(retry=3, tries=2)  # type: ignore[call-arg]
