"""What follows an attempt: tenacity's answer, turned into finish or retry.

`next_step` asks a run's ``tenacity.Retrying`` (``iter``, the step tenacity's
own loop takes after every attempt) and says what the runner does next. It
knows nothing of runners or threads; `woflo.Runner` acts on the answer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import tenacity

__all__ = ["Step", "next_step"]


class Step(NamedTuple):
    """What to do after an attempt: finish with ``value``/``error``, or retry after ``wait`` seconds."""

    retry: bool
    wait: float
    value: Any
    error: BaseException | None


def next_step(state: tenacity.RetryCallState, value: Any, exc: BaseException | None, name: str) -> Step:
    """Record the attempt's outcome in ``state`` and ask its Retrying what follows.

    Args:
        state: the run's retry state (its ``retry_object`` is the run's Retrying).
        value: the attempt's return value (``exc`` is ``None``).
        exc: the attempt's exception, or ``None``.
        name: the run's name, for the message of a bad wait.

    Returns:
        ``Step(retry=True, wait=...)`` to attempt again after ``wait`` seconds
        (0: at once), else the value or error the run ends with: the task's
        own exception when the policy gave up on it (a ``RetryError`` only
        when results, not exceptions, were retried), the exception a strategy
        or hook raised, or a `ValueError` for a wait that is negative, NaN or
        infinite.
    """
    # Imported here: a state exists, so tenacity already is (see woflo._policy).
    import tenacity

    retrying: tenacity.BaseRetrying = state.retry_object
    # tenacity's statistics, which iter() updates: a run's own copy of a
    # user's Retrying has them; woflo's own keeps them per thread, and this
    # thread's must exist (nobody reads them).
    if "attempt_number" not in retrying.statistics:
        retrying.begin()
    traceback = None
    if exc is None:
        state.set_result(value)
    else:
        traceback = exc.__traceback__
        state.set_exception((type(exc), exc, traceback))
    try:
        action = retrying.iter(state)
    except tenacity.RetryError as err:
        last = err.last_attempt
        return Step(False, 0.0, None, (last.exception() if last.failed else None) or err)
    except BaseException as final:
        if final is exc:
            # tenacity gave up and re-raised the task's own exception: that
            # added this frame and tenacity's to its traceback, and those
            # frames hold their callers, which hold the run that keeps the
            # exception (a cycle only a collection frees). The traceback the
            # task raised it with is what its caller needs.
            exc.__traceback__ = traceback
        elif exc is not None and final.__context__ is None:
            # A strategy or hook failed while handling the task's error: keep
            # that error in the traceback, as an except block would.
            final.__context__ = exc
        return Step(False, 0.0, None, final)
    if isinstance(action, tenacity.DoSleep):
        wait = float(action)
        if not 0 <= wait < math.inf:  # NaN too
            bad = ValueError(f"the wait strategy of {name} returned {wait!r} seconds; a wait must be >= 0 and finite")
            bad.__cause__ = exc
            return Step(False, 0.0, None, bad)
        return Step(True, wait, None, None)
    if isinstance(action, tenacity.DoAttempt):
        return Step(True, 0.0, None, None)
    # The outcome's value, or what a retry_error_callback returned.
    return Step(False, 0.0, action, None)


def before_attempt(state: tenacity.RetryCallState) -> BaseException | None:
    """Let tenacity begin an attempt (its ``before`` hook); the exception that ends the run instead, if any."""
    try:
        state.retry_object.iter(state)
    except BaseException as exc:  # a failing hook fails the run, never leaves it pending
        return exc
    return None
