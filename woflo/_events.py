"""The structured events woflo emits, one per transition of a run.

Events are emitted always in the submitting process, so one logging
configuration sees every attempt of every runner. They follow the
application's configuration, whichever it uses:

- structlog configured (by the application, by `woflo.configure_logging`, or
  by `structlog.testing.capture_logs`): structlog events of the logger ``woflo``;
- otherwise, a standard-library handler that would take them (say
  ``logging.basicConfig(level="INFO")``): `logging.LogRecord` s of the logger
  ``woflo``, a readable message and the event's fields as record attributes;
- nothing configured: nothing, and no event is even built (the ``woflo``
  logger has a `logging.NullHandler`, a library's manners).

The names and fields are public API; `docs/events.md` documents them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from typing import Any, Protocol

from woflo._errors import upstream_root
from woflo._fastpath import ENABLED as _FAST_PATHS_ALLOWED

__all__ = ["EVENTS", "FAST", "Emitter", "event_line", "events_switch", "stdlib_switch"]

# structlog is not imported here: an application that never imports it does
# not pay for it, and one that never imported it has not configured it
# either. The structlog side below is set up when structlog is imported, now
# if it already is, else by a one-shot import hook (`_on_structlog_import`).

# The fields of structlog's private configuration object that woflo reads
# (pinned by tests/test_canaries.py).
_CONFIG_FIELDS = ("default_processors", "default_wrapper_class", "logger_factory", "default_context_class")


def _structlog_config(structlog: Any) -> Any:
    """structlog's configuration object (private), or None if it is not as expected."""
    config = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
    if config is None or not isinstance(getattr(config, "is_configured", None), bool):
        return None
    if not all(hasattr(config, name) for name in _CONFIG_FIELDS):
        return None
    return config


# structlog's configuration object, once structlog is imported: read to tell
# when the configuration changed (see _current_logger). None until then, and
# for good with WOFLO_NO_FAST_PATHS=1 (woflo._fastpath) or if structlog's
# layout changed: then woflo uses structlog's public API only, the lazy proxy
# and structlog.is_configured().
_CONFIG: Any = None
#: Whether the fast paths of this module are on (decided before structlog is
#: imported: its layout is checked then, and the fallback taken if it changed).
FAST: bool = _FAST_PATHS_ALLOWED
# structlog's lazy proxy for the logger "woflo", once structlog is imported:
# it follows structlog's configuration as it is at each call (and becomes a
# plain bound logger when the configuration caches loggers).
_logger: Any = None
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
    Called only when structlog is configured, so imported.
    """
    global _bound, _logger
    if _logger is None:
        import structlog

        _logger = structlog.get_logger("woflo")
    config = _CONFIG
    if config is None:  # the fallback: follow the proxy
        return _logger
    key = (
        config.default_processors,
        config.default_wrapper_class,
        config.logger_factory,
        config.default_context_class,
    )
    bound = _bound
    if bound is not None:
        old = bound[0]
        if old[0] is key[0] and old[1] is key[1] and old[2] is key[2] and old[3] is key[3]:
            return bound[1]
    logger = _logger.bind()
    _bound = (key, logger)
    return logger


class _StructlogGate:
    """``is_configured``: whether structlog is configured, as a plain attribute read.

    Until structlog is imported, the class attribute answers False (structlog
    that no one imported is configured by no one). Once it is, the instance
    dict *is* structlog's configuration object's dict, where
    ``structlog.configure()`` stores ``is_configured = True`` (and
    ``reset_defaults()`` False): the read costs what reading structlog's own
    flag costs, with no call, and follows every configuration change.
    """

    is_configured: bool = False


class _AskStructlog:
    """``is_configured`` through structlog's public function (the fallback)."""

    @property
    def is_configured(self) -> bool:
        structlog = sys.modules.get("structlog")
        return structlog is not None and bool(structlog.is_configured())


_structlog_switch: Any = _StructlogGate() if FAST else _AskStructlog()


def _structlog_imported(structlog: Any) -> None:
    """Set up the structlog side once structlog is imported (in this process, by anyone)."""
    global _CONFIG, FAST
    if not FAST:
        return
    config = _structlog_config(structlog)
    if config is None:  # structlog's layout changed: the public API from now on
        FAST = False
        # The same object (runners hold it), asking structlog from now on.
        _structlog_switch.__class__ = _AskStructlog
        return
    _CONFIG = config
    _structlog_switch.__dict__ = config.__dict__


def structlog_switch() -> Any:
    """An object whose ``is_configured`` says whether structlog is configured.

    A plain attribute read (see `_StructlogGate`) where a call to
    ``structlog.is_configured()`` would cost a function call each time. Falls
    back to that call if structlog ever stops having the configuration object
    woflo reads. Take it after woflo's modules are imported, not before.
    """
    return _structlog_switch


class _OnImport:
    """A one-shot ``sys.meta_path`` finder: runs `_structlog_imported` right after structlog is imported.

    It answers for the name ``structlog`` only, once, by asking the other
    finders and wrapping the loader they give; then it leaves ``sys.meta_path``.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "structlog":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenSetUp(spec.loader)  # type: ignore[assignment]
        return spec


class _ThenSetUp:
    """The structlog loader, followed by `_structlog_imported`."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _structlog_imported(module)


def _on_structlog_import() -> None:
    structlog = sys.modules.get("structlog")
    if structlog is not None:
        _structlog_imported(structlog)
    elif FAST:
        sys.meta_path.insert(0, _OnImport())


_on_structlog_import()


# -- the standard library's side ----------------------------------------------------

#: woflo's standard-library logger. The NullHandler keeps an application that
#: configured nothing silent (no "last resort" output of warnings to stderr).
stdlib_logger = logging.getLogger("woflo")
stdlib_logger.addHandler(logging.NullHandler())

_INFO = logging.INFO


class _Recompute:
    """The class side of `_StdlibGate.enabled`: found only when the instance dict has no answer."""

    def __get__(self, gate: _StdlibGate | None, owner: type | None = None) -> Any:
        if gate is None:
            return self
        with _logging_lock:
            value = gate.__dict__["enabled"] = _stdlib_level_enabled()
        return value


class _StdlibGate:
    """``enabled``: whether the ``woflo`` logger would pass an INFO record, as a plain attribute read.

    The runner reads it several times per run while structlog is not
    configured, so it must cost what an attribute read costs. Its instance
    dict *is* the ``woflo`` logger's level cache (``Logger._cache``, the dict
    behind ``isEnabledFor``), which the logging module itself empties whenever
    a level changes anywhere (``setLevel``, ``logging.disable``, ``basicConfig(
    level=...)``, ``dictConfig``): the answer stored there is then recomputed
    at the next read by the class's non-data descriptor, under logging's lock
    as logging computes its own entries (so a level change cannot slip in
    between the computation and the store). Only the level is cached: whether
    a handler would take the record (handlers are added without any cache
    clearing) is checked when an event is emitted, so the answer can only be
    too eager (an INFO level with no handler: events built, then dropped),
    never stale. A non-data descriptor rather than ``__getattr__``: a class
    with ``__getattr__`` makes every read go through a slower lookup.
    """

    enabled: bool = _Recompute()  # type: ignore[assignment]


class _AskLogging:
    """``enabled`` through ``isEnabledFor`` (the fallback; no private API of logging)."""

    @property
    def enabled(self) -> bool:
        return _stdlib_level_enabled()


def _stdlib_level_enabled() -> bool:
    # Not isEnabledFor: it says False while the logger is `disabled` (dictConfig
    # does that to loggers it does not name) and does not cache that answer;
    # `disabled` is checked at emission instead, with the handlers.
    return bool(stdlib_logger.manager.disable < _INFO and stdlib_logger.getEffectiveLevel() <= _INFO)


# The logging module's private pieces the fast gate relies on: each logger's
# level cache (a dict that logging clears, never replaces) and the module lock
# it fills that cache under. Pinned by tests/test_log_bridge.py's canary.
_logging_lock: Any = getattr(logging, "_lock", None)
_level_cache: Any = getattr(stdlib_logger, "_cache", None)


def _make_stdlib_gate() -> Any:
    if _FAST_PATHS_ALLOWED and type(_level_cache) is dict and hasattr(_logging_lock, "__enter__"):
        gate = _StdlibGate()
        gate.__dict__ = _level_cache
        return gate
    return _AskLogging()


_stdlib_gate = _make_stdlib_gate()


def stdlib_switch() -> Any:
    """An object whose ``enabled`` says whether the stdlib ``woflo`` logger takes INFO records.

    A plain attribute read that follows every level change (see `_StdlibGate`);
    an application that configured only a handler, at the default WARNING
    level, gets its warnings and errors from the ungated failure events.
    """
    return _stdlib_gate


class _EventsSwitch:
    """``is_configured``: structlog is configured, or the stdlib ``woflo`` logger takes INFO records."""

    __slots__ = ()

    @property
    def is_configured(self) -> bool:
        return bool(_structlog_switch.is_configured or _stdlib_gate.enabled)


def events_switch() -> Any:
    """An object whose ``is_configured`` says whether events may be wanted at all.

    The runner reads it before building a success-path event. True when
    structlog is configured or the stdlib ``woflo`` logger is enabled for
    INFO; `Emitter.emit` then decides precisely (level, handlers). Two
    attribute reads, ``structlog_switch().is_configured or
    stdlib_switch().enabled``, say the same without a property call.
    """
    return _EventsSwitch()


def _has_handler(logger: logging.Logger) -> bool:
    """Whether a record of ``logger`` would reach a handler other than a `logging.NullHandler`."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, logging.NullHandler):
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


#: Every event name, with the log level it is emitted at. At INFO a run is one
#: line (``task.succeeded``, or ``task.failed`` at ERROR, ``task.cancelled``);
#: a retry is one WARNING (``task.retrying`` carries the failed attempt's
#: exception); what each attempt did is DEBUG.
EVENTS: dict[str, str] = {
    "task.submitted": "debug",
    "task.waiting": "debug",
    "attempt.started": "debug",
    "attempt.succeeded": "debug",
    "attempt.failed": "debug",
    "attempt.timed_out": "debug",
    "task.retrying": "warning",
    "task.succeeded": "info",
    "task.failed": "error",
    "task.cancelled": "warning",
}

_LEVELNO: dict[str, int] = {event: logging.getLevelName(level.upper()) for event, level in EVENTS.items()}


def describe(exc: BaseException) -> str:
    """``"ValueError: bad input"``: an exception as one readable line."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _seconds(value: object) -> str:
    return f"{value:.3f}s" if isinstance(value, (int, float)) else "?"


def event_line(event: str, fields: dict[str, Any] | Any) -> str:
    """One readable line for a woflo event: what happened to which run.

    ``fields`` are the event's fields (``task``, ``run_id``...). Used as the
    message of the stdlib records and by `woflo.configure_logging`'s console
    output. Example: ``"fetch https://example.org [9b1c0d2e] attempt 1 failed
    (OSError: connection reset); retrying in 0.2s"``.
    """
    name = fields.get("run_name") or fields.get("task", "?")
    run_id = fields.get("run_id")
    who = f"{name} [{run_id[:8]}]" if isinstance(run_id, str) else str(name)
    attempt = fields.get("attempt")
    worker = fields.get("worker")
    on = f" on {worker}" if worker is not None else ""
    exception = fields.get("exception")
    if event == "task.succeeded":
        n = attempt or 1
        return f"{who} succeeded in {_seconds(fields.get('duration_s'))} ({n} attempt{'s' * (n != 1)}{on})"
    if event == "task.failed":
        n = attempt or 0
        return f"{who} failed in {_seconds(fields.get('duration_s'))} ({n} attempt{'s' * (n != 1)}{on}): {exception}"
    if event == "task.retrying":
        return (
            f"{who} attempt {attempt} failed ({exception}); retrying in {fields.get('wait_s', 0):g}s"
            f" (attempt {fields.get('next_attempt')})"
        )
    if event == "task.cancelled":
        return f"{who} {fields.get('reason') or 'cancelled'}"
    if event == "task.submitted":
        return f"{who} submitted"
    if event == "task.waiting":
        if fields.get("reason") == "inputs":
            n = len(fields.get("inputs") or ())
            return f"{who} waits for {n} input run{'s' * (n != 1)}"
        limit = fields.get("limit")
        of = f" of limit {limit!r}" if limit is not None else ""
        return f"{who} attempt {attempt} waits for its {fields.get('reason')} limit{of}"
    if event == "attempt.started":
        return f"{who} attempt {attempt} started{on}"
    if event == "attempt.succeeded":
        return f"{who} attempt {attempt} succeeded in {_seconds(fields.get('duration_s'))}{on}"
    if event == "attempt.failed":
        return f"{who} attempt {attempt} failed in {_seconds(fields.get('duration_s'))}{on}: {exception}"
    if event == "attempt.timed_out":
        return f"{who} attempt {attempt} timed out after {_seconds(fields.get('duration_s'))}{on}: {exception}"
    return f"{who} {event}"


def format_traceback(exc: BaseException) -> str:
    """The exception with its traceback and chain (a worker's remote traceback included), as text."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n")


def _root_failure(exc: BaseException) -> BaseException:
    """For a run that failed because its input did (`UpstreamFailed`), the error at the pipeline's root.

    Its traceback is the one worth showing; the chain of ``UpstreamFailed``
    between (one per run down a failed chain) would make the run N steps
    down format N exceptions, and a failed chain cost the square of its length.
    """
    root = upstream_root(exc)
    return exc if root is None else root


def _has_traceback(exc: BaseException) -> bool:
    # An exception woflo made without raising it (an AttemptTimeout) has no
    # traceback to show: its one line says everything.
    return exc.__traceback__ is not None or exc.__cause__ is not None


# What records report as their source: where the event is made, not a line of the runner.
_SOURCE = __file__


class Named(Protocol):
    """What an event needs of a run (a `woflo.TaskRun` has it; its ``attempts``, if any, are read too)."""

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
        """Emit ``event`` about ``run`` through structlog, or else the stdlib, or nowhere.

        Never raises: a broken logging setup must not break the runs it logs
        (the first failure is reported on standard error).
        """
        if self.muted:
            return
        try:
            if _structlog_switch.is_configured:
                fields = self._fields(event, run, attempt, worker, duration_s, exception, extra)
                if event == "task.failed" and exception is not None and _has_traceback(exception):
                    fields["traceback"] = format_traceback(_root_failure(exception))
                getattr(_current_logger(), EVENTS[event])(event, **fields)
                return
            levelno = _LEVELNO[event]
            logger = stdlib_logger
            if logger.disabled or not logger.isEnabledFor(levelno) or not _has_handler(logger):
                return
            fields = self._fields(event, run, attempt, worker, duration_s, exception, extra)
            self._emit_record(logger, levelno, event, fields, exception)
        except Exception:
            _report_broken_logging()

    def _fields(
        self,
        event: str,
        run: Named,
        attempt: int | None,
        worker: object,
        duration_s: float | None,
        exception: BaseException | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        name = run.name
        if type(name) is str:
            fields: dict[str, Any] = {"task": name, "run_id": run.run_id, "runner": self.runner}
        else:  # a RunName: the task's name, and the run's own
            fields = {"task": getattr(name, "task", str(name)), "run_id": run.run_id, "runner": self.runner}
            fields["run_name"] = str(name)
        if attempt is not None:
            fields["attempt"] = attempt
        if event in _ABOUT_LAST_ATTEMPT:
            # The run's line says where it ran last and, for a retry, why.
            records = getattr(run, "attempts", None)
            if records:
                last = records[-1]
                if worker is None and last.worker is not None:
                    worker = last.worker
                if exception is None and event == "task.retrying":
                    exception = last.exception
        if worker is not None:
            fields["worker"] = worker
        if duration_s is not None:
            fields["duration_s"] = round(duration_s, 6)
        if exception is not None:
            fields["exception"] = describe(exception)
            fields["exception_type"] = type(exception).__qualname__
        fields.update(extra)
        return fields

    @staticmethod
    def _emit_record(
        logger: logging.Logger, levelno: int, event: str, fields: dict[str, Any], exception: BaseException | None
    ) -> None:
        exc_info = None
        if event == "task.failed" and exception is not None and _has_traceback(exception):
            root = _root_failure(exception)
            exc_info = (type(root), root, root.__traceback__)
        record = logger.makeRecord(logger.name, levelno, _SOURCE, 0, event_line(event, fields), (), exc_info, event)
        attributes = record.__dict__
        attributes["event"] = event
        for key, value in fields.items():
            # A field never replaces one of the record's own attributes.
            attributes[key if key not in attributes else f"woflo_{key}"] = value
        logger.handle(record)


_ABOUT_LAST_ATTEMPT = frozenset({"task.retrying", "task.succeeded", "task.failed"})

_broken_reported = False


def _report_broken_logging() -> None:
    # Once per process, on stderr: the event pipeline itself is what failed.
    global _broken_reported
    if not _broken_reported:
        _broken_reported = True
        sys.stderr.write("woflo: emitting an event failed; further failures are not reported\n")
        traceback.print_exc()
