"""Retries, timeouts and deadlines behave the same on every runner (shipped: `woflo.testing.contract`)."""

from __future__ import annotations

from runners import AllKinds

from woflo.testing.contract import PolicyContract


class TestPolicy(AllKinds, PolicyContract):
    pass
