"""What woflo.progress costs per run: 20,000 no-op tasks on ThreadRunner, with and without it.

Run: python benchmarks/bench_progress.py [--repeat 7] [--n 20000]
The issue's budget is 2 us per run. Progress draws plain lines to /dev/null
here (the terminal bar costs tqdm's drawing on top, throttled to 10 per second).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import compare

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

    old_stderr = sys.stderr
    sys.stderr = sink  # map's progress draws on stderr
    try:
        t = compare(
            {
                "plain": plain,
                "progress(runs)": shown,
                "map": lambda: mapped(False),
                "map(progress=True)": lambda: mapped(True),
            },
            repeat=args.repeat,
        )
    finally:
        sys.stderr = old_stderr
    print(f"n={n}, max_workers={WORKERS}, median of {args.repeat}, Python {sys.version.split()[0]}\n")
    print("| case | median s | per run (us) | extra per run (us) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, base in [("plain", "plain"), ("progress(runs)", "plain"), ("map", "map"), ("map(progress=True)", "map")]:
        extra = (t[name] - t[base]) / n * 1e6
        print(f"| {name} | {t[name]:.4f} | {t[name] / n * 1e6:.2f} | {extra:+.2f} | {t[name] / t[base]:.2f}x |")


if __name__ == "__main__":
    main()
