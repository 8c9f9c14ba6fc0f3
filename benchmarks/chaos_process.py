"""Chaos soak of ProcessRunner: thousands of mixed tasks under random kills, stops and timeouts.

Quick, slow, failing and crashing tasks run on ProcessRunner(2-4 workers) while
workers are SIGKILLed or SIGSTOPped/SIGCONTed at random, random runs are
stopped, and some runs have a short timeout. Counts what must stay 0:

* lost: runs not done 300 s after the last submission (pending forever);
* hung: a shutdown(wait=True) that did not return within 120 s (it raises);
* wrong: runs that failed with WorkerCrashed although their task does not
  crash, nobody stopped them, they did not time out and their worker was not
  one SIGKILLed from outside.

Not part of CI (minutes); ``tests/process/test_pool_lifecycle.py::test_chaos_short``
runs a few hundred tasks of the same soak.

    python benchmarks/chaos_process.py [--tasks 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "process"))

from test_pool_lifecycle import chaos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bad = 0
    for r in range(args.rounds):
        workers = 2 + r % 3
        t0 = time.monotonic()
        counts = chaos(args.tasks, workers, seed=1000 + r)
        took = time.monotonic() - t0
        print(f"round {r}: {args.tasks} tasks, {workers} workers, {took:.1f}s: {counts}", flush=True)
        bad += counts["lost"] + counts["wrong"]
    print("lost+wrong:", bad, "(hung: 0, a hang raises)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
