"""Faults of the non-process runners: broken initializers, bad options, nested waits, cancel().

Each test here failed on the code before its fix (see the commit that added it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures.thread import BrokenThreadPool
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

import woflo
from woflo import AsyncRunner, BrokenThreadRunner, ProcessRunner, RunState, SequentialRunner, ThreadRunner

pytestmark = pytest.mark.timeout(60)

# The checkout under test: scripts run in a subprocess must import this woflo,
# not whichever one is installed.
REPO = str(Path(woflo.__file__).resolve().parent.parent)


def run_script(body: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter; a hang (at exit too) fails the test."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, str(Path(__file__).parent)])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


# -- 1. ThreadRunner's initializer ---------------------------------------------------------


class InitFailed(Exception):
    pass


def failing_init(calls: list[int] | None = None) -> None:
    if calls is not None:
        calls.append(1)
    raise InitFailed("cannot set up")


def test_thread_initializer_failure_breaks_the_runner_like_the_stdlib_pool() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def init() -> None:
        gate.wait(20)  # fail only once every run below is queued
        failing_init()

    runner = ThreadRunner(2, initializer=init, retries=5)
    try:
        runs = [runner.submit(ran.append, n) for n in range(4)]
        gate.set()
        errors = [run.exception(timeout=20) for run in runs]
        for run, err in zip(runs, errors, strict=True):
            assert isinstance(err, BrokenThreadRunner) and isinstance(err, BrokenThreadPool)
            assert isinstance(err.__cause__, InitFailed)
            assert run.state is RunState.FAILED
            assert len(run.attempts) <= 1, "a broken runner's run must not be retried"
        # One exception object per run (CPython gh-101267: a shared one chains
        # every raiser's traceback onto it).
        assert len({id(err) for err in errors}) == len(errors)
        # Later submissions raise at the call, each a new exception.
        with pytest.raises(BrokenThreadRunner) as first:
            runner.submit(ran.append, 99)
        with pytest.raises(BrokenThreadPool) as second:
            runner.submit(ran.append, 100)
        assert first.value is not second.value
        assert isinstance(first.value.__cause__, InitFailed)
        with pytest.raises(BrokenThreadRunner):
            list(runner.map(ran.append, [1, 2]))
        assert ran == []
    finally:
        runner.shutdown(wait=True)


def test_stdlib_thread_pool_behaves_the_same_way() -> None:
    # The reference behaviour the test above holds woflo to.
    with concurrent.futures.ThreadPoolExecutor(2, initializer=failing_init) as pool:
        fut = pool.submit(abs, -1)
        assert isinstance(fut.exception(timeout=20), BrokenThreadPool)
        with pytest.raises(BrokenThreadPool):
            pool.submit(abs, -1)


def test_thread_initializer_failure_does_not_hang_interpreter_exit() -> None:
    proc = run_script(
        """
        import threading
        from woflo import ThreadRunner

        gate = threading.Event()

        def init():
            gate.wait(20)  # fail once every run is queued
            raise RuntimeError("no setup")

        runner = ThreadRunner(2, initializer=init, retries=3)
        runs = [runner.submit(abs, -n) for n in range(3)]  # never waited for, never shut down
        gate.set()
        print("submitted", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "submitted"


@pytest.mark.parametrize("cls", [ThreadRunner, ProcessRunner])
@pytest.mark.parametrize("initargs", [5, None, 1.5])
def test_initargs_that_are_not_a_tuple_raise_at_the_constructor(cls: type[Any], initargs: Any) -> None:
    with pytest.raises(TypeError, match="initargs"):
        cls(1, initializer=print, initargs=initargs)


@pytest.mark.parametrize("cls", [ThreadRunner, ProcessRunner])
def test_initializer_that_is_not_callable_raises_at_the_constructor(cls: type[Any]) -> None:
    with pytest.raises(TypeError, match="initializer"):
        cls(1, initializer="setup")


def test_initargs_as_a_list_still_works() -> None:
    # The stdlib takes any iterable; so does woflo (stored as a tuple).
    seen: list[Any] = []
    with ThreadRunner(1, initializer=seen.append, initargs=["x"]) as runner:
        assert runner.submit(abs, -3).result(timeout=20) == 3
    assert seen == ["x"]


@pytest.mark.parametrize("bad", [True, "x", b"1", [1.0]])
def test_idle_timeout_of_the_wrong_type_raises_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="idle_timeout"):
        ProcessRunner(1, idle_timeout=bad)


@pytest.mark.parametrize("bad", [math.nan, 0, -1.0, -math.inf])
def test_idle_timeout_nan_or_not_positive_raises_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        ProcessRunner(1, idle_timeout=bad)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("idle_timeout", [1e10, math.inf, 2**40])
def test_a_huge_idle_timeout_keeps_the_pool_working(idle_timeout: float) -> None:
    # select() overflowed on the manager's idle deadline and the manager thread
    # died after the first result: the second run never finished.
    with ProcessRunner(1, idle_timeout=idle_timeout) as runner:
        for n in range(3):
            assert runner.submit(abs, -n).result(timeout=30) == n
        (pid,) = runner.worker_pids
        assert runner.submit(os.getpid).result(timeout=30) == pid


# -- 2. AsyncRunner's options ------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["x", 5, object(), threading.Thread])
def test_async_runner_loop_that_is_not_a_loop_raises_type_error(loop: Any) -> None:
    with pytest.raises(TypeError, match="loop must be an asyncio event loop"):
        AsyncRunner(loop=loop)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_concurrency": "3"}, TypeError),
        ({"max_concurrency": 2.0}, TypeError),
        ({"max_concurrency": True}, TypeError),
        ({"max_concurrency": 0}, ValueError),
        ({"retries": "x"}, TypeError),
        ({"timeout": "1"}, TypeError),
        ({"retires": 3}, TypeError),
    ],
)
def test_async_runner_other_bad_options_raise_at_the_call(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        AsyncRunner(**options)


def test_async_runner_closed_loop_raises_value_error() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(ValueError, match="closed"):
        AsyncRunner(loop=loop)


# -- 3. waiting inside a task for a run that needs the task to return ----------------------------


def test_sequential_nested_submit_runs_inline_so_the_task_can_use_its_result() -> None:
    runner = SequentialRunner()
    order: list[str] = []

    def inner(n: int) -> int:
        order.append(f"inner {n}")
        return n * 10

    def outer() -> int:
        run = runner.submit(inner, 4)
        order.append("outer got inner")
        return run.result(timeout=5) + 1  # used to wait for ever: inner ran after outer returned

    run = runner.submit(outer)
    assert run.result(timeout=10) == 41
    assert order == ["inner 4", "outer got inner"]
    runner.shutdown()


def test_sequential_nested_task_calls_with_the_shared_runner() -> None:
    # woflo 0.8's style: a @task calling another @task, both on the shared SequentialRunner.
    from woflo import task
    from woflo.runners import SequentialTaskRun

    @task(runner=SequentialTaskRun)
    def leaf(x: int) -> int:
        return x + 1

    @task(runner=SequentialTaskRun)
    def middle(x: int) -> int:
        return leaf(x).get_result(raise_exceptions=True, timeout=5) * 2

    @task(runner=SequentialTaskRun)
    def top(x: int) -> int:
        return middle(x).get_result(raise_exceptions=True, timeout=5) + 100

    assert top(1).get_result(raise_exceptions=True, timeout=10) == 104


def test_sequential_retries_still_queue_instead_of_recursing() -> None:
    # Many retries of one run: queued behind the attempt, not nested on the stack.
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) <= 1500:
            raise OSError("again")
        return "ok"

    runner = SequentialRunner(retries=1500, retry_wait_time=0)
    assert runner.submit(flaky).result() == "ok"
    assert len(calls) == 1501


def test_sequential_nested_retries_finish_before_the_outer_task_goes_on() -> None:
    runner = SequentialRunner(retries=2, retry_wait_time=0)
    calls: list[int] = []

    def flaky_inner() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("again")
        return "inner ok"

    def outer() -> str:
        return runner.submit(flaky_inner).result(timeout=5)

    assert runner.submit(outer).result(timeout=10) == "inner ok"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "make", [SequentialRunner, lambda: ThreadRunner(2), AsyncRunner], ids=["seq", "thread", "async"]
)
def test_shutdown_wait_inside_own_task_raises_instead_of_hanging(make: Any) -> None:
    runner = make()
    try:

        def outer() -> str:
            runner.shutdown(wait=True)
            return "returned"

        run = runner.submit(outer)
        err = run.exception(timeout=20)
        assert isinstance(err, RuntimeError), err
        with pytest.raises(RuntimeError, match="after shutdown"):
            runner.submit(abs, 1)  # shut down all the same
    finally:
        runner.shutdown(wait=True)


def test_stdlib_thread_pool_shutdown_inside_its_task_raises() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    fut = pool.submit(lambda: pool.shutdown(wait=True))
    assert isinstance(fut.exception(timeout=20), RuntimeError)
    pool.shutdown()


async def _coro_value(x: int) -> int:
    await asyncio.sleep(0)
    return x


@pytest.mark.parametrize(
    "call",
    [
        lambda run: run.result(),
        lambda run: run.result(timeout=5),
        lambda run: run.exception(),
        lambda run: run.wait(),
        lambda run: run.wait(timeout=5),
        lambda run: run.get_result(),
        lambda run: run.get_result(raise_exceptions=True, timeout=5),
    ],
    ids=["result", "result-timeout", "exception", "wait", "wait-timeout", "get_result", "get_result-timeout"],
)
def test_blocking_on_a_run_inside_its_own_loop_raises(call: Any) -> None:
    async def main() -> tuple[str, int]:
        runner = AsyncRunner(loop=asyncio.get_running_loop())
        run = runner.submit(_coro_value, 7)
        try:
            call(run)
        except RuntimeError as err:
            message = str(err)
        else:
            message = "no error"
        value = await run  # the run is unharmed and finishes once awaited
        runner.shutdown(wait=False)
        return message, value

    message, value = asyncio.run(main())
    assert "deadlock" in message
    assert value == 7


def test_blocking_on_an_owned_loop_run_from_a_coroutine_of_that_loop_raises() -> None:
    # The same on the loop woflo owns: a coroutine of the runner waits for
    # another run of it.
    with AsyncRunner() as runner:

        async def waits_for_sibling() -> str:
            sibling = runner.submit(_coro_value, 3)
            try:
                sibling.result(timeout=5)
            except RuntimeError as err:
                return f"{await sibling}: {err}"
            return "no error"

        outcome = runner.submit(waits_for_sibling).result(timeout=20)
    assert outcome.startswith("3: ") and "deadlock" in outcome


def test_polling_a_run_on_its_loop_still_works() -> None:
    async def main() -> tuple[bool, bool, int]:
        runner = AsyncRunner(loop=asyncio.get_running_loop())
        gate = asyncio.Event()

        async def held() -> int:
            await gate.wait()
            return 5

        run = runner.submit(held)
        polled = run.wait(timeout=0)
        with pytest.raises(concurrent.futures.TimeoutError):
            run.result(timeout=0)
        gate.set()
        value = await run
        done = run.wait()  # a finished run: nothing to wait for
        assert run.result() == 5 and run.exception() is None
        runner.shutdown(wait=False)
        return polled, done, value

    assert asyncio.run(main()) == (False, True, 5)


def test_blocking_on_a_run_from_another_thread_still_waits() -> None:
    # Only the run's own loop is refused: any other thread may block on it.
    with AsyncRunner() as runner:
        runs = [runner.submit(_coro_value, n) for n in range(5)]
        assert [run.result(timeout=20) for run in runs] == list(range(5))
        assert all(run.wait(timeout=5) for run in runs)


# -- 4. the exit hook: one runner's failure does not cost the others their runs ------------------


def test_one_runner_failing_to_close_at_exit_does_not_stop_the_others(tmp_path: Path) -> None:
    proc = run_script(
        f"""
        import atexit, time
        from pathlib import Path
        from woflo import ThreadRunner

        out = Path({str(tmp_path)!r})
        release = out / "release"

        class BadClose(ThreadRunner):
            def close_workers(self, wait):
                raise OSError("cannot close")

        def work(n):
            while not release.exists():  # still running when the interpreter exits
                time.sleep(0.005)
            time.sleep(0.1)  # and some work left after that
            (out / f"done{{n}}").write_text("ok")

        bad = [BadClose(1) for _ in range(2)]
        runners = [ThreadRunner(1) for _ in range(8)]
        runs = [r.submit(work, n) for n, r in enumerate(runners)]
        # Registered after woflo's hook, so it runs first (last in, first out).
        atexit.register(release.touch)
        """
    )
    assert sorted(p.name for p in tmp_path.glob("done*")) == [f"done{n}" for n in range(8)], proc.stderr
    # The failure is reported, not hidden.
    assert proc.stderr.count("OSError: cannot close") == 2, proc.stderr


@pytest.mark.parametrize(
    "bad",
    ["ProcessRunner(1, max_tasks_per_child=0)", "ProcessRunner(1, start_method='fork', max_tasks_per_child=-1)"],
)
def test_a_process_runner_that_failed_to_build_is_not_shut_down_at_exit(bad: str) -> None:
    # It used to stay registered half built: AttributeError '_pool' at exit.
    proc = run_script(
        f"""
        from woflo import ProcessRunner
        try:
            {bad}
        except ValueError as exc:
            print("construction failed:", exc, flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("construction failed:")
    assert proc.stderr == ""


# -- 6. cancel(): True only for a call that never started, and then it never runs ----------------


def test_thread_cancel_of_a_queued_run_means_it_never_runs() -> None:
    ran: list[str] = []
    release = threading.Event()
    runner = ThreadRunner(1)
    try:
        busy = runner.submit(lambda: release.wait(20) and ran.append("busy"))
        queued = runner.submit(ran.append, "queued")
        assert queued.cancel() is True
        assert queued.cancelled() and queued.state is RunState.CANCELLED
        release.set()
        busy.result(timeout=20)
    finally:
        runner.shutdown(wait=True)  # the worker passed the cancelled run by
    assert ran == ["busy"]
    assert queued.attempts == []


def test_thread_cancel_of_a_running_or_retrying_run_is_refused() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        started.set()
        release.wait(20)
        if len(calls) == 1:
            raise OSError("first attempt fails")
        return "second"

    runner = ThreadRunner(2, retries=1, retry_wait_time=600)
    try:
        run = runner.submit(work)
        assert started.wait(20)
        assert run.cancel() is False and run.running()
        release.set()
        wait_for(lambda: run.state is RunState.RETRYING, 20, "the retry wait (600 s: it never ends here)")
        assert run.cancel() is False, "a run that has started is not cancellable, even between attempts"
        assert run.stop() is True  # stop() is the way to end it
    finally:
        runner.shutdown(wait=True)
    assert calls == [1]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "make", [lambda: ThreadRunner(3), lambda: AsyncRunner(max_concurrency=3)], ids=["thread", "async"]
)
def test_cancel_true_never_ran_cancel_false_ran_under_races(make: Any) -> None:
    # Submit and cancel at once, while workers take runs: whatever cancel()
    # answers, it is the truth.
    ran: set[int] = set()
    lock = threading.Lock()

    def note(n: int) -> int:
        with lock:
            ran.add(n)
        return n

    runner = make()
    answers: dict[int, tuple[Any, bool]] = {}
    try:
        for n in range(1500):
            run = runner.submit(note, n)
            answers[n] = (run, run.cancel() if n % 2 else False)
    finally:
        runner.shutdown(wait=True)
    cancelled = {n for n, (_, said) in answers.items() if said}
    assert cancelled, "no cancel() succeeded: the test exercised nothing"
    assert not cancelled & ran, f"runs cancelled yet run: {sorted(cancelled & ran)[:10]}"
    for n, (run, said) in answers.items():
        if said:
            assert run.cancelled() and run.attempts == []
        else:
            assert run.result(timeout=0) == n and n in ran


def test_sequential_cancel_after_submit_is_refused_the_run_has_run() -> None:
    ran: list[int] = []
    runner = SequentialRunner()
    run = runner.submit(ran.append, 1)
    assert run.cancel() is False and not run.cancelled()
    assert ran == [1]
    runner.shutdown()


def test_async_cancel_in_a_thread_keeps_the_stdlib_meaning_and_on_the_loop_asyncio_s() -> None:
    ran: list[str] = []
    with AsyncRunner(max_concurrency=1) as runner:
        gate = asyncio.Event()
        started = threading.Event()

        async def holder() -> str:
            started.set()
            await gate.wait()
            ran.append("holder")
            return "held"

        async def record(tag: str) -> str:
            ran.append(tag)
            return tag

        held = runner.submit(holder)
        assert started.wait(20)
        queued = runner.submit(record, "queued")
        # In a plain thread: the stdlib's meaning.
        assert held.cancel() is False, "a running run is not cancellable from a thread"
        assert queued.cancel() is True
        # On the loop: asyncio's meaning, the running run is stopped.
        stopped = asyncio.run_coroutine_threadsafe(_cancel_on_loop(held), runner.loop).result(timeout=20)
        assert stopped is True and held.cancelled()
        after = runner.submit(record, "after")
        assert after.result(timeout=20) == "after"
        runner.loop.call_soon_threadsafe(gate.set)
    assert ran == ["after"], "neither the cancelled run nor the stopped one may go on"


async def _cancel_on_loop(run: Any) -> bool:
    return bool(run.cancel())


def _interrupt() -> None:
    raise KeyboardInterrupt


def _exit() -> None:
    raise SystemExit(4)


@pytest.mark.timeout(30)
def test_sequential_ctrl_c_in_a_task_reaches_the_caller_and_ends_the_run() -> None:
    with SequentialRunner() as ex:
        done: list[Any] = []
        ex_run = ex.submit(_exit)  # SystemExit is the call's outcome, as on the stdlib's executors
        with pytest.raises(SystemExit):
            ex_run.result()
        with pytest.raises(KeyboardInterrupt):
            done.append(ex.submit(_interrupt))
        assert not done
        assert not ex.active_runs()  # the interrupted run ended: nothing is left pending


@pytest.mark.timeout(60)
def test_shutdown_never_sees_a_worker_thread_that_has_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    # A thread was counted, then started outside the pool lock: a
    # shutdown(wait=True) on another thread in between joined it and raised
    # "cannot join thread before it is started" (found once in twenty runs
    # of test_breaker2). Here the start of the runner's second thread is
    # held, and the runner's thread set is looked at meanwhile, as
    # close_workers does: under the pool lock.
    real_start = threading.Thread.start
    in_start, let_start, busy = threading.Event(), threading.Event(), threading.Event()

    def held_start(thread: threading.Thread) -> None:
        if thread.name == "held_1":
            in_start.set()
            assert let_start.wait(30)
        real_start(thread)

    runner = ThreadRunner(2, thread_name_prefix="held")
    submitter: threading.Thread | None = None
    try:
        first = runner.submit(busy.wait, 30)  # thread held_0, kept busy
        monkeypatch.setattr(threading.Thread, "start", held_start)
        submitter = threading.Thread(target=lambda: runner.submit(abs, -2), name="submitter")
        submitter.start()
        assert in_start.wait(30)  # the submitting thread is starting held_1
        if runner._pool_lock.acquire(blocking=False):  # else: held while starting, as it should be
            try:
                unstarted = [t.name for t in runner._threads if t.ident is None]
            finally:
                runner._pool_lock.release()
            assert unstarted == [], "a thread counted before it started: shutdown(wait=True) would fail to join it"
    finally:
        let_start.set()
        busy.set()
        monkeypatch.undo()
        if submitter is not None:
            submitter.join(30)
        runner.shutdown(wait=True)
    assert first.result(timeout=30) is True


@pytest.mark.parametrize("runner_class", [SequentialRunner, ThreadRunner, AsyncRunner])
def test_a_missing_tenacity_fails_the_run_at_its_first_retry_decision(runner_class: type[woflo.Runner]) -> None:
    # tenacity is imported at a run's first failure. When that import failed
    # (not installed, broken), the run stayed running for ever: the attempt
    # was settled, the decision raised, and nothing ended the run.
    script = f"""
        import sys
        import funcs
        from woflo import {runner_class.__name__} as Runner
        sys.modules["tenacity"] = None  # as if it were not installed: import raises
        runner = Runner(retries=1)
        run = runner.submit(funcs.boom, "first")
        assert run.wait(30), run
        exc = run.exception(0)
        assert isinstance(exc, ModuleNotFoundError) and "tenacity" in str(exc), repr(exc)
        runner.shutdown(wait=True)
        print("ok")
    """
    done = run_script(script)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


class _Result:
    """A value whose freeing a weak reference can see."""


@pytest.mark.parametrize("runner_class", [ThreadRunner, AsyncRunner])
def test_a_retried_runs_result_is_freed_once_the_caller_drops_it(runner_class: type[woflo.Runner]) -> None:
    # A retry after a wait is started by the runner's timer thread (or a loop
    # timer). That thread kept the last callback it ran (the relaunch, which
    # holds the run) until its next timer, the loop timer and its handle
    # held each other, and the first attempt's traceback kept the frame that
    # ran it, holding the attempt: the run's result stayed alive with them.
    # (SequentialRunner is left out: there the traceback keeps the frames of
    # the submit call itself, which hold the run; a collection frees them.)
    import gc
    import weakref

    calls: list[int] = []

    def fail_once() -> _Result:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first attempt")
        return _Result()

    runner = runner_class(retries=1, retry_wait_time=0.001)
    try:
        run = runner.submit(fail_once)
        gc.disable()  # freed by its last reference going, not by a collection
        try:
            ref = weakref.ref(run.result(timeout=30))
            assert len(run.attempts) == 2
            del run
            wait_for(lambda: ref() is None, 10, "the result freed")
        finally:
            gc.enable()
    finally:
        runner.shutdown(wait=True)


class _Failure(Exception):
    """An exception whose freeing a weak reference can see."""


async def _fail_async() -> None:
    raise _Failure("always")


def _fail() -> None:
    raise _Failure("always")


@pytest.mark.parametrize("runner_class", [ThreadRunner, AsyncRunner])
@pytest.mark.parametrize("retries", [0, 1])
def test_a_failed_run_is_freed_once_the_caller_drops_it(runner_class: type[woflo.Runner], retries: int) -> None:
    # Two cycles kept it until a collection: result() raising the task's
    # exception kept its own frame (holding the run) in the exception's
    # traceback (the stdlib's Future.result breaks that cycle), and tenacity
    # re-raising the exception when it gave up added frames that hold the run.
    import gc
    import weakref

    runner = runner_class(retries=retries, retry_wait_time=0)
    fn = _fail_async if runner_class is AsyncRunner else _fail
    try:
        gc.disable()
        try:
            run = runner.submit(fn)
            try:
                run.result(timeout=30)
            except _Failure as exc:  # not pytest.raises: its ExceptionInfo keeps the traceback
                freed_exc = weakref.ref(exc)
            else:
                raise AssertionError("result() returned")
            assert len(run.attempts) == retries + 1
            freed_run = weakref.ref(run)
            del run
            # The exception itself may live on in a captured log record
            # (task.failed carries it); the run must not.
            wait_for(lambda: freed_run() is None, 10, "the run freed")
            assert isinstance(freed_exc(), (_Failure, type(None)))
        finally:
            gc.enable()
    finally:
        runner.shutdown(wait=True)
