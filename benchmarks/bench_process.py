"""ProcessRunner against ProcessPoolExecutor, loky, pebble and mpire, side by side (issue 3, item 7).

Every pool has 2 workers, is started and warmed up once, then the cases run
round-robin (`_common.compare`): each repetition runs every contender once, so
load on this shared machine falls on all of them alike; medians are reported.
Ratios are time ratios against ProcessPoolExecutor with the same start method
(woflo's default "exec" method and loky's "loky" have no stdlib twin: they are
compared with PPE on "spawn", the other fresh-interpreter method).

(a) 10,000 no-op tasks, submit all then gather (also with retries=3, timeout=60)
(b) map over 200,000 items, chunksize=1,000
(c) one tiny task at a time, 1,000 round trips
(d) 1 MB bytes argument and 1 MB result, 200 tasks
(e) recovery: SIGKILL a busy worker, time until a task submitted right after
    the kill returns; the task on the other worker must be unaffected.

    python benchmarks/bench_process.py [--reps 5] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import compare, table

from woflo import ProcessRunner, WorkerCrashed

W = 2


def noop() -> None:
    return None


def inc(x: int) -> int:
    return x + 1


def echo(data: bytes) -> bytes:
    return data


def announce_then_sleep(path: str, seconds: float, value: int) -> int:
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return value


def wave(submit: Callable[..., Any], n: int) -> None:
    futures = [submit(noop) for _ in range(n)]
    for f in futures:
        f.result()


def trips(submit: Callable[..., Any], n: int) -> None:
    for _ in range(n):
        submit(noop).result()


def payload(submit: Callable[..., Any], data: bytes, n: int) -> None:
    futures = [submit(echo, data) for _ in range(n)]
    for f in futures:
        assert len(f.result()) == len(data)


def make_pools() -> dict[str, tuple[Any, Callable[..., Any], Callable[[], None]]]:
    """name -> (executor, submit, close); every one warmed up with its workers started."""
    pools: dict[str, tuple[Any, Callable[..., Any], Callable[[], None]]] = {}
    for method in ("exec", "loky", "spawn", "forkserver"):
        r = ProcessRunner(W, start_method=method)
        pools[f"woflo {method}"] = (r, r.submit, r.shutdown)
    r = ProcessRunner(W, retries=3, timeout=60)
    pools["woflo exec retries=3 timeout=60"] = (r, r.submit, r.shutdown)
    for method in ("spawn", "forkserver"):
        ppe = cf.ProcessPoolExecutor(W, mp_context=multiprocessing.get_context(method))
        pools[f"PPE {method}"] = (ppe, ppe.submit, ppe.shutdown)
    from loky import get_reusable_executor

    lk = get_reusable_executor(W)
    pools["loky reusable"] = (lk, lk.submit, lk.shutdown)
    from pebble import ProcessPool

    pb = ProcessPool(W, context=multiprocessing.get_context("spawn"))

    def pb_close() -> None:
        pb.close()
        pb.join()

    pools["pebble spawn"] = (pb, lambda fn, *a: pb.schedule(fn, args=a), pb_close)
    try:
        from _peers import mpire_peer

        mp = mpire_peer(W)  # fork, workers kept alive, apply_async; its map is not the stdlib's: no (b)
        pools["mpire apply_async"] = (None, mp.submit, mp.close)
    except ImportError:
        pass
    try:
        import distributed

        cluster = distributed.LocalCluster(n_workers=W, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        dex = client.get_executor(pure=False)

        def dask_close() -> None:
            client.close()
            cluster.close()

        pools[DASK] = (None, dex.submit, dask_close)
    except ImportError:
        pass
    for _, submit, _ in pools.values():
        wave(submit, 200)  # starts every worker
    return pools


def dask_time(submit: Callable[..., Any], n: int, reps: int) -> float:
    """Median seconds of `wave` on Dask's executor, letting the cluster settle between repetitions."""
    times = []
    for _ in range(reps):
        time.sleep(2)
        started = time.perf_counter()
        wave(submit, n)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


#: Dask's concurrent.futures executor over a LocalCluster of W processes: in
#: (a) only (its per-task cost makes (b)-(d) take minutes).
DASK = "Dask LocalCluster executor"


def baseline(name: str) -> str:
    return "PPE forkserver" if "forkserver" in name else "PPE spawn"


def rows_for(case: str, times: dict[str, float]) -> list[tuple[str, str, float, float]]:
    return [(case, name, t, times[baseline(name)]) for name, t in times.items()]


def run_map(ex: Any, n: int, chunksize: int) -> None:
    if hasattr(ex, "schedule"):  # pebble: map returns a future of an iterator
        out = list(ex.map(inc, range(n), chunksize=chunksize).result())
    else:
        out = list(ex.map(inc, range(n), chunksize=chunksize))
    assert len(out) == n and out[-1] == n


def recovery(runner: ProcessRunner, reps: int) -> tuple[list[float], bool]:
    """Seconds from SIGKILL of a busy worker to the result of a task submitted right after."""
    times: list[float] = []
    unaffected = True
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            victim_file, other_file = f"{tmp}/v{i}", f"{tmp}/o{i}"
            victim = runner.submit(announce_then_sleep, victim_file, 30, -1)
            other = runner.submit(announce_then_sleep, other_file, 1.0, i)
            end = time.monotonic() + 30
            while not (os.path.exists(victim_file) and os.path.exists(other_file)):
                assert time.monotonic() < end, "tasks never started"
                time.sleep(0.001)
            time.sleep(0.01)  # let the pid be written completely
            pid = int(Path(victim_file).read_text())
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            runner.submit(noop).result(30)
            times.append(time.perf_counter() - t0)
            unaffected &= isinstance(victim.exception(30), WorkerCrashed) and other.result(30) == i
    return times, unaffected


def ppe_recovery() -> str:
    """What a SIGKILLed worker does to ProcessPoolExecutor: every pending future breaks."""
    with tempfile.TemporaryDirectory() as tmp, cf.ProcessPoolExecutor(W) as ppe:
        victim = ppe.submit(announce_then_sleep, f"{tmp}/v", 30, -1)
        other = ppe.submit(announce_then_sleep, f"{tmp}/o", 1.0, 7)
        end = time.monotonic() + 30
        while not os.path.exists(f"{tmp}/v"):
            assert time.monotonic() < end
            time.sleep(0.001)
        time.sleep(0.01)
        os.kill(int(Path(f"{tmp}/v").read_text()), signal.SIGKILL)
        errors = {type(f.exception(30)).__name__ for f in (victim, other)}
        try:
            ppe.submit(noop).result(30)
            after = "a new submit works"
        except Exception as exc:
            after = f"a new submit raises {type(exc).__name__}"
    return f"victim and bystander fail with {sorted(errors)}; {after}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a tenth of the work, to try the script")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    n_a, n_b, n_c, n_d = 10_000 // scale, 200_000 // scale, 1_000 // scale, 200 // scale
    reps = args.reps

    pools = make_pools()
    out: list[str] = [f"{W} workers, median of {reps} round-robin repetitions, cpus={os.cpu_count()}", ""]

    # (a) throughput
    a = compare(
        {name: (lambda s=submit: wave(s, n_a)) for name, (_, submit, _) in pools.items() if name != DASK}, repeat=reps
    )
    if DASK in pools:
        # Apart, after the others: a LocalCluster stays busy for a while after
        # 10,000 tasks (bookkeeping, collection), which slowed whichever
        # contender came next in the round-robin by 3-4x.
        a[DASK] = dask_time(pools[DASK][1], n_a, reps)
    out += [table(f"(a) {n_a} no-op tasks, submit all then gather", rows_for("a", a)), ""]

    # (b) chunked map
    mappers = {name: ex for name, (ex, _, _) in pools.items() if "retries" not in name and ex is not None}
    b = compare({name: (lambda ex=ex: run_map(ex, n_b, 1_000)) for name, ex in mappers.items()}, repeat=reps)
    out += [table(f"(b) map over {n_b} items, chunksize=1000", rows_for("b", b)), ""]

    # (c) latency
    c = compare(
        {name: (lambda s=submit: trips(s, n_c)) for name, (_, submit, _) in pools.items() if name != DASK},
        repeat=reps,
    )
    out += [table(f"(c) {n_c} round trips of one tiny task", rows_for("c", c)), ""]

    # (d) 1 MB in and out
    data = os.urandom(1 << 20)
    d = compare(
        {name: (lambda s=submit: payload(s, data, n_d)) for name, (_, submit, _) in pools.items() if name != DASK},
        repeat=reps,
        warmup=1,
    )
    out += [table(f"(d) {n_d} tasks of 1 MB in, 1 MB out", rows_for("d", d)), ""]

    # (e) recovery
    rec, unaffected = recovery(pools["woflo exec"][0], max(reps, 5))
    ppe_note = ppe_recovery()
    for _, _, close in pools.values():
        close()

    out += [
        "### (e) recovery from a SIGKILLed worker",
        "",
        f"woflo exec: kill -> result of a task submitted right after: median {statistics.median(rec) * 1e3:.0f} ms, "
        f"max {max(rec) * 1e3:.0f} ms over {len(rec)} kills; task on the other worker unaffected: {unaffected}",
        f"ProcessPoolExecutor: {ppe_note}",
        "",
        "### summary (ratio > 1: woflo better)",
        "",
        "| case | woflo | vs | ratio | target |",
        "|---|---|---|---|---|",
    ]
    mb = 2 * n_d  # MB moved per run of (d)
    summary = [
        ("a tasks/s", "woflo exec", "PPE spawn", a["PPE spawn"] / a["woflo exec"], ">= 2.5"),
        ("a tasks/s", "woflo loky", "PPE spawn", a["PPE spawn"] / a["woflo loky"], ">= 2.5"),
        ("a tasks/s", "woflo spawn", "PPE spawn", a["PPE spawn"] / a["woflo spawn"], ">= 2.5"),
        ("a tasks/s", "woflo forkserver", "PPE forkserver", a["PPE forkserver"] / a["woflo forkserver"], ">= 2.5"),
        ("a tasks/s", "woflo exec", "pebble spawn", a["pebble spawn"] / a["woflo exec"], "> 1"),
        ("a tasks/s", "woflo exec", "loky reusable", a["loky reusable"] / a["woflo exec"], "-"),
        *(
            [("a tasks/s", "woflo exec", "mpire apply_async", a["mpire apply_async"] / a["woflo exec"], "-")]
            if "mpire apply_async" in a
            else []
        ),
        *([("a tasks/s", "woflo exec", DASK, a[DASK] / a["woflo exec"], "-")] if DASK in a else []),
        (
            "a tasks/s",
            "woflo exec retries=3 timeout=60",
            "woflo exec",
            a["woflo exec"] / a["woflo exec retries=3 timeout=60"],
            "~1",
        ),
        ("b map", "woflo exec", "PPE spawn", b["PPE spawn"] / b["woflo exec"], ">= 1.0"),
        ("b map", "woflo forkserver", "PPE forkserver", b["PPE forkserver"] / b["woflo forkserver"], ">= 1.0"),
        ("c latency", "woflo exec", "PPE spawn", c["PPE spawn"] / c["woflo exec"], ">= 1/1.2 = 0.83"),
        ("c latency", "woflo forkserver", "PPE forkserver", c["PPE forkserver"] / c["woflo forkserver"], ">= 0.83"),
        ("d MB/s", "woflo exec", "PPE spawn", d["PPE spawn"] / d["woflo exec"], ">= 0.9"),
        ("d MB/s", "woflo forkserver", "PPE forkserver", d["PPE forkserver"] / d["woflo forkserver"], ">= 0.9"),
    ]
    out += [f"| {case} | {who} | {vs} | {ratio:.2f}x | {target} |" for case, who, vs, ratio, target in summary]
    out += [
        "",
        f"absolute: (a) woflo exec {n_a / a['woflo exec']:.0f} tasks/s, PPE spawn {n_a / a['PPE spawn']:.0f}; "
        f"(c) woflo exec {c['woflo exec'] / n_c * 1e6:.0f} us/trip, PPE spawn {c['PPE spawn'] / n_c * 1e6:.0f}; "
        f"(d) woflo exec {mb / d['woflo exec']:.0f} MB/s, PPE spawn {mb / d['PPE spawn']:.0f}",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
