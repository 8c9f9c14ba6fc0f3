"""`Attempt`: one attempt of a run, as a backend sees it.

A backend gets an `Attempt`, runs ``fn(*args, **kwargs)`` and reports back
through it; the `Runner` base (woflo/_runner.py) does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from woflo._scheduler import Timer
from woflo._taskrun import TaskRun

if TYPE_CHECKING:
    from woflo._runner import Runner

__all__ = ["Attempt"]


class Attempt:
    """One attempt of a run, as a backend sees it.

    The backend runs ``fn(*args, **kwargs)``; it calls `begin` when the attempt
    really starts, then exactly one of `succeed` or `fail`. Calls after the
    attempt was settled otherwise (timed out, stopped) are ignored, so a late
    result is simply dropped. ``handle`` is the backend's own slot (a worker,
    an asyncio task, a Dask future) for `Runner._stop`.
    """

    __slots__ = (
        "_claim",
        "_runner",
        "args",
        "fn",
        "handle",
        "kwargs",
        "number",
        "run",
        "started",
        "timer",
        "worker",
    )

    def __init__(self, runner: Runner, run: TaskRun[Any], number: int) -> None:
        self._runner = runner
        self.run = run
        self.number = number
        #: The callable to run, and its arguments.
        self.fn: Callable[..., Any]
        self.args: tuple[Any, ...]
        self.kwargs: dict[str, Any]
        # A run stopped meanwhile has dropped its call (None): this attempt will not start.
        self.fn = run._fn  # type: ignore[assignment]
        self.args = run._args  # type: ignore[assignment]
        self.kwargs = run._kwargs  # type: ignore[assignment]
        self.started: float | None = None
        self.worker: object = None
        self.timer: Timer | None = None
        self.handle: Any = None
        # Whoever pops this first settles the attempt: pop is atomic, so a
        # result, a timeout and a stop can race without a lock. A bytearray,
        # not a list: one object fewer for the garbage collector to track.
        self._claim = bytearray(b"\x01")

    @property
    def settled(self) -> bool:
        """Whether the attempt's outcome is decided (later reports are ignored)."""
        return not self._claim

    @property
    def timeout(self) -> float | None:
        """Seconds this attempt may run, or ``None``."""
        return self.run._policy.timeout

    def begin(self, worker: object = None) -> bool:
        """Mark the attempt as started on ``worker``; ``False`` means: do not run it."""
        return self._runner._begin(self, worker)

    def succeed(self, value: Any) -> None:
        """Report the attempt's return value."""
        self._runner._settle(self, "succeeded", value, None)

    def fail(self, exc: BaseException, outcome: str = "failed") -> None:
        """Report the attempt's exception (``outcome="crashed"`` for a dead worker)."""
        self._runner._settle(self, outcome, None, exc)
