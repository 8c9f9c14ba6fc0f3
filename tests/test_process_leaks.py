"""ProcessRunner leaves nothing behind: after shutdown, at exit, on Ctrl-C, when its parent dies.

Processes, file descriptors and threads are counted before and after; scripts
run in subprocesses for the cases that end an interpreter.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import funcs
import psutil
import pytest
from funcs import crash
from helpers import assert_nothing_new, gone, snapshot, wait_for, wait_for_file, wait_gone

from woflo import AttemptTimeout, ProcessRunner, WorkerCrashed, task

TESTS = str(Path(__file__).parent)
REPO = str(Path(__file__).parent.parent)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("method", ["loky", "spawn", "forkserver"])
def test_shutdown_leaves_no_process_fd_or_thread(method: str, tmp_path: Path) -> None:
    # A first runner starts what a start method keeps for the whole session
    # (loky's resource tracker, the forkserver): not ours to count.
    with ProcessRunner(1, start_method=method) as warm:
        warm.submit(funcs.add, 1).result(30)
    before = snapshot()

    r = ProcessRunner(2, start_method=method)
    assert [run.result(30) for run in [r.submit(funcs.add, i, 1) for i in range(50)]] == list(range(1, 51))
    assert isinstance(r.submit(crash, "os._exit").exception(30), WorkerCrashed)
    hang = r.submit(task(funcs.block, timeout=0.5), str(tmp_path / "h"), str(tmp_path / "never"))
    assert isinstance(hang.exception(30), AttemptTimeout)
    stopped = r.submit(funcs.block, str(tmp_path / "s"), str(tmp_path / "never"))
    wait_for_file(str(tmp_path / "s"), 30)
    stopped.stop()
    last = r.submit(funcs.sleep_then, 0.2, "last")
    # The stopped run's worker is gone; its replacement starts for the last run.
    wait_for(lambda: r.worker_pids, 30, "a worker for the last run")
    workers = set(r.worker_pids)
    r.shutdown(wait=True)
    assert last.result(0) == "last"

    assert r.worker_pids == []
    assert all(gone(pid) for pid in workers)
    assert_nothing_new(before)


def _script(body: str) -> str:
    return textwrap.dedent(
        f"""
        import signal, sys, time
        # Ctrl-C raises KeyboardInterrupt even when this test was started
        # from a shell that ignores SIGINT (a background job: a CI runner's
        # `cmd &`), whose children inherit the ignoring.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.path.insert(0, {TESTS!r})
        import funcs
        from woflo import ProcessRunner, task

        def wait(pred):
            end = time.monotonic() + 30
            while not pred():
                assert time.monotonic() < end, "timed out in the script"
                time.sleep(0.01)
        """
    ) + textwrap.dedent(body)


def _start(body: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _script(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _read_pids(proc: subprocess.Popen[str]) -> list[int]:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the script prints its worker pids once they run
    assert line.strip(), f"script printed nothing; stderr: {proc.stderr.read() if proc.stderr else ''}"
    return [int(p) for p in line.split()]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["ProcessRunner", "@task"])
def test_interpreter_exit_without_shutdown_leaves_no_worker(how: str) -> None:
    make = "r = ProcessRunner(2)\nsubmit = r.submit" if how == "ProcessRunner" else "submit = lambda f, *a: task(f)(*a)"
    proc = _start(
        make
        + """
runs = [submit(funcs.sleep_then, 0.3, i) for i in range(4)]
runner = runs[0].runner
wait(lambda: len(runner.worker_pids) >= 2)
print(*runner.worker_pids, flush=True)
# no shutdown: interpreter exit must clean up
"""
    )
    with proc:
        pids = _read_pids(proc)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    for pid in pids:
        wait_gone(pid)


def _ctrl_c_ends_it_promptly(body: str) -> None:
    """Run ``body`` (which prints its worker pids), press Ctrl-C, check nothing lingers."""
    proc = _start(body)
    with proc:
        pids = _read_pids(proc)
        proc.send_signal(signal.SIGINT)
        # Its tasks and its main thread sleep 600 s: ending within 120 s means
        # Ctrl-C stopped them (no tight bound on elapsed time: 30 s was too
        # little once, on 2 cores with a load average of 15).
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            pytest.fail(f"Ctrl-C did not end the script; its stderr:\n{stderr}")
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    for pid in pids:
        wait_gone(pid)


@pytest.mark.timeout(180)
def test_ctrl_c_in_a_with_block_stops_the_workers_promptly() -> None:
    _ctrl_c_ends_it_promptly(
        """
with ProcessRunner(2) as ex:
    runs = [ex.submit(funcs.sleep_then, 600, i) for i in range(4)]
    wait(lambda: runs[0].running() and runs[1].running() and len(ex.worker_pids) == 2)
    print(*ex.worker_pids, flush=True)
    time.sleep(600)
"""
    )


@pytest.mark.timeout(180)
def test_ctrl_c_outside_a_with_block_stops_the_workers_at_exit() -> None:
    # The @task default runner is shut down at exit; after Ctrl-C it stops the
    # running tasks instead of waiting a minute for them.
    _ctrl_c_ends_it_promptly(
        """
runs = [task(funcs.sleep_then)(600, i) for i in range(3)]
runner = runs[0].runner
wait(lambda: all(r.running() for r in runs) and len(runner.worker_pids) == 3)
print(*runner.worker_pids, flush=True)
time.sleep(600)
"""
    )


@pytest.mark.timeout(60)
def test_workers_exit_on_their_own_when_the_parent_is_sigkilled() -> None:
    proc = _start(
        """
r = ProcessRunner(2)
runs = [r.submit(funcs.sleep_then, 60, i) for i in range(3)]
wait(lambda: runs[0].running() and runs[1].running() and len(r.worker_pids) == 2)
print(*r.worker_pids, flush=True)
time.sleep(60)
"""
    )
    with proc:
        pids = _read_pids(proc)
        assert all(not gone(pid) for pid in pids)
        proc.kill()
        proc.communicate(timeout=10)
    for pid in pids:
        wait_gone(pid)


def _rss_mb(pids: list[int]) -> float:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 1e6


@pytest.mark.timeout(600)  # 200k tasks: minutes on a loaded machine
def test_memory_does_not_grow_over_200k_tasks() -> None:
    """Parent and worker RSS after 50k tasks vs after 200k: flat within a few MB.

    One run per task (not a chunked map): every TaskRun, attempt and pool job
    must be released. A leak of even 100 bytes per task would show as 15 MB.
    """
    wave, total = 10_000, 200_000
    me = os.getpid()
    with ProcessRunner(2) as r:
        list(r.map(funcs.add, range(1000)))
        wait_for(lambda: len(r.worker_pids) == 2, 30, "two workers")
        workers = r.worker_pids
        marks: dict[int, tuple[float, float]] = {}
        done = 0
        while done < total:
            runs = [r.submit(funcs.add, i, 1) for i in range(wave)]
            assert runs[-1].result(60) == wave
            # Two workers: the last run may finish before the ones on the other worker.
            assert all(run.result(60) == i + 1 for i, run in enumerate(runs))
            del runs
            done += wave
            if done in (50_000, total):
                gc.collect()
                assert r.worker_pids == workers, "a worker was replaced: its memory is not comparable"
                marks[done] = (_rss_mb([me]), _rss_mb(workers))
    (parent_50k, workers_50k), (parent_200k, workers_200k) = marks[50_000], marks[total]
    assert parent_200k - parent_50k < 12, f"parent RSS grew {parent_50k:.1f} -> {parent_200k:.1f} MB"
    assert workers_200k - workers_50k < 8, f"worker RSS grew {workers_50k:.1f} -> {workers_200k:.1f} MB"
