"""Raw WorkerPool against ProcessPoolExecutor, loky and pebble (no runner layer on top).

(a) throughput: 10,000 no-op tasks submitted, then all gathered; tasks/s.
(c) latency: 1,000 round trips of one tiny task at a time; microseconds each.
Each pool is created and warmed up once (workers started), then measured
``--reps`` times; medians are reported, and ratios against ProcessPoolExecutor
started with the same method ("loky" has no stdlib twin: PPE uses "spawn" then).

    python benchmarks/bench_pool_raw.py [--tasks 10000] [--reps 5] [--method loky]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from woflo._process import WorkerPool


def noop() -> None:
    return None


class RawPool:
    """Futures-free driver: counts completions, one Event per wave."""

    def __init__(self, workers: int, method: str | None) -> None:
        self.left = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.pool = WorkerPool(workers, start_method=method, on_start=lambda t, p: None, on_done=self._done)

    def _done(self, token: object, ok: bool, value: Any, pid: int | None) -> None:
        assert ok, value
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()

    def wave(self, n: int) -> None:
        self.done.clear()
        self.left = n
        for i in range(n):
            self.pool.submit(i, noop, (), {})
        assert self.done.wait(120)

    def one_by_one(self, n: int) -> None:
        for _ in range(n):
            self.wave(1)

    def close(self) -> None:
        self.pool.shutdown()


def futures_wave(submit: Callable[[], cf.Future[Any]], n: int) -> None:
    futures = [submit() for _ in range(n)]
    for f in futures:
        f.result()


def futures_one_by_one(submit: Callable[[], cf.Future[Any]], n: int) -> None:
    for _ in range(n):
        submit().result()


def clock(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--trips", type=int, default=1_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--method", default="loky")
    args = ap.parse_args()
    n, trips, reps, w = args.tasks, args.trips, args.reps, args.workers
    stdlib_method = "spawn" if args.method == "loky" else args.method
    # Every pool is started and warmed up first, then the repetitions take turns
    # (round robin), so the machine's noise falls on every pool alike.
    pools: dict[str, tuple[Callable[[int], None], Callable[[int], None], Callable[[], None]]] = {}
    raw = RawPool(w, args.method)
    pools[f"woflo raw pool ({args.method})"] = (raw.wave, raw.one_by_one, raw.close)
    ppe = cf.ProcessPoolExecutor(w, mp_context=multiprocessing.get_context(stdlib_method))
    pools[f"ProcessPoolExecutor ({stdlib_method})"] = (
        lambda k: futures_wave(lambda: ppe.submit(noop), k),
        lambda k: futures_one_by_one(lambda: ppe.submit(noop), k),
        ppe.shutdown,
    )
    try:
        from loky import get_reusable_executor

        lk = get_reusable_executor(w)
        pools["loky reusable executor"] = (
            lambda k: futures_wave(lambda: lk.submit(noop), k),
            lambda k: futures_one_by_one(lambda: lk.submit(noop), k),
            lk.shutdown,
        )
    except ImportError:
        pass
    try:
        from pebble import ProcessPool

        pb = ProcessPool(w, context=multiprocessing.get_context(stdlib_method))

        def pb_close() -> None:
            pb.close()
            pb.join()

        pools[f"pebble ProcessPool ({stdlib_method})"] = (
            lambda k: futures_wave(lambda: pb.schedule(noop), k),
            lambda k: futures_one_by_one(lambda: pb.schedule(noop), k),
            pb_close,
        )
    except ImportError:
        pass

    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pools}
    for wave, _, _ in pools.values():
        wave(200)  # starts every worker
    for _ in range(reps):
        for name, (wave, one_by_one, _) in pools.items():
            samples[name][0].append(clock(lambda: wave(n)))
            samples[name][1].append(clock(lambda: one_by_one(trips)))
    for _, _, close in pools.values():
        close()
    rows = {name: (statistics.median(tp), statistics.median(lat)) for name, (tp, lat) in samples.items()}

    base_tp, base_lat = rows[f"ProcessPoolExecutor ({stdlib_method})"]
    print(f"{w} workers, {n} no-op tasks (a), {trips} round trips (c), median of {reps}; cpus={os.cpu_count()}")
    print(f"{'pool':<34} {'tasks/s':>10} {'vs PPE':>7} {'us/trip':>9} {'vs PPE':>7}")
    for name, (tp, lat) in rows.items():
        print(f"{name:<34} {n / tp:>10.0f} {base_tp / tp:>6.2f}x {lat / trips * 1e6:>9.1f} {lat / base_lat:>6.2f}x")
    raw_tp = rows[f"woflo raw pool ({args.method})"][0]
    for name, (tp, _) in rows.items():
        if not name.startswith("woflo"):
            print(f"woflo raw throughput vs {name}: {tp / raw_tp:.2f}x")


if __name__ == "__main__":
    main()
