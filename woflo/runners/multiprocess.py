"""woflo 0.8's ``woflo.runners.multiprocess``: `MultiprocessTaskRun` and its process types.

``MultiprocessTaskRun.process_type = SpawnProcess`` still selects how the
workers of ``@task(runner=MultiprocessTaskRun)`` start. The runs are now those
of `ProcessRunner`: a bounded pool of reused workers instead of one process per
call, with the same parallelism for up to `default_task_workers` calls at once.
"""

from __future__ import annotations

from typing import ClassVar

from woflo.runners.process import SHARED_IDLE_TIMEOUT_S, ProcessRunner, default_task_workers

__all__ = ["DefaultProcess", "ForkProcess", "MultiprocessTaskRun", "SpawnProcess"]


class DefaultProcess:
    """Start workers with woflo's ``"exec"`` method (fork+exec): the default."""

    start_method: ClassVar[str] = "exec"


class SpawnProcess(DefaultProcess):
    """Start workers with ``"spawn"``: a fresh interpreter that imports the main module.

    As with `multiprocessing`, a script then needs an ``if __name__ == "__main__":`` guard.
    """

    start_method = "spawn"


class ForkProcess(DefaultProcess):
    """Start workers with ``"fork"``: they inherit the parent's memory (POSIX only).

    Forking a parent that runs threads can deadlock the child; woflo's default
    (`DefaultProcess`) avoids that.
    """

    start_method = "fork"


class MultiprocessTaskRun(ProcessRunner):
    """woflo 0.8's default runner, now a `ProcessRunner`; the class attribute
    ``process_type`` picks the start method of the instance ``@task`` shares.

    Example:
        >>> MultiprocessTaskRun.process_type = SpawnProcess  # before the first call
    """

    process_type: ClassVar[type[DefaultProcess]] = DefaultProcess

    @classmethod
    def _shared_instance(cls) -> ProcessRunner:
        return cls(
            default_task_workers(),
            start_method=cls.process_type.start_method,
            idle_timeout=SHARED_IDLE_TIMEOUT_S,
        )

    @classmethod
    def _shared_key(cls) -> object:
        # Changing process_type later makes @task start a new shared instance.
        return cls.process_type
