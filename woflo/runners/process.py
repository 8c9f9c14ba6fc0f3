"""`ProcessRunner`: attempts run in worker processes started through loky."""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import loky

from woflo._errors import WorkerCrashed
from woflo._policy import Policy
from woflo._process.pool import WorkerPool
from woflo._runner import Attempt, Runner
from woflo._shared import untrack
from woflo._submit import submit_ahead, task_name, unwrap_task
from woflo.runners.thread import check_initializer, check_max_workers

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["START_METHODS", "ProcessRunner", "default_task_workers"]

T = TypeVar("T")

#: The start methods a `ProcessRunner` accepts; ``None`` means loky's ``"loky"``.
START_METHODS = frozenset({"loky", "spawn", "forkserver", "fork"})

#: How long a worker of the shared ``@task`` runner may stay idle before it exits.
SHARED_IDLE_TIMEOUT_S = 10.0


def _take(items: Iterator[tuple[Any, ...]], n: int) -> list[tuple[Any, ...]]:
    return list(itertools.islice(items, n))


def _run_chunk(fn: Callable[..., T], chunk: list[tuple[Any, ...]]) -> list[T]:
    """Runs in the worker: one chunk of a chunked `map`."""
    return [fn(*args) for args in chunk]


def check_idle_timeout(idle_timeout: float | None) -> float | None:
    """Validate ``idle_timeout``; ``math.inf`` means never, as ``None`` does.

    Raises:
        TypeError: not a number (``True`` is not taken as 1 second).
        ValueError: not positive, or NaN.
    """
    if idle_timeout is None:
        return None
    if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
        raise TypeError(f"idle_timeout must be a number of seconds or None, not {type(idle_timeout).__name__}")
    if math.isnan(idle_timeout) or idle_timeout <= 0:
        raise ValueError(f"idle_timeout must be > 0, not {idle_timeout!r}")
    return None if math.isinf(idle_timeout) else float(idle_timeout)


def default_task_workers() -> int:
    """The bound of the shared ``@task`` runner: ``max(16, 4 * cpu_count)``.

    woflo 0.8 started one process per call, so ten one-second calls ended after
    about a second. The shared runner keeps that promise for up to this many
    calls at once, without 0.8's unbounded processes: its workers start on
    demand and exit after 10 s idle.
    """
    return max(16, 4 * int(loky.cpu_count()))


class ProcessRunner(Runner):
    """Runs attempts in worker processes: real parallelism, real stopping.

    A worker that dies (segfault, ``SIGKILL``, ``os._exit``, the OOM killer)
    fails only its own attempt, with `woflo.WorkerCrashed` (retryable); a new
    worker takes its place and every other run carries on. A timeout or
    `TaskRun.stop` kills the worker running that attempt (and the processes it
    started) and starts a replacement. Functions, arguments and results travel
    with cloudpickle, so lambdas, closures and functions defined in ``__main__``
    work; an argument or result that cannot be pickled fails only its run, with
    `woflo.SerializationError`.

    Args:
        max_workers: worker processes at most, started on demand; default
            ``loky.cpu_count()`` (aware of cgroup and affinity limits).
        start_method: ``None`` or ``"loky"`` (fork+exec: safe with threads, the
            default), ``"spawn"``, ``"forkserver"``, or ``"fork"``.
        initializer: called with ``initargs`` in each new worker.
        max_tasks_per_child: replace a worker after this many attempts.
        idle_timeout: a worker idle this many seconds exits (``None`` or
            ``math.inf``: never). Any finite number of seconds works.
        **options: the policy options of `woflo.Runner`.

    Example:
        >>> with ProcessRunner(max_workers=2, retries=2, timeout=60) as ex:
        ...     list(ex.map(pow, [2, 3], [5, 2]))
        [32, 9]
    """

    runner_name = "process"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        start_method: str | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
        idle_timeout: float | None = None,
        **options: Unpack[PolicyOptions],
    ) -> None:
        workers = check_max_workers(int(loky.cpu_count()) if max_workers is None else max_workers)
        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {sorted(START_METHODS)} or None, not {start_method!r}")
        if max_tasks_per_child is not None and (
            isinstance(max_tasks_per_child, bool) or not isinstance(max_tasks_per_child, int)
        ):
            raise TypeError("max_tasks_per_child must be an int or None")
        initargs = check_initializer(initializer, initargs)
        idle_timeout = check_idle_timeout(idle_timeout)
        super().__init__(**options)
        self._max_workers = workers
        self._start_method = start_method or "loky"
        try:
            self._pool = WorkerPool(
                workers,
                start_method=None if start_method == "loky" else start_method,
                initializer=initializer,
                initargs=initargs,
                max_tasks_per_child=max_tasks_per_child,
                idle_timeout=idle_timeout,
                on_start=self._on_start,
                on_done=self._on_done,
            )
        except BaseException:
            untrack(self)  # half built: nothing for the exit hook to shut down
            raise

    @classmethod
    def _shared_instance(cls) -> ProcessRunner:
        """The instance ``@task`` shares: grows on demand, retires idle workers."""
        return cls(default_task_workers(), idle_timeout=SHARED_IDLE_TIMEOUT_S)

    @property
    def max_workers(self) -> int:
        """The most worker processes alive at once."""
        return self._max_workers

    @property
    def start_method(self) -> str:
        """How workers are started: ``"loky"``, ``"spawn"``, ``"forkserver"`` or ``"fork"``."""
        return self._start_method

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        return self._pool.pids

    def _map(
        self,
        fn: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        timeout: float | None,
        chunksize: int,
        policy: Policy,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """As `Runner.map`; with ``chunksize > 1`` each chunk of calls is one run.

        As with `ProcessPoolExecutor`, a chunk is what is sent, retried, timed
        out and logged as a whole: big chunks cut the per-call cost, small ones
        keep a retry or a crash cheap.
        """
        if chunksize <= 1:
            return super()._map(fn, iterables, timeout, chunksize, policy, buffersize)
        fn, policy, name = unwrap_task(fn, policy)
        chunks = iter(functools.partial(_take, zip(*iterables, strict=False), chunksize), [])
        run_chunk = functools.partial(_run_chunk, fn)
        name = name or task_name(fn)
        submissions = (self._submit(run_chunk, (chunk,), {}, policy, name) for chunk in chunks)
        end = None if timeout is None else time.monotonic() + timeout
        return itertools.chain.from_iterable(submit_ahead(submissions, buffersize, end))

    def _start(self, attempt: Attempt) -> None:
        self._pool.submit(attempt, attempt.fn, attempt.args, attempt.kwargs)

    def _on_start(self, token: object, pid: int) -> None:
        attempt: Attempt = token  # type: ignore[assignment]
        # A run cancelled after its attempt was sent still runs there; its
        # result is then ignored, which is cheaper than killing the worker.
        attempt.begin(pid)

    def _on_done(self, token: object, ok: bool, value: Any, pid: int | None) -> None:
        attempt: Attempt = token  # type: ignore[assignment]
        if ok:
            attempt.succeed(value)
        elif isinstance(value, WorkerCrashed):
            attempt.fail(value, outcome="crashed")
        else:
            attempt.fail(value)

    def _stop(self, attempt: Attempt) -> None:
        self._pool.kill(attempt)

    def _close(self, wait: bool) -> None:
        self._pool.shutdown(wait=wait)
