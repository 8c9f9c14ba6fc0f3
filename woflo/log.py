"""`configure_logging`: one call to see woflo's events.

woflo never configures logging on import. An application that already
configures structlog sees woflo's events through its own configuration; one
that does not can call `configure_logging` once.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from woflo._events import EVENTS, event_line
from woflo._tasklog import add_task_context

__all__ = ["add_task_context", "configure_logging"]


def configure_logging(*, json: bool = False, level: str | int = "INFO", file: TextIO | None = None) -> None:
    """Configure structlog to print woflo's events (and the application's).

    This sets structlog's global configuration: call it from the application,
    not from a library. At ``"INFO"`` the console shows one line per finished
    run (its name, outcome, attempts, total duration and last worker), one
    WARNING line per retry (the exception and the wait), and for a run that
    failed for good one ERROR line followed by its traceback; ``"DEBUG"`` adds
    every attempt's start and end. An application that configures only the
    standard library (``logging.basicConfig``) needs none of this: woflo's
    events come as records of the ``woflo`` logger (docs/events.md).

    Args:
        json: one JSON object per line instead of readable console lines.
        level: the least severe level printed (``"DEBUG"``: every attempt and ``task.submitted``).
        file: where lines go; default standard error.

    Example:
        >>> import woflo, io
        >>> sink = io.StringIO()
        >>> woflo.configure_logging(json=True, file=sink)
        >>> _ = woflo.SequentialRunner().submit(len, "abc")
        >>> '"event": "task.succeeded"' in sink.getvalue()
        True
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    processors: list[structlog.typing.Processor] = [
        # A structlog call inside a task says which run made it (docs/logging.md).
        add_task_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(_ConsoleLines())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=file if file is not None else sys.stderr),
        # Not cached: a later configure() (another level, capture in tests)
        # must reach woflo's logger too.
        cache_logger_on_first_use=False,
    )


class _ConsoleLines:
    """The console renderer: a woflo event is one readable line (its traceback once, for a final failure).

    ``2026-11-27T10:31:02.114Z [info   ] fetch [9b1c0d2e] succeeded in 0.412s (1 attempt on 4121)``.
    Other events (the application's own) are rendered by structlog's `ConsoleRenderer`.
    """

    def __init__(self) -> None:
        self._other = structlog.dev.ConsoleRenderer(colors=False)

    def __call__(self, logger: object, name: str, event_dict: structlog.typing.EventDict) -> str:
        event = event_dict.get("event")
        if event not in EVENTS or "run_id" not in event_dict:
            return self._other(logger, name, event_dict)
        line = f"{event_dict.get('timestamp', '')} [{event_dict.get('level', ''):<7}] {event_line(event, event_dict)}"
        trace = event_dict.get("traceback")
        return f"{line}\n{trace}" if isinstance(trace, str) else line
