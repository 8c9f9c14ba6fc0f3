"""Import time: ``python -c "import woflo"`` against a bare interpreter and its peers.

Each contender runs in a fresh interpreter (``python -c CODE``), interleaved
(each round runs every contender once, so load bursts on this shared machine
hit all alike), ``--reps`` rounds; prints the median wall time, its range,
the median above the bare interpreter and the ratio to ``concurrent.futures``.
Then ``-X importtime``'s largest entries for ``import woflo``.

    python benchmarks/bench_import.py [--reps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import compile_package

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONTENDERS = {
    "bare (python -c pass)": "pass",
    "import concurrent.futures": "import concurrent.futures",
    "import woflo": "import woflo",
    "from woflo import task": "from woflo import task",
    "from woflo import ProcessRunner": "from woflo import ProcessRunner",
    "import loky": "import loky",
    "import tenacity, structlog": "import tenacity, structlog",
}


def _wall(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    reps = ap.parse_args().reps
    compile_package(os.path.join(REPO, "woflo"))  # bytecode as installed, even under PYTHONDONTWRITEBYTECODE
    for code in CONTENDERS.values():  # warm the .pyc caches
        _wall(code)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(reps):
        for name, code in CONTENDERS.items():
            times[name].append(_wall(code))
    print(f"median of {reps} interleaved fresh interpreters, cpus={os.cpu_count()}, {sys.version.split()[0]}\n")
    bare = statistics.median(times["bare (python -c pass)"])
    futures = statistics.median(times["import concurrent.futures"])
    print("| contender | median ms | range ms | above bare ms | vs concurrent.futures |")
    print("|---|---:|---:|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"| {name} | {med * 1e3:.1f} | {min(ts) * 1e3:.1f}-{max(ts) * 1e3:.1f} | {(med - bare) * 1e3:+.1f} "
            f"| {med / futures:.2f}x |"
        )
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import woflo"], cwd=REPO, capture_output=True, text=True, check=True
    ).stderr
    rows = [line.split("|") for line in err.splitlines() if line.startswith("import time:") and "|" in line]
    rows = [r for r in rows if r[1].strip().isdigit()]
    rows.sort(key=lambda r: -int(r[1]))
    print("\n-X importtime, import woflo, largest cumulative (us):\n")
    for r in rows[:8]:
        print(f"    {int(r[1]):>8} {r[2].rstrip()}")


if __name__ == "__main__":
    main()
