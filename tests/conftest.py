from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Worker processes import the task functions from tests/funcs.py.
sys.path.insert(0, str(Path(__file__).parent))

from runners import RUNNER_KINDS, RunnerKind


@pytest.fixture(params=RUNNER_KINDS, ids=lambda k: k.name)
def kind(request: pytest.FixtureRequest) -> RunnerKind:
    return request.param  # type: ignore[no-any-return]


def _makes_stdlib_semaphores(item: pytest.Item) -> bool:
    """Whether a test may leave multiprocessing's own semaphores in garbage cycles.

    The runner kind over the stdlib's ProcessPoolExecutor; the Dask tests
    (a LocalCluster's nannies make two multiprocessing queues per worker
    they start, and the fault tests restart workers); and the modules that
    build ProcessPoolExecutors or multiprocessing objects themselves.
    """
    module = getattr(item, "module", None)
    return any(part in item.nodeid for part in ("pool-process", "dask")) or any(
        name in vars(module) for name in ("ProcessPoolExecutor", "multiprocessing")
    )


@pytest.fixture(autouse=True)
def _collect_stdlib_semaphores(request: pytest.FixtureRequest) -> Iterator[None]:
    """Collect a test's garbage cycles holding multiprocessing semaphores when it ends.

    A ProcessPoolExecutor leaves its queues' semaphores in reference cycles
    after shutdown. When the cyclic GC happens to free them while this thread
    is inside multiprocessing's resource tracker (the next pool registering
    its own semaphores or starting a worker), each semaphore's finalizer
    re-enters the tracker: CPython 3.11-3.13.6 raise an unraisable
    ReentrantCallError or warn "ResourceTracker called reentrantly"
    (python/cpython#131788, fixed in 3.13.7), and 3.10, whose tracker lock is
    not reentrant, can deadlock. A failing 3.13.0 CI run met it in a
    pool-process contract test. Collecting at the end of the tests that make
    such semaphores frees them outside the tracker.
    """
    yield
    if _makes_stdlib_semaphores(request.node):
        gc.collect()


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    """The Dask client of the one LocalCluster the Dask tests share (tests/dask_cluster.py).

    The cluster starts at the first test that asks for it and closes when the
    session ends. Tests that use it skip themselves without ``distributed``.
    """
    import dask_cluster

    yield dask_cluster.client()
    dask_cluster.close()


@pytest.fixture
def make(kind: RunnerKind) -> Iterator[Any]:
    """Build runners of the parametrized kind; each is shut down after the test."""
    made: list[Any] = []

    def build(*args: Any, **kwargs: Any) -> Any:
        ex = kind.make(*args, **kwargs)
        made.append(ex)
        return ex

    yield build
    for ex in made:
        ex.shutdown(wait=True, stop_running=True)


# Tests of a fast path itself (see woflo/_fastpath.py), skipped when its
# fallback is in use (WOFLO_NO_FAST_PATHS=1, as in CI's second pass).
def _fast_path_only() -> dict[str, bool]:
    from woflo import _fastpath, _looprun

    return {
        "tests/test_looprun.py::test_a_run_is_an_asyncio_future_that_gather_takes_as_it_is": _looprun.FAST,
        # The canary of the stdlib logging gate: asserts the fast gate is in use.
        "tests/test_log_bridge.py::test_the_gate_is_the_woflo_loggers_level_cache": _fastpath.ENABLED,
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    fast = _fast_path_only()
    for item in items:
        if not fast.get(item.nodeid, True):
            item.add_marker(pytest.mark.skip(reason="tests a fast path, and WOFLO_NO_FAST_PATHS selects its fallback"))
