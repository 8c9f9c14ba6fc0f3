"""`Limit`: at most N attempts running at once, and at most N starts per period.

A limit is shared by every runner in the process: its waiting attempts form
one FIFO queue, whatever runner they belong to. An attempt that must wait is a
`Ticket` in that queue: it holds no worker and no thread. A slot comes back
when an attempt that held it settles (the runner calls `Ticket.release`); the
next rate token is waited for on one timer thread for every limit in the
process (`_timers`). Rate tokens are counted by pyrate-limiter's
`InMemoryBucket` (a sliding window log: at most N starts in any window of the
period), used without its `Limiter`, whose waits sleep in the caller's thread.

Global state, confined to this module: the named limits (`limit`) and the
timer thread.
"""

from __future__ import annotations

import collections
import itertools
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, cast

from woflo._report import report_error
from woflo._scheduler import Scheduler, Timer

if TYPE_CHECKING:
    from pyrate_limiter import InMemoryBucket

__all__ = ["Limit", "LimitSet", "RateSpec", "Ticket", "limit", "start_granted"]

#: What ``rate_limit=`` accepts: ``"10/s"``, ``"100/minute"``, ``"5 per 2s"``,
#: or ``(count, period_seconds)``.
RateSpec = str | tuple[int, float]

#: Why an attempt waits (the ``reason`` of its ``task.waiting`` event).
WaitReason = Literal["concurrency", "rate"]

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|\s+per\s+)\s*(\d+(?:\.\d*)?|\.\d+)?\s*([a-z]+)\s*$", re.IGNORECASE)


def parse_rate(spec: object) -> tuple[int, float]:
    """``(count, period_seconds)`` from ``"10/s"``, ``"100/minute"``, ``"5 per 2s"`` or ``(10, 1.0)``.

    Raises:
        TypeError: neither a string nor a ``(count, period)`` pair of numbers.
        ValueError: a string that does not parse, a count below 1, a period
            not positive and finite or shorter than a millisecond.
    """
    if isinstance(spec, str):
        match = _RATE.match(spec)
        word = match.group(3).lower() if match else ""
        unit = _UNITS.get(word, _UNITS.get(word[:-1]) if word.endswith("s") else None)
        if match is None or unit is None:
            raise ValueError(
                f"rate_limit {spec!r} is not a rate: write it as '10/s', '100/minute', '5 per 2s' or (count, seconds)"
            )
        count, period = int(match.group(1)), float(match.group(2) or 1) * unit
    elif isinstance(spec, tuple) and len(spec) == 2:
        count, period = spec
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"rate_limit's count must be an int, not {type(count).__name__}")
        if isinstance(period, bool) or not isinstance(period, (int, float)):
            raise TypeError(f"rate_limit's period must be a number of seconds, not {type(period).__name__}")
    else:
        raise TypeError(
            f"rate_limit must be a string such as '10/s' or a (count, seconds) tuple, not {type(spec).__name__}"
        )
    if count < 1:
        raise ValueError(f"rate_limit's count must be >= 1, got {count}")
    if not period >= 0.001 or math.isinf(period):
        raise ValueError(f"rate_limit's period must be a finite number of seconds >= 0.001, got {period!r}")
    return count, float(period)


def _check_concurrency(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_concurrency must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {value}")
    return value


# Limits are taken in this order by an attempt that has several, so that two
# attempts never each hold one the other waits for.
_order = itertools.count()

_timers_lock = threading.Lock()
_timers: Scheduler | None = None


def _call_later(delay: float, fn: Callable[[], object]) -> Timer:
    # One thread for the rate waits of every limit, started on the first one.
    global _timers
    with _timers_lock:
        if _timers is None:
            _timers = Scheduler("woflo-limits", report_error)
        scheduler = _timers
    return scheduler.call_later(delay, fn)


class Limit:
    """At most ``max_concurrency`` attempts running at once and ``rate_limit`` starts per period.

    Shared by every task that names it and every runner in the process.
    Build named ones with `woflo.limit`; a task's own ``max_concurrency=`` or
    ``rate_limit=`` makes an unnamed one.

    Attributes:
        name: the name tasks use (``limits="api"``), ``None`` for a task's own limit.
        max_concurrency: attempts running at once at most, or ``None``.
        rate_limit: ``(count, period_seconds)``: attempt starts at most, in any
            window of the period, or ``None``.
    """

    def __init__(
        self, name: str | None, max_concurrency: int | None = None, rate_limit: RateSpec | None = None
    ) -> None:
        self.name = name
        self._order = next(_order)
        self._lock = threading.Lock()
        # Guarded by _lock: attempts holding a slot, the FIFO of waiting
        # tickets, the token bucket and the timer armed for the next token.
        self._running = 0
        self._queue: collections.deque[Ticket] = collections.deque()
        self._bucket: InMemoryBucket | None = None
        self._timer: Timer | None = None
        self.max_concurrency: int | None = None
        self.rate_limit: tuple[int, float] | None = None
        self._rate_of_bucket: tuple[int, float] | None = None
        self._rate_count = 0
        self._configure(max_concurrency, rate_limit)

    def _configure(self, max_concurrency: object, rate_limit: object) -> None:
        """Set both limits (checked first); return the tickets this frees, unstarted."""
        concurrency = _check_concurrency(max_concurrency)
        rate = None if rate_limit is None else parse_rate(rate_limit)
        bucket = None
        if rate is not None:
            # Imported on first use: it costs tens of milliseconds, `import woflo` must not.
            from pyrate_limiter import InMemoryBucket, Rate

            bucket = InMemoryBucket([Rate(rate[0], max(1, round(rate[1] * 1000)))])
        with self._lock:
            self.max_concurrency, self.rate_limit = concurrency, rate
            if rate != self._rate_of_bucket:
                self._bucket = bucket
                self._rate_of_bucket = rate
                self._rate_count = 0 if rate is None else rate[0]
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            granted = self._pump()
        start_granted(granted)

    @property
    def running(self) -> int:
        """How many attempts hold a slot of this limit now."""
        return self._running

    @property
    def waiting(self) -> int:
        """How many attempts wait in this limit's queue now."""
        return len(self._queue)

    def __repr__(self) -> str:
        rate = "" if self.rate_limit is None else f" rate_limit={self.rate_limit[0]}/{self.rate_limit[1]:g}s"
        return (
            f"<Limit {self.name!r} max_concurrency={self.max_concurrency}{rate}"
            f" running={self._running} waiting={len(self._queue)}>"
        )

    # -- under self._lock ----------------------------------------------------------

    def _blocked(self) -> WaitReason | None:
        """Why the next attempt cannot start now (a rate token is taken if it can)."""
        concurrency = self.max_concurrency
        if concurrency is not None and self._running >= concurrency:
            return "concurrency"
        bucket = self._bucket
        if bucket is None:
            return None
        from pyrate_limiter import RateItem

        # The bucket's own clock (pyrate-limiter's MonotonicClock), in whole milliseconds.
        item = RateItem("start", time.monotonic_ns() // 1_000_000, 1)
        if bucket.put(item):
            if bucket.count() > 2 * self._rate_count:
                bucket.leak(item.timestamp)  # drop the starts out of every window
            return None
        if self._timer is None:
            # Due when the oldest start in the window leaves it: the only time
            # the head of the queue can go (newcomers queue behind it).
            wait_ms = cast(int, bucket.waiting(item))  # an int for an in-memory bucket
            self._timer = _call_later(max(wait_ms, 1) / 1000, self._on_timer)
        return "rate"

    def _pump(self) -> list[Ticket]:
        """Grant slots to the head of the queue while it can start."""
        granted = []
        queue = self._queue
        while queue and self._blocked() is None:
            ticket = queue.popleft()
            ticket.queued = False
            ticket.index += 1
            self._running += 1
            if ticket.announcing:
                # Its task.waiting is being logged (see _enter): the thread
                # logging it carries on with the ticket once it has.
                ticket.announcing = False
                ticket.granted = True
            else:
                granted.append(ticket)
        return granted

    # -- from any thread -------------------------------------------------------------

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            granted = self._pump()
        start_granted(granted)

    def _enter(self, ticket: Ticket) -> WaitReason | None:
        """Take a slot now (``None``) or queue ``ticket``, saying why it waits."""
        with self._lock:
            if ticket.closed:
                return None  # released meanwhile: it will not start, nothing to hold
            reason: WaitReason | None
            if self._queue:
                reason = "concurrency" if self._blocked_by_concurrency() else "rate"
            else:
                reason = self._blocked()
            if reason is None:
                self._running += 1
                ticket.index += 1
                return None
            ticket.queued = True
            ticket.announcing = True
            self._queue.append(ticket)
        # The wait is logged without the lock (a logging handler may submit
        # to this limit from another thread, or block), and before the
        # attempt can start: whoever frees a slot for the ticket meanwhile
        # leaves it to this thread (see _pump).
        try:
            ticket.on_wait(reason, self)
        except BaseException:  # a handler's KeyboardInterrupt: the ticket carries on as queued
            if self._stop_announcing(ticket):
                start_granted([ticket])
            raise
        return None if self._stop_announcing(ticket) else reason

    def _stop_announcing(self, ticket: Ticket) -> bool:
        """``ticket``'s wait is logged; ``True`` if it was granted this limit's slot meanwhile."""
        with self._lock:
            ticket.announcing = False
            granted, ticket.granted = ticket.granted, False
            return granted

    def _blocked_by_concurrency(self) -> bool:
        concurrency = self.max_concurrency
        return concurrency is not None and self._running >= concurrency

    def _leave(self, ticket: Ticket, position: int) -> list[Ticket]:
        """``ticket`` (at ``position`` in its limits) gives back its slot or leaves the queue."""
        with self._lock:
            if ticket.index > position:
                self._running -= 1
                return self._pump()
            if ticket.queued and ticket.index == position:
                ticket.queued = False
                self._queue.remove(ticket)
            return []


class Ticket:
    """One attempt's way through its limits: waiting, holding slots, released.

    ``start()`` is called once every limit has given the attempt a slot (on
    the thread that freed the last one, or the limits' timer thread);
    ``on_wait(reason, limit)`` each time it has to queue.
    """

    __slots__ = ("announcing", "closed", "granted", "index", "limits", "on_wait", "queued", "start", "started")

    def __init__(
        self,
        limits: tuple[Limit, ...],
        start: Callable[[], object],
        on_wait: Callable[[WaitReason, Limit], object],
    ) -> None:
        self.limits = limits
        self.start = start
        self.on_wait = on_wait
        #: limits[:index] gave a slot; limits[index] is the next (queued there if ``queued``).
        self.index = 0
        self.queued = False
        #: Queued, its wait being logged (`Limit._enter`); ``granted``: a slot
        #: came meanwhile, for the logging thread to carry on with.
        self.announcing = False
        self.granted = False
        self.closed = False
        #: ``start`` was called (the backend has the attempt).
        self.started = False

    def enter(self) -> bool:
        """Take every limit's slot in turn; ``True``: all taken, the caller starts the attempt."""
        limits = self.limits
        while self.index < len(limits):
            limit = limits[self.index]
            reason = limit._enter(self)  # which calls on_wait if it must wait
            if self.closed or reason is not None:
                return False
        self.started = True
        return True

    def release(self) -> list[Ticket]:
        """Give back every slot held and leave any queue; return the tickets this lets go (unstarted).

        Called once, when the attempt settles (or is stopped while waiting).
        """
        self.closed = True
        granted: list[Ticket] = []
        for position, limit in enumerate(self.limits):
            granted += limit._leave(self, position)
        return granted


_local = threading.local()


def start_granted(granted: Iterable[Ticket]) -> None:
    """Carry on with tickets a limit let go: their next limits, then their starts.

    A start may run an attempt inline (`woflo.SequentialRunner`), whose end
    frees a slot in turn: those starts queue up behind this loop instead of
    recursing, so a long queue needs no deep stack.
    """
    pending: collections.deque[Ticket] | None = getattr(_local, "pending", None)
    if pending is not None:
        pending.extend(granted)
        return
    pending = _local.pending = collections.deque(granted)
    try:
        while pending:
            ticket = pending.popleft()
            if not ticket.closed and ticket.enter():
                ticket.start()
    finally:
        _local.pending = None


# -- named limits ---------------------------------------------------------------------

_named_lock = threading.Lock()
_named: dict[str, Limit] = {}


def limit(name: str, *, max_concurrency: int | None = None, rate_limit: RateSpec | None = None) -> Limit:
    """Define (or redefine) the limit ``name``, shared by every task that names it.

    A task names it with ``limits="api"`` (or ``limits=["api", "db"]``); its
    attempts then count against it, on every runner in the process. Calling
    it again with the same name changes the limit in place (the tasks that
    use it keep using it).

    Args:
        name: the limit's name.
        max_concurrency: attempts running at once at most.
        rate_limit: attempt starts at most per period: ``"10/s"``,
            ``"100/minute"``, ``"5 per 2s"`` or ``(count, seconds)``.

    Returns:
        The `Limit` (it can also be passed to ``limits=`` itself).

    Raises:
        TypeError: a value of the wrong type.
        ValueError: neither limit given, a value out of range, a rate that does not parse.

    Example:
        >>> import woflo
        >>> api = woflo.limit("example-api", max_concurrency=2, rate_limit="10/s")
        >>> api.max_concurrency, api.rate_limit
        (2, (10, 1.0))
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"a limit's name must be a non-empty str, not {name!r}")
    if max_concurrency is None and rate_limit is None:
        raise ValueError(f"limit {name!r}: give max_concurrency=, rate_limit= or both")
    with _named_lock:
        existing = _named.get(name)
        if existing is None:
            made = _named[name] = Limit(name, max_concurrency, rate_limit)
            return made
    existing._configure(max_concurrency, rate_limit)
    return existing


def named_limit(name: str) -> Limit:
    """The limit defined as ``name``; `ValueError` if none is."""
    found = _named.get(name)
    if found is None:
        raise ValueError(f"no limit named {name!r}: define it first with woflo.limit({name!r}, max_concurrency=...)")
    return found


class LimitSet:
    """The limits of one policy: its own (``max_concurrency=``/``rate_limit=``) and those it names.

    Names are looked up at the first submission (so a task may name a limit
    defined later, before it first runs), then kept.
    """

    __slots__ = ("_resolved", "names", "own")

    def __init__(self, own: Limit | None, names: tuple[str | Limit, ...]) -> None:
        self.own = own
        self.names = names
        self._resolved: tuple[Limit, ...] | None = None

    def resolve(self) -> tuple[Limit, ...]:
        """Every limit, in the order they are taken.

        Raises:
            ValueError: a name no `woflo.limit` call defined.
        """
        resolved = self._resolved
        if resolved is None:
            found = {} if self.own is None else {id(self.own): self.own}
            for item in self.names:
                one = item if isinstance(item, Limit) else named_limit(item)
                found[id(one)] = one
            resolved = self._resolved = tuple(sorted(found.values(), key=lambda lim: lim._order))
        return resolved


def check_limit_names(value: object) -> tuple[str | Limit, ...]:
    """``limits=``'s value as a tuple of names and `Limit` objects.

    Raises:
        TypeError: not a name, a `Limit`, or an iterable of those.
    """
    if isinstance(value, (str, Limit)):
        items: Any = (value,)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = tuple(value)
    else:
        raise TypeError(f"limits must be a limit's name, a Limit, or a list of them, not {type(value).__name__}")
    for item in items:
        if isinstance(item, str):
            if not item:
                raise ValueError("limits: a limit's name cannot be empty")
        elif not isinstance(item, Limit):
            raise TypeError(f"limits must hold limit names or Limit objects, not {type(item).__name__}")
    return tuple(items)
