"""Shared timing helpers for the benchmarks: medians over repetitions, ratio tables."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def compare(contenders: dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each contender, measured round-robin.

    Each round runs every contender once, so a burst of load on this shared
    machine hits all of them alike instead of one contender's whole series.
    """
    times = compare_samples(contenders, repeat, warmup)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(title: str, rows: list[tuple[str, str, float, float]]) -> str:
    """Markdown rows: (case, contender, seconds, baseline seconds) -> ratio = contender / baseline."""
    lines = [
        f"### {title}",
        "",
        "| case | contender | median s | baseline s | time ratio (lower is better) |",
        "|---|---|---|---|---|",
    ]
    for case, who, seconds, base in rows:
        lines.append(f"| {case} | {who} | {seconds:.4f} | {base:.4f} | {seconds / base:.2f}x |")
    return "\n".join(lines)


def per_task_table(times: dict[str, list[float]], n: int, baseline: str) -> str:
    """Markdown rows of median, per-task time and ratio to ``baseline``, from raw repetitions."""
    base = statistics.median(times[baseline])
    lines = ["| variant | median (ms) | per task (µs) | ratio |", "|---|---:|---:|---:|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {name} | {med * 1e3:.1f} | {med / n * 1e6:.2f} | {med / base:.2f}x |")
    return "\n".join(lines)


def compare_samples(
    contenders: dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Every wall time of each contender, measured round-robin (`compare` takes their medians)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            gc.collect()
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return times


def rate_table(title: str, times: dict[str, list[float]], work: float, unit: str, baselines: list[str]) -> str:
    """Markdown: per contender the median rate (``work`` / seconds) with its range, and
    the ratio of its median rate to each baseline's (above 1: faster than the baseline)."""
    med = {name: statistics.median(ts) for name, ts in times.items()}
    head = "| contender | " + unit + " median (range) | " + " | ".join(f"vs {b}" for b in baselines) + " |"
    lines = [f"### {title}", "", head, "|---|---|" + "---|" * len(baselines)]
    for name, ts in times.items():
        rates = sorted(work / t for t in ts)
        cells = " | ".join(f"{med[b] / med[name]:.2f}x" if b in med else "-" for b in baselines)
        lines.append(f"| {name} | {work / med[name]:.0f} ({rates[0]:.0f}..{rates[-1]:.0f}) | {cells} |")
    return "\n".join(lines)


def compile_package(path: str) -> None:
    """Write the ``.pyc`` files of the package at ``path``, as ``pip install`` does.

    The fresh interpreters of the start-up benchmarks then read bytecode, as
    they would from an installed woflo, instead of compiling every module from
    source on every start: with ``PYTHONDONTWRITEBYTECODE`` set (as in CI and
    some containers), importing a checkout never writes them, and running the
    contenders once to "warm" does not help; compiling woflo's modules would
    then be most of what is measured (about 70 ms of a ``ProcessRunner``'s
    cold start, measured on 2 cores).
    """
    import compileall

    compileall.compile_dir(path, quiet=1)
