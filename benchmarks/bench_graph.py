"""Graphs of dependent runs: the scheduling cost per edge, woflo against Dask and a hand-written driver.

Three graphs of no-op tasks (``inc``), each edge a result handed from one task
to the next:

- chain: 2,000 runs, each taking the previous one's result (1,999 edges);
- fan-out: one run feeding 10,000 (10,000 edges);
- fan-in: 10,000 runs feeding one, as a list argument (10,000 edges).

Contenders, on 2 workers each, measured round-robin (one repetition of every
contender, then the next repetition), so a burst of load on a shared machine
hits them alike:

- woflo: ``ThreadRunner(2)`` and ``ProcessRunner(2)`` with the runs passed as
  arguments (`docs/orchestration.md`): the caller never waits in between;
- a hand-written driver over ``ThreadPoolExecutor(2)`` / ``ProcessPoolExecutor(2)``:
  the chain waits for each result and submits the next, the fan-out waits for
  the root, the fan-in collects with ``as_completed`` and submits the sum;
- Dask: futures as arguments (``client.submit(inc, future)``) on a
  ``LocalCluster`` of 2 processes with 1 thread each (``--no-dask`` skips it).

Prints medians and ranges of the wall time, the cost per edge in µs, and the
ratios: woflo processes against Dask and against the process driver, woflo
threads against the thread driver.

    python benchmarks/bench_graph.py [--reps 3] [--chain 2000] [--fan 10000] [--no-dask]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _graph_tasks import inc, total

import woflo
from woflo import ProcessRunner, ThreadRunner

Graph = Callable[[int], object]


# -- woflo: runs as inputs --------------------------------------------------------------


def woflo_graphs(runner: woflo.Runner) -> dict[str, Graph]:
    def chain(n: int) -> object:
        run = runner.submit(inc, 0)
        for _ in range(n - 1):
            run = runner.submit(inc, run)
        value = run.result()
        assert value == n
        return value

    def fan_out(n: int) -> object:
        root = runner.submit(inc, 0)
        runs = [runner.submit(inc, root) for _ in range(n)]
        wait_all(runs)
        assert runs[-1].result() == 2
        return runs

    def fan_in(n: int) -> object:
        runs = [runner.submit(inc, i) for i in range(n)]
        value = runner.submit(total, runs).result()
        assert value == n * (n + 1) // 2
        return value

    return {"chain": chain, "fan-out": fan_out, "fan-in": fan_in}


# -- a hand-written driver over a stdlib executor ----------------------------------------


def driver_graphs(ex: Executor) -> dict[str, Graph]:
    def chain(n: int) -> object:
        value = 0
        for _ in range(n):
            value = ex.submit(inc, value).result()
        assert value == n
        return value

    def fan_out(n: int) -> object:
        root = ex.submit(inc, 0).result()
        futures = [ex.submit(inc, root) for _ in range(n)]
        wait_all(futures)
        assert futures[-1].result() == 2
        return futures

    def fan_in(n: int) -> object:
        futures = [ex.submit(inc, i) for i in range(n)]
        values = [f.result() for f in as_completed(futures)]
        value = ex.submit(total, values).result()
        assert value == n * (n + 1) // 2
        return value

    return {"chain": chain, "fan-out": fan_out, "fan-in": fan_in}


# -- Dask: futures as arguments -------------------------------------------------------------


def dask_graphs(client: Any) -> dict[str, Graph]:
    def chain(n: int) -> object:
        future = client.submit(inc, 0, pure=False)
        for _ in range(n - 1):
            future = client.submit(inc, future, pure=False)
        value = future.result()
        assert value == n
        return value

    def fan_out(n: int) -> object:
        root = client.submit(inc, 0, pure=False)
        futures = [client.submit(inc, root, pure=False) for _ in range(n)]
        client.gather(futures)
        return futures

    def fan_in(n: int) -> object:
        futures = [client.submit(inc, i, pure=False) for i in range(n)]
        value = client.submit(total, futures, pure=False).result()
        assert value == n * (n + 1) // 2
        return value

    return {"chain": chain, "fan-out": fan_out, "fan-in": fan_in}


def main(reps: int, chain_n: int, fan_n: int, with_dask: bool) -> None:
    sizes = {"chain": chain_n, "fan-out": fan_n, "fan-in": fan_n}
    edges = {"chain": chain_n - 1, "fan-out": fan_n, "fan-in": fan_n}
    contenders: dict[str, dict[str, Graph]] = {}
    closers: list[Callable[[], object]] = []
    threads, processes = ThreadRunner(2), ProcessRunner(2)
    tpe, ppe = ThreadPoolExecutor(2), ProcessPoolExecutor(2)
    closers += [threads.shutdown, processes.shutdown, tpe.shutdown, ppe.shutdown]
    contenders["woflo threads"] = woflo_graphs(threads)
    contenders["woflo processes"] = woflo_graphs(processes)
    contenders["driver ThreadPoolExecutor"] = driver_graphs(tpe)
    contenders["driver ProcessPoolExecutor"] = driver_graphs(ppe)
    if with_dask:
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        closers += [client.close, cluster.close]
        contenders["Dask futures"] = dask_graphs(client)
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for graphs in contenders.values():  # warm up: workers started, imports done
            for case, graph in graphs.items():
                graph(min(sizes[case], 200))
        for _ in range(reps):
            for case in sizes:
                for who, graphs in contenders.items():
                    gc.collect()
                    t0 = time.perf_counter()
                    graphs[case](sizes[case])
                    times.setdefault((case, who), []).append(time.perf_counter() - t0)
    finally:
        for close in closers:
            close()
    print(f"Graphs of no-op tasks on 2 workers: median (range) of {reps} round-robin repetitions\n")
    print("| graph | contender | median s | range s | per edge µs |")
    print("|---|---|---:|---|---:|")
    med: dict[tuple[str, str], float] = {}
    for (case, who), ts in times.items():
        m = med[case, who] = statistics.median(ts)
        print(f"| {case} | {who} | {m:.3f} | {min(ts):.3f}-{max(ts):.3f} | {m / edges[case] * 1e6:.1f} |")
    print("\n| graph | ratio | value (lower is better for woflo) |")
    print("|---|---|---:|")
    pairs = [
        ("woflo processes", "driver ProcessPoolExecutor"),
        ("woflo threads", "driver ThreadPoolExecutor"),
    ]
    if with_dask:
        pairs += [("woflo processes", "Dask futures"), ("woflo threads", "Dask futures")]
    for case in sizes:
        for mine, theirs in pairs:
            print(f"| {case} | {mine} / {theirs} | {med[case, mine] / med[case, theirs]:.2f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chain", type=int, default=2_000)
    parser.add_argument("--fan", type=int, default=10_000)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    main(args.reps, args.chain, args.fan, not args.no_dask)
