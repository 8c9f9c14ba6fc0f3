"""The event schema (docs/events.md) on every runner (shipped: `woflo.testing.contract`)."""

from __future__ import annotations

from pathlib import Path

from runners import AllKinds

from woflo._events import EVENTS
from woflo.testing.contract import EventsContract


class TestEvents(AllKinds, EventsContract):
    pass


def test_every_event_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    for name in EVENTS:
        assert f"`{name}`" in doc
