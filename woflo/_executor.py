"""`WofloExecutor`: the drop-in `concurrent.futures.Executor`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar

from woflo._defaults import default_runner_class
from woflo._policy import POLICY_OPTIONS, Policy
from woflo._runner import Runner
from woflo._submit import unwrap_task
from woflo._taskrun import TaskRun

if TYPE_CHECKING:
    import multiprocessing.context

    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["WofloExecutor"]

T = TypeVar("T")

# Options that name how the runner is built, not a run's policy, and where
# users of the stdlib executors pass them (mostly for a ProcessRunner).
_RUNNER_HINTS = {
    "start_method": "ProcessRunner",
    "idle_timeout": "ProcessRunner",
    "worker_start_timeout": "ProcessRunner",
    "thread_name_prefix": "ThreadRunner",
    "max_concurrency": "AsyncRunner",
    "loop": "AsyncRunner",
    "address": "DaskRunner",
    "client": "DaskRunner",
}


def start_method_of(mp_context: object) -> str:
    """The start method a ``mp_context`` names: a multiprocessing context object or its name.

    Raises:
        TypeError: ``mp_context`` is neither a context nor a string.
    """
    if isinstance(mp_context, str):
        return mp_context
    import multiprocessing.context  # only for a context object: importing woflo's executor needs no multiprocessing

    if isinstance(mp_context, multiprocessing.context.BaseContext):
        # The default context answers with the method it stands for (and fixes it, as multiprocessing does).
        return str(mp_context.get_start_method())
    raise TypeError(
        f"mp_context must be a multiprocessing context or a start method's name, not {type(mp_context).__name__}"
    )


def _are(names: Iterable[str]) -> str:
    names = list(names)
    return f"{names[0]} is" if len(names) == 1 else f"{', '.join(names)} are"


def _spelling(runner: str, kwargs: Mapping[str, Any]) -> str:
    return f"runner={runner}({', '.join(f'{k}=...' for k in kwargs)})"


class WofloExecutor(Executor):
    """A `concurrent.futures.Executor` with retries, timeouts, stop and events.

    Hand it to any code that takes an Executor; every ``submit`` returns a
    `TaskRun`, which is a `concurrent.futures.Future`.

    Args:
        max_workers: workers at most, validated and defaulted as by the stdlib
            executor of the same kind.
        runner: the runner class to build (default: the default runner), or a
            runner instance to use as it is (``max_workers`` must then be ``None``).
            Shutting the executor down shuts the runner down.
        mp_context: as `ProcessPoolExecutor`'s: a `multiprocessing` context
            (``multiprocessing.get_context("spawn")``) or a start method's
            name, passed to the runner as its ``start_method``. ``None``:
            the runner's default (woflo's fork+exec launcher, not
            multiprocessing's default method).
        initializer: called with ``initargs`` in each new worker before its
            first task, as by the stdlib executors.
        initargs: the arguments of ``initializer``.
        max_tasks_per_child: a worker is replaced after that many tasks.
        **options: the policy for every ``submit``: ``retries``,
            ``retry_wait_time``, ``timeout``, ``deadline``, tenacity's
            ``stop``/``wait``/``retry``, or ``retrying``; limits:
            ``max_concurrency``, ``rate_limit``, ``limits`` (docs/orchestration.md).

    Raises:
        TypeError: an option the runner class does not take
            (``max_tasks_per_child`` for a `ThreadRunner`), a runner option
            given with a runner instance, or a runner's own option (such as
            ``start_method``) given to the executor: the message shows the
            ``runner=ProcessRunner(...)`` spelling that takes it. Also an
            unknown policy option, or a value of the wrong type.
        ValueError: a value out of range (``max_workers=0``, an unknown start method).

    Example:
        >>> import concurrent.futures
        >>> from woflo import WofloExecutor
        >>> with WofloExecutor(max_workers=2, retries=3, timeout=30) as ex:
        ...     runs = [ex.submit(pow, 2, n) for n in range(4)]
        ...     sorted(r.result() for r in concurrent.futures.as_completed(runs))
        [1, 2, 4, 8]
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        runner: type[Runner] | Runner | None = None,
        mp_context: multiprocessing.context.BaseContext | str | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
        **options: Unpack[PolicyOptions],
    ) -> None:
        self._check_policy_options(options)
        self._policy = Policy.build(**options)
        # Only the options given are passed on: a runner class that does not
        # take one is fine as long as nobody asked for it.
        runner_kwargs: dict[str, Any] = {}
        if mp_context is not None:
            runner_kwargs["start_method"] = start_method_of(mp_context)
        if initializer is not None:
            runner_kwargs["initializer"] = initializer
        if initargs != ():
            runner_kwargs["initargs"] = initargs
        if max_tasks_per_child is not None:
            runner_kwargs["max_tasks_per_child"] = max_tasks_per_child
        if isinstance(runner, Runner):
            if max_workers is not None:
                raise ValueError("max_workers sizes a runner class; a runner instance is already sized")
            if runner_kwargs:
                raise TypeError(
                    f"{_are(runner_kwargs)} for the runner the executor builds, and this runner is built: "
                    f"give it to the runner instead, {_spelling(type(runner).__name__, runner_kwargs)}"
                )
            self._runner = runner
            return
        cls = default_runner_class() if runner is None else runner
        if not (isinstance(cls, type) and issubclass(cls, Runner)):
            raise TypeError(f"runner must be a woflo runner class or instance, not {type(runner).__name__}")
        parameters = inspect.signature(cls).parameters
        if max_workers is not None and "max_workers" not in parameters:
            raise ValueError(f"{cls.__name__} takes no max_workers")
        refused = [name for name in runner_kwargs if name not in parameters]
        if refused:
            raise TypeError(
                f"{cls.__name__} takes no {', '.join('mp_context' if k == 'start_method' else k for k in refused)}; "
                f"a ProcessRunner does: {_spelling('ProcessRunner', runner_kwargs)}"
            )
        if max_workers is not None:
            runner_kwargs["max_workers"] = max_workers
        self._runner = cls(**runner_kwargs)

    @staticmethod
    def _check_policy_options(options: Mapping[str, Any]) -> None:
        # A runner's own option given to the executor (start_method=...) would
        # otherwise fail as an "unknown option" with no word on where it goes.
        misplaced = {k: v for k, v in options.items() if k not in POLICY_OPTIONS and k in _RUNNER_HINTS}
        if misplaced:
            name = sorted({_RUNNER_HINTS[k] for k in misplaced})[0]
            raise TypeError(
                f"{_are(misplaced)} an option of the runner, not of the executor: "
                f"WofloExecutor({_spelling(name, misplaced)})"
            )

    @property
    def runner(self) -> Runner:
        """The runner that runs the attempts."""
        return self._runner

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskRun[T]:
        """Run ``fn(*args, **kwargs)`` under this executor's policy; return its `TaskRun`."""
        fn, policy, name, naming = unwrap_task(fn, self._policy)
        return self._runner._submit(fn, args, kwargs, policy, name if naming is None else naming(args, kwargs))

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
        progress: bool = False,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` as `Runner.map`, each call a run under this policy."""
        return self._runner._map(fn, iterables, timeout, chunksize, self._policy, buffersize, progress)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, stop_running: bool = False) -> None:
        """Shut the runner down; see `Runner.shutdown`."""
        self._runner.shutdown(wait, cancel_futures=cancel_futures, stop_running=stop_running)

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self._runner.__exit__(exc_type, exc_val, exc_tb)

    def __repr__(self) -> str:
        return f"<WofloExecutor runner={self._runner!r}>"
