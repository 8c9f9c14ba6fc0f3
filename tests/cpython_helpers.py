"""Helpers of the port of CPython's ``Lib/test/test_concurrent_futures`` (tests/contract/test_cpython_*.py).

CPython's tests mix the executor's futures with futures built by hand in every
state; `stdlib_futures` builds those with the public `Future` API only. Runs
that must stay pending or running wait on a `Gate` (two files), so the same
test works for threads, processes and Dask workers alike.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import funcs
import pytest
from helpers import wait_for_file
from runners import RUNNER_KINDS, RunnerKind

TESTS_DIR = Path(__file__).parent
REPO_DIR = TESTS_DIR.parent


@dataclass
class StdlibFutures:
    """One plain `concurrent.futures.Future` in each state CPython's tests use."""

    pending: cf.Future[Any]
    running: cf.Future[Any]
    cancelled: cf.Future[Any]  # cancel() called, waiters not yet told (state CANCELLED)
    cancelled_and_notified: cf.Future[Any]
    exception: cf.Future[Any]  # raised OSError
    successful: cf.Future[Any]  # returned 42


def stdlib_futures() -> StdlibFutures:
    """Fresh futures in every state, made through the public API."""
    running: cf.Future[Any] = cf.Future()
    assert running.set_running_or_notify_cancel()
    cancelled: cf.Future[Any] = cf.Future()
    assert cancelled.cancel()
    notified: cf.Future[Any] = cf.Future()
    assert notified.cancel()
    assert not notified.set_running_or_notify_cancel()
    failed: cf.Future[Any] = cf.Future()
    failed.set_exception(OSError())
    ok: cf.Future[Any] = cf.Future()
    ok.set_result(42)
    return StdlibFutures(cf.Future(), running, cancelled, notified, failed, ok)


class Gate:
    """A run of `funcs.block` says it started through one file and waits for another."""

    def __init__(self, directory: Path, name: str) -> None:
        self.started = str(directory / f"{name}.started")
        self.release_file = directory / f"{name}.release"

    @property
    def args(self) -> tuple[str, str]:
        """The arguments of `funcs.block` / `funcs.block_then_raise`."""
        return self.started, str(self.release_file)

    def wait_started(self, timeout: float = 30.0) -> None:
        wait_for_file(self.started, timeout)

    def has_started(self) -> bool:
        return os.path.exists(self.started)

    def release(self) -> None:
        self.release_file.touch()


class Gates:
    """Makes `Gate`s and opens them all at the end, so that no worker stays blocked."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._made: list[Gate] = []
        self._held: list[cf.Future[Any]] = []
        self._names = itertools.count()

    def new(self) -> Gate:
        gate = Gate(self._directory, f"gate{next(self._names)}")
        self._made.append(gate)
        return gate

    def hold(self, ex: cf.Executor, fn: Callable[..., Any] = funcs.block) -> tuple[Any, Gate]:
        """Submit ``fn(started, release)`` of a new gate; the run is waited for at the end."""
        gate = self.new()
        run = ex.submit(fn, *gate.args)
        self._held.append(run)
        return run, gate

    def close(self) -> None:
        """Open every gate and wait for the held runs, so the next test finds free workers."""
        for gate in self._made:
            gate.release()
        cf.wait(self._held, timeout=30)


def open_gates(tmp_path: Path) -> Iterator[Gates]:
    """Fixture body: request it after the runner's fixture, so its gates open before the runner shuts down."""
    gates = Gates(tmp_path)
    yield gates
    gates.close()


def module_runner_fixtures(max_workers: int = 2) -> tuple[Any, Any, Any]:
    """Fixtures ``kind``, ``ex`` and ``gates`` for a test module that shares one runner per kind.

    Starting worker processes costs more than most of these tests; tests that
    leave the runner as they found it (every held run released and finished,
    see `Gates.close`) share one runner of each kind of ``RUNNER_KINDS``.
    """

    def kind(request: pytest.FixtureRequest) -> RunnerKind:
        return request.param  # type: ignore[no-any-return]

    def ex(kind: RunnerKind) -> Iterator[Any]:
        runner = kind.make(max_workers=max_workers)
        yield runner
        runner.shutdown(wait=True, stop_running=True)

    ids = [k.name for k in RUNNER_KINDS]
    return (
        pytest.fixture(scope="module", params=RUNNER_KINDS, ids=ids, name="kind")(kind),
        pytest.fixture(scope="module", name="ex")(ex),
        pytest.fixture(name="gates")(open_gates),
    )


def kinds(predicate: Callable[[RunnerKind], bool]) -> Any:
    """``pytest.mark.parametrize`` over the runner kinds that ``predicate`` accepts."""
    chosen = [k for k in RUNNER_KINDS if predicate(k)]
    return pytest.mark.parametrize("kind", chosen, ids=[k.name for k in chosen])


def is_process(kind: RunnerKind) -> bool:
    """The kinds whose attempts run in woflo's own worker processes (not Dask's)."""
    return kind.remote and kind.name != "dask"


def is_thread(kind: RunnerKind) -> bool:
    return kind.name in ("thread", "executor-thread")


def skip_inline(kind: RunnerKind) -> None:
    if kind.inline:
        pytest.skip("inline runner: submit returns a finished run, nothing can stay pending or running")


def skip_unsized(kind: RunnerKind) -> None:
    if not kind.sized:
        pytest.skip("no run ever waits for a worker here (Dask queues every run in its scheduler)")


def run_script(source: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a fresh interpreter that imports woflo and tests/funcs.py from this tree."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_DIR), str(TESTS_DIR)]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(TESTS_DIR),
    )


__all__ = [
    "Gate",
    "Gates",
    "StdlibFutures",
    "is_process",
    "is_thread",
    "kinds",
    "module_runner_fixtures",
    "open_gates",
    "run_script",
    "skip_inline",
    "skip_unsized",
    "stdlib_futures",
]
