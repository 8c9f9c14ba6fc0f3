"""`call_each` and `call_callbacks`: call user code for every item, even after a call raised.

woflo calls user code in loops that must not stop half-way: the done-callbacks
of a run, the cancellation of every run at shutdown, the failing of every
queued attempt of a broken runner. The stdlib's ``Future`` lets a
``KeyboardInterrupt`` or ``SystemExit`` from one done-callback skip the others;
a run waiting for this one as its input, a ``wait()`` or an ``as_completed()``
would then wait for ever. Here every call is made, then the first such
exception is raised.

Done-callbacks also nest only so deep: a callback that submits a run which
ends at once (an inline runner) or adds a callback to a finished run calls,
with the stdlib's ``Future``, the next callback one stack level deeper; a chain of
a few hundred runs each started from the last one's callback then hits the
recursion limit (reported against other executors: amltk's
``SequentialExecutor``, Parsl's chains of fast tasks). `call_callbacks` makes
the calls at once, as the stdlib does, until they nest `MAX_NESTED_CALLBACKS`
deep and the stack is half the recursion limit deep; past that they are queued
for the outermost call, which makes them once its callback returns.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["MAX_NESTED_CALLBACKS", "call_callbacks", "call_each"]

T = TypeVar("T")


def call_each(
    fn: Callable[[T], object],
    items: Iterable[T],
    on_exception: Callable[[T, Exception], object] | None = None,
) -> None:
    """Call ``fn(item)`` for every item of ``items``, in order; then raise the first exception kept.

    Args:
        fn: called once per item; what it returns is ignored.
        items: iterated once.
        on_exception: given ``(item, exc)`` for an `Exception` raised by
            ``fn(item)``, inside the ``except`` block (so
            ``logging.exception`` there logs its traceback); the exception is
            then not raised. Without it, an `Exception` is kept like any
            other; what ``on_exception`` itself raises is kept too.

    Raises:
        BaseException: the first exception kept (with ``on_exception``, only a
            ``KeyboardInterrupt``, ``SystemExit`` or other non-`Exception`),
            once every item had its call; later ones are dropped.

    Example:
        >>> seen = []
        >>> def visit(n):
        ...     seen.append(n)
        ...     if n == 1:
        ...         raise SystemExit(1)
        >>> try:
        ...     call_each(visit, [0, 1, 2])
        ... except SystemExit:
        ...     seen
        [0, 1, 2]
    """
    kept: BaseException | None = None
    for item in items:
        try:
            try:
                fn(item)
            except Exception as exc:
                if on_exception is None:
                    raise
                on_exception(item, exc)
        except BaseException as exc:  # or what on_exception raised (a logging handler's Ctrl-C)
            if kept is None:
                kept = exc
    if kept is not None:
        raise kept


#: How many done-callback calls nest on one thread before the stack's depth
#: is looked at (a level of a chain costs 15-20 frames when each callback
#: submits to an inline runner: its submit, attempt and end are on the stack).
MAX_NESTED_CALLBACKS = 16

_getframe = getattr(sys, "_getframe", None)


def _stack_is_deep() -> bool:
    """Whether this thread's stack is more than half the recursion limit deep."""
    if _getframe is None:  # no frames to count (not CPython): take it as deep
        return True
    room = sys.getrecursionlimit() // 2
    frame = _getframe(1)
    while frame is not None:
        room -= 1
        if room <= 0:
            return True
        frame = frame.f_back
    return False


class _Calling(threading.local):
    # How many `call_callbacks` calls are running on this thread, one inside
    # the other; and the calls queued for the outermost one once that reached
    # MAX_NESTED_CALLBACKS (None until then).
    depth = 0
    queue: deque[tuple[Callable[[Any], object], Any]] | None = None


_calling = _Calling()


def _forget_in_child() -> None:
    # A process forked inside a done-callback runs none of its parent's: it
    # starts outside any.
    _calling.depth = 0
    _calling.queue = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def call_callbacks(
    run: T,
    callbacks: Iterable[Callable[[T], object]],
    on_exception: Callable[[T, Exception], object],
) -> None:
    """Call ``callback(run)`` for each callback, in order, now; queued instead when nested too deep.

    The calls are made here, as the stdlib's ``Future`` makes them, unless
    this thread is already inside `MAX_NESTED_CALLBACKS` such calls, one
    within the other (a chain of runs, each submitted from the last one's
    done-callback and ending at once), and its stack is more than half the
    recursion limit deep: where the stdlib would soon raise
    ``RecursionError``. Then they are queued, and the outermost call makes
    them once the callback it is in has returned: the chain goes on from
    there instead of one level deeper per run, however long it is. (A
    callback that waits, that deep, for a queued one waits for ever.)

    Args:
        run: the argument of every callback (the run that ended).
        callbacks: each called once with ``run``; read now.
        on_exception: given ``(run, exc)`` for an `Exception` a callback
            raised (it logs it, as the stdlib's ``Future`` does); the
            remaining calls are made.

    Raises:
        BaseException: the first ``KeyboardInterrupt``, ``SystemExit`` or
            other non-`Exception` a callback (or ``on_exception``) raised,
            once every call was made (by the outermost call, for queued ones).
    """
    calling = _calling
    depth = calling.depth
    # The stack is measured every 8 levels only (a walk of up to 500 frames):
    # between two looks a chain grows by 8 levels, some 160 frames.
    if depth >= MAX_NESTED_CALLBACKS and depth % 8 == 0 and _stack_is_deep():
        queue = calling.queue
        if queue is None:
            queue = calling.queue = deque()
        queue.extend([(callback, run) for callback in callbacks])
        return
    outermost = depth == 0
    calling.depth = depth + 1
    kept: BaseException | None = None
    try:
        pending: Iterable[tuple[Callable[[Any], object], Any]] = [(callback, run) for callback in callbacks]
        while True:
            for callback, arg in pending:
                try:
                    try:
                        callback(arg)
                    except Exception as exc:
                        on_exception(arg, exc)
                except BaseException as exc:  # or what on_exception raised (a logging handler's Ctrl-C)
                    if kept is None:
                        kept = exc
            if not outermost or not calling.queue:
                break
            pending, calling.queue = calling.queue, None  # queued by calls nested too deep: made at this depth
    finally:
        calling.depth -= 1
    if kept is not None:
        raise kept
