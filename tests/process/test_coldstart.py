"""What a fresh "exec" worker imports before its first job (issue #13 item 2).

A worker serves jobs with the worker side of woflo only: not the parent's
(runners, policy, events), nor structlog, tenacity, asyncio, loky, or
cloudpickle, which it imports only when a job was sent by value.
"""

from __future__ import annotations

import funcs
import pytest

from woflo import ProcessRunner

NOT_IN_A_WORKER = (
    "asyncio",
    "cloudpickle",
    # The stdlib's pools (their broken-pool exceptions are woflo's bases,
    # defined on first use), multiprocessing (socket, its reduction machinery),
    # subprocess (the parent starts workers, not the worker) and traceback
    # (formatted on the first exception only).
    "concurrent.futures",
    "multiprocessing",
    "socket",
    "subprocess",
    "traceback",
    "inspect",
    "loky",
    "structlog",
    "tenacity",
    "woflo._events",
    "woflo._policy",
    "woflo._process.pool",
    "woflo._process.taskpickler",
    "woflo._runner",
    "woflo.runners",
)


@pytest.mark.timeout(120)
def test_a_fresh_exec_worker_imports_only_what_serving_jobs_needs() -> None:
    with ProcessRunner(1) as runner:
        # funcs.loaded_modules is sent by reference: plain pickle, no cloudpickle needed.
        assert runner.submit(funcs.loaded_modules, *NOT_IN_A_WORKER).result(60) == []
        # A lambda travels by value: the worker imports cloudpickle for it, then.
        assert runner.submit(lambda: 7).result(60) == 7
        loaded = runner.submit(funcs.loaded_modules, "cloudpickle", "woflo._process.taskpickler").result(60)
        assert {"cloudpickle", "woflo._process.taskpickler"} <= set(loaded)


@pytest.mark.timeout(120)
def test_an_exec_worker_is_named_as_before_once_a_task_imports_multiprocessing() -> None:
    # The worker no longer imports multiprocessing to name itself; a task that
    # asks still sees the name the other start methods give, "woflo-worker".
    with ProcessRunner(1) as runner:
        assert runner.submit(funcs.process_name_after_import).result(60) == [False, "woflo-worker"]
        # and again, now that the module is there
        assert runner.submit(funcs.process_name_after_import).result(60) == [True, "woflo-worker"]


@pytest.mark.timeout(120)
def test_a_task_s_exception_still_carries_its_remote_traceback() -> None:
    # traceback is imported by the first exception now, not by the worker's boot.
    with ProcessRunner(1) as runner:
        assert runner.submit(funcs.loaded_modules, "traceback").result(60) == []
        err = runner.submit(funcs.raise_value_error, "boom").exception(60)
        assert isinstance(err, ValueError) and str(err) == "boom"
        assert "raise_value_error" in str(err.__cause__) and "boom" in str(err.__cause__)
