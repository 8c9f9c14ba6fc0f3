"""The process worker pool: a private mechanism under ``ProcessRunner``.

It runs jobs in worker processes and reports each job through two callbacks.
It knows nothing of futures, retries or events.

``WorkerPool`` is imported on first use: a worker process imports this
package too (for ``worker`` and ``wire``), and needs none of the pool's side.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from woflo._process.pool import WorkerPool as WorkerPool

__all__ = ["WorkerPool"]


def __getattr__(name: str) -> Any:
    if name == "WorkerPool":
        from woflo._process.pool import WorkerPool

        return WorkerPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
