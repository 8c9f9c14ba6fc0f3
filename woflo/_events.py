"""The structured events woflo emits, one per transition of a run.

All events go through the structlog logger named ``woflo``, always in the
submitting process, so one structlog configuration sees every attempt of every
runner. woflo stays silent until structlog is configured (by the application,
by `woflo.configure_logging`, or by `structlog.testing.capture_logs`): until
then no event dict is even built, which keeps the per-task cost near zero.

The names and fields are public API; `docs/events.md` documents them.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Protocol

import structlog

__all__ = ["EVENTS", "Emitter"]

# A lazy proxy: it follows structlog's configuration as it is at each call
# (and becomes a plain bound logger when the configuration caches loggers).
_logger = structlog.get_logger("woflo")

# structlog's configuration object (private): read to tell when the
# configuration changed, see _current_logger.
_CONFIG: Any = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
_bound: tuple[tuple[Any, ...], Any] | None = None


def _current_logger() -> Any:
    """woflo's logger, bound once per structlog configuration.

    Unless the configuration caches loggers (woflo's cannot: a later
    ``structlog.configure()``, say a test capturing events, must reach it),
    structlog's lazy proxy assembles a new bound logger for every event, a
    third of an event's cost. This keeps the one it assembled for as long as
    what ``configure()`` replaces stays the same object: the processor list
    (changes made to that list in place still show, the logger holds the list
    itself), the wrapper class, the logger factory and the context class.
    """
    global _bound
    config = _CONFIG
    try:
        key = (
            config.default_processors,
            config.default_wrapper_class,
            config.logger_factory,
            config.default_context_class,
        )
    except AttributeError:  # structlog without that object: follow the proxy
        return _logger
    bound = _bound
    if bound is not None:
        old = bound[0]
        if old[0] is key[0] and old[1] is key[1] and old[2] is key[2] and old[3] is key[3]:
            return bound[1]
    logger = _logger.bind()
    _bound = (key, logger)
    return logger


class _AskStructlog:
    """``is_configured`` through structlog's public function (the fallback)."""

    @property
    def is_configured(self) -> bool:
        return structlog.is_configured()


def events_switch() -> Any:
    """An object whose ``is_configured`` says whether events are on.

    The runner reads it several times per run to skip building silent events;
    structlog's own configuration object answers with an attribute read where
    a call to ``structlog.is_configured()`` would cost a function call each
    time. Falls back to that call if structlog ever stops having the object.
    """
    if _CONFIG is not None and isinstance(getattr(_CONFIG, "is_configured", None), bool):
        return _CONFIG
    return _AskStructlog()


#: Every event name, with the log level it is emitted at.
EVENTS: dict[str, str] = {
    "task.submitted": "debug",
    "attempt.started": "info",
    "attempt.succeeded": "info",
    "attempt.failed": "warning",
    "attempt.timed_out": "warning",
    "task.retrying": "info",
    "task.succeeded": "info",
    "task.failed": "error",
    "task.cancelled": "warning",
}


def describe(exc: BaseException) -> str:
    """``"ValueError: bad input"``: an exception as one readable line."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Named(Protocol):
    """What an event needs of a run (a `woflo.TaskRun` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def run_id(self) -> str: ...


class Emitter:
    """Emits the events of one runner; carries the runner's name into each event."""

    __slots__ = ("muted", "runner")

    def __init__(self, runner: str, *, muted: bool = False) -> None:
        self.runner = runner
        # A runner used inside another one (the async runner's threads for
        # plain functions) is muted: the outer runner reports the attempt.
        self.muted = muted

    def emit(
        self,
        event: str,
        run: Named,
        *,
        attempt: int | None = None,
        worker: object = None,
        duration_s: float | None = None,
        exception: BaseException | None = None,
        **extra: Any,
    ) -> None:
        """Emit ``event`` about ``run``; a no-op until structlog is configured."""
        if self.muted or not structlog.is_configured():
            return
        fields: dict[str, Any] = {"task": run.name, "run_id": run.run_id, "runner": self.runner}
        if attempt is not None:
            fields["attempt"] = attempt
        if worker is not None:
            fields["worker"] = worker
        if duration_s is not None:
            fields["duration_s"] = round(duration_s, 6)
        if exception is not None:
            fields["exception"] = describe(exception)
            fields["exception_type"] = type(exception).__qualname__
        fields.update(extra)
        try:
            getattr(_current_logger(), EVENTS[event])(event, **fields)
        except Exception:  # a broken logging setup must not break the runs it logs
            _report_broken_logging()


_broken_reported = False


def _report_broken_logging() -> None:
    # Once per process, on stderr: the event pipeline itself is what failed.
    global _broken_reported
    if not _broken_reported:
        _broken_reported = True
        sys.stderr.write("woflo: emitting an event failed; further failures are not reported\n")
        traceback.print_exc()
