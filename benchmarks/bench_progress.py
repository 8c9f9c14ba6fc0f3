"""What woflo.progress costs per run: 20,000 no-op tasks on ThreadRunner, with and without it.

Run: python benchmarks/bench_progress.py [--repeat 7] [--n 20000]
The issue's budget is 2 us per run. Progress draws plain lines to /dev/null
here (the terminal bar costs tqdm's drawing on top, throttled to 10 per second).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable

import woflo
from woflo import ThreadRunner
from woflo._submit import submit_ahead

WORKERS = 2


def noop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    n = args.n
    sink = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run)

    def plain() -> None:
        with ThreadRunner(WORKERS) as ex:
            runs = [ex.submit(noop) for _ in range(n)]
            for run in runs:
                run.result()

    def shown() -> None:
        with ThreadRunner(WORKERS) as ex:
            runs = [ex.submit(noop) for _ in range(n)]
            for run in woflo.progress(runs, file=sink, interval=0.5):
                run.result()

    def mapped(progress: bool) -> None:
        with ThreadRunner(WORKERS) as ex:
            for _ in submit_ahead((ex.submit(noop) for _ in range(n)), None, None, progress=progress, total=n):
                pass

    cases: dict[str, Callable[[], None]] = {
        "plain": plain,
        "progress(runs)": shown,
        "map": lambda: mapped(False),
        "map(progress=True)": lambda: mapped(True),
    }
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    old_stderr = sys.stderr
    sys.stderr = sink  # map's progress draws on stderr
    try:
        plain()  # warm up
        for _ in range(args.repeat):  # round-robin: load bursts hit every case alike
            for name, case in cases.items():
                gc.collect()
                w0, c0 = time.perf_counter(), time.process_time()
                case()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    finally:
        sys.stderr = old_stderr
    print(f"n={n}, max_workers={WORKERS}, median of {args.repeat}, Python {sys.version.split()[0]}")
    print("CPU = the process's CPU time (every thread), less sensitive to a loaded machine than wall time\n")
    print("| case | wall per run (us) | extra wall (us) | CPU per run (us) | extra CPU (us) | CPU range (us) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, base in [("plain", "plain"), ("progress(runs)", "plain"), ("map", "map"), ("map(progress=True)", "map")]:
        w, wb = statistics.median(wall[name]) / n * 1e6, statistics.median(wall[base]) / n * 1e6
        c, cb = statistics.median(cpu[name]) / n * 1e6, statistics.median(cpu[base]) / n * 1e6
        lo, hi = min(cpu[name]) / n * 1e6, max(cpu[name]) / n * 1e6
        print(f"| {name} | {w:.2f} | {w - wb:+.2f} | {c:.2f} | {c - cb:+.2f} | {lo:.2f}-{hi:.2f} |")


if __name__ == "__main__":
    main()
