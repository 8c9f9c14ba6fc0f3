"""Runs as inputs on DaskRunner: inputs of the same runner stay on the cluster as Dask futures."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import funcs
import pytest

from woflo import ProcessRunner, ThreadRunner, UpstreamFailed

distributed = pytest.importorskip("distributed")


from woflo.runners.dask import DaskRunner  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def gated(threads: ThreadRunner, value: object) -> tuple[threading.Event, Any]:
    """A thread run that returns ``value`` once the event is set: what it feeds cannot start before."""
    gate = threading.Event()

    def wait_for_gate() -> object:
        assert gate.wait(60), "the test never opened the gate"
        return value

    return gate, threads.submit(wait_for_gate)


def test_the_check_value_cannot_reach_the_client(client: Any) -> None:
    # The premise of the tests below: were a ClusterOnly result gathered to
    # the client, fetching it would fail.
    with DaskRunner(client) as ex, pytest.raises(RuntimeError, match="not a Dask worker"):
        ex.submit(funcs.make_cluster_only, 3).result(timeout=60)


def test_an_input_of_the_same_runner_stays_on_the_cluster(client: Any) -> None:
    with ThreadRunner(1) as threads, DaskRunner(client) as ex:
        gate, seven = gated(threads, 7)
        produced = ex.submit(funcs.make_cluster_only, seven)  # waits for the gate
        consumed = ex.submit(funcs.cluster_only_value, produced, factor=2)
        gate.set()
        assert consumed.result(timeout=60) == 14
        assert produced.done() and produced.exception() is None
        assert "on the cluster" in repr(produced)
        # Fetched on demand only: here it cannot be unpickled on the client.
        with pytest.raises(RuntimeError, match="not a Dask worker"):
            produced.result(timeout=60)


def test_inputs_inside_containers_and_clashing_keywords_stay_on_the_cluster(client: Any) -> None:
    with ThreadRunner(1) as threads, DaskRunner(client) as ex:
        gate, one = gated(threads, 1)
        a = ex.submit(funcs.make_cluster_only, one)
        b = ex.submit(funcs.make_cluster_only, 2)
        c = ex.submit(funcs.make_cluster_only, 3)
        # key= is also client.submit's own keyword: the call goes through a wrapper.
        consumed = ex.submit(funcs.values_of, [a, b], key=c)
        gate.set()
        assert consumed.result(timeout=60) == [1, 2, 3]


def test_a_retried_input_passes_its_final_attempts_future(client: Any, tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with ThreadRunner(1) as threads, DaskRunner(client, retries=2, retry_wait_time=0) as ex:
        gate, five = gated(threads, 5)
        produced = ex.submit(funcs.fail_times_cluster_only, counter, 1, five)
        consumed = ex.submit(funcs.cluster_only_value, produced, 10)
        gate.set()
        assert consumed.result(timeout=60) == 50
        assert [a.outcome for a in produced.attempts] == ["failed", "succeeded"]
        assert [a.outcome for a in consumed.attempts] == ["succeeded"]


def test_a_failed_dask_input_fails_its_consumer(client: Any) -> None:
    with DaskRunner(client) as ex:
        bad = ex.submit(funcs.boom, "no page")
        consumed = ex.submit(funcs.identity, bad)
        with pytest.raises(UpstreamFailed) as info:
            consumed.result(timeout=60)
        assert isinstance(info.value, ValueError)
        assert consumed.attempts == []
        assert info.value.upstream_run_id == bad.run_id


def test_dask_and_thread_and_process_runs_feed_each_other(client: Any) -> None:
    with ThreadRunner(1) as threads, ProcessRunner(1) as processes, DaskRunner(client) as ex:
        on_process = processes.submit(funcs.double, 3)
        on_dask = ex.submit(funcs.double, on_process)  # a process run feeding a Dask run
        on_thread = threads.submit(funcs.double, on_dask)  # a Dask run feeding a thread run
        assert on_thread.result(timeout=60) == 24
        # A Dask run kept on the cluster for a Dask consumer, also read by a thread run.
        gate, four = gated(threads, 4)
        shared = ex.submit(funcs.double, four)
        on_cluster = ex.submit(funcs.double, shared)
        in_thread = threads.submit(funcs.double, shared)
        gate.set()
        assert (on_cluster.result(timeout=60), in_thread.result(timeout=60)) == (16, 16)
        assert shared.result() == 8  # fetched on demand


def test_fetching_a_result_kept_on_the_cluster_counts_in_result_s_timeout(client: Any) -> None:
    # The timeout bounds the wait and the fetch together (it was given to
    # each), and a fetch too slow raises the stdlib's TimeoutError with the
    # run's name, as a run too slow does.
    with ThreadRunner(1) as threads, DaskRunner(client) as ex:
        gate, seven = gated(threads, 7)
        produced = ex.submit(funcs.double, seven)
        consumed = ex.submit(funcs.double, produced)
        gate.set()
        assert consumed.result(timeout=60) == 28
        assert produced.done() and "on the cluster" in repr(produced)
        with pytest.raises(concurrent.futures.TimeoutError, match="result of double did not arrive within 0s"):
            produced.result(timeout=0)
        assert produced.result(timeout=60) == 14
