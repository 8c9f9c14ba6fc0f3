"""`Attempt`: one attempt of a run, as a runner's backend sees it.

A backend (`woflo.Runner.start_attempt`) gets an `Attempt`, runs
``fn(*args, **kwargs)`` and reports back through it; the `woflo.Runner` base
does the rest (records, events, timeouts, retries). See
docs/writing-a-runner.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from woflo._taskrun import AttemptOutcome, TaskRun

if TYPE_CHECKING:
    from woflo._limits import Ticket

__all__ = ["NO_KWARGS", "Attempt", "AttemptOwner", "GatedAttempt", "Outcome", "settled_call"]

#: How an attempt that did not succeed ended, as a backend reports it:
#: ``"failed"`` (the call raised), ``"crashed"`` (its worker died: a
#: `woflo.WorkerCrashed`), ``"timed_out"`` (the backend found it over its
#: timeout itself, as an inline runner does after the call returns).
Outcome = Literal["failed", "crashed", "timed_out"]


class AttemptOwner(Protocol):
    """What an `Attempt` reports to: its runner (`woflo.Runner` implements it)."""

    def _begin(self, attempt: Attempt, worker: object) -> bool: ...

    def _set_running(self, attempt: Attempt) -> bool: ...

    def _settle(self, attempt: Attempt, outcome: AttemptOutcome, value: Any, exc: BaseException | None) -> None: ...


def settled_call(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("this attempt was settled: its call was dropped (read fn, args, kwargs before begin())")


# What a settled attempt's kwargs are: one shared empty dict (never mutated by woflo).
NO_KWARGS: dict[str, Any] = {}


class Attempt:
    """One attempt of a run, as a backend sees it.

    The backend runs ``fn(*args, **kwargs)``: it calls `begin` when the
    attempt really starts, then exactly one of `succeed` or `fail`. Each may
    be called from any thread. Once the attempt is settled (by the backend's
    report, its timeout, a deadline or `woflo.TaskRun.stop`), later reports
    are ignored, so a late result is simply dropped, and the attempt drops
    its call (``fn`` raises `RuntimeError`, ``args`` and ``kwargs`` are
    empty): a backend reads them before `begin`.

    Attributes:
        run: the `woflo.TaskRun` this attempt belongs to.
        number: 1 for the first attempt, 2 for the first retry...
        fn, args, kwargs: the call to make.
        timeout: seconds this attempt may run (``None``: no limit). The base
            arms the timer at `begin` and calls `woflo.Runner.stop_attempt`
            when it fires; a backend that cannot be interrupted checks it
            after the call instead.
        deadline: ``time.monotonic()`` value by which the whole run must end
            (``None``: no deadline).
        handle: the backend's own slot (a worker, an ``asyncio.Task``, a
            Dask future), for its `woflo.Runner.stop_attempt`.
        worker: who runs it (a thread name, a pid, an address), as passed to
            `begin`; it appears in events and in `woflo.AttemptRecord`.
        started: ``time.monotonic()`` at `begin`, ``None`` before.
    """

    __slots__ = (
        "__weakref__",  # a backend may hold an attempt weakly (DaskRunner's callbacks)
        "_claim",
        "_owner",
        "_timer",
        "args",
        "deadline",
        "fn",
        "handle",
        "kwargs",
        "number",
        "run",
        "started",
        "started_at",
        "timeout",
        "worker",
    )

    #: Its way through the run's limits (`GatedAttempt`); ``None`` for a run without
    #: limits: a class attribute, so an ungated attempt pays nothing for it.
    _ticket: ClassVar[Ticket | None] = None

    def __init__(
        self,
        owner: AttemptOwner,
        run: TaskRun[Any],
        number: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        deadline: float | None,
    ) -> None:
        self._owner = owner
        self.run = run
        self.number = number
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.deadline = deadline
        self.started: float | None = None
        #: ``time.time()`` at `begin` (wall clock, for `AttemptRecord.started_at`);
        #: set by `begin` only, read only once ``started`` is set.
        self.started_at: float
        self.worker: object = None
        self.handle: Any = None
        self._timer: Any = None  # the base's timeout timer, once begun
        # Present until the attempt is settled: whoever deletes it first
        # settles the attempt. Deleting a slot is one atomic step (a second
        # delete raises AttributeError), so a result, a timeout and a stop
        # can race without a lock, and no object is made per attempt for it.
        self._claim = True

    @property
    def settled(self) -> bool:
        """Whether the attempt's outcome is decided (later reports are ignored)."""
        return not hasattr(self, "_claim")

    def begin(self, worker: object = None) -> bool:
        """Mark the attempt as started on ``worker``: its timeout counts from now.

        Returns:
            ``False`` if the attempt must not run (it was settled: its run was
            stopped, cancelled or timed out meanwhile); the backend then
            drops it without reporting.
        """
        return self._owner._begin(self, worker)

    def set_running(self) -> bool:
        """Mark the run as running before the attempt starts; ``False``: do not send it.

        For a backend that hands the call to a worker before it starts
        (a queue to a process): from this call on, `woflo.TaskRun.cancel`
        returns ``False``, as the stdlib's does for a call moved to its
        workers' queue. The timeout still counts from `begin`.
        """
        return self._owner._set_running(self)

    def succeed(self, value: Any) -> None:
        """Report the call's return value (also valid before `begin`: the attempt took no time)."""
        self._owner._settle(self, "succeeded", value, None)

    def fail(self, exc: BaseException, outcome: Outcome = "failed") -> None:
        """Report how the attempt ended: ``exc`` as its exception, ``outcome`` as its kind.

        The run's retry policy decides what follows (a `woflo.BrokenRunner`
        is never retried). Valid before `begin` (an argument that could not
        be sent): the attempt is recorded with no duration.
        """
        self._owner._settle(self, outcome, None, exc)

    def __repr__(self) -> str:
        state = "settled" if self.settled else ("running" if self.started is not None else "new")
        return f"<Attempt {self.number} of {self.run.name!r} {state}>"


class GatedAttempt(Attempt):
    """An attempt of a run with limits (`woflo.limit`): it starts once its `Ticket` has every slot."""

    __slots__ = ("_ticket",)

    _ticket: Ticket | None  # type: ignore[misc]
