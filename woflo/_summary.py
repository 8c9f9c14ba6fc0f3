"""`summary`: what happened to a batch of runs, for a person (``str()``) or a program (``as_dict()``).

Everything is read from the runs themselves (their state, their final
exception, their `AttemptRecord` s): nothing is collected while they run, so
a summary costs nothing until it is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from woflo._errors import WorkerCrashed
from woflo._events import describe
from woflo._taskrun import RunState, TaskRun

__all__ = ["FailureGroup", "RunLine", "Summary", "WorkerLine", "summary"]

#: How many of the slowest runs a summary lists.
SLOWEST = 5
#: How many run names a failure group lists as examples.
EXAMPLES = 3


@dataclass(frozen=True)
class RunLine:
    """One run in a summary: its name, id, state, attempts and duration (first start to last end)."""

    name: str
    run_id: str
    state: str
    attempts: int
    duration_s: float


@dataclass(frozen=True)
class FailureGroup:
    """The runs that failed with the same exception type and message."""

    exception_type: str
    message: str
    count: int
    examples: list[str]


@dataclass(frozen=True)
class WorkerLine:
    """One worker: how many attempts it ran and for how long in all."""

    worker: str
    attempts: int
    busy_s: float


@dataclass(frozen=True)
class Summary:
    """What happened to a batch of runs. Made by `summary`.

    Attributes:
        runs: how many runs.
        states: runs per state (``succeeded``, ``failed``, ``cancelled``, and
            for unfinished ones ``pending``, ``running``, ``retrying``).
        attempts: attempts made in all.
        retries: attempts after a run's first.
        timeouts: attempts that timed out.
        crashes: attempts whose worker died.
        duration_p50_s, duration_p95_s, duration_max_s: run durations (first
            attempt's start to last attempt's end, retry waits included), over
            the runs that made at least one attempt; ``None`` if none did.
        slowest: the slowest runs, slowest first.
        failures: the failed runs grouped by exception type and message, largest group first.
        workers: per worker, attempts run and busy time, busiest first.
        wall_s: from the first attempt's start to the last attempt's end.
        busy_share: the share of ``wall_s`` times the number of workers that
            the workers spent running attempts (1.0: never idle).
    """

    runs: int
    states: dict[str, int]
    attempts: int
    retries: int
    timeouts: int
    crashes: int
    duration_p50_s: float | None
    duration_p95_s: float | None
    duration_max_s: float | None
    slowest: list[RunLine] = field(default_factory=list)
    failures: list[FailureGroup] = field(default_factory=list)
    workers: list[WorkerLine] = field(default_factory=list)
    wall_s: float = 0.0
    busy_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Everything as plain dicts, lists, strings and numbers (``json.dumps`` takes it as is)."""
        return {
            "runs": self.runs,
            "states": dict(self.states),
            "attempts": self.attempts,
            "retries": self.retries,
            "timeouts": self.timeouts,
            "crashes": self.crashes,
            "duration_s": {"p50": self.duration_p50_s, "p95": self.duration_p95_s, "max": self.duration_max_s},
            "slowest": [vars(line).copy() for line in self.slowest],
            "failures": [{**vars(group), "examples": list(group.examples)} for group in self.failures],
            "workers": [vars(line).copy() for line in self.workers],
            "wall_s": self.wall_s,
            "busy_share": self.busy_share,
        }

    def __str__(self) -> str:
        out = [f"{self.runs} runs: " + ", ".join(f"{n} {state}" for state, n in self.states.items())]
        out.append(
            f"attempts {self.attempts}, retries {self.retries}, timeouts {self.timeouts}, crashes {self.crashes}"
        )
        if self.duration_max_s is not None:
            out.append(
                f"duration p50 {_s(self.duration_p50_s)}, p95 {_s(self.duration_p95_s)}, max {_s(self.duration_max_s)}"
            )
        if self.slowest:
            out += ["", "slowest runs:"]
            out += _table(
                ["run", "id", "state", "attempts", "duration"],
                [[r.name, r.run_id[:8], r.state, str(r.attempts), _s(r.duration_s)] for r in self.slowest],
            )
        if self.failures:
            out += ["", "failures:"]
            out += _table(
                ["count", "exception", "examples"],
                [
                    [str(g.count), _clip(f"{g.exception_type}: {g.message}"), ", ".join(g.examples)]
                    for g in self.failures
                ],
            )
        if self.workers:
            share = "" if self.busy_share is None else f", busy {self.busy_share:.0%} of {_s(self.wall_s)} wall time"
            out += ["", f"workers: {len(self.workers)}{share}"]
            out += _table(
                ["worker", "attempts", "busy"], [[w.worker, str(w.attempts), _s(w.busy_s)] for w in self.workers]
            )
        return "\n".join(out)


def summary(runs: Iterable[TaskRun[Any]]) -> Summary:
    """Summarise a batch of runs: states, attempts, retries, timeouts, crashes, durations, failures, workers.

    Unfinished runs count under their current state. Reading a summary never
    waits for a run.

    Example:
        >>> import woflo
        >>> from woflo import SequentialRunner
        >>> runs = [SequentialRunner().submit(int, text) for text in ["1", "2", "x"]]
        >>> s = woflo.summary(runs)
        >>> s.states, s.failures[0].exception_type
        ({'succeeded': 2, 'failed': 1}, 'ValueError')
        >>> print(str(s).splitlines()[0])
        3 runs: 2 succeeded, 1 failed
    """
    runs = list(runs)
    states: dict[str, int] = {}
    attempts = retries = timeouts = crashes = 0
    lines: list[RunLine] = []
    groups: dict[tuple[str, str], list[str]] = {}
    busy: dict[str, list[float]] = {}
    first = math.inf
    last = -math.inf
    for run in runs:
        state = run.state
        states[state.value] = states.get(state.value, 0) + 1
        records = list(run.attempts)
        attempts += len(records)
        retries += max(0, len(records) - 1)
        for record in records:
            if record.outcome == "timed_out":
                timeouts += 1
            elif record.outcome == "crashed" or isinstance(record.exception, WorkerCrashed):
                crashes += 1
            if record.worker is not None:
                worker = busy.setdefault(str(record.worker), [0, 0.0])
                worker[0] += 1
                worker[1] += record.duration_s
            first = min(first, record.started_at)
            last = max(last, record.started_at + record.duration_s)
        name = str(run.name)
        if records:
            end = max(r.started_at + r.duration_s for r in records)
            lines.append(RunLine(name, run.run_id, state.value, len(records), end - records[0].started_at))
        if state is RunState.FAILED:
            exc = run.exception(timeout=0)
            if exc is not None:
                text = describe(exc)
                key = (type(exc).__qualname__, text.partition(": ")[2])
                groups.setdefault(key, []).append(f"{name} [{run.run_id[:8]}]")
    durations = sorted(line.duration_s for line in lines)
    wall = max(0.0, last - first) if first != math.inf else 0.0
    workers = sorted((WorkerLine(w, int(n), t) for w, (n, t) in busy.items()), key=lambda w: (-w.busy_s, w.worker))
    busy_total = sum(w.busy_s for w in workers)
    share = min(1.0, busy_total / (wall * len(workers))) if workers and wall > 0 else None
    return Summary(
        runs=len(runs),
        states=dict(sorted(states.items(), key=lambda item: (_STATE_ORDER.get(item[0], 99), item[0]))),
        attempts=attempts,
        retries=retries,
        timeouts=timeouts,
        crashes=crashes,
        duration_p50_s=_percentile(durations, 0.50),
        duration_p95_s=_percentile(durations, 0.95),
        duration_max_s=durations[-1] if durations else None,
        slowest=sorted(lines, key=lambda line: -line.duration_s)[:SLOWEST],
        failures=sorted(
            (FailureGroup(t, m, len(names), names[:EXAMPLES]) for (t, m), names in groups.items()),
            key=lambda g: (-g.count, g.exception_type, g.message),
        ),
        workers=workers,
        wall_s=wall,
        busy_share=share,
    )


_STATE_ORDER = {
    state.value: i
    for i, state in enumerate(
        [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.RETRYING, RunState.RUNNING, RunState.PENDING]
    )
}


def _percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted ``values``: the smallest value with at least ``q`` of them at or below."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def _clip(text: str, width: int = 80) -> str:
    text = " ".join(text.split())  # a message over several lines stays on its row
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return ["  " + fmt.format(*header).rstrip()] + ["  " + fmt.format(*row).rstrip() for row in rows]
