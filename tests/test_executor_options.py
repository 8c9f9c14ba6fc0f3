"""WofloExecutor takes the options a ProcessPoolExecutor user passes, or says where they go.

`initializer`, `initargs`, `max_tasks_per_child` and `mp_context` are
forwarded to the runner the executor builds; an option that runner does not
take, or one meant for a runner that is already built, fails at the
constructor with the ``runner=ProcessRunner(...)`` spelling in the message.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import threading

import funcs
import psutil
import pytest

import woflo
from woflo import AsyncRunner, ProcessRunner, SequentialRunner, ThreadRunner, WofloExecutor


@pytest.mark.timeout(60)
def test_initializer_and_initargs_run_in_each_worker_before_its_tasks() -> None:
    with WofloExecutor(max_workers=2, initializer=funcs.init, initargs=("ready",)) as ex:
        assert isinstance(ex.runner, ProcessRunner)
        statuses = [r.result(30) for r in [ex.submit(funcs.get_init_status) for _ in range(4)]]
    assert statuses == ["ready"] * 4


@pytest.mark.timeout(60)
def test_max_tasks_per_child_replaces_the_worker() -> None:
    with WofloExecutor(max_workers=1, max_tasks_per_child=1) as ex:
        pids = [ex.submit(funcs.worker_pid).result(30) for _ in range(3)]
    assert len(set(pids)) == 3, pids


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("mp_context", "method"),
    [
        (multiprocessing.get_context("forkserver"), "forkserver"),
        ("forkserver", "forkserver"),
        (multiprocessing.get_context("spawn"), "spawn"),
        ("spawn", "spawn"),
    ],
    ids=["forkserver-context", "forkserver-name", "spawn-context", "spawn-name"],
)
def test_mp_context_is_the_runners_start_method(mp_context: object, method: str) -> None:
    with WofloExecutor(max_workers=1, mp_context=mp_context) as ex:  # type: ignore[arg-type]
        assert isinstance(ex.runner, ProcessRunner)
        assert ex.runner.start_method == method
        pid = ex.submit(funcs.worker_pid).result(60)
        # The workers really are started that way: a spawned worker is this
        # process's child, a forkserver's worker is the fork server's.
        parent = psutil.Process(pid).ppid()
    assert (parent == os.getpid()) == (method == "spawn")


@pytest.mark.timeout(30)
def test_the_default_context_names_its_method() -> None:
    default = multiprocessing.get_context()
    with WofloExecutor(max_workers=1, mp_context=default) as ex:
        assert isinstance(ex.runner, ProcessRunner)
        assert ex.runner.start_method == default.get_start_method()


@pytest.mark.timeout(30)
def test_a_thread_runner_class_takes_the_initializer_as_thread_pool_executor_does() -> None:
    seen: list[str] = []
    with WofloExecutor(max_workers=2, runner=ThreadRunner, initializer=seen.append, initargs=("init",)) as ex:
        assert ex.submit(threading.current_thread).result(10) is not threading.current_thread()
    assert seen and set(seen) == {"init"}


@pytest.mark.parametrize(
    ("runner", "options", "missing"),
    [
        (ThreadRunner, {"max_tasks_per_child": 3}, "max_tasks_per_child"),
        (ThreadRunner, {"mp_context": "spawn"}, "mp_context"),
        (SequentialRunner, {"initializer": print}, "initializer"),
        (AsyncRunner, {"initializer": print, "initargs": (1,)}, "initializer, initargs"),
    ],
)
def test_an_option_the_runner_class_does_not_take_is_refused_with_the_spelling_that_works(
    runner: type[woflo.Runner], options: dict[str, object], missing: str
) -> None:
    with pytest.raises(TypeError, match=rf"{runner.__name__} takes no {missing}") as info:
        WofloExecutor(runner=runner, **options)  # type: ignore[arg-type]
    assert "runner=ProcessRunner(" in str(info.value)


@pytest.mark.timeout(30)
def test_runner_options_with_a_runner_instance_are_refused_with_the_spelling_that_works() -> None:
    runner = ThreadRunner(1)
    try:
        with pytest.raises(TypeError, match=re.escape("runner=ThreadRunner(initializer=...)")):
            WofloExecutor(runner=runner, initializer=print)
        with pytest.raises(TypeError, match=re.escape("runner=ThreadRunner(max_tasks_per_child=...)")):
            WofloExecutor(runner=runner, max_tasks_per_child=2)
    finally:
        runner.shutdown()


@pytest.mark.parametrize(
    ("option", "owner"),
    [("start_method", "ProcessRunner"), ("idle_timeout", "ProcessRunner"), ("thread_name_prefix", "ThreadRunner")],
)
def test_a_runners_own_option_given_to_the_executor_says_where_it_goes(option: str, owner: str) -> None:
    with pytest.raises(TypeError, match=re.escape(f"WofloExecutor(runner={owner}({option}=...))")):
        WofloExecutor(**{option: "x"})  # type: ignore[arg-type]


def test_an_unknown_option_still_lists_the_policy_options() -> None:
    with pytest.raises(TypeError, match=r"unknown option.*retries"):
        WofloExecutor(retires=3)  # type: ignore[call-arg]


def test_a_bad_mp_context_is_refused_at_the_constructor() -> None:
    with pytest.raises(TypeError, match="mp_context must be a multiprocessing context"):
        WofloExecutor(mp_context=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start_method must be one of"):
        WofloExecutor(mp_context="threads")


@pytest.mark.timeout(60)
def test_dir_lists_every_public_name_including_the_lazy_ones() -> None:
    # A fresh interpreter: DaskRunner must be listed before anything imported it,
    # and listing it must not import distributed.
    code = (
        "import sys, woflo; names = dir(woflo); "
        "print(sorted(set(woflo.__all__) - set(names))); print('distributed' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "False"], out
    assert set(woflo.__all__) <= set(dir(woflo))
    assert "DaskRunner" in dir(woflo)
