"""`WofloExecutor`: the drop-in `concurrent.futures.Executor`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar

from woflo._defaults import default_runner_class
from woflo._policy import Policy
from woflo._runner import Runner
from woflo._submit import unwrap_task
from woflo._taskrun import TaskRun

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["WofloExecutor"]

T = TypeVar("T")


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
        **options: the policy for every ``submit``: ``retries``,
            ``retry_wait_time``, ``timeout``, ``deadline``, tenacity's
            ``stop``/``wait``/``retry``, or ``retrying``.

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
        **options: Unpack[PolicyOptions],
    ) -> None:
        self._policy = Policy.build(**options)
        if isinstance(runner, Runner):
            if max_workers is not None:
                raise ValueError("max_workers sizes a runner class; a runner instance is already sized")
            self._runner = runner
            return
        cls = default_runner_class() if runner is None else runner
        if not (isinstance(cls, type) and issubclass(cls, Runner)):
            raise TypeError(f"runner must be a woflo runner class or instance, not {type(runner).__name__}")
        if max_workers is None:
            self._runner = cls()
        elif "max_workers" in inspect.signature(cls).parameters:
            self._runner = cls(max_workers)  # type: ignore[call-arg]
        else:
            raise ValueError(f"{cls.__name__} takes no max_workers")

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
