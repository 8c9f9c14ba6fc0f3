"""Task functions the tests submit, importable by worker processes."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path


def add(a: int, b: int = 0) -> int:
    return a + b


def identity(x: object) -> object:
    return x


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def fail_times(counter: str, failures: int, value: object = "ok") -> object:
    """Fail the first ``failures`` calls (counted in a file), then return ``value``."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= failures:
        raise OSError(f"failure {calls} of {failures}")
    return value


def block(started: str, release: str, timeout: float = 30.0) -> str:
    """Say we started (by creating ``started``), then wait for ``release`` to exist."""
    # Written aside, then renamed: whoever sees the file can read the pid.
    Path(started + ".tmp").write_text(str(os.getpid()))
    os.replace(started + ".tmp", started)
    end = time.monotonic() + timeout
    while not os.path.exists(release):
        if time.monotonic() > end:
            raise TimeoutError("never released")
        time.sleep(0.005)
    return "released"


def sleep_then(seconds: float, value: object = "done") -> object:
    time.sleep(seconds)
    return value


def worker_pid() -> int:
    return os.getpid()


def fail_if_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd: {x}")
    return x


def crash(how: str) -> None:
    """Kill this worker the way ``how`` says, without returning."""
    if how == "segfault":
        ctypes.string_at(0)
    elif how == "os._exit":
        os._exit(3)
    elif how == "sys.exit":
        sys.exit(2)
    elif how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError(f"still alive after {how}")


def leave_runner_open(n: int = 1) -> list[int]:
    """Start a ProcessRunner, use it, drop it without shutdown; return its worker pids."""
    from woflo import ProcessRunner

    inner = ProcessRunner(n)
    runs = [inner.submit(add, i, 1) for i in range(n)]
    assert [r.result(60) for r in runs] == [i + 1 for i in range(n)]
    inner._keep_alive_for_test = runs  # type: ignore[attr-defined]
    _LEFT_OPEN.append(inner)  # referenced: only the worker's exit may end it
    return inner.worker_pids


_LEFT_OPEN: list[object] = []


def call_task_inside(x: int) -> tuple[int, list[int]]:
    """Call a default ``@task`` (the shared ProcessRunner) from inside a task."""
    import woflo.runners.process
    from woflo import task
    from woflo._defaults import default_runner

    # Workers idle this long would hold this worker's exit as long (it was 10 s).
    woflo.runners.process.SHARED_IDLE_TIMEOUT_S = 600
    value = task(add)(x, 1).result(60)
    return value, default_runner().worker_pids  # type: ignore[attr-defined]


def init_then_hang(pid_file: str) -> None:
    """An initializer that says it started (writes its pid to ``pid_file``), then never returns."""
    Path(pid_file + ".tmp").write_text(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    while True:
        time.sleep(3600)


def init_exits() -> None:
    """An initializer that kills its worker process while it starts."""
    os._exit(5)


def init_fails(message: str = "no database") -> None:
    raise RuntimeError(message)


def spawn_sleeper(pid_file: str) -> int:
    """Start ``sleep 600`` (the task's own child), write its pid to ``pid_file``, then block."""
    import subprocess

    child = subprocess.Popen(["sleep", "600"])
    Path(pid_file + ".tmp").write_text(str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(600)
    return child.pid


# -- for the port of CPython's test_concurrent_futures (tests/contract/test_cpython_*.py)


def capture(*args: object, **kwargs: object) -> tuple[tuple[object, ...], dict[str, object]]:
    return args, kwargs


class MyObject:
    """Something to hold a weak reference to."""

    def my_method(self) -> None:
        pass


def make_dummy_object(_: object) -> MyObject:
    return MyObject()


def touch(path: str) -> str:
    """Leave a trace that the call ran (works across processes)."""
    Path(path).touch()
    return path


def block_then_raise(started: str, release: str) -> None:
    block(started, release)
    raise Exception("this is an exception")


def sleep_and_print(seconds: float, message: str) -> None:
    time.sleep(seconds)
    # One write: workers printing at once share the fd, and must not interleave.
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


INITIALIZER_STATUS = "uninitialized"


def init(status: str) -> None:
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = status


def get_init_status() -> str:
    return INITIALIZER_STATUS


def init_fail() -> None:
    raise ValueError("error in initializer")


def exit_now() -> None:
    sys.exit(1)


def raise_unpickling_error() -> None:
    import pickle

    raise pickle.UnpicklingError("error at unpickle")


def segfault() -> None:
    ctypes.string_at(0)


def return_instance(cls: type) -> object:
    return cls()


class ExitAtPickle:
    """sys.exit() while being pickled."""

    def __reduce__(self) -> tuple[object, ...]:
        exit_now()
        raise AssertionError("unreachable")


class ExitAtUnpickle:
    """sys.exit() while being unpickled."""

    def __reduce__(self) -> tuple[object, ...]:
        return exit_now, ()


class ErrorAtPickle:
    """A PicklingError while being pickled."""

    def __reduce__(self) -> tuple[object, ...]:
        import pickle

        raise pickle.PicklingError("error at pickle")


class ErrorAtUnpickle:
    """An UnpicklingError while being unpickled."""

    def __reduce__(self) -> tuple[object, ...]:
        return raise_unpickling_error, ()


class CrashAtPickle:
    """A segfault while being pickled (only ever pickled in a worker)."""

    def __reduce__(self) -> tuple[object, ...]:
        segfault()
        raise AssertionError("unreachable")


class CrashAtUnpickle:
    """A segfault while being unpickled (only ever unpickled in a worker)."""

    def __reduce__(self) -> tuple[object, ...]:
        return segfault, ()


class DelMarker:
    """Creates ``{path}.{pid}`` when the copy in process ``pid`` is freed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __del__(self) -> None:
        Path(f"{self.path}.{os.getpid()}").touch()


class CallCounter:
    """A callable object that counts its own calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def raise_runtime_error_123() -> None:
    raise RuntimeError(123)  # the line the remote traceback must show


def segfault_after(seconds: float) -> None:
    time.sleep(seconds)
    segfault()


def segfault_with_data(data: object) -> None:
    segfault()


class Box:
    """A result object that a weak reference can watch (made in the parent when unpickled)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return (Box, (self.value,))


def box(value: object) -> Box:
    return Box(value)


def outcomes(counter: str, script: list[object]) -> object:
    """Play ``script`` one call at a time (counted in a file), the last entry repeating.

    An entry that is an exception instance is raised (a fresh copy: one
    instance raised again and again grows an ever longer traceback), any
    other value returned.
    """
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    step = script[min(calls, len(script)) - 1]
    if isinstance(step, BaseException):
        raise type(step)(*step.args)
    return step


def refuse(token: str) -> None:
    """Fail without saying ``token`` (a task that holds a secret)."""
    raise ValueError("the request was refused")


def exit_holding(token: str) -> None:
    """End this worker process at once while holding ``token``."""
    os._exit(3)


class Client:
    """A callable object whose repr shows what it holds, as many do."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"Client(token={self.token!r})"

    def __call__(self) -> None:
        raise ValueError("the request was refused")

    def fetch(self) -> None:
        raise ValueError("the request was refused")


def raise_serialization_error() -> None:
    """Fail with woflo's SerializationError, as a payload that cannot cross would."""
    from woflo import SerializationError

    raise SerializationError("cannot pickle the payload")


def raise_broken_runner() -> None:
    """Fail with woflo's BrokenRunner, as a runner that cannot start workers would."""
    from woflo import BrokenRunner

    raise BrokenRunner("cannot start a worker")


def mark(path: str, value: object = None, seconds: float = 0.0) -> object:
    """Create ``path`` (the side effect a cancelled run must never have), wait ``seconds``, return ``value``."""
    Path(path).touch()
    if seconds:
        time.sleep(seconds)
    return value


def wait_then_fail_once(release: str, counter: str) -> str:
    """Wait for ``release`` to exist, then fail the first call only (counted in ``counter``)."""
    end = time.monotonic() + 30
    while not os.path.exists(release):
        if time.monotonic() > end:
            raise TimeoutError("never released")
        time.sleep(0.005)
    fail_times(counter, 1)
    return "second try"


def _exit_in(pid: int) -> object:
    """Reconstructor that raises SystemExit in process ``pid`` only (the parent)."""
    if os.getpid() == pid:
        raise SystemExit(7)
    return ExitOnUnpickle(pid)


class ExitOnUnpickle:
    """Pickles fine; unpickling it in process ``pid`` raises SystemExit."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return _exit_in, (self.pid,)


class ExitOnPickle:
    """An argument whose pickling raises SystemExit (a hostile ``__reduce__``)."""

    def __reduce__(self) -> tuple[object, ...]:
        raise SystemExit(5)


def return_exit_on_unpickle(pid: int) -> ExitOnUnpickle:
    return ExitOnUnpickle(pid)


class ExitOnUnpickleError(Exception):
    """An exception whose unpickling raises SystemExit in process ``pid``."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.pid = pid

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return _exit_in, (self.pid,)


def raise_exit_on_unpickle(pid: int) -> None:
    raise ExitOnUnpickleError(pid)


def chaos_task(kind: str, seconds: float) -> str:
    """One task of the chaos soak: quick, slow, failing or crashing."""
    if kind == "fail":
        raise ValueError("planned failure")
    if kind == "crash":
        os._exit(9)
    if seconds:
        time.sleep(seconds)
    return kind


def loaded_modules(*prefixes: str) -> list[str]:
    """The modules this process has imported whose names start with one of ``prefixes``."""
    return sorted(m for m in sys.modules if m.startswith(prefixes))


# -- logs from inside tasks (tests/test_task_logs.py, tests/process/test_worker_logs.py) --

TASKLOG = "tests.tasklog"  # the logger these tasks log to


def log_records(n: int, tag: str = "record") -> int:
    """Log ``n`` INFO records ``"<tag> <i>"`` (and one DEBUG record) to the ``tests.tasklog`` logger."""
    import logging

    log = logging.getLogger(TASKLOG)
    for i in range(n):
        log.info("%s %d", tag, i)
    log.debug("%s debug", tag)
    return n


def log_exception() -> str:
    """Log an ERROR record with a ZeroDivisionError's traceback, and one with an unpicklable extra."""
    import logging
    import threading

    log = logging.getLogger(TASKLOG)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("it failed")
    log.warning("with a lock", extra={"lock": threading.Lock(), "color": "blue"})
    return "logged"


def log_structlog(n: int) -> int:
    """Log ``n`` structlog events ``"step"`` with ``i=...``, then one with a traceback."""
    import structlog

    log = structlog.get_logger(TASKLOG).bind(bound="yes")
    for i in range(n):
        log.info("step", i=i)
    log.debug("struct debug")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("struct failed")
    return n


def warn_with(message: str) -> str:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=1)
    return message


def log_then_block(ready: str) -> None:
    """Log one WARNING record and one structlog event, then say so through the file ``ready``, then block."""
    import logging

    import structlog

    logging.getLogger(TASKLOG).warning("last words")
    structlog.get_logger(TASKLOG).warning("last event")
    Path(ready + ".tmp").write_text(str(os.getpid()))
    os.replace(ready + ".tmp", ready)
    while True:
        time.sleep(60)


def enabled_for(name: str, level: int) -> bool:
    """Whether this process's logger ``name`` is enabled for ``level``."""
    import logging

    return logging.getLogger(name).isEnabledFor(level)


def structlog_level() -> int:
    """The level this process's structlog filters at."""
    import structlog

    level: int = structlog.get_logger().bind().get_effective_level()
    return level


def nested_logs(kind: str) -> list[str]:
    """Log, run an inner task that logs (on a runner of ``kind`` made here), log again.

    Returns ``[inner run_id, inner name]``.
    """
    import logging

    from woflo import SequentialRunner, ThreadRunner

    log = logging.getLogger(TASKLOG)
    log.info("outer before")
    with SequentialRunner() if kind == "sequential" else ThreadRunner(1) as inner:
        run = inner.submit(log_records, 2, "inner")
        run.result(timeout=60)
    log.info("outer after")
    return [run.run_id, run.name]


def log_in_initializer() -> None:
    import logging

    logging.getLogger(TASKLOG).warning("initializing")


def log_from_signal_handler(n: int, keep_alarm: bool = False) -> int:
    """Log ``n`` records while a SIGALRM handler logs too, every 100 us; returns how often it ran.

    The handler often interrupts this thread while it writes a frame to the
    parent: the worker must neither deadlock nor garble the pipe. With
    ``keep_alarm`` the handler stays armed after the task returns, so it also
    interrupts the worker while it writes results.
    """
    import logging

    log = logging.getLogger(TASKLOG)
    ran = 0

    def on_alarm(signum: int, frame: object) -> None:
        nonlocal ran
        ran += 1
        log.info("from the handler")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
    try:
        for i in range(n):
            log.info("record %d", i)
    finally:
        if not keep_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    return ran


def make_lock() -> object:
    """A result no pickler can send back (a lock)."""
    import threading

    return threading.Lock()


def record_span(path: str, hold: float = 0.0, fail_first: str | None = None) -> int:
    """Append ``"start end"`` (``time.monotonic()``, one clock for every process) to ``path``.

    Holds for ``hold`` seconds between the two. With ``fail_first`` (a file
    path), the first call that creates that file raises ``OSError`` after
    recording its span (for retries). One small ``O_APPEND`` write per call:
    lines of concurrent callers never mix.
    """
    import os
    import time

    start = time.monotonic()
    if hold:
        time.sleep(hold)
    end = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{start!r} {end!r}\n".encode())
    finally:
        os.close(fd)
    if fail_first is not None:
        try:
            os.close(os.open(fail_first, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return os.getpid()
        raise OSError("the first attempt fails")
    return os.getpid()


def payload(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that differ from seed to seed and position to position (not a repeated byte)."""
    import random

    return random.Random(seed).randbytes(n)


def sha256(data: object) -> str:
    """The sha256 of a bytes-like object, to compare a large payload without sending it back."""
    import hashlib

    return hashlib.sha256(memoryview(data).cast("B")).hexdigest()  # type: ignore[arg-type]


def big_result_when(path: str, n: int) -> bytes:
    """Write this worker's pid to ``path + ".pid"``, wait (30 s at most) until ``path`` exists, return ``n`` bytes."""
    Path(path + ".tmp").write_text(str(os.getpid()))
    os.replace(path + ".tmp", path + ".pid")  # whole when it appears
    end = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.001)
    return b"\x5a" * n


def start_tracing() -> None:
    """An initializer: trace this worker's Python allocations (``tracemalloc``)."""
    import tracemalloc

    tracemalloc.start()


def traced_peak() -> int:
    """The peak of traced memory since the last call (``tracemalloc``), then reset."""
    import tracemalloc

    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    return peak


# -- runs as inputs (tests/test_inputs.py, tests/test_inputs_dask.py) --------------


def _rebuild_cluster_only(value: int) -> ClusterOnly:
    import multiprocessing

    # Dask's workers are processes its nannies start with multiprocessing;
    # the test process (the client) was not started that way.
    if multiprocessing.parent_process() is None:
        raise RuntimeError("a ClusterOnly value reached a process that is not a Dask worker")
    return ClusterOnly(value)


class ClusterOnly:
    """A value that unpickles only inside a Dask worker: the client can never receive it."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_cluster_only, (self.value,))


def make_cluster_only(value: int) -> ClusterOnly:
    return ClusterOnly(value)


def cluster_only_value(item: ClusterOnly, factor: int = 1) -> int:
    return item.value * factor


def fail_times_cluster_only(counter: str, failures: int, value: int) -> ClusterOnly:
    """`fail_times`, returning a `ClusterOnly`."""
    fail_times(counter, failures)
    return ClusterOnly(value)


def values_of(items: list[ClusterOnly], key: ClusterOnly) -> list[int]:
    """Takes a list and a keyword that clashes with ``client.submit``'s own ``key``."""
    return [item.value for item in items] + [key.value]


def double(x: int) -> int:
    return 2 * x


def total(*xs: int) -> int:
    return sum(xs)


def wait_file_then(path: str, value: object, timeout: float = 30.0) -> object:
    """Wait for ``path`` to exist, then return ``value``."""
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    return value


# -- cold start of an "exec" worker (tests/process/test_coldstart.py) --


def process_name_after_import() -> list[object]:
    """Whether ``multiprocessing`` was imported before this call, then this process's multiprocessing name."""
    imported = "multiprocessing.process" in sys.modules
    import multiprocessing

    return [imported, multiprocessing.current_process().name]


def raise_value_error(message: str) -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)
