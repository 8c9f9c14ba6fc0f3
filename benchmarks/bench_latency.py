"""One task at a time (submit, result, repeat): round-trip latency against peers and a bare pipe (issue 13, items 4 and 5).

Processes (2 workers): woflo's ProcessRunner ("exec"), a bare pipe ping-pong
to one child (``_bare.BarePipe.ping``: one byte each way, the floor), the same
pipe with a parent thread relaying each reply to the caller, as every pool's
result thread does (``_bare.RelayedPipe``),
ProcessPoolExecutor ("fork", "spawn"), loky, pebble, mpire (``apply_async``).
Threads: ThreadRunner against ThreadPoolExecutor. Round-robin repetitions,
medians, ranges, and ratios of the medians (above 1: slower than the baseline).

    python benchmarks/bench_latency.py [--trips 1000] [--reps 7] [--cpus 0]

Where the threads run decides a round trip more than the executor does on a
small VM: when the caller and the worker sit on different vCPUs, every
hand-off wakes a halted vCPU (50-60 us here), and which contender gets that
placement changes from run to run. ``--cpus 0`` pins this process and every
process it starts (affinity is inherited) to CPU 0 before anything starts:
then a round trip is each executor's own work plus two context switches, the
figure to compare executors by. Without ``--cpus`` the scheduler decides, as
it would for a user's program; run both.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _bare import BarePipe, RelayedPipe
from _common import compare_samples
from _payload_funcs import noop
from _peers import make_peers, woflo_peer

from woflo import ThreadRunner

W = 2


def trips(submit: object, n: int) -> None:
    for _ in range(n):
        submit(noop).result()  # type: ignore[operator]


def report(title: str, times: dict[str, list[float]], n: int, base: str) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [f"### {title}", "", f"| contender | us/trip median (range) | vs {base} |", "|---|---|---|"]
    for name, ts in times.items():
        lines.append(
            f"| {name} | {med[name] / n * 1e6:.1f} ({min(ts) / n * 1e6:.1f}..{max(ts) / n * 1e6:.1f})"
            f" | {med[name] / med[base]:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trips", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--cpus", help="comma-separated CPUs to pin everything to, e.g. 0 (default: unpinned)")
    args = ap.parse_args()
    n = args.trips
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    placement = sorted(os.sched_getaffinity(0))
    print(
        f"{W} workers, {n} trips per repetition, cpus={os.cpu_count()}, runs on CPUs {placement}"
        f"{' (pinned)' if args.cpus else ''}, Python {sys.version.split()[0]}\n"
    )
    bare, relayed = BarePipe(), RelayedPipe()
    peers = [woflo_peer("woflo exec", W), *make_peers(W, ["PPE fork", "PPE spawn", "loky", "pebble", "mpire"])]
    try:
        for p in peers:
            trips(p.submit, 50)
        contenders = {
            "bare pipe": lambda: [bare.ping() for _ in range(n)],
            "bare pipe + result thread": lambda: [relayed.ping() for _ in range(n)],
        }
        contenders.update({p.name: (lambda p=p: trips(p.submit, n)) for p in peers})
        times = compare_samples(contenders, repeat=args.reps)
        print(report("processes: one tiny task at a time", times, n, "bare pipe"), "\n")
    finally:
        bare.close()
        relayed.close()
        for p in peers:
            p.close()
    tr, tpe = ThreadRunner(W), cf.ThreadPoolExecutor(W)
    try:
        times = compare_samples(
            {"ThreadPoolExecutor": lambda: trips(tpe.submit, n), "woflo ThreadRunner": lambda: trips(tr.submit, n)},
            repeat=args.reps,
        )
        print(report("threads: one tiny task at a time", times, n, "ThreadPoolExecutor"))
    finally:
        tr.shutdown()
        tpe.shutdown()


if __name__ == "__main__":
    main()
