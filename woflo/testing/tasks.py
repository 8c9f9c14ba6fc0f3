"""The task functions the contract suite submits.

They live in an importable module (not in a test file) because a runner that
runs tasks in other processes must find them there: a worker imports this
module to call them. Runs that must stay pending or running talk to the test
through files (`block`), which works for threads and processes alike.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = [
    "Box",
    "Client",
    "add",
    "block",
    "box",
    "boom",
    "exit_holding",
    "fail_if_odd",
    "fail_times",
    "identity",
    "raise_broken_runner",
    "raise_serialization_error",
    "refuse",
    "sleep_then",
]


def add(a: int, b: int = 0) -> int:
    """``a + b``."""
    return a + b


def identity(x: object) -> object:
    """``x`` itself."""
    return x


def boom(message: str = "boom") -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def fail_times(counter: str, failures: int, value: object = "ok") -> object:
    """Fail the first ``failures`` calls (counted in the file ``counter``), then return ``value``.

    Raises:
        OSError: ``"failure {n} of {failures}"`` on call ``n <= failures``.
    """
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= failures:
        raise OSError(f"failure {calls} of {failures}")
    return value


def block(started: str, release: str, timeout: float = 30.0) -> str:
    """Say we started (create ``started``, holding our pid), wait for ``release`` to exist, return ``"released"``.

    Raises:
        TimeoutError: ``release`` did not appear within ``timeout`` seconds.
    """
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
    """Sleep ``seconds``, then return ``value``."""
    time.sleep(seconds)
    return value


def fail_if_odd(x: int) -> int:
    """``x``, or ``ValueError("odd: x")`` for an odd ``x``."""
    if x % 2:
        raise ValueError(f"odd: {x}")
    return x


class Box:
    """A result object that a weak reference can watch (made in the parent when unpickled)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return (Box, (self.value,))


def box(value: object) -> Box:
    """``Box(value)``."""
    return Box(value)


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
        """Fail without saying the token."""
        raise ValueError("the request was refused")


def raise_serialization_error() -> None:
    """Fail with woflo's SerializationError, as a payload that cannot cross would."""
    from woflo import SerializationError

    raise SerializationError("cannot pickle the payload")


def raise_broken_runner() -> None:
    """Fail with woflo's BrokenRunner, as a runner that cannot start workers would."""
    from woflo import BrokenRunner

    raise BrokenRunner("cannot start a worker")
