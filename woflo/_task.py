"""``@task``: a function that submits itself when called (the woflo 0.8 API)."""

from __future__ import annotations

import functools
import inspect
import string
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from woflo._defaults import coroutine_runner, default_runner
from woflo._inputs import check_after
from woflo._policy import Policy
from woflo._runner import Runner
from woflo._shared import shared_runner
from woflo._submit import RunNaming, task_name
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


#: What ``run_name=`` accepts: a `str.format` template over the task's
#: parameters (``"fetch {url}"``), or a callable taking the task's arguments.
RunNameSpec = str | Callable[..., str] | None


class RunName(str):
    """A run's name made by ``run_name=``: the text, with the task's own name in ``task``.

    It is the run's `TaskRun.name` (reprs, error messages); events carry both,
    ``task`` (the task's name, for grouping) and ``run_name`` (this text).
    """

    __slots__ = ("task",)
    task: str

    def __new__(cls, text: str, task: str) -> RunName:
        self = super().__new__(cls, text)
        self.task = task
        return self


class _RunNamer:
    """Makes a run's name from its arguments, by a template or a callable."""

    __slots__ = ("_fn", "_signature", "_spec", "_task")

    def __init__(self, spec: str | Callable[..., str], fn: Callable[..., Any], task: str) -> None:
        self._spec = spec
        self._fn = fn
        self._task = task
        self._signature: inspect.Signature | None = None
        if isinstance(spec, str):
            self._signature = inspect.signature(fn)
            _check_template(spec, self._signature, task)
        elif not callable(spec):
            raise TypeError(f"run_name must be a str template or a callable, not {type(spec).__name__}")

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunName:
        spec = self._spec
        try:
            if isinstance(spec, str):
                assert self._signature is not None
                bound = self._signature.bind(*args, **kwargs)
                bound.apply_defaults()
                text = spec.format(**bound.arguments)
            else:
                text = spec(*args, **kwargs)
                if not isinstance(text, str):
                    raise TypeError(f"it returned {type(text).__name__}, not str")
        except Exception as exc:
            # Named after the task, never after its arguments (they may be secrets).
            raise ValueError(f"run_name of task {self._task} failed: {type(exc).__name__}: {exc}") from exc
        return RunName(text, self._task)


def _check_template(template: str, signature: inspect.Signature, task: str) -> None:
    """Every ``{field}`` of ``template`` must be a parameter of the task (checked at the decorator)."""
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ValueError(f"run_name of task {task}: bad template: {exc}") from None
    for field in fields:
        base = field.split(".", 1)[0].split("[", 1)[0]
        if not base or base.isdigit():
            raise ValueError(f"run_name of task {task}: use parameter names in the template, not {{{field}}}")
        if base not in params and not takes_any:
            raise ValueError(f"run_name of task {task}: {{{base}}} is not a parameter of {task}")


class Task(Generic[P, R]):
    """A function wrapped by `task`: calling it submits it and returns a `TaskRun`.

    Attributes:
        fn: the plain function, to call it directly.
        name: the name in events (the function's ``__name__`` unless given).
        run_name: how each run is named from its arguments, if at all.

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
        run_name: RunNameSpec = None,
        runner: RunnerSpec = None,
        **options: Unpack[PolicyOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: Task[P, R],
        fn: Callable[P, R],
        *,
        name: str | None = None,
        run_name: RunNameSpec = None,
        runner: RunnerSpec = None,
        **options: Unpack[PolicyOptions],
    ) -> None: ...

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str | None = None,
        run_name: RunNameSpec = None,
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
        self.run_name: RunNameSpec = run_name
        self._namer = None if run_name is None else _RunNamer(run_name, fn, self.name)
        self._runner_spec = runner
        self._options = options
        self._policy = Policy.build(**options)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskRun[R]:
        """Submit one run with these arguments; returns at once."""
        spec = self._runner_spec
        if isinstance(spec, type) and not issubclass(spec, Runner):
            # A woflo 0.8 custom runner: BaseTaskRun(task, instance_name, fn, args, kwargs).
            import uuid  # this old protocol only: not on every @task's import path (uuid imports platform)

            legacy: TaskRun[R] = spec(self, f"{self.name}-{uuid.uuid4()}", self.fn, args, kwargs)
            return legacy
        return self._resolve(None)._submit(self.fn, args, kwargs, self._policy, self._run_name(args, kwargs))

    def _run_name(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        namer = self._namer
        return self.name if namer is None else namer(args, kwargs)

    def submit(
        self,
        *args: Any,
        executor: Executor | None = None,
        after: Iterable[TaskRun[Any]] | None = None,
        **kwargs: Any,
    ) -> TaskRun[R]:
        """Submit one run, on ``executor`` if given (a woflo runner or `WofloExecutor`).

        The task's own policy applies wherever it runs. ``after`` orders runs
        without passing data: the run starts once every run in it has
        succeeded (and fails with `woflo.UpstreamFailed` if one did not), as
        for a run among its arguments (docs/orchestration.md).

        Example:
            >>> from woflo import SequentialRunner, task
            >>> create = task(list, runner=SequentialRunner)
            >>> table = create()
            >>> task(len, runner=SequentialRunner).submit("abc", after=[table]).result()
            3
        """
        runs = check_after(after)
        return self._resolve(executor)._submit(self.fn, args, kwargs, self._policy, self._run_name(args, kwargs), runs)

    def map(
        self,
        *iterables: Iterable[Any],
        executor: Executor | None = None,
        timeout: float | None = None,
        buffersize: int | None = None,
        progress: bool = False,
    ) -> Iterator[R]:
        """Submit one run per item (or per tuple of items); yield results in order.

        Example:
            >>> from woflo import SequentialRunner, task
            >>> list(task(abs, runner=SequentialRunner).map([-1, 2, -3]))
            [1, 2, 3]
        """
        # The task itself, unwrapped by _map, so that each run gets its run_name.
        return self._resolve(executor)._map(
            cast("Callable[..., R]", self), iterables, timeout, 1, self._policy, buffersize, progress
        )

    def options(
        self,
        *,
        name: str | None = None,
        run_name: RunNameSpec = None,
        runner: RunnerSpec = None,
        **overrides: Unpack[PolicyOptions],
    ) -> Task[P, R]:
        """A copy of this task with some options changed.

        Example:
            >>> from woflo import SequentialRunner, task
            >>> patient = task(abs, runner=SequentialRunner).options(retries=5, timeout=10)
            >>> patient(-4).result()
            4
        """
        merged: dict[str, Any] = {**self._options, **overrides}
        copy: Task[P, R] = Task(
            self.fn,
            name=name or self.name,
            run_name=run_name if run_name is not None else self.run_name,
            runner=runner if runner is not None else self._runner_spec,
            **merged,
        )
        # On top of this task's policy: unless max_concurrency or rate_limit
        # changes, the copy's attempts count against this task's own limit.
        copy._policy = Policy.build(self._policy, **overrides)
        return copy

    def _woflo_unwrap(self) -> tuple[Callable[..., Any], Policy, str, RunNaming | None]:
        # Lets `executor.submit(some_task, ...)` run the plain function under
        # the task's own policy (and run names) instead of submitting from
        # inside a worker.
        return self.fn, self._policy, self.name, self._namer

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
    run_name: RunNameSpec = None,
    runner: RunnerSpec = None,
    **options: Unpack[PolicyOptions],
) -> TaskDecorator: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    run_name: RunNameSpec = None,
    runner: RunnerSpec = None,
    **options: Unpack[PolicyOptions],
) -> Task[Any, Any] | TaskDecorator:
    """Make a function a task: calling it submits a run and returns a `TaskRun`.

    Works bare (``@task``) and with options (``@task(retries=2, timeout=30)``).

    Args:
        fn: the function (when used bare).
        name: the name in events; default the function's ``__name__``.
        run_name: name each run from its arguments, so a log line says which
            item it was about: a template over the parameters
            (``"fetch {url}"``) or a callable taking the task's arguments.
            Arguments are never logged otherwise (they may be secrets).
        runner: a runner instance, or a runner class whose shared instance
            runs the task; default the shared default runner.
        **options: ``retries``, ``retry_wait_time`` (alias ``retry_sleep_time``),
            ``timeout``, ``deadline``, tenacity's ``stop``/``wait``/``retry``, or
            ``retrying``; limits: ``max_concurrency``, ``rate_limit``, ``limits``
            (docs/orchestration.md).

    Raises:
        TypeError: ``fn`` is not callable, or an option is unknown.
        ValueError: an option is out of range (``retries=-1``, ``timeout=0``),
            or a ``run_name`` template names something that is not a parameter.

    Example:
        >>> from woflo import task, SequentialRunner
        >>> @task(retries=2, retry_sleep_time=0, runner=SequentialRunner)
        ... def fetch(url: str) -> str:
        ...     return url.upper()
        >>> fetch("example.org").get_result()
        'EXAMPLE.ORG'
    """
    if fn is not None:
        return Task(fn, name=name, run_name=run_name, runner=runner, **options)
    # Validate now, at the decorator line, not at the first call.
    _check_runner(runner)
    Policy.build(**options)

    def decorate(f: Callable[..., Any]) -> Task[Any, Any]:
        return Task(f, name=name, run_name=run_name, runner=runner, **options)

    return cast(TaskDecorator, decorate)
