"""The Executor contract suite of woflo's runners, for any runner: `RunnerContract`.

Every built-in runner passes it; a runner written elsewhere (a subclass of
`woflo.Runner`, or an Executor with woflo's API) runs it by subclassing
`RunnerContract` in one of its pytest test modules::

    from woflo.testing import RunnerContract, RunnerKind

    class TestMyRunner(RunnerContract):
        kind = RunnerKind("mine", lambda max_workers=2, **policy: MyRunner(max_workers, **policy))

pytest collects every ``test_`` method (about seventy), each with the
fixtures ``kind`` and ``make``. The flags of `RunnerKind` say what the runner
cannot do (interrupt a running attempt, hold runs pending for a worker...):
the tests of those are skipped, with the reason. The parts can be run alone:
`ExecutorContract` (submit, result, map, wait, cancel, shutdown),
`PolicyContract` (retries, timeouts, deadlines), `EventsContract` (one event
per transition) and `DetailsContract` (reprs, reference release, cancel
messages, names without values).

Requires pytest (``pip install pytest``; with ``pytest-timeout``, every test
is bounded to 90 s).
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401
except ImportError as exc:  # pragma: no cover - woflo's own tests have pytest
    raise ImportError(
        "woflo.testing.RunnerContract needs pytest, which woflo does not install: pip install pytest"
    ) from exc

from woflo.testing._contract.base import ContractBase as ContractBase
from woflo.testing._contract.details import DetailsContract as DetailsContract
from woflo.testing._contract.events import EventsContract as EventsContract
from woflo.testing._contract.executor import ExecutorContract as ExecutorContract
from woflo.testing._contract.policy import PolicyContract as PolicyContract
from woflo.testing._kind import RunnerKind as RunnerKind

__all__ = [
    "ContractBase",
    "DetailsContract",
    "EventsContract",
    "ExecutorContract",
    "PolicyContract",
    "RunnerContract",
    "RunnerKind",
]


class RunnerContract(ExecutorContract, PolicyContract, EventsContract, DetailsContract):
    """The whole contract suite; subclass it with ``kind = RunnerKind(...)`` in a pytest test module."""
