"""Helpers for testing code that uses woflo.

Example:
    >>> from woflo import SequentialRunner
    >>> from woflo.testing import capture_events
    >>> with capture_events() as events:
    ...     _ = SequentialRunner().submit(len, "abc")
    >>> [e["event"] for e in events]
    ['task.submitted', 'attempt.started', 'attempt.succeeded', 'task.succeeded']
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, overload

import structlog.testing

from woflo._events import EVENTS

__all__ = ["CapturedEvents", "capture_events"]


class CapturedEvents(Sequence[MutableMapping[str, Any]]):
    """The woflo events captured so far, in order; a live, read-only sequence."""

    def __init__(self, logs: list[MutableMapping[str, Any]]) -> None:
        self._logs = logs

    def _events(self) -> list[MutableMapping[str, Any]]:
        return [e for e in self._logs if e.get("event") in EVENTS]

    @overload
    def __getitem__(self, index: int) -> MutableMapping[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[MutableMapping[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self._events()[index]

    def __len__(self) -> int:
        return len(self._events())

    def names(self) -> list[str]:
        """The event names, in order."""
        return [e["event"] for e in self._events()]

    def of(self, event: str) -> list[MutableMapping[str, Any]]:
        """The events named ``event``."""
        return [e for e in self._events() if e["event"] == event]

    def __repr__(self) -> str:
        return f"CapturedEvents({self._events()!r})"


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Capture woflo's events (and only those) while the block runs.

    Built on `structlog.testing.capture_logs`: each event is a dict with its
    raw field values and ``log_level``. The sequence fills as events happen.
    Every level is captured, whatever level the application filters at. If
    structlog was not configured before, it is left unconfigured after, so
    woflo goes back to being silent.
    """
    was_configured = structlog.is_configured()
    wrapper = structlog.get_config()["wrapper_class"]
    try:
        with structlog.testing.capture_logs() as logs:
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET))
            yield CapturedEvents(logs)
    finally:
        if was_configured:
            structlog.configure(wrapper_class=wrapper)
        else:
            structlog.reset_defaults()
