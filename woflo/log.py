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

__all__ = ["configure_logging"]


def configure_logging(*, json: bool = False, level: str | int = "INFO", file: TextIO | None = None) -> None:
    """Configure structlog to print woflo's events (and the application's).

    This sets structlog's global configuration: call it from the application,
    not from a library.

    Args:
        json: one JSON object per line instead of readable console lines.
        level: the least severe level printed (``"DEBUG"`` adds ``task.submitted``).
        file: where lines go; default standard error.

    Example:
        >>> import woflo, io
        >>> sink = io.StringIO()
        >>> woflo.configure_logging(json=True, file=sink)
        >>> _ = woflo.SequentialRunner().submit(len, "abc")
        >>> '"event": "attempt.succeeded"' in sink.getvalue()
        True
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    processors: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors += [_short_run_id, structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=file if file is not None else sys.stderr),
        # Not cached: a later configure() (another level, capture in tests)
        # must reach woflo's logger too.
        cache_logger_on_first_use=False,
    )


def _short_run_id(logger: object, name: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    # Eight hex digits tell runs apart on a console; JSON keeps the whole id.
    run_id = event.get("run_id")
    if isinstance(run_id, str):
        event["run_id"] = run_id[:8]
    return event
