"""CPython's ``FutureTests`` (test_concurrent_futures/test_future.py), on the runs of every runner.

CPython checks the `Future` protocol on futures it puts into each state by
hand; here the runs a runner returns are put there by the runner: pending
(waiting for a busy worker), running (inside the task), cancelled, failed,
succeeded. One runner of each kind serves the whole module.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import operator
import re
import threading
from typing import Any

import funcs
import pytest
from cpython_helpers import Gates, module_runner_fixtures, skip_inline, skip_unsized
from helpers import wait_running
from runners import RunnerKind

pytestmark = pytest.mark.timeout(60)

kind, ex, gates = module_runner_fixtures(max_workers=2)


def busy_runner(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    """Occupy both workers of ``ex`` with held runs: the next submit stays pending."""
    skip_inline(kind)
    skip_unsized(kind)
    _send_one_job_at_a_time(ex)
    for _ in range(2):
        gates.hold(ex)


def _send_one_job_at_a_time(ex: Any) -> None:
    # Once it has seen jobs finish fast, a process runner sends a busy worker
    # more jobs ahead (prefetch; ProcessPoolExecutor likewise moves calls to
    # its call queue, where they count as running), and how many it learns
    # varies with the machine's load: a run meant to stay pending was then
    # running. Pinned to one job per worker here: nothing finishes before the
    # test's pending runs are submitted, so nothing relearns it (as
    # tests/process/test_pool_lifecycle.py's _warm does).
    runner = getattr(ex, "_runner", ex)  # a WofloExecutor's runner
    dispatcher = getattr(getattr(runner, "_pool", None), "_dispatcher", None)
    if dispatcher is not None:
        dispatcher.prefetch = 1


def running_run(ex: Any, kind: RunnerKind, gates: Gates) -> Any:
    """A run whose task has started (and waits for its gate)."""
    skip_inline(kind)
    run, gate = gates.hold(ex)
    wait_running(run, gate.started)  # a process runner learns of the start a moment later
    return run


def succeeded(ex: Any) -> Any:
    run = ex.submit(operator.mul, 6, 7)
    run.result(timeout=30)
    return run


def failed(ex: Any) -> Any:
    run = ex.submit(divmod, 1, 0)
    run.exception(timeout=30)
    return run


def cancelled(ex: Any, kind: RunnerKind, gates: Gates) -> Any:
    busy_runner(ex, kind, gates)
    run = ex.submit(operator.mul, 1, 1)
    assert run.cancel()
    return run


# -- done callbacks -----------------------------------------------------------------


def test_done_callback_with_result(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    seen: list[Any] = []
    called = threading.Event()
    run, gate = gates.hold(ex)

    def callback(f: cf.Future[Any]) -> None:
        seen.append((f, f.result()))
        called.set()

    run.add_done_callback(callback)
    gate.release()
    assert called.wait(30)
    assert seen == [(run, "released")]


def test_done_callback_with_exception(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    seen: list[Any] = []
    called = threading.Event()
    run, gate = gates.hold(ex, funcs.block_then_raise)

    def callback(f: cf.Future[Any]) -> None:
        seen.append(f.exception().args)
        called.set()

    run.add_done_callback(callback)
    gate.release()
    assert called.wait(30)
    assert seen == [("this is an exception",)]


def test_done_callback_with_cancel(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    busy_runner(ex, kind, gates)
    run = ex.submit(operator.mul, 1, 1)
    seen: list[bool] = []
    run.add_done_callback(lambda f: seen.append(f.cancelled()))
    assert run.cancel()
    assert seen == [True]  # called by cancel() itself, before it returns


def test_done_callback_raises_is_logged_and_the_next_runs(
    ex: Any, kind: RunnerKind, gates: Gates, caplog: pytest.LogCaptureFixture
) -> None:
    skip_inline(kind)
    called = threading.Event()
    run, gate = gates.hold(ex)

    def raising(f: cf.Future[Any]) -> None:
        raise Exception("doh!")

    run.add_done_callback(raising)
    run.add_done_callback(lambda f: called.set())
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        gate.release()
        assert called.wait(30)
        assert run.result() == "released"
    messages = [r.getMessage() for r in caplog.records if r.name == "concurrent.futures"]
    assert any("exception calling callback for" in m for m in messages), messages
    assert any("doh!" in (r.exc_text or "") or (r.exc_info and "doh!" in str(r.exc_info[1])) for r in caplog.records)


def test_done_callback_already_successful(ex: Any) -> None:
    run = succeeded(ex)
    seen: list[Any] = []
    run.add_done_callback(lambda f: seen.append(f.result()))
    assert seen == [42]


def test_done_callback_already_failed(ex: Any) -> None:
    run = failed(ex)
    seen: list[Any] = []
    run.add_done_callback(lambda f: seen.append(type(f.exception())))
    assert seen == [ZeroDivisionError]


def test_done_callback_already_cancelled(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    run = cancelled(ex, kind, gates)
    seen: list[bool] = []
    run.add_done_callback(lambda f: seen.append(f.cancelled()))
    assert seen == [True]


def test_done_callback_raises_already_succeeded(ex: Any, caplog: pytest.LogCaptureFixture) -> None:
    run = succeeded(ex)

    def raising(f: cf.Future[Any]) -> None:
        raise Exception("doh!")

    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        run.add_done_callback(raising)  # logged, not raised
    assert any("exception calling callback for" in r.getMessage() for r in caplog.records)


# -- repr -----------------------------------------------------------------------------

# The stdlib's words for the state, and for a finished future what it returned
# or raised; woflo names the run where the stdlib prints an address.


def test_repr_pending_running_cancelled(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    busy_runner(ex, kind, gates)
    pending = ex.submit(operator.mul, 1, 1)
    assert re.search(
        r"^<\w*TaskRun at 0x[0-9a-f]+ state=pending name='\w+' run_id=[0-9a-f]{8} run_state=\w+>$", repr(pending)
    ), repr(pending)
    assert pending.cancel()
    assert re.search(
        r"^<\w*TaskRun at 0x[0-9a-f]+ state=cancelled name='\w+' run_id=[0-9a-f]{8} run_state=\w+>$", repr(pending)
    ), repr(pending)


def test_repr_running(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    run = running_run(ex, kind, gates)
    assert re.search(
        r"^<\w*TaskRun at 0x[0-9a-f]+ state=running name='\w+' run_id=[0-9a-f]{8} run_state=\w+>$", repr(run)
    ), repr(run)


def test_repr_finished(ex: Any) -> None:
    assert re.search(
        r"^<\w*TaskRun at 0x[0-9a-f]+ state=finished returned int name='\w+' run_id=[0-9a-f]{8} run_state=\w+>$",
        repr(succeeded(ex)),
    ), repr(succeeded(ex))
    assert re.search(
        r"^<\w*TaskRun at 0x[0-9a-f]+ state=finished raised ZeroDivisionError"
        r" name='\w+' run_id=[0-9a-f]{8} run_state=\w+>$",
        repr(failed(ex)),
    ), repr(failed(ex))


# -- cancel, states, result and exception with timeouts --------------------------------


def test_cancel(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    ok, bad = succeeded(ex), failed(ex)  # first: the gates below occupy every worker
    running = running_run(ex, kind, gates)
    busy_runner(ex, kind, gates)
    pending = ex.submit(operator.mul, 1, 1)
    assert pending.cancel()
    assert pending.cancelled()
    assert pending.cancel()  # again: still True, still cancelled
    # The task has started: the stdlib says no (ProcessPoolExecutor already
    # says no once the call is on its way to a worker).
    assert not running.cancel()
    assert running.running() and not running.cancelled()
    assert not ok.cancel() and ok.result() == 42
    assert not bad.cancel() and isinstance(bad.exception(), ZeroDivisionError)


def test_states(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    ok, bad = succeeded(ex), failed(ex)  # first: the gates below occupy every worker
    running = running_run(ex, kind, gates)
    busy_runner(ex, kind, gates)
    pending = ex.submit(operator.mul, 1, 1)
    stopped = ex.submit(operator.mul, 1, 1)
    assert stopped.cancel()
    assert [r.cancelled() for r in (pending, running, stopped, bad, ok)] == [False, False, True, False, False]
    assert [r.done() for r in (pending, running, stopped, bad, ok)] == [False, False, True, True, True]
    assert [r.running() for r in (pending, running, stopped, bad, ok)] == [False, True, False, False, False]


def test_result_and_exception_with_timeout(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    ok, bad = succeeded(ex), failed(ex)  # first: the gates below occupy every worker
    running = running_run(ex, kind, gates)
    busy_runner(ex, kind, gates)
    pending = ex.submit(operator.mul, 1, 1)
    stopped = ex.submit(operator.mul, 1, 1)
    assert stopped.cancel()
    for run in (pending, running):
        with pytest.raises(cf.TimeoutError):
            run.result(timeout=0)
        with pytest.raises(cf.TimeoutError):
            run.exception(timeout=0)
    with pytest.raises(cf.CancelledError):
        stopped.result(timeout=0)
    with pytest.raises(cf.CancelledError):
        stopped.exception(timeout=0)
    with pytest.raises(ZeroDivisionError):
        bad.result(timeout=0)
    assert isinstance(bad.exception(timeout=0), ZeroDivisionError)
    assert ok.result(timeout=0) == 42
    assert ok.exception(timeout=0) is None


def test_result_waits_for_success(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    skip_inline(kind)
    run, gate = gates.hold(ex)
    threading.Thread(target=lambda: (gate.wait_started(), gate.release())).start()
    assert run.result(timeout=30) == "released"


def test_result_waits_for_cancel(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    busy_runner(ex, kind, gates)
    run = ex.submit(operator.mul, 1, 1)
    canceller = threading.Thread(target=run.cancel)
    canceller.start()
    with pytest.raises(cf.CancelledError):
        run.result(timeout=30)
    canceller.join(30)


def test_cancelled_error_names_the_run(ex: Any, kind: RunnerKind, gates: Gates) -> None:
    # woflo's addition: the stdlib raises a bare CancelledError().
    run = cancelled(ex, kind, gates)
    with pytest.raises(cf.CancelledError, match=re.escape(run.name)):
        run.result()
