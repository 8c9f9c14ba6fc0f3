"""CPython's ``ProcessPoolExecutorTest`` and ``ProcessPoolShutdownTest``, on the process runners.

``mp_context`` is woflo's ``start_method=``; the process kinds of
``RUNNER_KINDS`` cover woflo's fork+exec ("exec", the default), loky's,
spawn and forkserver.
"""

from __future__ import annotations

import gc
import operator
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import funcs
import pytest
from cpython_helpers import Gates, is_process, kinds, open_gates
from helpers import wait_for, wait_for_file
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)

# What depends on how workers start runs on every process kind; the pool's
# bookkeeping, the same for all of them, on the default kind only (time).
every_start_method = kinds(is_process)
default_only = kinds(lambda k: k.name == "process")

gates = pytest.fixture(name="gates")(open_gates)


def pids_of(ex: Any) -> list[int]:
    runner = getattr(ex, "runner", ex)  # WofloExecutor wraps its runner
    return list(runner.worker_pids)


def skip_executor(kind: RunnerKind) -> None:
    if kind.name == "executor-process":
        pytest.skip("WofloExecutor takes no max_tasks_per_child (give it runner=ProcessRunner(...))")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@every_start_method
def test_start_method(kind: RunnerKind) -> None:
    ex = kind.make(max_workers=1)
    try:
        methods = {"process-spawn": "spawn", "process-forkserver": "forkserver", "process-loky": "loky"}
        expected = methods.get(kind.name, "exec")
        assert getattr(ex, "runner", ex).start_method == expected
    finally:
        ex.shutdown()


@every_start_method
def test_killed_worker_fails_only_its_run(make: Any, gates: Gates) -> None:
    # CPython's test_killed_child: the stdlib pool breaks, every future and
    # every later submit raise BrokenProcessPool. Deliberate: woflo fails the
    # run of the killed worker only.
    ex = make(max_workers=2)
    victim, victim_gate = gates.hold(ex, funcs.block)
    other, other_gate = gates.hold(ex, funcs.block)
    victim_gate.wait_started()
    other_gate.wait_started()
    os.kill(int(Path(victim_gate.started).read_text()), signal.SIGTERM)
    with pytest.raises(BrokenProcessPool) as info:
        victim.result(timeout=30)
    assert "SIGTERM" in str(info.value)
    assert ex.submit(pow, 2, 8).result(timeout=30) == 256
    other_gate.release()
    assert other.result(timeout=30) == "released"


@every_start_method
def test_exit_code_of_a_dead_worker_is_reported(make: Any) -> None:
    # gh-139462: BrokenProcessPool says how the worker ended.
    run = make(max_workers=1).submit(os._exit, 99)
    with pytest.raises(BrokenProcessPool) as info:
        run.result(timeout=30)
    assert "exit code 99" in str(info.value)


@every_start_method
def test_arguments_are_freed_in_the_worker(make: Any, tmp_path: Path) -> None:
    # CPython's test_ressources_gced_in_workers.
    ex = make(max_workers=1)
    marker = str(tmp_path / "freed")
    obj = funcs.DelMarker(marker)
    worker = ex.submit(funcs.worker_pid).result(timeout=30)
    assert isinstance(ex.submit(id, obj).result(timeout=30), int)
    wait_for_file(f"{marker}.{worker}", 10)
    del obj
    gc.collect()


@default_only
def test_saturation(make: Any, gates: Gates) -> None:
    ex = make(max_workers=2)
    gate = gates.new()
    runs = [ex.submit(funcs.block, f"{gate.started}{i}", str(gate.release_file)) for i in range(30)]
    wait_for(lambda: len(pids_of(ex)) == 2, 30, "both workers to start")
    gate.release()
    assert all(r.result(timeout=30) == "released" for r in runs)
    assert len(pids_of(ex)) <= 2


@default_only
def test_idle_worker_reuse_one(make: Any) -> None:
    ex = make(max_workers=4)
    assert ex.submit(operator.mul, 21, 2).result(timeout=30) == 42
    assert ex.submit(operator.mul, 6, 7).result(timeout=30) == 42
    assert ex.submit(operator.mul, 3, 14).result(timeout=30) == 42
    assert len(pids_of(ex)) == 1


@default_only
def test_idle_worker_reuse_multiple(make: Any) -> None:
    ex = make(max_workers=4)
    ex.submit(operator.mul, 12, 7).result(timeout=30)
    ex.submit(operator.mul, 33, 25)
    ex.submit(operator.mul, 25, 26).result(timeout=30)
    ex.submit(operator.mul, 18, 29)
    ex.submit(operator.mul, 1, 2).result(timeout=30)
    ex.submit(operator.mul, 0, 9)
    assert len(pids_of(ex)) <= 3


@every_start_method
def test_max_tasks_per_child(kind: RunnerKind) -> None:
    skip_executor(kind)
    ex = kind.make(max_workers=1, max_tasks_per_child=3)
    try:
        original = ex.submit(os.getpid).result(timeout=30)
        assert ex.submit(os.getpid).result(timeout=30) == original
        assert ex.submit(os.getpid).result(timeout=30) == original
        assert ex.submit(os.getpid).result(timeout=30) != original
        assert len(pids_of(ex)) == 1
    finally:
        ex.shutdown()


@default_only
@pytest.mark.parametrize(("workers", "max_tasks", "count"), [(1, 2, 6), (2, 2, 8)])
def test_max_tasks_per_child_with_a_backlog_gh115634(
    kind: RunnerKind, workers: int, max_tasks: int, count: int
) -> None:
    skip_executor(kind)
    ex = kind.make(max_workers=workers, max_tasks_per_child=max_tasks)
    try:
        runs = [ex.submit(operator.mul, i, 2) for i in range(count)]
        assert [r.result(timeout=30) for r in runs] == [i * 2 for i in range(count)]
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


@default_only
def test_max_tasks_per_child_then_shutdown_without_wait_gh119592(kind: RunnerKind, gates: Gates) -> None:
    # The worker reaches its limit after shutdown(wait=False): the queued runs
    # still need a replacement worker, and get one.
    skip_executor(kind)
    ex = kind.make(max_workers=1, max_tasks_per_child=1)
    gate = gates.new()
    runs = [ex.submit(funcs.block, f"{gate.started}{i}", str(gate.release_file)) for i in range(3)]
    wait_for_file(f"{gate.started}0")
    ex.shutdown(wait=False)
    gate.release()
    assert [r.result(timeout=30) for r in runs] == ["released"] * 3
    ex.shutdown(wait=True)


@default_only
def test_max_tasks_per_child_failing_task_and_shutdown_without_wait_gh132969(kind: RunnerKind) -> None:
    skip_executor(kind)
    ex = kind.make(max_workers=2, max_tasks_per_child=1)
    runs = [ex.submit(abs, -1), ex.submit(funcs.boom, "failing task"), ex.submit(abs, -3)]
    total = 0
    with pytest.raises(ValueError, match="failing task"):
        for run in runs:
            total += run.result(timeout=30)
    assert total == 1
    ex.shutdown(wait=False)
    ex.shutdown(wait=True)  # returns: nothing hangs


@default_only
def test_max_tasks_per_child_early_shutdown(kind: RunnerKind) -> None:
    skip_executor(kind)
    ex = kind.make(max_workers=3, max_tasks_per_child=1)
    runs = [ex.submit(operator.mul, i, i) for i in range(6)]
    ex.shutdown()
    assert [r.result() for r in runs] == [i * i for i in range(6)]


@every_start_method
def test_workers_end_at_shutdown(make: Any, gates: Gates) -> None:
    # CPython's test_processes_terminate: workers start on demand (3 of 5).
    ex = make(max_workers=5)
    held = [gates.hold(ex) for _ in range(3)]
    for _, gate in held:
        gate.wait_started()
    pids = pids_of(ex)
    assert len(pids) == 3
    for _, gate in held:
        gate.release()
    ex.shutdown()
    assert all(gone(pid) for pid in pids)


@default_only
def test_context_manager_shutdown(make: Any) -> None:
    with make(max_workers=5) as ex:
        assert list(ex.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
        pids = pids_of(ex)
    assert pids and all(gone(pid) for pid in pids)


@default_only
def test_shutdown_without_wait_still_delivers_and_cleans_up(make: Any) -> None:
    ex = make(max_workers=5)
    results = ex.map(abs, range(-5, 5))
    ex.shutdown(wait=False)
    assert list(results) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    pids = pids_of(ex)
    wait_for(lambda: all(gone(pid) for pid in pids), 30, "the workers to exit")


@default_only
def test_dropped_runner_still_delivers_and_cleans_up(kind: RunnerKind) -> None:
    # CPython's test_del_shutdown: the executor is dropped without shutdown.
    ex = kind.make(max_workers=5)
    results = ex.map(abs, range(-5, 5))
    ex.submit(int).result(timeout=30)
    pids = pids_of(ex)
    del ex
    gc.collect()
    assert list(results) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    wait_for(lambda: all(gone(pid) for pid in pids), 10, "the workers of a dropped runner to exit")
