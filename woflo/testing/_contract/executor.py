"""The Executor contract, as the stdlib executors keep it, on every runner.

Shipped in woflo.testing so that any runner can run it (`woflo.testing.RunnerContract`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from pathlib import Path
from typing import Any

import pytest

from woflo import RunState, TaskRun
from woflo.testing import tasks
from woflo.testing._contract.base import ContractBase
from woflo.testing._kind import RunnerKind
from woflo.testing._wait import wait_for, wait_for_file, wait_running


def _one_busy_worker(make: Any, kind: RunnerKind, tmp_path: Path) -> tuple[Any, Any, Path]:
    """A runner of one worker, busy with a run that waits for the returned file."""
    if not kind.sized:
        pytest.skip("no run ever waits for a worker here")
    ex = make(max_workers=1)
    started, release = str(tmp_path / "started"), tmp_path / "release"
    blocker = ex.submit(tasks.block, started, str(release))
    wait_running(blocker, started)
    return ex, blocker, release


class ExecutorContract(ContractBase):
    """The Executor contract as the stdlib keeps it: submit, result, exceptions, map, wait, cancel, shutdown."""

    def test_submit_returns_a_taskrun_future(self, make: Any) -> None:
        ex = make()
        run = ex.submit(tasks.add, 2, b=3)
        assert isinstance(run, TaskRun)
        assert isinstance(run, cf.Future)
        assert run.result(timeout=30) == 5
        assert run.done() and not run.cancelled() and not run.running()
        assert run.exception() is None
        assert run.state is RunState.SUCCEEDED

    def test_exception_comes_back_as_itself(self, make: Any) -> None:
        run = make().submit(tasks.boom, "bad input")
        with pytest.raises(ValueError, match="bad input"):
            run.result(timeout=30)
        assert isinstance(run.exception(), ValueError)
        assert run.state is RunState.FAILED

    def test_lambdas_and_closures_run(self, make: Any, kind: RunnerKind) -> None:
        if not kind.closures:
            pytest.skip("this runner cannot send lambdas and closures (RunnerKind.closures)")
        offset = 10
        ex = make()
        assert ex.submit(lambda x: x + offset, 5).result(timeout=30) == 15

    def test_map_yields_in_order(self, make: Any) -> None:
        ex = make()
        assert list(ex.map(tasks.add, range(20), range(20))) == [2 * i for i in range(20)]
        assert list(ex.map(tasks.add, [], [])) == []

    def test_map_stops_at_the_shorter_iterable(self, make: Any) -> None:
        assert list(make().map(tasks.add, [1, 2, 3], [10, 20])) == [11, 22]

    def test_map_raises_the_first_exception_at_iteration(self, make: Any) -> None:
        results = make().map(tasks.fail_if_odd, [2, 4, 5, 6])
        assert next(results) == 2
        assert next(results) == 4
        with pytest.raises(ValueError, match="5"):
            next(results)

    def test_map_rejects_bad_chunksize(self, make: Any) -> None:
        with pytest.raises(ValueError, match="chunksize"):
            make().map(tasks.add, [1], chunksize=0)

    def test_map_honours_timeout(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        if kind.inline:
            pytest.skip("inline runners finish every call before map returns")
        ex = make()
        release = tmp_path / "release"
        results = ex.map(tasks.block, [str(tmp_path / "s")], [str(release)], timeout=0.2)
        with pytest.raises(cf.TimeoutError):
            list(results)
        # Runners that cannot interrupt (Dask) would keep a worker busy otherwise.
        release.touch()

    def test_as_completed_and_wait(self, make: Any) -> None:
        ex = make()
        runs = [ex.submit(tasks.add, i, i) for i in range(10)]
        assert sorted(r.result() for r in cf.as_completed(runs, timeout=30)) == [2 * i for i in range(10)]
        done, not_done = cf.wait(runs, timeout=30)
        assert len(done) == 10 and not not_done

    def test_wait_first_exception(self, make: Any) -> None:
        ex = make()
        runs = [ex.submit(tasks.boom), ex.submit(tasks.add, 1)]
        done, _ = cf.wait(runs, timeout=30, return_when=cf.FIRST_EXCEPTION)
        assert any(r.exception() is not None for r in done)

    def test_done_callbacks_fire_once(self, make: Any) -> None:
        ex = make()
        seen: list[Any] = []
        fired = threading.Event()

        def callback(run: cf.Future[Any]) -> None:
            seen.append(run.result())
            fired.set()

        run = ex.submit(tasks.add, 1, 1)
        run.add_done_callback(callback)
        assert fired.wait(30)
        late: list[Any] = []
        run.add_done_callback(lambda r: late.append(r.result()))
        assert seen == [2] and late == [2]

    @pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
    def test_a_callback_raising_systemexit_skips_no_callback_and_ends_no_worker(
        self, make: Any, kind: RunnerKind, tmp_path: Path, raised: type[BaseException]
    ) -> None:
        # The stdlib lets SystemExit and KeyboardInterrupt out of a
        # done-callback: they skipped the callbacks after it (a run waiting
        # for this one) and ended the thread that ran it (a worker, the
        # event loop), which then served nothing any more.
        if kind.inline:
            pytest.skip("the run ends inside submit, on the caller's thread: the exception reaches it (as the stdlib)")
        ex = make(max_workers=1) if kind.sized else make()
        started, release = str(tmp_path / "started"), tmp_path / "release"
        run = ex.submit(tasks.block, started, str(release))
        wait_running(run, started)
        after: list[Any] = []

        def bad(_: Any) -> None:
            raise raised("from a done-callback")

        run.add_done_callback(bad)
        run.add_done_callback(lambda r: after.append(r.result()))
        release.touch()
        assert run.result(timeout=30) == "released"
        wait_for(lambda: after == ["released"], 30, "the callback after the one that raised")
        # The thread that ended the run serves on: with one worker, a dead one would hang these.
        assert [ex.submit(tasks.add, i, 1).result(timeout=30) for i in range(3)] == [1, 2, 3]
        ex.shutdown(wait=True)

    def test_asyncio_interop(self, make: Any) -> None:
        ex = make()

        async def main() -> list[Any]:
            loop = asyncio.get_running_loop()
            direct = await ex.submit(tasks.add, 1, 2)
            wrapped = await asyncio.wrap_future(ex.submit(tasks.add, 3, 4))
            in_executor = await loop.run_in_executor(ex, tasks.add, 5, 6)
            gathered = await asyncio.gather(*(ex.submit(tasks.add, i) for i in range(3)))
            return [direct, wrapped, in_executor, gathered]

        assert asyncio.run(main()) == [3, 7, 11, [0, 1, 2]]

    def test_context_manager_waits_and_shuts_down(self, make: Any) -> None:
        with make() as ex:
            runs = [ex.submit(tasks.sleep_then, 0.01, i) for i in range(4)]
        assert all(r.done() for r in runs)
        assert [r.result() for r in runs] == [0, 1, 2, 3]
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            ex.submit(tasks.add, 1)

    def test_shutdown_is_idempotent(self, make: Any) -> None:
        ex = make()
        ex.submit(tasks.add, 1).result(timeout=30)
        ex.shutdown()
        ex.shutdown()
        ex.shutdown(wait=False)
        with pytest.raises(RuntimeError, match="after shutdown"):
            ex.submit(tasks.add, 1)

    def test_shutdown_without_wait_still_finishes_the_work(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex = make()
        run = ex.submit(tasks.sleep_then, 0.05, "finished")
        ex.shutdown(wait=False)
        assert run.result(timeout=30) == "finished"

    def test_pending_runs_can_be_cancelled(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex, blocker, release = _one_busy_worker(make, kind, tmp_path)
        pending = ex.submit(tasks.add, 1)
        assert pending.cancel()
        assert pending.cancelled() and pending.state is RunState.CANCELLED
        assert cf.wait([pending], timeout=5).done == {pending}
        with pytest.raises(cf.CancelledError):
            pending.result()
        assert not blocker.cancel()  # running: the stdlib contract says no
        release.touch()
        assert blocker.result(timeout=30) == "released"

    def test_shutdown_cancel_futures(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        ex, blocker, release = _one_busy_worker(make, kind, tmp_path)
        queued = [ex.submit(tasks.add, i) for i in range(5)]
        # Released only once shutdown has cancelled the queue: released before, a
        # queued run could start on the freed worker first (a race a busy machine loses).
        closer = threading.Thread(target=ex.shutdown, kwargs={"wait": True, "cancel_futures": True})
        closer.start()
        wait_for(lambda: all(r.cancelled() for r in queued), 30, "the queued runs to be cancelled")
        release.touch()
        closer.join(30)
        assert not closer.is_alive()
        assert blocker.result() == "released"

    def test_stop_ends_a_running_run(self, make: Any, kind: RunnerKind, tmp_path: Path) -> None:
        if not kind.interrupts:
            pytest.skip("this runner cannot stop a running attempt (documented)")
        ex = make()
        started = str(tmp_path / "started")
        run = ex.submit(tasks.block, started, str(tmp_path / "never"))
        wait_for_file(started)
        assert run.stop()
        assert run.cancelled() and run.state is RunState.CANCELLED
        with pytest.raises(cf.CancelledError):
            run.result(timeout=1)
        assert not run.stop() or run.cancelled()
        # The runner keeps serving.
        assert ex.submit(tasks.add, 2, 2).result(timeout=30) == 4

    def test_max_workers_validated(self, kind: RunnerKind) -> None:
        if not kind.sized:
            pytest.skip("no max_workers")
        with pytest.raises(ValueError, match="max_workers"):
            kind.make(max_workers=0)
        with pytest.raises(ValueError, match="max_workers"):
            kind.make(max_workers=-1)

    def test_non_callable_is_a_type_error(self, make: Any) -> None:
        with pytest.raises(TypeError, match="not callable"):
            make().submit(42)

    def test_bad_policy_is_rejected_at_construction(self, kind: RunnerKind) -> None:
        with pytest.raises(ValueError, match="retries"):
            kind.make(retries=-1)
        with pytest.raises(ValueError, match="timeout"):
            kind.make(timeout=0)
        with pytest.raises(TypeError, match="unknown option"):
            kind.make(retires=3)

    def test_many_runs_all_complete(self, make: Any) -> None:
        ex = make()
        runs = [ex.submit(tasks.add, i, 1) for i in range(500)]
        assert [r.result(timeout=60) for r in runs] == [i + 1 for i in range(500)]

    def test_map_with_chunks_keeps_order_and_errors(self, make: Any) -> None:
        ex = make()
        assert list(ex.map(tasks.add, range(1000), range(1000), chunksize=64)) == [2 * i for i in range(1000)]
        results = ex.map(tasks.fail_if_odd, [0, 2, 4, 5, 6], chunksize=2)
        assert [next(results), next(results)] == [0, 2]
        with pytest.raises(ValueError, match="5"):
            list(results)

    def test_map_with_buffersize_reads_the_input_lazily(self, make: Any) -> None:
        ex = make()
        consumed: list[int] = []

        def endless() -> Any:
            n = 0
            while True:
                consumed.append(n)
                yield n
                n += 1

        results = ex.map(tasks.add, endless(), buffersize=3)
        assert [next(results) for _ in range(5)] == [0, 1, 2, 3, 4]
        # Five consumed, three in flight: the input is read no further ahead.
        assert len(consumed) <= 5 + 3
        results.close()
        with pytest.raises(ValueError, match="buffersize"):
            ex.map(tasks.add, [1], buffersize=0)

    def test_map_with_buffersize_and_chunks(self, make: Any) -> None:
        out = make().map(tasks.add, range(100), range(100), chunksize=7, buffersize=2)
        assert list(out) == [2 * i for i in range(100)]
