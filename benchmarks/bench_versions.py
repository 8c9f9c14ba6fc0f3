"""Two woflo source trees side by side: no-op throughput before and after a change.

Run: python benchmarks/bench_versions.py OLD_TREE NEW_TREE [--reps 7] [--n 20000]

Each tree is a checkout's root (the folder holding ``woflo/``); make the old
one with ``git worktree add /tmp/old <commit>``. Every measurement runs in a
fresh interpreter importing woflo from one tree, and the trees alternate
within each repetition, so a machine that gets busier mid-run slows both.
Cases: ``ThreadRunner(2)`` and ``ProcessRunner(2)`` running ``n`` no-op
calls (submit all, then wait for all), and the ``asyncio.gather`` ratio
(``AsyncRunner`` on the caller's loop over plain ``asyncio.gather`` of the
same coroutines). Prints medians, ranges and new/old ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, json, sys, time
import woflo
from woflo import AsyncRunner, ProcessRunner, ThreadRunner

case, n = sys.argv[1], int(sys.argv[2])

def noop():
    return None

async def anoop():
    return None

def pool(make):
    with make() as ex:
        for r in [ex.submit(noop) for _ in range(200)]:  # warm: workers started
            r.result()
        t0 = time.perf_counter()
        for r in [ex.submit(noop) for _ in range(n)]:
            r.result()
        return time.perf_counter() - t0

async def gather_ratio():
    runner = AsyncRunner(loop=asyncio.get_running_loop())
    await asyncio.gather(*[runner.submit(anoop) for _ in range(200)])
    t0 = time.perf_counter()
    await asyncio.gather(*[anoop() for _ in range(n)])
    raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    await asyncio.gather(*[runner.submit(anoop) for _ in range(n)])
    ours = time.perf_counter() - t0
    runner.shutdown(wait=False)
    return ours / raw

if case == "thread":
    value = n / pool(lambda: ThreadRunner(2))
elif case == "process":
    value = n / pool(lambda: ProcessRunner(2))
else:
    value = asyncio.run(gather_ratio())
print(json.dumps(value))
"""

CASES = {"thread": "tasks/s", "process": "tasks/s", "gather": "x raw asyncio"}


def measure(tree: Path, case: str, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(n)], env=env, capture_output=True, text=True, check=True, timeout=600
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    cases = args.cases.split(",")
    results: dict[tuple[str, str], list[float]] = {(c, t): [] for c in cases for t in ("old", "new")}
    for rep in range(args.reps):
        order = [("old", args.old), ("new", args.new)]
        if rep % 2:
            order.reverse()
        for case in cases:
            for label, tree in order:
                results[case, label].append(measure(tree, case, args.n))
        print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    print("| case | old median (range) | new median (range) | new/old |\n|---|---|---|---|")
    for case in cases:
        old, new = results[case, "old"], results[case, "new"]
        mo, mn = statistics.median(old), statistics.median(new)
        f = "{:,.0f}" if mo > 100 else "{:.2f}"
        cell = " ".join([f, "(" + f + "-" + f + ")"])
        print(
            f"| {case} ({CASES[case]}) | {cell.format(mo, min(old), max(old))} "
            f"| {cell.format(mn, min(new), max(new))} | {mn / mo:.3f} |"
        )


if __name__ == "__main__":
    main()
