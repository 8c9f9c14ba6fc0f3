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
