"""Runs as inputs: a run whose arguments hold other runs waits for them, then starts with their results.

``submit(fn, a_run, ...)`` (or a ``@task`` call, or ``map``) looks at each
argument: a `TaskRun` there, or one level down inside a ``list``, ``tuple``,
``dict`` (its values), ``set`` or ``frozenset`` argument, is an *input*. The
new run stays pending, holding no worker and no thread: each input gets a
done-callback, and the last one to finish starts attempt 1 with every input
replaced by its result (`Waiting.ready`, on the thread that ended that
input). An input that failed or was cancelled fails the run at once with
`woflo.UpstreamFailed`. ``woflo.unresolved(run)`` passes a run itself.

Only exact container types are searched (a ``namedtuple`` or a ``list``
subclass is passed as it is), and only one level deep: ``[[run]]`` is not
resolved. The check an argument costs when it holds no run is one
``type(arg) in INPUT_TYPES`` (`has_inputs`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import CancelledError, Future
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from woflo._errors import UpstreamFailed
from woflo._events import describe
from woflo._taskrun import INPUT_LEAVES, INPUT_TYPES, TaskRun

__all__ = ["InputOwner", "Unresolved", "Waiting", "check_after", "has_inputs", "unresolved", "wait_for_inputs"]

T = TypeVar("T")

_CONTAINERS = (list, tuple, dict, set, frozenset)


class Unresolved(Generic[T]):
    """A value passed to a task as it is, even a `woflo.TaskRun`: made by `unresolved`."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"unresolved({type(self.value).__name__})"


def unresolved(value: T) -> T:
    """Pass ``value`` (a `woflo.TaskRun`) to the task as the object itself, not its result.

    Without it, a run among a submission's arguments is an input: the new
    run waits for it and gets its result. With it, the task gets the
    `TaskRun` at once (a thread or async task may poll it, or hand it on);
    a process or Dask task cannot receive one (a run does not pickle).
    Typed as the value itself, so the call type-checks where the run goes.

    Example:
        >>> from woflo import ThreadRunner, unresolved
        >>> with ThreadRunner(1) as ex:
        ...     first = ex.submit(pow, 2, 3)
        ...     ex.submit(type, unresolved(first)).result().__name__
        'TaskRun'
    """
    return Unresolved(value)  # type: ignore[return-value]


INPUT_TYPES.add(Unresolved)
INPUT_LEAVES.add(Unresolved)


def has_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether an argument may hold a run or an `Unresolved` (cheap: exact types only, no descent)."""
    types = INPUT_TYPES
    for arg in args:
        if type(arg) in types:
            return True
    if kwargs:
        for arg in kwargs.values():
            if type(arg) in types:
                return True
    return False


class InputOwner(Protocol):
    """What the waiting stage calls on the runner of the waiting run (`woflo.Runner` implements it)."""

    #: Whether runs of this runner wait for their inputs inside ``submit``
    #: (an inline runner, whose ``submit`` returns a finished run).
    _inputs_inline: ClassVar[bool]

    def _note_input(self, run: TaskRun[Any]) -> None:
        """``run`` will be an input of one of this runner's runs (called before waiting)."""

    def _input_value(self, run: TaskRun[Any]) -> Any:
        """What replaces the finished, successful input ``run`` in the arguments."""

    def _emit_waiting(self, run: TaskRun[Any], inputs: list[TaskRun[Any]]) -> None:
        """Emit ``task.waiting`` for ``run``."""

    def _inputs_ready(self, run: TaskRun[Any], control: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Every input succeeded: start attempt 1 of ``run`` with these arguments."""

    def _finish(self, run: TaskRun[Any], value: Any, exc: BaseException | None) -> None:
        """End ``run`` (here: with `UpstreamFailed`, or an error while resolving)."""


def _collect(
    args: tuple[Any, ...], kwargs: dict[str, Any], after: Iterable[Any] | None
) -> tuple[list[TaskRun[Any]], bool]:
    """The distinct runs among the arguments (one level deep) and in ``after``, in order.

    Also says whether an `Unresolved` is among them (to unwrap).
    """
    found: dict[int, TaskRun[Any]] = {}
    unwrap = False
    types, leaves = INPUT_TYPES, INPUT_LEAVES
    for value in (*args, *kwargs.values()):
        kind = type(value)
        if kind not in types:
            continue
        if kind in _CONTAINERS:
            items = value.values() if kind is dict else value
            # One pass in C over the items: most containers hold no run.
            if leaves.isdisjoint(map(type, items)):
                continue
            for item in items:
                if type(item) is Unresolved:
                    unwrap = True
                elif type(item) in leaves:
                    found.setdefault(id(item), item)
        elif kind is Unresolved:
            unwrap = True
        else:
            found.setdefault(id(value), value)
    if after is not None:
        for run in after:
            found.setdefault(id(run), run)
    return list(found.values()), unwrap


def check_after(after: Iterable[Any] | None) -> list[TaskRun[Any]] | None:
    """``after=`` as a list of runs, checked at the call.

    Raises:
        TypeError: ``after`` is not an iterable of `woflo.TaskRun`.
    """
    if after is None:
        return None
    if isinstance(after, TaskRun):
        raise TypeError("after= takes a list of TaskRuns: after=[run]")
    runs = list(after)
    for run in runs:
        if not isinstance(run, TaskRun):
            raise TypeError(f"after= takes TaskRuns, not {type(run).__name__}")
    return runs


def _substitute(
    args: tuple[Any, ...], kwargs: dict[str, Any], values: dict[int, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` and ``kwargs`` with each run replaced by ``values[id(run)]`` and each `Unresolved` unwrapped."""
    types = INPUT_TYPES

    def swap(item: Any) -> Any:
        kind = type(item)
        if kind is Unresolved:
            return item.value
        if kind in types and kind not in _CONTAINERS:
            return values[id(item)]
        return item

    def fix(value: Any) -> Any:
        kind = type(value)
        if kind not in types:
            return value
        if kind is dict:
            return {key: swap(item) for key, item in value.items()}
        if kind in _CONTAINERS:
            return kind(swap(item) for item in value)
        return swap(value)

    return tuple(fix(arg) for arg in args), {key: fix(arg) for key, arg in kwargs.items()}


class Waiting:
    """A run waiting for its inputs: counts them down, then starts it or fails it.

    Held by a done-callback of each input. Once it has acted it drops the
    run, its bookkeeping and its inputs: a consumer never keeps an input
    alive after its attempt started (only the input's result, in the call).
    """

    __slots__ = ("_control", "_inputs", "_left", "_lock", "_owner", "_run")

    def __init__(self, owner: InputOwner, run: TaskRun[Any], control: Any, inputs: list[TaskRun[Any]]) -> None:
        self._owner: InputOwner | None = owner
        self._run: TaskRun[Any] | None = run
        self._control = control
        self._inputs: list[TaskRun[Any]] | None = inputs
        self._left = len(inputs)
        self._lock = threading.Lock()

    def one_done(self, _: object) -> None:
        """A done-callback of one input: the last one starts the run (on its thread)."""
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            _ready_soon(self)

    def ready(self) -> None:
        """Every input is done: fail the run with `UpstreamFailed`, or start attempt 1 with their results."""
        owner, run, control, inputs = self._owner, self._run, self._control, self._inputs
        self._owner = self._run = self._control = self._inputs = None
        if owner is None or run is None or inputs is None or run.done():
            return  # cancelled while it waited
        try:
            values: dict[int, Any] = {}
            for source in inputs:
                error = _failure(source)
                if error is not None:
                    owner._finish(run, None, _upstream_failed(run, source, error))
                    return
                values[id(source)] = owner._input_value(source)
            del inputs, source  # the run must not keep its inputs alive once it starts
            args, kwargs = control.args, control.kwargs
            args, kwargs = _substitute(args, kwargs, values)
            del values
        except BaseException as exc:  # a result() that raised (a Dask result that cannot be fetched)
            owner._finish(run, None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        owner._inputs_ready(run, control, args, kwargs)


_local = threading.local()


def _forget_in_child() -> None:
    # A process forked inside a `ready` (from a done-callback) runs none of
    # its parent's queue: without this its own would never run.
    _local.queue = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _ready_soon(waiting: Waiting) -> None:
    """Call ``waiting.ready()`` on this thread, without nesting one inside another.

    A run that fails with `UpstreamFailed` ends inside ``ready``, which calls
    its own consumers' done-callbacks, which call their ``ready``...: down a
    chain of N runs that is N nested calls, and past the recursion limit a
    ``RecursionError``, which the stdlib's callback loop swallows, leaves the
    rest of the chain pending for ever. So a ``ready`` reached from inside
    another one on the same thread is queued, and the outermost one runs the
    queue in order once its own work is done.
    """
    queue: list[Waiting | None] | None = getattr(_local, "queue", None)
    if queue is not None:
        queue.append(waiting)
        return
    queue = _local.queue = [waiting]
    interrupt: BaseException | None = None
    try:
        index = 0
        while index < len(queue):
            item = queue[index]
            queue[index] = None  # drop it: its run must not stay alive here
            index += 1
            try:
                item.ready()  # type: ignore[union-attr]  # never None: set to None only once taken
            except BaseException as exc:  # every queued run must still end; re-raised below
                if interrupt is None:
                    interrupt = exc
    finally:
        _local.queue = None
    if interrupt is not None:
        raise interrupt


def _failure(run: TaskRun[Any]) -> BaseException | None:
    """The exception of a failed or cancelled input run, else None."""
    if run.cancelled():
        # The stdlib's CancelledError, whatever the run's own is: an async
        # run's is also asyncio's, which an UpstreamFailed made an instance
        # of would read as the cancellation of the task awaiting it.
        return CancelledError(run._cancelled_message())
    return run.exception(0)


def _upstream_failed(run: TaskRun[Any], source: TaskRun[Any], error: BaseException) -> UpstreamFailed:
    if source.cancelled():
        what = "was cancelled"
    elif isinstance(error, UpstreamFailed):
        # Its own message already names its input and so on up the chain:
        # quoting it whole makes each message longer than the one before, a
        # chain of N failed runs then holds O(N**2) characters. Name the root.
        root: BaseException | None = error
        while isinstance(root, UpstreamFailed):
            root = root.__cause__
        if root is None:  # its cause was lost (it crossed a process boundary)
            what = "failed: UpstreamFailed"
        else:
            start = "was cancelled" if isinstance(root, CancelledError) else f"failed with {describe(root)}"
            what = f"failed: UpstreamFailed (the pipeline's first run that {start})"
    else:
        what = f"failed: {describe(error)}"
    message = f"input {source.name} [{source.run_id[:8]}] of {run.name} {what}"
    return UpstreamFailed.wrap(message, error, str(source.name), source.run_id)


def wait_for_inputs(owner: InputOwner, run: TaskRun[Any], control: Any, after: Iterable[Any] | None = None) -> bool:
    """Make ``run`` wait for the runs among its arguments (``control.args``, ``control.kwargs``) and in ``after``.

    Returns:
        ``True`` if the run waits (or has already been failed or started from
        here): the caller must not start it. ``False`` if it has no input:
        the caller starts it as usual (``control``'s arguments then have every
        `Unresolved` unwrapped).
    """
    args, kwargs = control.args, control.kwargs
    try:
        inputs, unwrap = _collect(args, kwargs, after)
        if not inputs:
            if unwrap:
                control.args, control.kwargs = _substitute(args, kwargs, {})
            return False
        owner._emit_waiting(run, inputs)
    except BaseException as exc:
        # The run is registered: it must end, whatever went wrong (an
        # argument that cannot be walked, a logging handler's KeyboardInterrupt).
        owner._finish(run, None, exc)
        raise
    for source in inputs:
        owner._note_input(source)
    waiting = Waiting(owner, run, control, inputs)
    if owner._inputs_inline:
        # An inline runner's submit returns a finished run: it waits here.
        try:
            for source in inputs:
                source.wait()
        except BaseException as exc:  # a wait refused (an async run, on its own loop), Ctrl-C
            owner._finish(run, None, exc)
            if not isinstance(exc, Exception):
                raise
            return True
        waiting.ready()
        return True
    waiting._left += 1  # held until every callback is added: none of them may start the run early
    for source in inputs:
        # The stdlib's own add_done_callback: called by whoever ends the
        # input, on that thread (not on a loop, as a LoopTaskRun's would be).
        Future.add_done_callback(source, waiting.one_done)
    waiting.one_done(None)
    return True
