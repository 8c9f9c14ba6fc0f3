"""The running process pool under stress: kills, cancels, hostile user code, budgets, chaos.

Each test waits on the event it needs (a file a task writes, a callback, a
run's state) with a bound; none sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import pytest
from funcs import (
    ExitOnPickle,
    add,
    block,
    chaos_task,
    identity,
    mark,
    raise_exit_on_unpickle,
    return_exit_on_unpickle,
    wait_then_fail_once,
)
from helpers import wait_for, wait_for_file

from woflo import AttemptTimeout, DeadlineExceeded, ProcessRunner, SerializationError, ThreadRunner, WorkerCrashed, task
from woflo._runner import Runner


def _warm(ex: ProcessRunner, n: int = 40, prefetch: int = 3) -> None:
    # Starts the workers, then sets how many jobs a worker is sent ahead: on a
    # loaded machine even no-op jobs measure slow, and the pool would learn to
    # send one at a time. Nothing finishes between this and the test's own
    # submissions, so nothing relearns it before they are sent.
    for run in [ex.submit(add, i) for i in range(n)]:
        run.result(timeout=60)
    ex._pool._dispatcher.prefetch = prefetch


def _inflight(ex: ProcessRunner) -> list[int]:
    state = ex._pool._state
    with state.lock:
        return [len(w.inflight) for w in state.workers if not w.dead]


def _shutdown_within(ex: Runner, seconds: float) -> None:
    t = threading.Thread(target=ex.shutdown, kwargs={"wait": True}, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "shutdown(wait=True) hung"


# -- 1. a worker killed for one job fails no other -------------------------------------


@pytest.mark.timeout(120)
def test_stop_of_a_run_whose_result_is_on_its_way_fails_no_other_run(tmp_path: Path) -> None:
    # The worker has finished A and started B, but the manager has not read A's
    # result yet (it is busy in a done-callback): stop(A) kills the worker, which
    # was running B. B must run again elsewhere, not fail with WorkerCrashed.
    sx, rx, sa, ra, sb, rb = (str(tmp_path / n) for n in ("sx", "rx", "sa", "ra", "sb", "rb"))
    with ProcessRunner(1) as ex:
        # Up to 4 ahead: a and b are sent behind x whether the manager sees
        # them together or one at a time (a worker holding more than
        # prefetch // 2 jobs is refilled in bulk only, so with 3, an a sent
        # alone kept b in the queue).
        _warm(ex, prefetch=4)
        gate, in_callback = threading.Event(), threading.Event()

        def stall(_: object) -> None:
            in_callback.set()
            gate.wait(60)

        x = ex.submit(block, sx, rx)
        x.add_done_callback(stall)
        a = ex.submit(block, sa, ra)
        b = ex.submit(block, sb, rb)
        wait_for_file(sx, 60)
        wait_for(lambda: _inflight(ex) == [3], 60, "a and b prefetched behind x")
        Path(rx).touch()
        assert in_callback.wait(60)  # the manager now waits in x's callback
        Path(ra).touch()
        wait_for_file(sb, 60)  # the worker finished a and runs b
        assert a.stop()
        Path(rb).touch()
        gate.set()
        assert b.result(timeout=60) == "released"
        assert a.cancelled()
        assert x.result(timeout=60) == "released"


@pytest.mark.timeout(240)
def test_concurrent_stops_and_timeouts_fail_no_innocent_run() -> None:
    innocent: list[object] = []
    with ProcessRunner(2) as ex:
        for _ in range(3):
            runs = [ex.submit(add, i, 1) for i in range(300)]
            stopped: set[object] = set()
            lock = threading.Lock()

            def stopper(k: int, runs: list[Any] = runs, stopped: set[object] = stopped) -> None:
                for run in runs[k::7]:
                    if run.stop():
                        with lock:
                            stopped.add(run)

            threads = [threading.Thread(target=stopper, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            for run in runs:
                exc = run.exception(timeout=60) if not run.cancelled() else None
                if run not in stopped and isinstance(exc, WorkerCrashed):
                    innocent.append(exc)
    short = task(timeout=0.05)(chaos_task)
    with ProcessRunner(2) as ex:
        runs = [ex.submit(short, "sleep", random.choice([0.0, 0.03, 0.045, 0.055, 0.1])) for _ in range(200)]
        for run in runs:
            exc = run.exception(timeout=60)
            assert exc is None or isinstance(exc, AttemptTimeout), exc
    assert innocent == []


# -- 2. user code raising BaseException on the pool's threads -------------------------------


@pytest.mark.timeout(90)
def test_done_callback_raising_system_exit_on_the_manager_thread_spares_the_pool(tmp_path: Path) -> None:
    s, r = str(tmp_path / "s"), str(tmp_path / "r")
    calls: list[str] = []
    with ProcessRunner(1) as ex:
        run = ex.submit(block, s, r)

        def exit_now(_: object) -> None:
            calls.append(threading.current_thread().name)
            raise SystemExit(1)

        run.add_done_callback(exit_now)
        wait_for_file(s, 60)
        Path(r).touch()
        assert run.result(timeout=60) == "released"
        later = [ex.submit(add, i, 1) for i in range(20)]
        assert [x.result(timeout=60) for x in later] == list(range(1, 21))
    assert calls == ["woflo-pool-manager"]


@pytest.mark.timeout(90)
def test_result_or_exception_whose_unpickling_raises_system_exit_fails_only_its_run() -> None:
    with ProcessRunner(2) as ex:
        bad_value = ex.submit(return_exit_on_unpickle, os.getpid())
        bad_exc = ex.submit(raise_exit_on_unpickle, os.getpid())
        others = [ex.submit(add, i, 1) for i in range(20)]
        err = bad_value.exception(timeout=60)
        assert isinstance(err, SerializationError)
        assert isinstance(err.__cause__, SystemExit)
        err = bad_exc.exception(timeout=60)
        assert isinstance(err, SerializationError), err
        assert isinstance(err.__cause__, SystemExit)
        assert [x.result(timeout=60) for x in others] == list(range(1, 21))
        assert ex.submit(add, 1, 1).result(timeout=60) == 2


@pytest.mark.timeout(90)
@pytest.mark.parametrize("make", [ThreadRunner, ProcessRunner], ids=["thread", "process"])
def test_done_callback_raising_system_exit_on_the_timer_thread_spares_the_runner(
    make: Callable[[int], Runner], tmp_path: Path
) -> None:
    ex = make(2)
    slow = task(timeout=0.2)(block)
    run = ex.submit(slow, str(tmp_path / "s1"), str(tmp_path / "never"), 5.0)
    run.add_done_callback(lambda _: (_ for _ in ()).throw(SystemExit(1)))
    assert isinstance(run.exception(timeout=60), AttemptTimeout)
    # The timer thread still fires, and the run was forgotten: the runner
    # closes itself after shutdown(wait=False) once nothing is left.
    again = ex.submit(slow, str(tmp_path / "s2"), str(tmp_path / "never"), 5.0)
    assert isinstance(again.exception(timeout=60), AttemptTimeout)
    ex.shutdown(wait=False)
    wait_for(lambda: ex.workers_closed, 60, "the runner closed by its last run")
    ex.shutdown(wait=True)


# -- 3. shutdown(wait=True) from a done-callback on the runner's own thread -----------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("make", [ThreadRunner, ProcessRunner], ids=["thread", "process"])
def test_shutdown_wait_from_a_done_callback_does_not_deadlock(make: Callable[[int], Runner], tmp_path: Path) -> None:
    s1, r1 = str(tmp_path / "s1"), str(tmp_path / "r1")
    ex = make(1)
    first = ex.submit(block, s1, r1)
    returned = threading.Event()
    raised: list[BaseException] = []

    def shut(_: object) -> None:
        try:
            ex.shutdown(wait=True)
        except RuntimeError as err:
            raised.append(err)
        returned.set()

    first.add_done_callback(shut)
    second = ex.submit(add, 1, 2)  # queued: needs the thread the callback runs on
    wait_for_file(s1, 60)
    Path(r1).touch()
    assert returned.wait(60), "shutdown(wait=True) in a done-callback deadlocked"
    if make is ThreadRunner:
        # The callback runs on a worker thread, as with ThreadPoolExecutor, whose
        # shutdown(wait=True) there raises "cannot join current thread": so does
        # ThreadRunner's, after shutting down. The manager thread of a process
        # runner is woflo's own: there it returns without waiting.
        assert len(raised) == 1 and "cannot join current thread" in str(raised[0])
    else:
        assert not raised
    assert second.result(timeout=60) == 3
    with pytest.raises(RuntimeError):
        ex.submit(add, 1, 2)
    ex.shutdown(wait=True)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("make", [ThreadRunner, ProcessRunner], ids=["thread", "process"])
def test_shutdown_wait_from_a_done_callback_on_the_timer_thread_does_not_deadlock(
    make: Callable[[int], Runner], tmp_path: Path
) -> None:
    ex = make(2)
    slow = task(timeout=0.2)(block)
    first = ex.submit(slow, str(tmp_path / "s1"), str(tmp_path / "never"), 5.0)
    release = str(tmp_path / "release")
    # Fails once, then retries after a wait: the retry is the timer thread's job.
    second = ex.submit(task(retries=1, retry_wait_time=0.01)(wait_then_fail_once), release, str(tmp_path / "n"))
    in_callback, returned = threading.Event(), threading.Event()

    def shut(_: object) -> None:
        in_callback.set()
        ex.shutdown(wait=True)
        returned.set()

    first.add_done_callback(shut)
    assert in_callback.wait(60)
    Path(release).touch()
    assert second.result(timeout=60) == "second try"
    assert returned.wait(60), "shutdown(wait=True) on the timer thread deadlocked"
    assert isinstance(first.exception(), AttemptTimeout)
    ex.shutdown(wait=True)


# -- 4. whatever happens while pickling one job fails only that job --------------------------


@pytest.mark.timeout(120)
def test_a_chain_of_runs_each_taking_the_previous_run_resolves() -> None:
    # Each run is an input of the next (docs/orchestration.md): it waits for
    # it and gets its result. Before runs were inputs, each failed pickling
    # the run before (SerializationError).
    with ProcessRunner(2) as ex:
        runs: list[Any] = []
        previous = None
        for _ in range(300):
            previous = ex.submit(identity, previous)
            runs.append(previous)
        _done, pending = wait(runs, timeout=60)
        assert not pending
        assert all(run.result() is None for run in runs)
        assert ex.submit(add, 2, 3).result(timeout=60) == 5


@pytest.mark.timeout(90)
def test_unpicklable_arguments_in_a_burst_all_fail_and_none_stays_pending() -> None:
    with ProcessRunner(2) as ex:
        runs = [ex.submit(identity, threading.Lock()) for _ in range(200)]
        _done, pending = wait(runs, timeout=60)
        assert not pending
        assert all(isinstance(r.exception(), SerializationError) for r in runs)


@pytest.mark.timeout(90)
def test_an_argument_whose_reduce_raises_system_exit_fails_only_its_run() -> None:
    with ProcessRunner(2) as ex:
        runs = [ex.submit(identity, ExitOnPickle() if i % 5 == 0 else i) for i in range(50)]
        for i, run in enumerate(runs):
            if i % 5 == 0:
                err = run.exception(timeout=60)
                assert isinstance(err, SerializationError)
                assert isinstance(err.__cause__, SystemExit)
            else:
                assert run.result(timeout=60) == i


# -- 5. max_tasks_per_child counts alike in the worker and the parent -----------------------


def _planned(ex: ProcessRunner) -> bool:
    # The manager has handed out all it can: nothing being pickled, and
    # nothing queued or no worker that takes jobs has room for one more.
    state, dispatcher = ex._pool._state, ex._pool._dispatcher
    with state.lock:
        half, most = dispatcher.prefetch // 2, dispatcher.prefetch
        return not state.taken and (
            not state.pending
            or not any(w.takes_jobs() and len(w.inflight) <= half and len(w.inflight) < most for w in state.workers)
        )


def _next_job_to_a_fresh_worker(ex: ProcessRunner) -> None:
    # With one worker and no skipped job, each worker runs exactly its two
    # jobs: one more quick job retires a worker that has run one. Its FIFO must
    # be empty first: a skipped job not yet answered gives its budget back.
    wait_for(lambda: not any(_inflight(ex)), 60, "every job answered")
    for _ in range(3):
        with ex._pool._state.lock:
            if all(w.dead or w.stopping or w.budget in (0, 2) for w in ex._pool._state.workers):
                return
        ex.submit(add, 0).result(timeout=60)
    raise AssertionError("the worker did not retire after max_tasks_per_child jobs")


@pytest.mark.timeout(240)
def test_max_tasks_per_child_with_stopped_cancelled_and_expired_queued_runs(tmp_path: Path) -> None:
    # One worker: a slot lost for good shows as every later run pending.
    ex = ProcessRunner(1, max_tasks_per_child=2)
    prefetched: list[tuple[int, list[int]]] = []
    try:
        for k in range(3):
            _next_job_to_a_fresh_worker(ex)  # the blocker is its first job: one more fits behind it
            started, release = str(tmp_path / f"s{k}"), str(tmp_path / f"r{k}")
            blocker = ex.submit(block, started, release)
            wait_for_file(started, 60)
            with ex._pool._state.lock:
                # Let a job queue behind the blocker whatever the pool has learnt
                # of job lengths on this (loaded) machine; nothing finishes, so
                # nothing changes it, before the blocker ends.
                ex._pool._dispatcher.prefetch = 8
            # The first queued job goes behind the blocker; the worker skips it
            # when it is stopped (or its deadline passes): the budget the parent
            # counted for it must come back.
            first = ex.submit(task(deadline=2.0)(add), 0, 1) if k == 1 else ex.submit(add, 0, 1)
            rest = [ex.submit(add, i, 1) for i in range(1, 6)]
            wait_for(lambda: _planned(ex), 60, "the queue handed out")
            prefetched.append((k, _inflight(ex)))
            if k == 1:
                assert isinstance(first.exception(timeout=60), DeadlineExceeded)
            else:
                assert first.stop()
            for i, run in enumerate(rest):
                if i % 2:
                    run.stop()
                else:
                    run.cancel()
            Path(release).touch()
            assert blocker.result(timeout=60) == "released"
            for run in rest:
                assert run.cancelled()
        more = [ex.submit(add, i, 1) for i in range(50)]
        assert [r.result(timeout=60) for r in more] == list(range(1, 51))
    finally:
        _shutdown_within(ex, 60)
    # Each round had one job queued behind its blocker, or it proved nothing.
    assert prefetched == [(0, [2]), (1, [2]), (2, [2])]


# -- 6. cancel() is True only for a call that never started ---------------------------------


@pytest.mark.timeout(90)
def test_a_run_sent_to_a_worker_cannot_be_cancelled(tmp_path: Path) -> None:
    s, r = str(tmp_path / "s"), str(tmp_path / "r")
    with ProcessRunner(1) as ex:
        _warm(ex)
        first = ex.submit(block, s, r)
        second = ex.submit(mark, str(tmp_path / "second"), "ran")
        wait_for_file(s, 60)
        wait_for(second.running, 60, "the second run sent to the busy worker")
        assert not second.cancel()
        Path(r).touch()
        assert second.result(timeout=60) == "ran"
        assert first.result(timeout=60) == "released"


@pytest.mark.timeout(240)
def test_a_run_whose_cancel_returned_true_never_ran(tmp_path: Path) -> None:
    rng = random.Random(1234)
    with ProcessRunner(2) as ex:
        for attempt in range(30):
            paths = [str(tmp_path / f"{attempt}-{i}") for i in range(40)]
            runs = [ex.submit(mark, p, None, 0.001) for p in paths]
            order = list(range(len(runs)))
            rng.shuffle(order)
            cancelled = [i for i in order if runs[i].cancel()]
            wait(runs, timeout=60)
            for i in cancelled:
                assert runs[i].cancelled()
                assert not os.path.exists(paths[i]), f"run {i} of try {attempt}: cancel() was True, yet it ran"
            for i, run in enumerate(runs):
                if i not in cancelled:
                    run.result(timeout=60)
                    assert os.path.exists(paths[i])


@pytest.mark.timeout(120)
def test_shutdown_cancel_futures_never_cancels_a_run_that_ran(tmp_path: Path) -> None:
    for attempt in range(10):
        ex = ProcessRunner(2)
        paths = [str(tmp_path / f"{attempt}-{i}") for i in range(60)]
        runs = [ex.submit(mark, p) for p in paths]
        ex.shutdown(wait=True, cancel_futures=True)
        for p, run in zip(paths, runs, strict=True):
            assert run.done()
            if run.cancelled():
                assert not os.path.exists(p)
            else:
                assert run.result() is None and os.path.exists(p)


# -- chaos ------------------------------------------------------------------------------------


def chaos(n_tasks: int, workers: int, seed: int) -> dict[str, int]:
    """Mixed tasks, random SIGKILL/SIGSTOP of workers, stops and short timeouts; count what went wrong.

    Returns counts: ``lost`` (not done within 300 s of the last submission),
    ``wrong`` (failed with WorkerCrashed although its task does not crash,
    nobody stopped it, it did not time out, and its worker was not one of those
    SIGKILLed from outside), and the totals of each outcome.
    """
    rng = random.Random(seed)
    ex = ProcessRunner(workers)
    short = task(timeout=0.25)(chaos_task)
    runs: list[tuple[str, Any]] = []
    stopped: set[int] = set()
    outside_kills: list[int] = []
    frozen: list[tuple[int, int]] = []  # (submission index to thaw at, pid) of SIGSTOPped workers
    try:
        for i in range(n_tasks):
            kind = rng.choice(["quick"] * 6 + ["slow", "fail", "crash", "timeout"])
            if kind == "timeout":
                runs.append((kind, ex.submit(short, "sleep", rng.choice([0.0, 0.2, 0.3, 1.0]))))
            else:
                runs.append((kind, ex.submit(chaos_task, kind, 0.02 if kind == "slow" else 0.0)))
            roll = rng.random()
            if roll < 0.02:
                j = rng.randrange(len(runs))
                if runs[j][1].stop():
                    stopped.add(j)
            elif roll < 0.03:
                pids = ex.worker_pids
                if pids:
                    pid = rng.choice(pids)
                    try:
                        os.kill(pid, signal.SIGKILL)
                        outside_kills.append(pid)
                    except OSError:
                        pass
            elif roll < 0.04:
                pids = ex.worker_pids
                if pids:
                    pid = rng.choice(pids)
                    try:
                        os.kill(pid, signal.SIGSTOP)
                        frozen.append((i + rng.randrange(1, 30), pid))
                    except OSError:
                        pass
            drain = i % 50 == 49  # let the queue drain a little now and then
            for thaw in [f for f in frozen if f[0] <= i or drain or i == n_tasks - 1]:
                frozen.remove(thaw)
                with contextlib.suppress(OSError):
                    os.kill(thaw[1], signal.SIGCONT)
            if drain:
                wait([runs[-1][1]], timeout=120)
        _done, pending = wait([r for _, r in runs], timeout=300)
        counts = {"lost": len(pending), "wrong": 0, "ok": 0, "failed": 0, "crashed": 0, "timed_out": 0, "stopped": 0}
        for kind, run in runs:
            if not run.done():
                continue
            if run.cancelled():
                counts["stopped"] += 1
                continue
            exc = run.exception()
            if exc is None:
                counts["ok"] += 1
            elif isinstance(exc, AttemptTimeout):
                counts["timed_out"] += 1
            elif isinstance(exc, WorkerCrashed):
                counts["crashed"] += 1
                pid = run.attempts[-1].worker
                if kind != "crash" and pid not in outside_kills:
                    counts["wrong"] += 1
            else:
                counts["failed"] += 1
                assert kind == "fail", exc
        counts["outside_kills"] = len(outside_kills)
        return counts
    finally:
        _shutdown_within(ex, 120)


@pytest.mark.timeout(300)
def test_chaos_short() -> None:
    counts = chaos(400, 3, seed=7)
    assert counts["lost"] == 0, counts
    assert counts["wrong"] == 0, counts
    assert counts["ok"] > 0
