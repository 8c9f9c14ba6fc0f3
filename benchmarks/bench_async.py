"""20,000 no-op coroutines: AsyncRunner against ``asyncio.gather`` of the same coroutines.

Both sides run inside one ``asyncio.run`` loop; the woflo side submits every
coroutine function to an `AsyncRunner` bound to that loop and gathers the
TaskRuns (so the cost measured includes the TaskRun, the attempt loop, and
gathering each run). Prints a markdown table of medians over ``--reps``.

Each timed round starts from a collected heap (``gc.collect()`` first, the
collector left on): the time of 20,000 short coroutines is dominated by how
many objects the collector walks, and that depends on what the previous round
left behind; without this, the order of the rounds changes the baseline by 2x.

    python benchmarks/bench_async.py [--n 20000] [--reps 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import per_task_table

from woflo.runners.aio import AsyncRunner


async def noop() -> None:
    return None


async def raw(n: int) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(noop() for _ in range(n)))
    return time.perf_counter() - t0


async def woflo(n: int, max_concurrency: int | None) -> float:
    runner = AsyncRunner(loop=asyncio.get_running_loop(), max_concurrency=max_concurrency)
    t0 = time.perf_counter()
    runs = [runner.submit(noop) for _ in range(n)]
    await asyncio.gather(*runs)
    elapsed = time.perf_counter() - t0
    runner.shutdown(wait=False)
    return elapsed


async def main(n: int, reps: int) -> None:
    times: dict[str, list[float]] = {"asyncio.gather": [], "AsyncRunner": [], "AsyncRunner(max_concurrency=1000)": []}
    await raw(1000)  # warm up
    for _ in range(reps):
        gc.collect()
        times["asyncio.gather"].append(await raw(n))
        gc.collect()
        times["AsyncRunner"].append(await woflo(n, None))
        gc.collect()
        times["AsyncRunner(max_concurrency=1000)"].append(await woflo(n, 1000))
    print(f"{n:,} no-op coroutines, median of {reps}\n")
    print(per_task_table(times, n, "asyncio.gather"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.reps))
