"""`call_each`: call a function for every item, even after a call raised.

woflo calls user code in loops that must not stop half-way: the done-callbacks
of a run, the cancellation of every run at shutdown, the failing of every
queued attempt of a broken runner. The stdlib's ``Future`` lets a
``KeyboardInterrupt`` or ``SystemExit`` from one done-callback skip the others;
a run waiting for this one as its input, a ``wait()`` or an ``as_completed()``
would then wait for ever. Here every call is made, then the first such
exception is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["call_each"]

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
