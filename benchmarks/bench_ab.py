"""Two checkouts of woflo, measured alternately in one run: did a change make them slower?

Each measurement is a fresh interpreter (``_ab_case.py``) importing woflo from one
checkout; the checkouts take turns in ABBA order, so load on this shared machine
and slow drift fall on both alike. Reports, per case, the median and range of
each checkout and the ratio B/A of the medians (above 1: B is slower). For
the pool cases the parent's CPU time is reported too, and for the thread and
async cases the ratio of CPU time to the stdlib's: on a loaded machine these
are the steadier measures of woflo's own cost.

Cases: ``process`` (bench_process (a): 10,000 no-ops on ProcessRunner(2)),
``pool_raw`` (the same on WorkerPool alone), ``threads`` (bench_threads (a),
with its ratio to ThreadPoolExecutor), ``async`` (bench_async: the ratio of
AsyncRunner to ``asyncio.gather``).

    python benchmarks/bench_ab.py A_CHECKOUT B_CHECKOUT [--rounds 4] [--inner 3] [--cases process,pool_raw]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(checkout: str, case: str, inner: int) -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_ab_case.py"), os.path.abspath(checkout), case, str(inner)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def spread(xs: list[float], unit: float, fmt: str) -> str:
    return f"{statistics.median(xs) * unit:{fmt}} ({min(xs) * unit:{fmt}}..{max(xs) * unit:{fmt}})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=4, help="ABBA rounds: each checkout is measured 2x this")
    ap.add_argument("--inner", type=int, default=3, help="timed repetitions inside each measurement")
    ap.add_argument("--cases", default="process,pool_raw,threads,async")
    args = ap.parse_args()
    lines = [
        f"A = {args.a}, B = {args.b}; {args.rounds} ABBA rounds, median of {args.inner} inside each; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cpus",
        "",
        "| case | A median (range) | B median (range) | B/A |",
        "|---|---|---|---|",
    ]
    for case in args.cases.split(","):
        res: dict[str, list[tuple[float, float, float]]] = {"a": [], "b": []}
        for _ in range(args.rounds):
            for who in ("a", "b", "b", "a"):
                res[who].append(measure(getattr(args, who), case, args.inner))
        if case in ("threads", "async"):  # the ratio to the stdlib is what must not regress
            rows = [(f"{case} (ratio to stdlib)", 1, 1.0, ".3f", "x")]
            rows.append((f"{case} (CPU ratio to stdlib)", 2, 1.0, ".3f", "x"))
        else:
            rows = [(f"{case} (10,000 no-ops, wall)", 0, 1e3, ".1f", " ms")]
            rows.append((f"{case} (10,000 no-ops, parent CPU)", 2, 1e3, ".1f", " ms"))
        for label, field, unit, fmt, suffix in rows:
            a, b = [r[field] for r in res["a"]], [r[field] for r in res["b"]]
            assert all(math.isfinite(x) for x in a + b)
            ratio = statistics.median(b) / statistics.median(a)
            cells = f"{spread(a, unit, fmt)}{suffix} | {spread(b, unit, fmt)}{suffix}"
            lines.append(f"| {label} | {cells} | {ratio:.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
