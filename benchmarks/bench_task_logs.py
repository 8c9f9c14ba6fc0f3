"""The cost of a record logged inside a task: woflo against a QueueHandler/QueueListener set up by hand.

Run: PYTHONPATH=. python benchmarks/bench_task_logs.py [--repeat 5] [--n 2000]

Each case runs ``n`` tasks that log 10 INFO records each, and the same ``n``
tasks logging nothing; the per-record cost is the difference divided by
``10 * n``. Every record reaches the same counting handler in the parent
(it formats the message, as any real handler would), and a case ends only
when the handler has all of them.

* process: `ProcessRunner(2)` (records forwarded on the result pipe, re-emitted
  with ``task``, ``run_id``, ``attempt``, ``worker``) against a
  ``ProcessPoolExecutor(2)`` whose initializer puts a ``QueueHandler`` on the
  worker's root logger, with a ``QueueListener`` in the parent (the recipe of
  the logging cookbook). The QueueHandler's records carry no run.
* thread: `ThreadRunner(2)` (the record factory adds the four fields) against
  ``ThreadPoolExecutor(2)`` with the handler on the logger directly.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import logging
import logging.handlers
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import compare

from woflo import ProcessRunner, ThreadRunner

WORKERS = 2
RECORDS = 10
LOGGER = "bench.tasklog"


def log_ten() -> None:
    log = logging.getLogger(LOGGER)
    for i in range(RECORDS):
        log.info("record %d", i)


def noop() -> None:
    return None


def queue_initializer(queue: Any) -> None:
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)


class Count(logging.Handler):
    """Formats each record's message and counts; ``wait(n)`` until ``n`` arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.target = 0
        self.reached = threading.Event()

    def expect(self, n: int) -> None:
        self.count, self.target = 0, n
        self.reached.clear()
        if n == 0:
            self.reached.set()

    def emit(self, record: logging.LogRecord) -> None:
        record.getMessage()
        self.count += 1
        if self.count >= self.target:
            self.reached.set()


def run_all(ex: cf.Executor, fn: Callable[[], None], n: int, count: Count, records: int) -> None:
    count.expect(records)
    for run in [ex.submit(fn) for _ in range(n)]:
        run.result()
    if not count.reached.wait(120):
        raise RuntimeError(f"only {count.count} of {records} records arrived")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    n, rep = args.n, args.repeat

    count = Count()
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(count)

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, count)
    listener.start()
    runner, tpe_proc = (
        ProcessRunner(WORKERS),
        cf.ProcessPoolExecutor(WORKERS, mp_context=ctx, initializer=queue_initializer, initargs=(queue,)),
    )
    threads, tpe = ThreadRunner(WORKERS), cf.ThreadPoolExecutor(WORKERS)
    total = n * RECORDS
    try:
        times = compare(
            {
                "woflo process, logging": lambda: run_all(runner, log_ten, n, count, total),
                "woflo process, silent": lambda: run_all(runner, noop, n, count, 0),
                "PPE+QueueHandler, logging": lambda: run_all(tpe_proc, log_ten, n, count, total),
                "PPE+QueueHandler, silent": lambda: run_all(tpe_proc, noop, n, count, 0),
                "woflo thread, logging": lambda: run_all(threads, log_ten, n, count, total),
                "woflo thread, silent": lambda: run_all(threads, noop, n, count, 0),
                "TPE, logging": lambda: run_all(tpe, log_ten, n, count, total),
                "TPE, silent": lambda: run_all(tpe, noop, n, count, 0),
            },
            repeat=rep,
        )
    finally:
        runner.shutdown()
        tpe_proc.shutdown()
        threads.shutdown()
        tpe.shutdown()
        listener.stop()

    def per_record(prefix: str) -> float:
        return (times[f"{prefix}, logging"] - times[f"{prefix}, silent"]) / total * 1e6

    print(f"n={n} tasks x {RECORDS} records, {WORKERS} workers, median of {rep}, Python {sys.version.split()[0]}")
    print(f"{os.cpu_count()} cores\n")
    print("| case | tasks logging (s) | tasks silent (s) | per record (µs) |\n|---|---:|---:|---:|")
    for prefix in ("woflo process", "PPE+QueueHandler", "woflo thread", "TPE"):
        print(
            f"| {prefix} | {times[f'{prefix}, logging']:.3f} | {times[f'{prefix}, silent']:.3f} "
            f"| {per_record(prefix):.1f} |"
        )
    print(
        f"\nper record, woflo / hand-made: process {per_record('woflo process') / per_record('PPE+QueueHandler'):.2f}x, "
        f"thread {per_record('woflo thread') / per_record('TPE'):.2f}x"
    )


if __name__ == "__main__":
    main()
