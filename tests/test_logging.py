"""configure_logging, and events following every later structlog configuration."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

import woflo
from woflo import SequentialRunner
from woflo.testing import capture_events

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _events(sink: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in sink.getvalue().splitlines()]


def test_json_lines_follow_a_new_configuration() -> None:
    # woflo keeps one bound logger per configuration: each configure() must
    # still take effect at once.
    first, second = io.StringIO(), io.StringIO()
    woflo.configure_logging(json=True, file=first)
    SequentialRunner().submit(len, "ab")
    assert _events(first) == ["task.succeeded"]  # INFO: one line per run
    woflo.configure_logging(json=True, file=second, level="DEBUG")
    SequentialRunner().submit(len, "ab")
    assert len(_events(first)) == 1
    assert _events(second) == ["task.submitted", "attempt.started", "attempt.succeeded", "task.succeeded"]
    with capture_events() as captured:
        SequentialRunner().submit(len, "ab")
    assert captured.names()[-1] == "task.succeeded"
    assert len(_events(second)) == 4


def test_a_processor_added_in_place_is_seen() -> None:
    sink = io.StringIO()
    woflo.configure_logging(json=True, file=sink, level="DEBUG")
    SequentialRunner().submit(len, "ab")
    processors: list[Any] = structlog.get_config()["processors"]

    def tag(logger: object, name: str, event: Any) -> Any:
        event["tagged"] = True
        return event

    processors.insert(0, tag)
    SequentialRunner().submit(len, "ab")
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [line.get("tagged", False) for line in lines] == [False] * 4 + [True] * 4
