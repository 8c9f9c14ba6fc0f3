"""Thread runner and WofloExecutor on threads against ThreadPoolExecutor.

Run: python benchmarks/bench_threads.py [--repeat 5] [--n 20000]
Prints a markdown table; ratios are woflo time / baseline time (medians).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
from pathlib import Path

import structlog
import tenacity

sys.path.insert(0, str(Path(__file__).parent))
from _common import compare, table

import woflo
from woflo import ThreadRunner, WofloExecutor

WORKERS = 2


def noop() -> None:
    return None


def submit_all(ex: cf.Executor, n: int) -> None:
    runs = [ex.submit(noop) for _ in range(n)]
    for r in runs:
        r.result()


def with_executor(make: object, n: int) -> float:
    def once() -> None:
        with make() as ex:  # type: ignore[operator]
            submit_all(ex, n)

    return once  # type: ignore[return-value]


class FailOnce:
    """Fails the first call for each argument, then returns it."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def __call__(self, i: int) -> int:
        if i not in self.seen:
            self.seen.add(i)
            raise ValueError(i)
        return i


def flaky_woflo(n: int) -> None:
    fn = FailOnce()
    with ThreadRunner(WORKERS, retries=1) as ex:
        runs = [ex.submit(fn, i) for i in range(n)]
        for r in runs:
            r.result()


def flaky_tenacity(n: int) -> None:
    fn = tenacity.retry(stop=tenacity.stop_after_attempt(2), reraise=True)(FailOnce())
    with cf.ThreadPoolExecutor(WORKERS) as ex:
        runs = [ex.submit(fn, i) for i in range(n)]
        for r in runs:
            r.result()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    n, rep = args.n, args.repeat
    structlog.reset_defaults()

    m = compare(
        {
            "tpe": with_executor(lambda: cf.ThreadPoolExecutor(WORKERS), n),
            "runner": with_executor(lambda: ThreadRunner(WORKERS), n),
            "wex": with_executor(lambda: WofloExecutor(WORKERS, runner=ThreadRunner), n),
            "retries": with_executor(lambda: ThreadRunner(WORKERS, retries=3), n),
            "wex_retries": with_executor(lambda: WofloExecutor(WORKERS, runner=ThreadRunner, retries=3), n),
            "timeout": with_executor(lambda: ThreadRunner(WORKERS, timeout=30), n),
            "tenacity": lambda: flaky_tenacity(n),
            "flaky": lambda: flaky_woflo(n),
        },
        repeat=rep,
    )
    tpe, runner, wex, retries, wex_retries, timeout, ten, flaky = m.values()
    with open(os.devnull, "w") as sink:
        woflo.configure_logging(json=True, file=sink)
        logged = compare({"logged": with_executor(lambda: ThreadRunner(WORKERS), n)}, repeat=rep)["logged"]
        structlog.reset_defaults()

    print(f"max_workers={WORKERS}, n={n}, median of {rep}, Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print(
        table(
            "Threads: woflo vs ThreadPoolExecutor (and tenacity)",
            [
                ("(a) no-op tasks", "ThreadRunner", runner, tpe),
                ("(a) no-op tasks", "WofloExecutor(runner=ThreadRunner)", wex, tpe),
                ("(b) retries=3, never needed", "ThreadRunner", retries, tpe),
                ("(b) retries=3, never needed", "WofloExecutor", wex_retries, tpe),
                ("(b') timeout=30, never hit", "ThreadRunner", timeout, tpe),
                ("(c) fail once then succeed", "ThreadRunner(retries=1) vs TPE + tenacity @retry", flaky, ten),
                ("(d) (a) with JSON events to a null sink", "ThreadRunner", logged, tpe),
            ],
        )
    )
    print(f"\nper task: TPE {tpe / n * 1e6:.1f} us, ThreadRunner {runner / n * 1e6:.1f} us")


if __name__ == "__main__":
    main()
