"""`ContractBase`: the fixtures every part of the contract suite uses."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from woflo.testing._kind import RunnerKind

__all__ = ["ContractBase"]


def _marks() -> list[pytest.MarkDecorator]:
    # Every test of the suite can hang on a broken runner: bound it where
    # pytest-timeout is installed (an unknown mark would only warn elsewhere).
    if importlib.util.find_spec("pytest_timeout") is None:
        return []
    return [pytest.mark.timeout(90)]


class ContractBase:
    """Fixtures ``kind`` (the class's `RunnerKind`) and ``make`` (builds runners, shuts them down)."""

    #: The runner under test; a subclass sets it.
    kind: ClassVar[RunnerKind]

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = _marks()

    @pytest.fixture(name="kind")
    def _contract_kind(self) -> RunnerKind:
        """The class's ``kind``; a subclass may override this fixture to parametrize over several."""
        kind = getattr(type(self), "kind", None)
        if not isinstance(kind, RunnerKind):
            raise TypeError(
                f"{type(self).__name__} must set the class attribute kind = woflo.testing.RunnerKind(...), not {kind!r}"
            )
        return kind

    @pytest.fixture(name="make")
    def _contract_make(self, kind: RunnerKind) -> Iterator[Callable[..., Any]]:
        """``make(max_workers=2, **policy)``: a new runner of ``kind``, shut down after the test."""
        made: list[Any] = []

        def build(*args: Any, **kwargs: Any) -> Any:
            ex = kind.make(*args, **kwargs)
            made.append(ex)
            return ex

        yield build
        for ex in made:
            ex.shutdown(wait=True, stop_running=True)
