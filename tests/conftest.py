from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Worker processes import the task functions from tests/funcs.py.
sys.path.insert(0, str(Path(__file__).parent))

from runners import RUNNER_KINDS, RunnerKind


@pytest.fixture(params=RUNNER_KINDS, ids=lambda k: k.name)
def kind(request: pytest.FixtureRequest) -> RunnerKind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make(kind: RunnerKind) -> Iterator[Any]:
    """Build runners of the parametrized kind; each is shut down after the test."""
    made: list[Any] = []

    def build(*args: Any, **kwargs: Any) -> Any:
        ex = kind.make(*args, **kwargs)
        made.append(ex)
        return ex

    yield build
    for ex in made:
        ex.shutdown(wait=True, stop_running=True)
