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
