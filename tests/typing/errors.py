"""Misuse that mypy must reject: each line below must produce an error."""

from __future__ import annotations

from woflo import TaskRun, task


@task
def double(x: int) -> int:
    return 2 * x


double("not an int")
wrong: TaskRun[str] = double(1)
double(1, 2)
