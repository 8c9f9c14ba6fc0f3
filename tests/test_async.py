"""AsyncRunner: coroutines on a loop, cancellation, loop timers, and asyncio interop of every runner."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import funcs
import pytest
import tenacity
from helpers import wait_for_async, woflo_threads

from woflo import AsyncRunner, AttemptTimeout, RunState, SequentialRunner, ThreadRunner, WofloExecutor, task
from woflo.runners.aio import runner_for_running_loop

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def runner() -> Iterator[AsyncRunner]:
    r = AsyncRunner()
    yield r
    r.shutdown(wait=True, stop_running=True)


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_submit_coroutine_function_on_owned_loop(runner: AsyncRunner) -> None:
    runs = [runner.submit(double, n) for n in range(5)]
    assert [r.result(timeout=10) for r in runs] == [0, 2, 4, 6, 8]
    assert runner.loop.is_running()
    assert runs[0].attempts[0].worker.startswith("woflo-async-")


def test_plain_function_runs_in_a_thread_not_on_the_loop(runner: AsyncRunner) -> None:
    def where() -> str:
        return threading.current_thread().name

    run = runner.submit(where)
    assert run.result(timeout=10) != run.attempts[0].worker  # worker: the loop's thread


def test_plain_function_returning_a_coroutine_is_awaited(runner: AsyncRunner) -> None:
    assert runner.submit(lambda: double(4)).result(timeout=10) == 8


def test_stop_cancels_the_coroutine_and_runs_finally(runner: AsyncRunner) -> None:
    started, cleaned = threading.Event(), threading.Event()

    async def forever() -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    run = runner.submit(forever)
    assert started.wait(10)
    assert run.stop()
    assert run.state is RunState.CANCELLED and run.cancelled()
    assert cleaned.wait(10), "the coroutine's finally block did not run"
    assert run.attempts[-1].outcome == "stopped"


def test_timeout_cancels_the_coroutine_then_retries() -> None:
    calls: list[int] = []
    cancelled = threading.Event()

    async def slow_first() -> str:
        calls.append(1)
        if len(calls) == 1:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return "second"

    r = AsyncRunner(timeout=0.2, retries=1)
    try:
        run = r.submit(slow_first)
        assert run.result(timeout=10) == "second"
        assert cancelled.is_set()
        assert [a.outcome for a in run.attempts] == ["timed_out", "succeeded"]
        assert isinstance(run.attempts[0].exception, AttemptTimeout)
    finally:
        r.shutdown(stop_running=True)


def test_retry_waits_are_loop_timers_no_thread_blocked() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        failures = {"n": 0}

        async def flaky() -> str:
            failures["n"] += 1
            if failures["n"] < 3:
                raise ValueError("not yet")
            return "ok"

        r = AsyncRunner(loop=loop, retries=3, retry_wait_time=0.05)
        threads_before = woflo_threads()
        run = r.submit(flaky)
        assert await run == "ok"
        assert [a.outcome for a in run.attempts] == ["failed", "failed", "succeeded"]
        # No scheduler thread was started: the waits were call_later handles.
        # (A subset check: other tests' threads may end meanwhile.)
        assert not woflo_threads() - threads_before
        r.shutdown(wait=False)

    asyncio.run(main())


def test_stop_during_retry_wait_drops_the_timer() -> None:
    async def main() -> None:
        r = AsyncRunner(loop=asyncio.get_running_loop(), retries=1, retry_wait_time=3600)
        run = r.submit(funcs.boom)
        await wait_for_async(lambda: run.state is RunState.RETRYING, 30, "the retry wait")
        assert run.stop()
        assert run.cancelled()
        r.shutdown(wait=False)

    asyncio.run(main())


def test_max_concurrency_limits_running_attempts() -> None:
    r = AsyncRunner(max_concurrency=3)
    active = peak = 0

    async def track() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        active -= 1

    try:
        runs = [r.submit(track) for _ in range(50)]
        for run in runs:
            run.result(timeout=20)
        assert peak == 3
    finally:
        r.shutdown()


def test_stopped_while_queued_never_runs() -> None:
    r = AsyncRunner(max_concurrency=1)
    gate = threading.Event()
    ran: list[int] = []

    async def hold() -> None:
        while not gate.is_set():
            await asyncio.sleep(0.001)

    async def mark() -> None:
        ran.append(1)

    try:
        first = r.submit(hold)
        queued = r.submit(mark)
        assert queued.stop()
        after = r.submit(mark)
        gate.set()
        first.result(timeout=10)
        after.result(timeout=10)
        assert ran == [1]
    finally:
        r.shutdown()


@pytest.mark.timeout(120)
def test_10000_sleeping_coroutines_with_max_concurrency_keep_the_loop_responsive() -> None:
    async def main() -> tuple[float, float, int]:
        loop = asyncio.get_running_loop()
        r = AsyncRunner(loop=loop, max_concurrency=1000)
        running = peak = 0

        async def nap(i: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1
            return i

        async def lag_of(work: Callable[[], Awaitable[list[int]]]) -> float:
            """The longest the loop kept a 10 ms timer waiting while ``work()`` started and ran."""
            lag = 0.0
            done = False

            async def ticker() -> None:
                nonlocal lag
                while not done:
                    t0 = loop.time()
                    await asyncio.sleep(0.01)
                    lag = max(lag, loop.time() - t0 - 0.01)

            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0)  # the ticker is running before the work starts
            assert await work() == list(range(10_000))
            done = True
            await tick
            return lag

        # The baseline: the same naps with plain asyncio, on the same (possibly busy) machine.
        limit = asyncio.Semaphore(1000)

        async def limited(i: int) -> int:
            async with limit:
                return await nap(i)

        baseline = await lag_of(lambda: asyncio.gather(*(limited(i) for i in range(10_000))))
        peak = 0
        lag = await lag_of(lambda: asyncio.gather(*[r.submit(nap, i) for i in range(10_000)]))
        r.shutdown(wait=False)
        return lag, baseline, peak

    lag, baseline, peak = asyncio.run(main())
    assert peak == 1000
    # A blocked loop would show lags of seconds; a multiple of the baseline
    # measured just before (not a fixed bound) allows for a busy machine.
    assert lag < max(0.5, 10 * baseline), f"loop lag {lag:.3f}s, plain asyncio's {baseline:.3f}s"


def test_task_async_def_inside_a_loop_runs_on_that_loop() -> None:
    @task
    async def where() -> int:
        return id(asyncio.get_running_loop())

    async def main() -> None:
        run = where()
        assert await run == id(asyncio.get_running_loop())  # type: ignore[comparison-overlap]
        assert runner_for_running_loop() is run.runner
        run.runner.shutdown(wait=False)

    asyncio.run(main())


def test_task_async_def_outside_a_loop_uses_the_owned_loop() -> None:
    @task(retries=1)
    async def where() -> str:
        return threading.current_thread().name

    run = where()
    assert run.result(timeout=10).startswith("woflo-async-")  # type: ignore[attr-defined]
    assert isinstance(run.runner, AsyncRunner)


def test_external_cancellation_of_the_loop_task_stops_the_run() -> None:
    async def main() -> None:
        r = AsyncRunner(loop=asyncio.get_running_loop())
        started = asyncio.Event()

        async def forever() -> None:
            started.set()
            await asyncio.sleep(3600)

        run = r.submit(forever)
        await started.wait()
        for t in asyncio.all_tasks():
            if t is not asyncio.current_task():
                t.cancel()
        await wait_for_async(run.done, 30, "the run to end")
        assert run.cancelled()
        r.shutdown(wait=False)

    asyncio.run(main())


def test_shutdown_wait_on_its_own_busy_loop_raises_instead_of_deadlocking() -> None:
    async def main() -> None:
        r = AsyncRunner(loop=asyncio.get_running_loop())
        run = r.submit(asyncio.sleep, 0.01)
        with pytest.raises(RuntimeError, match="deadlock"):
            r.shutdown(wait=True)
        await run
        r.shutdown(wait=True)

    asyncio.run(main())


def test_bad_max_concurrency() -> None:
    with pytest.raises(ValueError):
        AsyncRunner(max_concurrency=0)
    with pytest.raises(TypeError):
        AsyncRunner(max_concurrency=1.5)  # type: ignore[arg-type]


def test_custom_tenacity_policy_on_the_loop() -> None:
    counter = {"n": 0}

    async def flaky() -> int:
        counter["n"] += 1
        if counter["n"] < 2:
            raise KeyError("once")
        return counter["n"]

    r = AsyncRunner(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(0.01))
    try:
        assert r.submit(flaky).result(timeout=10) == 2
    finally:
        r.shutdown()


# -- asyncio interop, on every runner --------------------------------------------------

FACTORIES: dict[str, Callable[[], Any]] = {
    "sequential": SequentialRunner,
    "thread": lambda: ThreadRunner(2),
    "executor-thread": lambda: WofloExecutor(2, runner=ThreadRunner),
    "async": AsyncRunner,
}


@pytest.fixture(params=sorted(FACTORIES))
def any_runner(request: pytest.FixtureRequest) -> Iterator[Any]:
    ex = FACTORIES[request.param]()
    yield ex
    ex.shutdown(wait=True, stop_running=True)


def test_gather_of_taskruns(any_runner: Any) -> None:
    async def main() -> list[Any]:
        return list(await asyncio.gather(*(any_runner.submit(funcs.add, i, 1) for i in range(20))))

    assert asyncio.run(main()) == [i + 1 for i in range(20)]


def test_as_completed_of_taskruns(any_runner: Any) -> None:
    async def main() -> list[Any]:
        runs = [any_runner.submit(funcs.add, i, 1) for i in range(20)]
        return [await f for f in asyncio.as_completed(runs)]

    assert sorted(asyncio.run(main())) == [i + 1 for i in range(20)]


def test_run_in_executor(any_runner: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(any_runner, funcs.add, 20, 22)

    assert asyncio.run(main()) == 42


def test_exception_through_await(any_runner: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="nope"):
            await any_runner.submit(funcs.boom, "nope")

    asyncio.run(main())


def test_await_on_a_borrowed_loop_from_a_thread_submit() -> None:
    # submit from another thread onto a runner bound to a running loop.
    async def main() -> int:
        r = AsyncRunner(loop=asyncio.get_running_loop())
        run = await asyncio.to_thread(r.submit, double, 21)
        value = await run
        r.shutdown(wait=False)
        return value

    assert asyncio.run(main()) == 42


@pytest.mark.timeout(60)
def test_a_stuck_plain_function_does_not_hold_up_exit() -> None:
    # A plain function abandoned by its timeout runs in a daemon thread: the
    # interpreter exits at once instead of waiting for it (an hour here).
    import subprocess
    import sys

    script = (
        "import time\n"
        "from woflo import AsyncRunner, AttemptTimeout\n"
        "with AsyncRunner(timeout=0.2) as ex:\n"
        "    run = ex.submit(time.sleep, 3600)\n"
        "    assert isinstance(run.exception(30), AttemptTimeout)\n"
        "print('done', flush=True)\n"
    )
    # Ending before subprocess.run's timeout (far less than the hour) proves it.
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
