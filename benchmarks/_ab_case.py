"""One measurement of one case against the woflo of one checkout; run by ``bench_ab.py``.

    python benchmarks/_ab_case.py CHECKOUT CASE INNER

Imports woflo from CHECKOUT (first on ``sys.path``), runs CASE ``INNER`` times
after a warm-up, and prints one line: the median seconds; for the thread and
async cases the median time ratio to the stdlib baseline measured in the same
process, round-robin; then, for the pool cases, the median CPU seconds the
parent spent (all its threads: the pool's own cost, which load on a shared
machine disturbs less than wall time), and for the thread and async cases the
median ratio of CPU seconds to the same baseline's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def noop() -> None:
    return None


async def anoop() -> None:
    return None


CPU: list[float] = []  # the parent's CPU seconds (all its threads) of each timed call
# For the thread and async cases: the CPU seconds of woflo's and of the stdlib
# baseline's rounds, apart (their ratio is the steadier measure on a loaded machine).
RUNNER_CPU: list[float] = []
BASE_CPU: list[float] = []


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    CPU.append(time.process_time() - c0)
    return elapsed


def _wave(submit: Callable[..., Any], n: int) -> None:
    for f in [submit(noop) for _ in range(n)]:
        f.result()


def process(inner: int) -> tuple[float, float | None]:
    """(a) of bench_process: 10,000 no-op tasks on ProcessRunner(2), "exec"."""
    from woflo import ProcessRunner

    with ProcessRunner(2) as r:
        _wave(r.submit, 200)
        _wave(r.submit, 10_000)
        return statistics.median(_timed(lambda: _wave(r.submit, 10_000)) for _ in range(inner)), None


def pool_raw(inner: int) -> tuple[float, float | None]:
    """bench_pool_raw (a): 10,000 no-op jobs on WorkerPool(2) itself, no runner layer."""
    from woflo._process import WorkerPool

    left = [0]
    done = threading.Event()
    lock = threading.Lock()

    def on_done(token: object, ok: bool, value: Any, pid: int | None) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    pool = WorkerPool(2, on_start=lambda t, p: None, on_done=on_done)

    def wave(n: int = 10_000) -> None:
        done.clear()
        left[0] = n
        for i in range(n):
            pool.submit(i, noop, (), {})
        assert done.wait(120)

    try:
        wave(200)
        wave()
        return statistics.median(_timed(wave) for _ in range(inner)), None
    finally:
        pool.shutdown()


def threads(inner: int) -> tuple[float, float | None]:
    """(a) of bench_threads: 20,000 no-op tasks, ThreadRunner(2) against ThreadPoolExecutor(2)."""
    from woflo import ThreadRunner

    def once(make: Callable[[], cf.Executor]) -> Callable[[], None]:
        def run() -> None:
            with make() as ex:
                _wave(ex.submit, 20_000)

        return run

    woflo_run, tpe_run = once(lambda: ThreadRunner(2)), once(lambda: cf.ThreadPoolExecutor(2))
    woflo_run(), tpe_run()
    ours, base = [], []
    for _ in range(inner):
        ours.append(_timed(woflo_run))
        RUNNER_CPU.append(CPU[-1])
        base.append(_timed(tpe_run))
        BASE_CPU.append(CPU[-1])
    return statistics.median(ours), statistics.median(o / b for o, b in zip(ours, base, strict=True))


def aio(inner: int) -> tuple[float, float | None]:
    """bench_async: 20,000 no-op coroutines, AsyncRunner against asyncio.gather, in one loop."""
    from woflo.runners.aio import AsyncRunner

    async def main() -> tuple[float, float]:
        n = 20_000
        await asyncio.gather(*(anoop() for _ in range(1000)))
        ours, base = [], []
        for _ in range(inner + 1):
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(anoop() for _ in range(n)))
            base.append(time.perf_counter() - t0)
            BASE_CPU.append(time.process_time() - c0)
            gc.collect()
            runner = AsyncRunner(loop=asyncio.get_running_loop())
            c0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*[runner.submit(anoop) for _ in range(n)])
            ours.append(time.perf_counter() - t0)
            RUNNER_CPU.append(time.process_time() - c0)
            runner.shutdown(wait=False)
        ours, base = ours[1:], base[1:]  # the first round warms up
        del RUNNER_CPU[0], BASE_CPU[0]
        return statistics.median(ours), statistics.median(o / b for o, b in zip(ours, base, strict=True))

    return asyncio.run(main())


CASES = {"process": process, "pool_raw": pool_raw, "threads": threads, "async": aio}

if __name__ == "__main__":
    checkout, case, inner = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, checkout)
    import woflo

    assert woflo.__file__.startswith(checkout), (woflo.__file__, checkout)
    seconds, ratio = CASES[case](inner)
    if case in ("process", "pool_raw"):
        cpu = statistics.median(CPU) if CPU else float("nan")
    else:
        cpu = statistics.median(o / b for o, b in zip(RUNNER_CPU, BASE_CPU, strict=True))
    print(f"{seconds:.6f} {ratio if ratio is not None else 'nan'} {cpu:.6f}")
