"""`call_each` and `call_callbacks`: call user code for every item, even after a call raised.

woflo calls user code in loops that must not stop half-way: the done-callbacks
of a run, the cancellation of every run at shutdown, the failing of every
queued attempt of a broken runner. The stdlib's ``Future`` lets a
``KeyboardInterrupt`` or ``SystemExit`` from one done-callback skip the others;
a run waiting for this one as its input, a ``wait()`` or an ``as_completed()``
would then wait for ever. Here every call is made, then the first such
exception is raised.

Done-callbacks are also never nested: a callback that submits a run which ends
at once (an inline runner) or adds a callback to a finished run would, with the
stdlib's ``Future``, call the next callback one stack level deeper; a chain of
a few hundred runs each started from the last one's callback then hits the
recursion limit (reported against other executors: amltk's
``SequentialExecutor``, Parsl's chains of fast tasks). `call_callbacks` queues
such calls for the loop already running on the thread instead.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["call_callbacks", "call_each"]

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


class _Calling(threading.local):
    # The (callback, run) calls still to make by the `call_callbacks` loop
    # running on this thread; None when no loop runs here.
    queue: deque[tuple[Callable[[Any], object], Any]] | None = None


_calling = _Calling()


def call_callbacks(
    run: T,
    callbacks: Iterable[Callable[[T], object]],
    on_exception: Callable[[T, Exception], object],
) -> None:
    """Call ``callback(run)`` for each callback, in order, never nested inside another such call on this thread.

    Outside any done-callback, the calls are made here, before this returns.
    Inside one (this thread is in a `call_callbacks` loop already), they are
    queued, and that loop makes them once the current callback has returned:
    a chain of runs each submitted from the previous one's callback takes
    constant stack depth, however long.

    Args:
        run: the argument of every callback (the run that ended).
        callbacks: each called once with ``run``; read now, called later if queued.
        on_exception: given ``(run, exc)`` for an `Exception` a callback
            raised (it logs it, as the stdlib's ``Future`` does); the
            remaining calls are made.

    Raises:
        BaseException: the first ``KeyboardInterrupt``, ``SystemExit`` or
            other non-`Exception` a callback (or ``on_exception``) raised,
            once every queued call was made, by the outermost loop.
    """
    queue = _calling.queue
    if queue is not None:
        queue.extend([(callback, run) for callback in callbacks])
        return
    queue = _calling.queue = deque([(callback, run) for callback in callbacks])
    kept: BaseException | None = None
    try:
        while queue:
            callback, arg = queue.popleft()
            try:
                try:
                    callback(arg)
                except Exception as exc:
                    on_exception(arg, exc)
            except BaseException as exc:  # or what on_exception raised (a logging handler's Ctrl-C)
                if kept is None:
                    kept = exc
    finally:
        _calling.queue = None
    if kept is not None:
        raise kept
