"""2,000 no-op tasks: DaskRunner against raw ``client.submit`` + ``client.gather`` on the same cluster.

One LocalCluster (2 worker processes, 1 thread each) serves both sides, measured
round-robin. Prints a markdown table of medians over ``--reps``.

    python benchmarks/bench_dask.py [--n 2000] [--reps 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import distributed

sys.path.insert(0, str(Path(__file__).parent))
from _common import per_task_table

from woflo.runners.dask import DaskRunner


def noop(i: int) -> int:
    return i


def raw(client: distributed.Client, n: int) -> float:
    t0 = time.perf_counter()
    futures = [client.submit(noop, i, pure=False) for i in range(n)]
    client.gather(futures)
    return time.perf_counter() - t0


def woflo(runner: DaskRunner, n: int) -> float:
    t0 = time.perf_counter()
    runs = [runner.submit(noop, i) for i in range(n)]
    for run in runs:
        run.result()
    return time.perf_counter() - t0


def main(n: int, reps: int) -> None:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as client:
        runner = DaskRunner(client)
        raw(client, 200)
        woflo(runner, 200)
        times: dict[str, list[float]] = {"client.submit + gather": [], "DaskRunner": []}
        for _ in range(reps):
            times["client.submit + gather"].append(raw(client, n))
            times["DaskRunner"].append(woflo(runner, n))
        runner.shutdown()
    print(f"{n:,} no-op tasks on a 2-process LocalCluster, median of {reps}\n")
    print(per_task_table(times, n, "client.submit + gather"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    main(args.n, args.reps)
