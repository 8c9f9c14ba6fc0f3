"""The tasks of bench_graph.py, importable by worker processes (Dask's and the stdlib's)."""

from __future__ import annotations

from collections.abc import Iterable


def inc(x: int) -> int:
    return x + 1


def total(values: Iterable[int]) -> int:
    return sum(values)
