"""``@task``: a function that submits itself when called (the woflo 0.8 API)."""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from woflo._defaults import coroutine_runner, default_runner
from woflo._policy import Policy
from woflo._runner import Runner
from woflo._shared import shared_runner
from woflo._submit import task_name
from woflo._taskrun import TaskRun

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from woflo._policy import PolicyOptions

__all__ = ["Task", "task"]

P = ParamSpec("P")
R = TypeVar("R")

#: What ``runner=`` accepts: a runner instance, a runner class (one shared
#: instance per class), or a woflo 0.8 ``BaseTaskRun`` subclass.
RunnerSpec = Runner | type[Any] | None


class Task(Generic[P, R]):
    """A function wrapped by `task`: calling it submits it and returns a `TaskRun`.

    Attributes:
        fn: the plain function, to call it directly.
        name: the name in events (the function's ``__name__`` unless given).

    Example:
        >>> from woflo import SequentialRunner, task
        >>> @task(runner=SequentialRunner, retries=2)
        ... def double(x: int) -> int:
        ...     return 2 * x
        >>> double(21).result()
        42
        >>> double.fn(21)
        42
    """

    @overload
    def __init__(
        self: Task[P, R],
        fn: Callable[P, Coroutine[Any, Any, R]],
        *,
        name: str | None = None,
        runner: RunnerSpec = None,
        **options: Unpack[PolicyOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: Task[P, R],
        fn: Callable[P, R],
        *,
        name: str | None = None,
        runner: RunnerSpec = None,
        **options: Unpack[PolicyOptions],
    ) -> None: ...

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str | None = None,
        runner: RunnerSpec = None,
        **options: Unpack[PolicyOptions],
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a callable, got {type(fn).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        _check_runner(runner)
        #: The plain function (for an ``async def``, it returns the coroutine).
        self.fn: Callable[P, Any] = fn
        self.name: str = name or task_name(fn)
        self._runner_spec = runner
        self._options = options
        self._policy = Policy.build(**options)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskRun[R]:
        """Submit one run with these arguments; returns at once."""
        spec = self._runner_spec
        if isinstance(spec, type) and not issubclass(spec, Runner):
            # A woflo 0.8 custom runner: BaseTaskRun(task, instance_name, fn, args, kwargs).
            legacy: TaskRun[R] = spec(self, f"{self.name}-{uuid.uuid4()}", self.fn, args, kwargs)
            return legacy
        return self._resolve(None)._submit(self.fn, args, kwargs, self._policy, self.name)

    def submit(self, *args: Any, executor: Executor | None = None, **kwargs: Any) -> TaskRun[R]:
        """Submit one run, on ``executor`` if given (a woflo runner or `WofloExecutor`).

        The task's own policy applies wherever it runs.
        """
        return self._resolve(executor)._submit(self.fn, args, kwargs, self._policy, self.name)

    def map(
        self,
        *iterables: Iterable[Any],
        executor: Executor | None = None,
        timeout: float | None = None,
        buffersize: int | None = None,
    ) -> Iterator[R]:
        """Submit one run per item (or per tuple of items); yield results in order.

        Example:
            >>> from woflo import SequentialRunner, task
            >>> list(task(abs, runner=SequentialRunner).map([-1, 2, -3]))
            [1, 2, 3]
        """
        return self._resolve(executor)._map(self.fn, iterables, timeout, 1, self._policy, buffersize)

    def options(
        self, *, name: str | None = None, runner: RunnerSpec = None, **overrides: Unpack[PolicyOptions]
    ) -> Task[P, R]:
        """A copy of this task with some options changed.

        Example:
            >>> from woflo import SequentialRunner, task
            >>> patient = task(abs, runner=SequentialRunner).options(retries=5, timeout=10)
            >>> patient(-4).result()
            4
        """
        merged: dict[str, Any] = {**self._options, **overrides}
        return Task(
            self.fn,
            name=name or self.name,
            runner=runner if runner is not None else self._runner_spec,
            **merged,
        )

    def _woflo_unwrap(self) -> tuple[Callable[..., Any], Policy, str]:
        # Lets `executor.submit(some_task, ...)` run the plain function under
        # the task's own policy instead of submitting from inside a worker.
        return self.fn, self._policy, self.name

    def _resolve(self, executor: Executor | None) -> Runner:
        if executor is None:
            spec = self._runner_spec
            if spec is None:
                return coroutine_runner() if inspect.iscoroutinefunction(self.fn) else default_runner()
            if isinstance(spec, Runner):
                return spec
            shared: Runner = shared_runner(spec)
            return shared
        inner = getattr(executor, "runner", executor)
        if not isinstance(inner, Runner):
            raise TypeError(
                f"executor must be a woflo runner or WofloExecutor, not {type(executor).__name__}; "
                "to use another Executor, call executor.submit(task.fn, ...)"
            )
        return inner

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"


def _check_runner(runner: RunnerSpec) -> None:
    if runner is None or isinstance(runner, (Runner, type)):
        return
    raise TypeError(f"runner must be a runner class or instance, not {type(runner).__name__}")


class TaskDecorator(Protocol):
    """What ``task(**options)`` returns: a decorator that keeps the signature."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    runner: RunnerSpec = None,
    **options: Unpack[PolicyOptions],
) -> TaskDecorator: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    runner: RunnerSpec = None,
    **options: Unpack[PolicyOptions],
) -> Task[Any, Any] | TaskDecorator:
    """Make a function a task: calling it submits a run and returns a `TaskRun`.

    Works bare (``@task``) and with options (``@task(retries=2, timeout=30)``).

    Args:
        fn: the function (when used bare).
        name: the name in events; default the function's ``__name__``.
        runner: a runner instance, or a runner class whose shared instance
            runs the task; default the shared default runner.
        **options: ``retries``, ``retry_wait_time`` (alias ``retry_sleep_time``),
            ``timeout``, ``deadline``, tenacity's ``stop``/``wait``/``retry``, or
            ``retrying``.

    Raises:
        TypeError: ``fn`` is not callable, or an option is unknown.
        ValueError: an option is out of range (``retries=-1``, ``timeout=0``).

    Example:
        >>> from woflo import task, SequentialRunner
        >>> @task(retries=2, retry_sleep_time=0, runner=SequentialRunner)
        ... def fetch(url: str) -> str:
        ...     return url.upper()
        >>> fetch("example.org").get_result()
        'EXAMPLE.ORG'
    """
    if fn is not None:
        return Task(fn, name=name, runner=runner, **options)
    # Validate now, at the decorator line, not at the first call.
    _check_runner(runner)
    Policy.build(**options)

    def decorate(f: Callable[..., Any]) -> Task[Any, Any]:
        return Task(f, name=name, runner=runner, **options)

    return cast(TaskDecorator, decorate)
