"""DaskRunner on a real LocalCluster: retries, timeouts, stop, a killed worker."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import funcs
import pytest
from helpers import wait_for, wait_for_file

from woflo import AttemptTimeout, RunState, WofloExecutor, WorkerCrashed
from woflo.testing import capture_events

distributed = pytest.importorskip("distributed")


from woflo.runners.dask import DaskRunner  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def runner(client: Any, **options: Any) -> DaskRunner:
    return DaskRunner(client, **options)


def test_results_errors_and_map(client: Any) -> None:
    with DaskRunner(client) as ex:
        assert ex.submit(funcs.add, 2, b=3).result(timeout=60) == 5
        with pytest.raises(ValueError, match="bad"):
            ex.submit(funcs.boom, "bad").result(timeout=60)
        assert list(ex.map(funcs.add, range(10), range(10))) == [2 * i for i in range(10)]
    assert client.status == "running", "a given client must be left running"


def test_what_cannot_be_pickled_is_a_serialization_error_never_retried(client: Any) -> None:
    # As on the process runner (and a pickle.PicklingError, as the stdlib's).
    # Before: distributed's TypeError("Could not serialize ..."), retried as a
    # failure of the task, with a repr of the call in its message.
    import threading

    from woflo import SerializationError

    with DaskRunner(client, retries=2) as ex:
        sent = ex.submit(funcs.add, threading.Lock(), 1)
        with pytest.raises(SerializationError, match="cannot pickle argument of add") as info:
            sent.result(timeout=60)
        assert isinstance(info.value, (pickle.PicklingError, TypeError))
        back = ex.submit(funcs.make_lock)
        with pytest.raises(SerializationError, match="cannot pickle the result of make_lock"):
            back.result(timeout=60)
    assert [a.outcome for a in sent.attempts] == ["failed"]
    assert [a.outcome for a in back.attempts] == ["failed"]


def test_kwargs_named_like_submit_options_reach_the_task(client: Any) -> None:
    def f(key: str, priority: int, pure: bool) -> tuple[str, int, bool]:
        return key, priority, pure

    with DaskRunner(client) as ex:
        assert ex.submit(f, key="k", priority=3, pure=True).result(timeout=60) == ("k", 3, True)


def test_retries_come_from_woflo(client: Any, tmp: Path) -> None:
    counter = str(tmp / "count")
    with DaskRunner(client, retries=3, retry_wait_time=0.01) as ex, capture_events() as events:
        run = ex.submit(funcs.fail_times, counter, 2, "ok")
        assert run.result(timeout=60) == "ok"
    assert [a.outcome for a in run.attempts] == ["failed", "failed", "succeeded"]
    started = [e for e in events if e["event"] == "attempt.started"]
    assert [e["runner"] for e in started] == ["dask"] * 3
    assert all(str(e["worker"]).startswith("fail_times-") for e in started)


def test_timeout_cancels_and_ends_the_run_at_once(client: Any, tmp: Path) -> None:
    started, release = str(tmp / "started"), str(tmp / "release")
    with DaskRunner(client, timeout=0.5) as ex:
        run = ex.submit(funcs.block, started, release, 20)
        with pytest.raises(AttemptTimeout):
            run.result(timeout=60)
        assert run.attempts[-1].outcome == "timed_out"
        Path(release).touch()  # let the worker go: Dask cannot interrupt it


def test_stop_ends_the_run_and_cancels_on_the_cluster(client: Any, tmp: Path) -> None:
    started, release = str(tmp / "started"), str(tmp / "release")
    with DaskRunner(client) as ex:
        run = ex.submit(funcs.block, started, release, 20)
        wait_for_file(started, 60)
        assert run.stop()
        assert run.state is RunState.CANCELLED
        Path(release).touch()
        key = run.attempts[-1].worker
        wait_for(lambda: key not in client.who_has(), 30, "the key to be released on the cluster")


def test_killed_worker_fails_the_attempt_and_the_retry_succeeds(client: Any, tmp: Path) -> None:
    started, release = str(tmp / "started"), str(tmp / "release")
    with DaskRunner(client, retries=2, retry_wait_time=0.01) as ex:

        def victim(started: str, release: str) -> int:
            if not os.path.exists(started):
                return funcs.block(started, release, 60) and 0  # type: ignore[return-value]
            return os.getpid()

        run = ex.submit(victim, started, release)
        wait_for_file(started, 60)
        pid = int(Path(started).read_text())
        assert pid in client.run(os.getpid).values()
        os.kill(pid, signal.SIGKILL)
        assert run.result(timeout=90) != pid
        outcomes = [a.outcome for a in run.attempts]
        assert outcomes == ["crashed", "succeeded"], outcomes
        assert isinstance(run.attempts[0].exception, WorkerCrashed)
    # The nanny restarts the worker: the cluster is whole again for the next tests.
    wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "the worker to come back")


def test_executor_with_a_dask_runner_instance(client: Any) -> None:
    with WofloExecutor(runner=DaskRunner(client), retries=1) as ex:
        assert ex.submit(pow, 2, 10).result(timeout=60) == 1024


def test_cluster_kwargs_need_no_client() -> None:
    with pytest.raises(ValueError, match="not both"):
        DaskRunner(object(), address="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="LocalCluster options"):
        DaskRunner(address="tcp://127.0.0.1:1", n_workers=2)


def test_address_connects_and_leaves_the_cluster_running(client: Any) -> None:
    address = client.scheduler.address
    ex = DaskRunner(address=address)
    assert ex.submit(funcs.add, 1, 1).result(timeout=60) == 2
    ex.shutdown()
    assert ex.client.status == "closed"
    assert client.submit(funcs.add, 2, 2).result(timeout=60) == 4


def test_import_woflo_does_not_import_distributed() -> None:
    # Even the DaskRunner class imports it only when a runner is built.
    code = "import sys, woflo; from woflo import DaskRunner; from woflo.runners import DaskRunner as D"
    code += "; assert D is DaskRunner and 'distributed' not in sys.modules"
    assert os.system(f'{sys.executable} -c "{code}"') == 0


def test_without_distributed_the_error_names_the_extra(tmp: Path) -> None:
    # A directory that shadows `distributed` with a module that fails to import.
    (tmp / "distributed.py").write_text("raise ImportError('no distributed here')")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp)!r}); import woflo\n"
        "try:\n    woflo.DaskRunner()\nexcept ImportError as e:\n    assert 'woflo[dask]' in str(e), e\n"
        "else:\n    raise SystemExit('no ImportError')\n"
    )
    script = Path(tempfile.mkdtemp()) / "probe.py"
    script.write_text(code)
    assert os.system(f"{sys.executable} {script}") == 0
