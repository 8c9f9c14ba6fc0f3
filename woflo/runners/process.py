"""`ProcessRunner`: attempts run in worker processes, fresh interpreters started by fork+exec."""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from woflo._cpus import cpu_count
from woflo._errors import AttemptTimeout, WorkerCrashed
from woflo._policy import Policy
from woflo._process.pool import WorkerPool
from woflo._runner import Attempt, Runner
from woflo._shared import untrack
from woflo._submit import chain_results, check_map_args, map_total, submit_ahead, task_name, unwrap_task
from woflo.runners.thread import check_initializer, check_max_workers

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["START_METHODS", "ProcessRunner", "default_task_workers"]

T = TypeVar("T")

#: The start methods a `ProcessRunner` accepts; ``None`` means woflo's own ``"exec"``.
START_METHODS = frozenset({"exec", "loky", "spawn", "forkserver", "fork"})

#: How long a worker of the shared ``@task`` runner may stay idle before it exits.
SHARED_IDLE_TIMEOUT_S = 10.0

#: The default ``worker_start_timeout``: how long a new worker may take to be
#: ready (interpreter start, imports, the initializer) before it is killed.
WORKER_START_TIMEOUT_S = 60.0


def _take(items: Iterator[tuple[Any, ...]], n: int) -> tuple[Any, ...]:
    """The next ``n`` calls' arguments, one after the other in one flat tuple."""
    return tuple(itertools.chain.from_iterable(itertools.islice(items, n)))


def _run_chunk(fn: Callable[..., T], arity: int, *flat: Any) -> list[T]:
    """Runs in the worker: one chunk of a chunked `map`, every call's ``arity`` arguments in a row.

    Each call's arguments are positional arguments of the chunk run itself,
    not a tuple of them: a run among a call's arguments, or one level down
    in a list, tuple or dict argument, is then where runs as inputs are
    looked for (woflo/_inputs.py), so the chunk waits for it and gets its
    result, as ``chunksize=1`` does.
    """
    return [fn(*flat[i : i + arity]) for i in range(0, len(flat), arity)]


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


def _jobs_sent(tokens: list[Any]) -> list[int]:
    # These jobs are about to reach a worker: from now on their runs count as
    # running and cancel() returns False (the stdlib's rule for a call moved
    # to the call queue), so a run whose cancel() succeeded never runs.
    # Refused: the attempts already settled or whose run is over. The
    # attempt's timeout still starts in _job_started. One call per batch.
    refused: list[int] = []
    for i, attempt in enumerate(tokens):
        if not attempt.set_running():
            refused.append(i)
    return refused


def _job_started(token: object, pid: int) -> None:
    # The pool's callbacks are plain functions of the attempt, never bound
    # methods of the runner: the pool's manager thread must not keep the
    # runner alive (see Runner's release when unreachable).
    attempt: Attempt = token  # type: ignore[assignment]
    wait_timer = attempt.handle
    if wait_timer is not None:
        # Its wait for a worker to start is over (see ProcessRunner._check_wait).
        attempt.handle = None
        wait_timer.cancel()
    attempt.begin(pid)


def _job_done(token: object, ok: bool, value: Any, pid: int | None) -> None:
    attempt: Attempt = token  # type: ignore[assignment]
    if ok:
        attempt.succeed(value)
    elif isinstance(value, WorkerCrashed):
        attempt.fail(value, outcome="crashed")
    else:
        attempt.fail(value)


def default_task_workers() -> int:
    """The bound of the shared ``@task`` runner: ``max(16, 4 * cpu_count)``.

    woflo 0.8 started one process per call, so ten one-second calls ended after
    about a second. The shared runner keeps that promise for up to this many
    calls at once, without 0.8's unbounded processes: its workers start on
    demand and exit after 10 s idle.
    """
    return max(16, 4 * cpu_count())


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
            ``loky.cpu_count()`` (aware of cgroup and affinity limits, computed
            without importing loky).
        start_method: ``None`` or ``"exec"`` (the default): woflo's own
            fork+exec of a fresh interpreter, safe with threads, no
            re-import of ``__main__``, no helper process. ``"loky"``: the
            same through loky, which also starts loky's and
            multiprocessing's resource trackers (two processes that stay
            until the interpreter exits). ``"spawn"`` and ``"forkserver"``
            (``multiprocessing``'s: they start its resource tracker, and
            the fork server, by design), or ``"fork"``.
        initializer: called with ``initargs`` in each new worker.
        max_tasks_per_child: replace a worker after this many attempts.
        idle_timeout: a worker idle this many seconds exits (``None`` or
            ``math.inf``: never). Any finite number of seconds works.
        worker_start_timeout: a new worker that is not ready this many seconds
            after its start (a hanging ``initializer``, a process stopped
            with SIGSTOP) is killed; this counts as a failed start (default
            60 s; ``None``: wait for ever).
        **options: the policy options of `woflo.Runner`.

    A failing ``initializer``, or three workers in a row that die or time out
    while starting, break the runner: the runs waiting for a worker fail with
    `woflo.BrokenProcessRunner` (the initializer's exception is its
    ``__cause__``), never retried, and so does every later ``submit`` (it
    raises), as with a broken ``ProcessPoolExecutor``. A start that fails for
    want of resources (``EMFILE``, ``EAGAIN``) does not break it: the runs
    that no live worker will take fail with `woflo.WorkerCrashed`, and the
    next submission tries again.

    With an ``initializer``, an attempt that waits while no worker is ready
    (all are starting: a fresh runner, or every worker crashed) has the time
    the initializer runs counted against its ``timeout``: if the initializer
    has not finished ``timeout`` seconds after it began (or after the
    submission, if later), the attempt fails with `woflo.AttemptTimeout`
    (retryable like any timeout). The interpreter's own start is not counted,
    so a cold pool does not fail short timeouts. Once the attempt starts, its
    timeout counts afresh from its start, as always. An attempt merely queued
    behind busy workers waits without a timeout, as in the stdlib; the run's
    ``deadline`` counts from submission in every case; ``worker_start_timeout``
    bounds every start.

    A runner dropped without `shutdown` releases its workers once it is
    unreachable, as ``ProcessPoolExecutor`` does; a run keeps its runner
    reachable (`TaskRun.runner`), so a referenced run always finishes.

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
        worker_start_timeout: float | None = WORKER_START_TIMEOUT_S,
        **options: Unpack[PolicyOptions],
    ) -> None:
        workers = check_max_workers(cpu_count() if max_workers is None else max_workers)
        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {sorted(START_METHODS)} or None, not {start_method!r}")
        if max_tasks_per_child is not None and (
            isinstance(max_tasks_per_child, bool) or not isinstance(max_tasks_per_child, int)
        ):
            raise TypeError("max_tasks_per_child must be an int or None")
        initargs = check_initializer(initializer, initargs)
        idle_timeout = check_idle_timeout(idle_timeout)
        if worker_start_timeout is not None:
            if isinstance(worker_start_timeout, bool) or not isinstance(worker_start_timeout, (int, float)):
                raise TypeError("worker_start_timeout must be a number of seconds or None")
            if not worker_start_timeout > 0 or worker_start_timeout == float("inf"):
                raise ValueError(f"worker_start_timeout must be > 0 and finite, not {worker_start_timeout!r}")
        super().__init__(**options)
        self._max_workers = workers
        self._start_method = start_method or "exec"
        try:
            self._pool = WorkerPool(
                workers,
                start_method=self._start_method,
                initializer=initializer,
                initargs=initargs,
                max_tasks_per_child=max_tasks_per_child,
                idle_timeout=idle_timeout,
                start_timeout=worker_start_timeout,
                on_start=_job_started,
                on_done=_job_done,
                on_sent=_jobs_sent,
            )
        except BaseException:
            untrack(self)  # half built: nothing for the exit hook to shut down
            raise
        self.release_on_drop(functools.partial(self._pool.shutdown, False))

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
        """How workers are started: ``"exec"``, ``"loky"``, ``"spawn"``, ``"forkserver"`` or ``"fork"``."""
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
        progress: bool = False,
    ) -> Iterator[T]:
        """As `Runner.map`; with ``chunksize > 1`` each chunk of calls is one run.

        As with `ProcessPoolExecutor`, a chunk is what is sent, retried, timed
        out and logged as a whole: big chunks cut the per-call cost, small ones
        keep a retry or a crash cheap (and ``progress`` counts chunks).
        Under limits (``max_concurrency``, ``rate_limit``, ``limits``) every
        call is a run of its own, whatever ``chunksize``: a limit counts calls.
        """
        check_map_args(timeout, chunksize, buffersize)
        if chunksize > 1 and unwrap_task(fn, policy)[1].limits is not None:
            chunksize = 1  # a limit counts calls: each is a run of its own
        if chunksize == 1:
            return super()._map(fn, iterables, timeout, chunksize, policy, buffersize, progress)
        # A chunk is one run of many calls: named after the task, not one call.
        fn, policy, name, _ = unwrap_task(fn, policy)
        chunks = iter(functools.partial(_take, zip(*iterables, strict=False), chunksize), ())
        run_chunk = functools.partial(_run_chunk, fn, len(iterables))
        name = name or task_name(fn)
        submissions = (self._submit(run_chunk, chunk, {}, policy, name) for chunk in chunks)
        end = None if timeout is None else time.monotonic() + timeout
        total = map_total(iterables, chunksize) if progress else None
        return chain_results(submit_ahead(submissions, buffersize, end, progress=progress, total=total))

    def broken_error(self) -> BaseException | None:
        broken = self._pool.broken
        return None if broken is None else broken()

    def start_attempt(self, attempt: Attempt) -> None:
        pool = self._pool
        if pool.starting and pool.has_initializer:
            timeout = attempt.timeout
            if timeout is not None:
                # It waits for a worker to start (a fresh runner, or every worker
                # crashed): an initializer that hangs must not hold it for ever.
                # Armed before the job is queued, so _job_started always sees it.
                # The attempt is the pool's token: its handle slot is free.
                attempt.handle = self.call_later(timeout, lambda: self._check_wait(attempt), "timeout")
        pool.submit(attempt, attempt.fn, attempt.args, attempt.kwargs)

    def _check_wait(self, attempt: Attempt) -> None:
        """The attempt waited ``timeout`` for a worker: fail it if the initializer is to blame.

        Runs on the timer thread. The time the initializer of a starting worker
        has run counts against the timeout; the interpreter's own start does
        not (a cold pool on a loaded machine must not fail short timeouts), and
        neither does a wait for busy workers once one is ready.
        """
        if attempt.started is not None or attempt.settled:
            return
        timeout = attempt.timeout
        assert timeout is not None
        since = self._pool.waiting_since()
        if since is None:
            if self._pool.starting:  # no initializer began yet: look again later
                attempt.handle = self.call_later(timeout, lambda: self._check_wait(attempt), "timeout")
            return
        left = since + timeout - time.monotonic()
        if left > 0:
            attempt.handle = self.call_later(left, lambda: self._check_wait(attempt), "timeout")
            return
        # Out of the queue first: a worker must not start it after this.
        if attempt.started is not None or not self._pool.kill(attempt):
            return  # it started meanwhile: its own timeout counts now
        attempt.fail(
            AttemptTimeout(
                f"attempt {attempt.number} of {attempt.run.name} timed out after {timeout:g}s"
                " waiting for the worker initializer to finish"
            ),
            outcome="timed_out",
        )

    def stop_attempt(self, attempt: Attempt) -> None:
        self._pool.kill(attempt)

    def owns_current_thread(self) -> bool:
        return super().owns_current_thread() or self._pool.on_manager_thread()

    def close_workers(self, wait: bool) -> None:
        self._pool.shutdown(wait=wait)
