"""`report_error`: log an error met on one of woflo's own threads, and never raise.

woflo's threads (a `ThreadRunner` worker, a runner's timer thread, the process
pool's manager thread, an `AsyncRunner` loop) run user code: done-callbacks,
logging handlers. What that code raises is logged and the thread serves on; a
thread that died of it would hang every run it serves. Logging runs user code
too: a handler may raise ``KeyboardInterrupt`` or ``SystemExit`` (the stdlib's
``Handler.handleError`` catches only ``Exception``). So the report itself must
not raise either: when logging fails, the error goes to ``sys.stderr``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback

__all__ = ["report_error"]

_log = logging.getLogger("woflo")


def report_error(exc: BaseException, message: str = "woflo.internal_error", level: int = logging.ERROR) -> None:
    """Log ``exc`` with its traceback under ``message``; never raises.

    Through structlog's ``woflo`` logger when structlog is configured (the
    event is ``message``, ``exc_info`` attached), else on the standard
    library's ``woflo`` logger at ``level`` (``logging.ERROR`` by default).
    If logging raises (a handler's ``KeyboardInterrupt``), ``exc`` and what
    logging raised are printed to ``sys.stderr`` instead, and this returns.

    Args:
        exc: what to report.
        message: the event name or the message's text.
        level: the stdlib logging level, e.g. ``logging.WARNING``.
    """
    try:
        structlog = sys.modules.get("structlog")  # not configured if never imported
        if structlog is not None and structlog.is_configured():
            log = getattr(structlog.get_logger("woflo"), logging.getLevelName(level).lower())
            log(message, exc_info=exc)
        else:
            _log.log(level, "%s: %s", message, type(exc).__name__, exc_info=exc)
    except BaseException as failed:  # the thread must carry on, whatever logging raised
        with contextlib.suppress(BaseException):
            err = sys.stderr
            print(f"woflo: {message}: {exc!r} (and logging it raised {failed!r})", file=err)
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
