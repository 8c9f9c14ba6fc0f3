"""One real LocalCluster (2 worker processes, 1 thread each) shared by every Dask test.

Started on first use, closed when the test session ends (see `close`). Tests
that leave tasks running on it (Dask cannot interrupt a running task) must
let them end quickly, so the next test finds free workers.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {}


def client() -> Any:
    """The shared client, starting the cluster on first use."""
    import dask
    import distributed

    with _lock:
        if "client" not in _state:
            # As DaskRunner does for the clusters it owns: a killed worker
            # fails the task at once instead of Dask resubmitting it.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                cluster = distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
            _state["cluster"] = cluster
            _state["client"] = distributed.Client(cluster, set_as_default=False)
        return _state["client"]


def close() -> None:
    with _lock:
        c, cluster = _state.pop("client", None), _state.pop("cluster", None)
    if c is not None:
        c.close()
        cluster.close()
