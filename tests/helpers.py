"""Waiting on events with a bound, instead of sleeping."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


def wait_for_file(path: str, timeout: float = 10.0) -> None:
    wait_for(lambda: os.path.exists(path), timeout, f"file {path}")
