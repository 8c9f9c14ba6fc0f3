"""Logs from inside a task carry their run: ``task``, ``run_id``, ``attempt``, ``worker``.

In the submitting process (Sequential, Thread and Async runners) this is
context binding: the runner sets one `contextvars.ContextVar` around the call
of the task (`bind` / `unbind`), and two readers add the run's four fields:

* for the standard library, a log record factory, installed once when woflo is
  imported, that wraps whatever factory was current (as the ``logging`` docs
  recommend): every record made while a task runs gets the four attributes,
  whatever logger, handler or formatter the application uses. A factory and not
  a filter: a filter sees only the records of the logger or handler it is added
  to, and woflo does not know the application's handlers. An application that
  later sets a factory of its own that does not call the previous one drops it.
* for structlog, the processor `add_task_context`, which the application puts
  in its chain (``woflo.configure_logging`` does). One variable set per call
  costs about 0.1 us; binding four keys with ``structlog.contextvars`` cost ten
  times that on every call of every task, logging or not.

In a `ProcessRunner` worker, records and structlog events are forwarded to the
parent as they are emitted (``woflo._process.worklog``) and re-emitted here,
by `reemit`, through the application's own configuration, with the four fields.
The worker's levels follow the parent's: every batch of jobs carries
`levels_item`, a snapshot of the parent's logger levels, remade only when
``logging`` says they changed.

Fields already present on a record or event (an ``extra=`` of the same name, a
run nested in a worker) are kept: woflo only adds what is missing.
"""

from __future__ import annotations

import logging
import pickle
import sys
import types
import weakref
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, Protocol

from woflo._events import EVENTS
from woflo._fastpath import ENABLED

__all__ = ["FIELDS", "add_task_context", "bind", "call_bound", "current_fields", "levels_item", "reemit", "unbind"]

#: The names of the fields a record logged inside a task carries.
FIELDS = ("task", "run_id", "attempt", "worker")


class _Run(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def run_id(self) -> str: ...


class _Attempt(Protocol):
    run: Any
    number: int
    worker: object


# (weak reference to the run, attempt number, worker) of the attempt whose
# task runs in this context. The run, not the attempt, is referenced: a
# context copied inside the task (an asyncio task it creates, a thread
# started with ``copy_context``) may outlive the attempt, which goes as soon
# as it is settled, and keeps logging with the run's fields while the run
# lives (docs/logging.md). Weak: it must not keep the run or its result
# alive. The run id is read only when a record needs it: it is made on first
# use, and a task that logs nothing must not pay for a uuid.
_RUN: ContextVar[tuple[weakref.ref[Any], int, object] | None] = ContextVar("woflo_run", default=None)
_weakref = weakref.ref


def bind(attempt: _Attempt) -> Token[Any]:
    """Mark the current context as running ``attempt`` (begun: its ``worker`` set); `unbind` with the token."""
    return _RUN.set((_weakref(attempt.run), attempt.number, attempt.worker))


def unbind(token: Token[Any]) -> None:
    """Undo the `bind` that returned ``token`` (an outer run's binding comes back)."""
    _RUN.reset(token)


def call_bound(attempt: _Attempt, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` in a context bound to ``attempt`` (begun), as `bind` and `unbind` around it.

    For a backend that calls the task on its own thread; one frame instead
    of three (the thread runner's per-run path). Returns what ``fn`` returns
    and raises what it raises.
    """
    token = _RUN.set((_weakref(attempt.run), attempt.number, attempt.worker))
    # The traceback of what fn raises keeps this frame, and the run keeps that
    # exception in its attempts: the frame must not hold the run (through the
    # attempt), or the run and its result could only be freed by a collection.
    del attempt
    try:
        return fn(*args, **kwargs)
    finally:
        _RUN.reset(token)


def current_fields() -> dict[str, Any] | None:
    """The four fields of the run whose task runs in this context; ``None`` outside a task or once the run is gone."""
    bound = _RUN.get()
    if bound is None:
        return None
    run = bound[0]()
    if run is None:
        return None
    return {"task": run.name, "run_id": run.run_id, "attempt": bound[1], "worker": bound[2]}


def add_task_context(logger: object, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: add ``task``, ``run_id``, ``attempt``, ``worker`` inside a task.

    Keys the event already has are kept. Outside a task it changes nothing, and
    so it does for woflo's own events (a run submitted inside a task is about
    that run, not the task's).

    Example:
        >>> import structlog
        >>> structlog.configure(processors=[add_task_context, structlog.dev.ConsoleRenderer()])  # doctest: +SKIP
    """
    if _RUN.get() is not None and not ("runner" in event_dict and event_dict.get("event") in EVENTS):
        fields = current_fields()
        if fields is not None:
            for key, value in fields.items():
                event_dict.setdefault(key, value)
    return event_dict


# ``Logger.makeRecord`` calls the factory, then adds the call's ``extra`` and
# raises KeyError for a key the record already has: a task logging with
# ``extra={"task": ...}`` must not fail because woflo set ``task`` first. So
# the factory looks up ``extra`` in makeRecord's frame (a few frames up when
# other factories wrap this one) and leaves its keys alone. Pinned by
# tests/test_task_logs.py::test_extra_fields_of_the_same_name_are_kept.
_MAKE_RECORD = logging.Logger.makeRecord.__code__


def _extra_of_caller() -> Any:
    frame: types.FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return None
        if frame.f_code is _MAKE_RECORD:
            return frame.f_locals.get("extra")
        frame = frame.f_back
    return None


def _wrap_factory(factory: Any) -> Any:
    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        # Not on woflo's own events: a run submitted inside a task has its
        # own fields, which the record would otherwise get as woflo_task...
        if _RUN.get() is not None and record.name != "woflo":
            fields = current_fields()
            if fields is not None:
                extra = _extra_of_caller()
                attrs = record.__dict__
                for key, value in fields.items():
                    if extra is None or key not in extra:
                        attrs.setdefault(key, value)
        return record  # type: ignore[no-any-return]

    make_record.__woflo__ = True  # type: ignore[attr-defined]
    return make_record


def install() -> None:
    """Install the record factory (once per process; on top of the current one)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "__woflo__", False):
        logging.setLogRecordFactory(_wrap_factory(current))


install()


# -- the parent's levels, sent to process workers ------------------------------

# A key of the root logger's level cache (``Logger._cache``, private) that
# logging never uses: ``Manager._clear_cache``, called whenever a level changes
# (``setLevel``, ``logging.disable``, ``basicConfig``, ``dictConfig``), empties
# it, which tells `levels_item` to take a new snapshot. Pinned by
# tests/test_task_logs.py::test_logging_level_cache_canary; without the cache
# the snapshot is taken for every batch.
_SENTINEL = "woflo: levels unchanged"
_item: tuple[int, None, bool, bytes] | None = None
_item_wrapper: object = None


def _structlog_config() -> Any:
    structlog = sys.modules.get("structlog")
    config = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
    return config


def _structlog_level(wrapper: Any) -> int | None:
    # A filtering bound logger (structlog's default kind) knows its level; the
    # others (the stdlib integration) filter by the logging levels sent anyway.
    try:
        level = wrapper(None, [], {}).get_effective_level()
    except Exception:
        return None
    return level if isinstance(level, int) else None


def _snapshot(wrapper: object) -> bytes:
    root = logging.root
    for _ in range(10):
        try:
            loggers = list(root.manager.loggerDict.items())
            break
        except RuntimeError:  # a logger created meanwhile, on another thread
            continue
    else:
        loggers = []
    named = tuple(
        (name, lg.level, lg.disabled)
        for name, lg in loggers
        if isinstance(lg, logging.Logger) and (lg.level or lg.disabled)
    )
    disable = root.manager.disable
    level = None if wrapper is None else _structlog_level(wrapper)
    return pickle.dumps((root.level, disable, named, level), pickle.HIGHEST_PROTOCOL)


def _levels_item_fast() -> tuple[int, None, bool, bytes]:
    """The parent's effective levels, as the pseudo-job (jid 0) that heads every batch sent to a worker.

    Runs on the pool's manager thread. The snapshot holds the root level,
    ``logging.disable``'s level, every logger with a level of its own or
    disabled, and structlog's level when its wrapper class filters by one. It
    is remade only when a level changed, so a batch pays one dict lookup.
    """
    global _item, _item_wrapper
    cache = getattr(logging.root, "_cache", None)
    config = _structlog_config()
    wrapper = getattr(config, "default_wrapper_class", None) if config is not None else None
    item = _item
    if item is not None and isinstance(cache, dict) and _SENTINEL in cache and wrapper is _item_wrapper:
        return item
    if isinstance(cache, dict):
        cache[_SENTINEL] = True  # first: a change during the snapshot empties it again
    item = _item = (0, None, False, _snapshot(wrapper))
    _item_wrapper = wrapper
    return item


def _levels_item_public() -> tuple[int, None, bool, bytes]:
    """`levels_item` on public APIs only (``WOFLO_NO_FAST_PATHS=1``): a new snapshot for every batch."""
    structlog = sys.modules.get("structlog")
    wrapper = structlog.get_config()["wrapper_class"] if structlog is not None else None
    return (0, None, False, _snapshot(wrapper))


#: The level snapshot that heads every batch (see `_levels_item_fast`); on
#: public APIs only when woflo/_fastpath.py says so.
levels_item = _levels_item_fast if ENABLED else _levels_item_public


# -- re-emitting what a worker forwarded ---------------------------------------


def _fields_of(token: object, pid: int) -> dict[str, Any]:
    run = getattr(token, "run", None)
    if run is None:
        return {"worker": pid}
    return {"task": run.name, "run_id": run.run_id, "attempt": getattr(token, "number", None), "worker": pid}


def reemit(token: object, payload: bytes, pid: int) -> None:
    """Re-emit in the parent a record or event that a worker forwarded (see ``worklog``).

    ``token`` is the pool token of the job that ran when it was emitted (an
    `woflo.Attempt` for a `ProcessRunner`: its run gives the fields), or
    ``None`` (between jobs, in the initializer: only ``worker`` is added).
    A stdlib record goes to the handlers of its logger (and up) as a
    ``LogRecord``, if the logger is enabled for its level; a structlog event
    goes through the parent's structlog configuration, as a call of the same
    method on ``structlog.get_logger(name)``.

    Runs on the pool's manager thread; raises what the application's
    handlers or processors raise (the pool logs it and carries on).
    """
    kind, name, method, data = pickle.loads(payload)
    fields = _fields_of(token, pid)
    if kind == "r":
        record = logging.makeLogRecord(data)
        attrs = record.__dict__
        for key, value in fields.items():
            attrs.setdefault(key, value)
        logger = logging.getLogger(name) if name != "root" else logging.root
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
        return
    import structlog

    log = structlog.get_logger(name) if name is not None else structlog.get_logger()
    event = data.pop("event", None)
    for key, value in fields.items():
        data.setdefault(key, value)
    emit = getattr(log, method, None)
    if emit is None:
        emit = log.msg
    emit(event, **data)
