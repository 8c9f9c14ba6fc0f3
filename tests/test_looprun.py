"""Runs of AsyncRunner are asyncio futures of their loop (LoopTaskRun), and still concurrent futures."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from typing import Any

import pytest
from helpers import wait_for_async

from woflo import AsyncRunner, RunState

pytestmark = pytest.mark.timeout(60)


async def nap(seconds: float, value: Any = None) -> Any:
    await asyncio.sleep(seconds)
    return value


def on_loop(main: Any) -> Any:
    """Run ``main(runner)`` with an AsyncRunner bound to a fresh asyncio.run loop."""

    async def wrapper() -> Any:
        runner = AsyncRunner(loop=asyncio.get_running_loop())
        try:
            return await main(runner)
        finally:
            runner.shutdown(wait=False, stop_running=True)

    return asyncio.run(wrapper())


def test_a_run_is_an_asyncio_future_that_gather_takes_as_it_is() -> None:
    async def main(runner: AsyncRunner) -> None:
        run = runner.submit(nap, 0, 7)
        assert isinstance(run, cf.Future)
        assert asyncio.isfuture(run)
        assert asyncio.ensure_future(run) is run  # no wrapper task
        assert run.get_loop() is asyncio.get_running_loop()
        assert await asyncio.gather(run, runner.submit(nap, 0, 8)) == [7, 8]

    on_loop(main)


def test_gather_return_exceptions_reports_failures_and_stopped_runs() -> None:
    async def boom() -> None:
        raise KeyError("k")

    async def main(runner: AsyncRunner) -> None:
        stopped = runner.submit(nap, 3600)
        await asyncio.sleep(0)
        stopped.stop()
        out = await asyncio.gather(runner.submit(nap, 0, 1), runner.submit(boom), stopped, return_exceptions=True)
        assert out[0] == 1
        assert isinstance(out[1], KeyError)
        assert isinstance(out[2], asyncio.CancelledError)

    on_loop(main)


def test_cancelling_a_gather_stops_the_running_runs_and_their_finally_blocks_run() -> None:
    cleaned: list[int] = []
    entered: list[int] = []

    async def forever(i: int) -> None:
        entered.append(i)
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append(i)

    async def main(runner: AsyncRunner) -> None:
        runs = [runner.submit(forever, i) for i in range(3)]
        outer = asyncio.gather(*runs)
        await wait_for_async(lambda: len(entered) == 3, 30, "the runs to start")
        assert all(r.running() for r in runs)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        await wait_for_async(lambda: all(r.done() for r in runs), 30, "the runs to end")
        assert all(r.cancelled() and r.state is RunState.CANCELLED for r in runs)
        assert [a.outcome for r in runs for a in r.attempts] == ["stopped"] * 3

    on_loop(main)
    assert sorted(cleaned) == [0, 1, 2]


def test_wait_for_timeout_stops_the_run() -> None:
    async def main(runner: AsyncRunner) -> None:
        run = runner.submit(nap, 3600)
        # wait_for waits until the cancelled run has ended: it returns at all
        # (within the test's timeout, not the hour) only if the run was stopped.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(run, 0.05)
        assert run.cancelled()

    on_loop(main)


def test_wait_as_completed_and_shield() -> None:
    async def main(runner: AsyncRunner) -> None:
        runs = [runner.submit(nap, d, d) for d in (0.03, 0.0, 0.01)]
        done, pending = await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
        assert runs[1] in done and len(done) + len(pending) == 3
        assert sorted([await f for f in asyncio.as_completed(runs)]) == [0.0, 0.01, 0.03]
        # shield: cancelling the outer await leaves the run alone.
        run = runner.submit(nap, 0.05, "kept")
        waiter = asyncio.ensure_future(asyncio.shield(run))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await run == "kept"

    on_loop(main)


def test_cancel_inside_the_loop_is_asyncio_cancel_outside_it_is_the_stdlib_contract() -> None:
    runner = AsyncRunner()
    try:
        started = threading.Event()

        async def forever() -> None:
            started.set()
            await asyncio.sleep(3600)

        running = runner.submit(forever)
        assert started.wait(10)
        # From a plain thread: a running run cannot be cancelled (stop() ends it).
        assert running.cancel() is False
        assert running.running()

        async def cancel_there() -> bool:
            return running.cancel()

        # From a coroutine on the runner's loop: cancel() stops it, as Task.cancel would.
        assert asyncio.run_coroutine_threadsafe(cancel_there(), runner.loop).result(10) is True
        assert running.cancelled()
        with pytest.raises(cf.CancelledError):
            running.result(0)
    finally:
        runner.shutdown(wait=True, stop_running=True)


def test_callbacks_added_on_the_loop_run_on_the_loop_others_in_the_finishing_thread() -> None:
    runner = AsyncRunner()
    try:
        seen: dict[str, str] = {}
        got = threading.Event()

        def note(key: str) -> Any:
            def callback(run: Any) -> None:
                seen[key] = threading.current_thread().name
                if len(seen) == 2:
                    got.set()

            return callback

        run = runner.submit(nap, 0.05, 1)

        async def add_on_loop() -> None:
            run.add_done_callback(note("loop"))

        asyncio.run_coroutine_threadsafe(add_on_loop(), runner.loop).result(10)
        run.add_done_callback(note("thread"))
        assert run.result(10) == 1
        assert got.wait(10)
        loop_thread = run.attempts[0].worker
        assert seen == {"loop": loop_thread, "thread": loop_thread}
        # Added after the end, outside any loop: called at once, here (the stdlib's rule).
        run.add_done_callback(note("late"))
        assert seen["late"] == threading.current_thread().name
    finally:
        runner.shutdown()


def test_remove_done_callback() -> None:
    async def main(runner: AsyncRunner) -> None:
        calls: list[str] = []
        run = runner.submit(nap, 0.01)

        def first(_: Any) -> None:
            calls.append("first")

        def second(_: Any) -> None:
            calls.append("second")

        run.add_done_callback(first)
        run.add_done_callback(second)
        run.add_done_callback(first)
        assert run.remove_done_callback(first) == 2
        assert run.remove_done_callback(first) == 0
        await run
        # Callbacks run in the order added: once "second" ran, a "first" would have too.
        await wait_for_async(lambda: "second" in calls, 30, "the callback")
        assert calls == ["second"]

    on_loop(main)


def test_gather_from_another_loop_of_runs_on_an_owned_loop() -> None:
    runner = AsyncRunner()
    try:
        runs = [runner.submit(nap, 0.01, i) for i in range(5)]

        async def main() -> list[Any]:
            assert runs[0].get_loop() is asyncio.get_running_loop()  # the caller's loop
            return list(await asyncio.gather(*runs))

        assert asyncio.run(main()) == list(range(5))
    finally:
        runner.shutdown()


def test_run_until_complete_on_the_runners_own_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        runner = AsyncRunner(loop=loop)
        run = runner.submit(nap, 0.01, "done")
        assert loop.run_until_complete(run) == "done"
        runner.shutdown(wait=False)
    finally:
        loop.close()


def test_concurrent_futures_wait_and_result_from_threads() -> None:
    runner = AsyncRunner()
    try:
        runs = [runner.submit(nap, 0.02 * (i % 3), i) for i in range(30)]
        results: list[Any] = []

        def reader(run: Any) -> None:
            results.append(run.result(10))

        threads = [threading.Thread(target=reader, args=(r,)) for r in runs[:10]]
        for t in threads:
            t.start()
        done, not_done = cf.wait(runs, timeout=10)
        assert not not_done and len(done) == 30
        assert sorted(f.result() for f in cf.as_completed(runs, timeout=10)) == list(range(30))
        for t in threads:
            t.join(10)
        assert sorted(results) == list(range(10))
    finally:
        runner.shutdown()


def test_awaiting_a_stopped_run_raises_asyncio_cancelled_error() -> None:
    async def main(runner: AsyncRunner) -> None:
        run = runner.submit(nap, 3600)
        await asyncio.sleep(0)
        run.stop()
        with pytest.raises(asyncio.CancelledError):
            await run

    on_loop(main)


def test_asyncio_sees_a_stopped_run_as_cancelled() -> None:
    async def main(runner: AsyncRunner) -> None:
        run = runner.submit(nap, 3600)
        await asyncio.sleep(0)
        run.stop()
        # A done run is not cancelled again: asyncio's answer is False.
        assert run.cancel() is False
        for f in asyncio.as_completed([run]):
            with pytest.raises(asyncio.CancelledError):
                await f
        # Both families of CancelledError catch it.
        with pytest.raises(asyncio.CancelledError):
            run.result()
        with pytest.raises(cf.CancelledError):
            run.exception()
        done = runner.submit(nap, 0, 2)
        out = await asyncio.gather(run, done, return_exceptions=True)
        assert isinstance(out[0], asyncio.CancelledError) and out[1] == 2

    on_loop(main)


def test_run_until_complete_of_a_stopped_run_raises_cancelled_error() -> None:
    loop = asyncio.new_event_loop()
    try:
        runner = AsyncRunner(loop=loop)
        run = runner.submit(nap, 3600)
        run.stop()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(run)
        runner.shutdown(wait=False)
    finally:
        loop.close()


def test_a_blocked_reader_waits_for_its_own_run_while_others_end() -> None:
    runner = AsyncRunner()
    gate = threading.Event()

    async def held() -> str:
        while not gate.is_set():  # ends only when the test says so, however slow the machine
            await asyncio.sleep(0.001)
        return "slow"

    try:
        slow = runner.submit(held)
        t0 = time.monotonic()
        quick = [runner.submit(nap, 0.001 * (i % 10), i) for i in range(500)]
        # Hundreds of other runs end meanwhile: neither wait() nor result()
        # may return early because of them (all runs share one lock).
        assert slow.wait(0.05) is False
        assert time.monotonic() - t0 >= 0.04
        with pytest.raises(cf.TimeoutError):
            slow.result(0.01)
        gate.set()
        assert slow.result(10) == "slow"
        assert [r.result(10) for r in quick] == list(range(500))
    finally:
        runner.shutdown()


def test_runs_of_two_loops_from_many_threads() -> None:
    first, second = AsyncRunner(), AsyncRunner()
    try:
        errors: list[BaseException] = []

        def hammer(k: int) -> None:
            try:
                runs = [(first if i % 2 else second).submit(nap, 0, (k, i)) for i in range(300)]
                assert [r.result(10) for r in runs] == [(k, i) for i in range(300)]
                done, pending = cf.wait(runs, timeout=10)
                assert len(done) == 300 and not pending
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert first.loop is not second.loop
    finally:
        first.shutdown()
        second.shutdown()
