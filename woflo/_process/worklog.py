"""In a worker: forward what tasks log to the parent, at once, as ``KIND_LOG`` frames.

Runs in the child only. Three sources, each forwarded as it is emitted, on the
result pipe, tagged with the id of the job running then (0 between jobs):

* standard ``logging``: a handler on the root logger. The record travels as
  its attribute dict, with the message formatted (its ``args`` may not pickle)
  and the exception as text, as ``QueueHandler.prepare`` does;
* ``warnings.warn``: as records of the ``py.warnings`` logger
  (``logging.captureWarnings``);
* structlog: the worker's structlog configuration is ``merge_contextvars``,
  then a processor that forwards the event dict and drops it; the parent runs
  it through its own processors (``woflo._tasklog.reemit``).

The write is synchronous (one ``write`` under the worker's send lock), so a
record is in the pipe before the call that logged it returns: the worker may be
SIGKILLed right after, the parent still reads it.

Nothing is imported for this until a task needs it: structlog (and
``logging``, where nothing imported it yet) is set up right after its first
import in the worker (an import hook), so a worker whose tasks never use
structlog does not import it.
Handlers present when ``logging`` is set up here (copies of the parent's under
``"fork"``, a ``__main__`` re-imported by ``"spawn"``) are removed: the
parent's own handlers write every record once.

Levels: each batch of jobs starts with the parent's level snapshot
(``woflo._tasklog.levels_item``); the worker applies it before the jobs, so a
record the parent would drop is never built or pickled. Until the first batch
(the initializer), the interpreter's defaults apply (WARNING).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["apply_levels", "install"]

# (jid, payload) -> None: writes one KIND_LOG frame (set by install).
_send: Callable[[int, bytes], None] | None = None
# () -> the id of the job running now, 0 if none.
_current: Callable[[], int] = lambda: 0  # noqa: E731
_levels: bytes | None = None  # the last snapshot the parent sent
_leveled: set[str] = set()  # loggers whose level the snapshot set
_pending = {"logging", "structlog"}  # not imported yet: set up at import
_structlog_ours = False
_busy = threading.local()  # a record logged while one is being forwarded is dropped
_HUGE = 1 << 30  # the level of a logger disabled in the parent


def install(send: Callable[[int, bytes], None], current: Callable[[], int]) -> None:
    """Start forwarding: ``send(jid, payload)`` writes a frame, ``current()`` names the job running."""
    global _send, _current
    _send, _current = send, current
    for name in list(_pending):
        if name in sys.modules:
            _pending.discard(name)
            _on_import(name)
    if _pending:
        sys.meta_path.insert(0, _Finder())
    if "logging" in _pending:
        # A warning before anything imported logging: import it then (it
        # sets itself up here), so the warning becomes a record too.
        original = warnings.showwarning

        def showwarning(
            message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
        ) -> None:
            if file is not None or warnings.showwarning is not showwarning:
                original(message, category, filename, lineno, file, line)
                return
            import logging  # noqa: F401  (sets up forwarding and captureWarnings)

            warnings.showwarning(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning


def apply_levels(data: bytes) -> None:
    """Apply the parent's level snapshot (see ``woflo._tasklog.levels_item``); cheap when unchanged."""
    global _levels
    if data == _levels:
        return
    _levels = data
    if "logging" in sys.modules and "logging" not in _pending:
        _apply_logging()
    if _structlog_ours:
        _configure_structlog()


def _snapshot() -> tuple[int, int, tuple[tuple[str, int, bool], ...], int | None] | None:
    if _levels is None:
        return None
    snap: Any = pickle.loads(_levels)
    return snap  # type: ignore[no-any-return]


def _apply_logging() -> None:
    import logging

    snap = _snapshot()
    if snap is None:
        return
    root_level, disable, named, _ = snap
    logging.root.setLevel(root_level)
    logging.disable(disable)
    names = {name for name, _, _ in named}
    for name in _leveled - names:
        logger = logging.getLogger(name)
        logger.setLevel(logging.NOTSET)
        logger.disabled = False
    for name, level, disabled in named:
        logger = logging.getLogger(name)
        logger.setLevel(_HUGE if disabled else level)
    _leveled.clear()
    _leveled.update(names)


class _Finder:
    """A ``sys.meta_path`` finder that sets up ``logging`` or structlog right after it is imported."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _pending:
            return None
        _pending.discard(fullname)
        if not _pending:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenSetUp(spec.loader, fullname)  # type: ignore[assignment]
        return spec


class _ThenSetUp:
    """A loader that runs the real one, then sets the module up for forwarding."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _on_import(self._name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _on_import(name: str) -> None:
    if name == "logging":
        _set_up_logging()
    else:
        _configure_structlog()


def _set_up_logging() -> None:
    import logging

    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
    logging.root.addHandler(_make_forward_handler()())
    logging.captureWarnings(True)
    _apply_logging()


def _forward(payload_of: Callable[[], bytes]) -> None:
    if getattr(_busy, "on", False) or _send is None:
        return
    _busy.on = True
    try:
        _send(_current(), payload_of())
    finally:
        _busy.on = False


def _dump(kind: str, name: str | None, method: str | None, data: dict[str, Any]) -> bytes:
    """The payload of a KIND_LOG frame; values that do not pickle travel as their repr."""
    try:
        return pickle.dumps((kind, name, method, data), pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    clean: dict[str, Any] = {}
    for key, value in data.items():
        try:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception:
            try:
                value = repr(value)
            except Exception:
                value = f"<unrepresentable {type(value).__qualname__}>"
        clean[key] = value
    return pickle.dumps((kind, name, method, clean), pickle.HIGHEST_PROTOCOL)


def _make_forward_handler() -> Any:
    """The handler class, made once ``logging`` is imported (not before: see the module's doc)."""
    import logging

    class Forward(logging.Handler):
        """Sends each record to the parent as it is emitted."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.name == "woflo" and "runner" in record.__dict__:
                return  # woflo's own events about runs nested in this worker: not reported (as with structlog)
            try:
                _forward(lambda: self._payload(record))
            except Exception:
                self.handleError(record)

        @staticmethod
        def _payload(record: logging.LogRecord) -> bytes:
            attrs = dict(record.__dict__)
            attrs["msg"] = record.getMessage()
            attrs["args"] = None
            if record.exc_info:
                if not record.exc_text:
                    attrs["exc_text"] = logging.Formatter().formatException(record.exc_info)
                attrs["exc_info"] = None
            attrs.pop("message", None)
            return _dump("r", record.name, None, attrs)

    return Forward


class _Sink:
    """The worker's structlog logger: keeps the name it was asked for; never writes (events are forwarded)."""

    def __init__(self, *args: Any) -> None:
        self.name = args[0] if args and isinstance(args[0], str) else None

    def msg(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return self.msg


def _forward_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    import structlog

    name = getattr(logger, "name", None)
    if name == "woflo":
        # woflo's own events about runs nested in this worker: not reported,
        # as before (the parent reports its own runs).
        raise structlog.DropEvent
    data = dict(event_dict)
    if data.get("exc_info"):
        data = dict(structlog.processors.format_exc_info(logger, method_name, data))
        data.pop("exc_info", None)

    _forward(lambda: _dump("s", name, method_name, data))
    raise structlog.DropEvent


def _configure_structlog() -> None:
    global _structlog_ours
    import structlog

    snap = _snapshot()
    wanted = snap[3] if snap is not None and snap[3] is not None else 0
    # structlog has a filtering class per standard level only: the nearest below.
    level = max(lv for lv in (0, 10, 20, 30, 40, 50) if lv <= max(wanted, 0))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, _forward_event],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_Sink,
        cache_logger_on_first_use=False,
    )
    _structlog_ours = True
