"""The process worker pool: a private mechanism under ``ProcessRunner``.

It runs jobs in worker processes started through loky and reports each job
through two callbacks. It knows nothing of futures, retries or events.
"""

from woflo._process.pool import WorkerPool as WorkerPool

__all__ = ["WorkerPool"]
