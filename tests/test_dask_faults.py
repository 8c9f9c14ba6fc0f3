"""DaskRunner faults: a half-built runner at exit, what the LocalCluster it starts exposes.

The scripts run in a fresh interpreter each: what they check (the exit hook,
the sockets a process listens on) must not see the test session's own state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_runner_faults import run_script

distributed = pytest.importorskip("distributed")

import dask_cluster  # noqa: E402

from woflo.runners.dask import DaskRunner  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    "bad",
    [
        "DaskRunner(n_workers='x')",  # LocalCluster itself fails
        "DaskRunner(address='tcp://127.0.0.1:9')",  # nothing listens there
    ],
)
def test_a_dask_runner_that_failed_to_build_does_not_break_the_exit_hook(bad: str, tmp_path: Path) -> None:
    # The failed runner used to stay registered for woflo's exit hook, whose
    # shutdown raised AttributeError there and ended the hook: the runs of the
    # runners it had not reached yet were killed with the interpreter.
    proc = run_script(
        f"""
        import atexit, sys, time
        from pathlib import Path
        import dask
        from woflo import ThreadRunner
        from woflo.runners.dask import DaskRunner

        out = Path({str(tmp_path)!r})
        release = out / "release"

        def work(n):
            while not release.exists():  # still running when the interpreter exits
                time.sleep(0.005)
            time.sleep(0.1)  # and some work left after that
            (out / f"done{{n}}").write_text("ok")

        runners = [ThreadRunner(1) for _ in range(8)]
        runs = [r.submit(work, n) for n, r in enumerate(runners)]
        with dask.config.set({{"distributed.comm.timeouts.connect": "2s"}}):
            try:
                {bad}
            except Exception as exc:
                print("construction failed:", type(exc).__name__, flush=True)
            else:
                sys.exit("the bad DaskRunner was built")
        # Registered after woflo's hook, so it runs first (last in, first out).
        atexit.register(release.touch)
        """,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("construction failed:"), proc.stdout
    assert sorted(p.name for p in tmp_path.glob("done*")) == [f"done{n}" for n in range(8)], proc.stderr
    assert "AttributeError" not in proc.stderr, proc.stderr


_PROBE = """
    import json, sys
    import psutil
    from woflo.runners.dask import DaskRunner

    runner = DaskRunner({args})
    assert runner.submit(abs, -3).result(timeout=60) == 3
    me = psutil.Process()
    listening = sorted(
        {{c.laddr.ip for p in [me, *me.children(recursive=True)] for c in p.net_connections("inet")
         if c.status == psutil.CONN_LISTEN}}
    )
    scheduler = runner._cluster.scheduler
    print(json.dumps({{
        "address": runner.client.scheduler.address,
        "listening": listening,
        "http_port": scheduler.http_server.port,
    }}))
    runner.shutdown()
"""


@pytest.mark.parametrize("args", ["", "processes=False, n_workers=1"], ids=["default", "threads"])
def test_the_cluster_a_dask_runner_starts_listens_on_loopback_only(args: str) -> None:
    # Dask's defaults: a dashboard on every interface (0.0.0.0:8787).
    proc = run_script(_PROBE.format(args=args), timeout=110)
    assert proc.returncode == 0, proc.stderr
    seen: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    protocol, _, where = seen["address"].partition("://")
    # inproc (processes=False) is no socket at all.
    assert protocol == "inproc" or where.startswith("127.0.0.1:"), seen
    assert seen["listening"] == ["127.0.0.1"], seen
    # No dashboard on Dask's port: the scheduler's own HTTP routes take a free one.
    assert seen["http_port"] != 8787


def test_dashboard_on_request_and_only_for_the_runners_own_cluster(client: Any) -> None:
    with pytest.raises(ValueError, match="dashboard"):
        DaskRunner(client, dashboard=True)
    with pytest.raises(ValueError, match="dashboard"):
        DaskRunner(address=client.scheduler.address, dashboard=True)


@pytest.mark.timeout(120)
def test_shutdown_wait_from_a_done_callback_does_not_deadlock(tmp_path: Path) -> None:
    # The callback runs on the runner's result collector, which the other run
    # in flight needs to finish: shutdown(wait=True) there must not wait for it.
    import threading

    import funcs
    from helpers import wait_for_file

    ex = DaskRunner(dask_cluster.client())
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    second = ex.submit(funcs.block, started, release)
    wait_for_file(started, 60)
    returned = threading.Event()
    first = ex.submit(funcs.add, 1, 2)
    first.add_done_callback(lambda _: (ex.shutdown(wait=True), returned.set()))
    assert first.result(timeout=60) == 3
    Path(release).touch()
    assert second.result(timeout=60) == "released"
    assert returned.wait(60), "shutdown(wait=True) in a done-callback deadlocked"
    ex.shutdown(wait=True)
