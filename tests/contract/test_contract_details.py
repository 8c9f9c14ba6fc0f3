"""Details of the Executor contract that every runner keeps: reprs, reference
release in ``map``, what the default policy never retries, what a
CancelledError says, and that woflo names callables without their values
(shipped: `woflo.testing.contract`)."""

from __future__ import annotations

from runners import AllKinds

from woflo.testing.contract import DetailsContract


class TestDetails(AllKinds, DetailsContract):
    pass
