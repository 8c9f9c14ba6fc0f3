"""Cold start of a ProcessRunner, and what a worker imports, per start method.

Each measurement runs in a fresh interpreter, so nothing is warm or already
running; contenders are run interleaved (each round runs every one once) and
medians are reported, with ratios of medians.

(1) worker import: what a worker process imports before it takes a job,
    measured by running those imports alone in ``python -c``: the sum of
    ``-X importtime``'s top-level cumulative times, and the wall time of the
    interpreter (start, imports, exit).
      exec      woflo's boot (`woflo/_process/launch.py` `_BOOT`): the woflo
                package registered without its ``__init__``, then the worker
      loky      loky's entry (``loky.backend.popen_loky_posix``) and the
                worker's target, ``woflo._process.worker`` (all of woflo)
      PPE spawn multiprocessing's spawn entry and ``concurrent.futures.process``
(2) cold start: ``import woflo``, build a runner, first result of one tiny
    task, ``shutdown()``, in a fresh interpreter: the time from building the
    runner to the end of ``shutdown``, and the wall time of the whole
    interpreter; against ``ProcessPoolExecutor`` with "spawn".
(3) processes of the interpreter left after ``shutdown()``, per start method.

    python benchmarks/bench_coldstart.py [--reps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from _common import compile_package  # noqa: E402

from woflo._process import launch  # noqa: E402  (from this checkout, as the other benchmarks)

_EXEC_IMPORTS = (
    launch._BOOT.replace("from woflo._process.launch import boot\nboot(spec, *map(int, sys.argv[2:]))\n", "")
    + "import woflo._process.launch, woflo._process.worker, multiprocessing.connection\n"
)
_WORKER_IMPORTS = {
    "exec": (_EXEC_IMPORTS, [launch._ROOT]),
    "loky": (
        f"import sys; sys.path.insert(0, {REPO!r})\nimport loky.backend.popen_loky_posix, woflo._process.worker",
        [],
    ),
    "PPE spawn": ("import multiprocessing.spawn, concurrent.futures.process", []),
}

_COLD = """
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
method = sys.argv[1]
if method.startswith("PPE "):
    import concurrent.futures as cf, multiprocessing
    t1 = time.perf_counter()
    ex = cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method[4:]))
elif method == "@task (default)":
    from woflo import task
    t1 = time.perf_counter()
    pid = task(os.getpid)().result(60)  # the shared default runner
    t2 = time.perf_counter()
    from woflo._shared import _shutdown_all
    _shutdown_all()  # what atexit would do
    t3 = time.perf_counter()
    ex = None
else:
    from woflo import ProcessRunner
    t1 = time.perf_counter()
    ex = ProcessRunner(2, start_method=None if method == "exec (default)" else method)
if ex is not None:
    pid = ex.submit(os.getpid).result(60)
    t2 = time.perf_counter()
    ex.shutdown()
    t3 = time.perf_counter()
import psutil
left = [" ".join(p.cmdline())[-70:] for p in psutil.Process().children(recursive=True)]
print(json.dumps({{"import": t1 - t0, "first": t2 - t1, "run": t3 - t1, "left": left}}))
"""


def _importtime(code: str, args: list[str]) -> tuple[float, float]:
    """(sum of top-level import times, wall time of the interpreter), in seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=REPO)
    wall = time.perf_counter() - t0
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args], check=True, cwd=REPO, capture_output=True, text=True
    ).stderr
    total = 0
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):  # top level only
                total += int(cumulative)
    return total / 1e6, wall


def _cold(method: str) -> dict[str, object]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _COLD.format(repo=REPO), method], check=True, cwd=REPO, capture_output=True, text=True
    ).stdout
    wall = time.perf_counter() - t0
    report: dict[str, object] = json.loads(out)
    report["wall"] = wall
    return report


def _ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    reps = args.reps
    compile_package(os.path.join(REPO, "woflo"))  # bytecode as installed, even under PYTHONDONTWRITEBYTECODE
    print(f"median of {reps} interleaved rounds, fresh interpreters, cpus={os.cpu_count()}, {sys.version.split()[0]}")

    imports: dict[str, list[tuple[float, float]]] = {name: [] for name in _WORKER_IMPORTS}
    for _ in range(reps):
        for name, (code, argv) in _WORKER_IMPORTS.items():
            imports[name].append(_importtime(code, argv))
    print("\n### (1) what a worker imports before its first job\n")
    print("| worker | import time ms | interpreter wall ms | wall vs PPE spawn |")
    print("|---|---:|---:|---:|")
    base = _ms([w for _, w in imports["PPE spawn"]])
    for name, xs in imports.items():
        wall = _ms([w for _, w in xs])
        print(f"| {name} | {_ms([t for t, _ in xs]):.1f} | {wall:.1f} | {wall / base:.2f}x |")

    methods = ["exec (default)", "@task (default)", "fork", "loky", "PPE spawn", "PPE fork"]
    cold: dict[str, list[dict[str, object]]] = {m: [] for m in methods}
    for _ in range(reps):
        for m in methods:
            cold[m].append(_cold(m))
    print("\n### (2) cold start: build, first result, shutdown (2 workers at most, one started)\n")
    print(
        "| contender | build+first result ms | build..shutdown ms | interpreter wall ms | run vs PPE spawn | wall vs PPE spawn |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    run_base = _ms([r["run"] for r in cold["PPE spawn"]])  # type: ignore[misc]
    wall_base = _ms([r["wall"] for r in cold["PPE spawn"]])  # type: ignore[misc]
    for m, rs in cold.items():
        first = _ms([r["first"] for r in rs])  # type: ignore[misc]
        run = _ms([r["run"] for r in rs])  # type: ignore[misc]
        wall = _ms([r["wall"] for r in rs])  # type: ignore[misc]
        walls = [r["wall"] for r in rs]
        span = f"{min(walls) * 1e3:.0f}-{max(walls) * 1e3:.0f}"  # type: ignore[type-var]
        print(
            f"| {m} | {first:.0f} | {run:.0f} | {wall:.0f} ({span}) | {run / run_base:.2f}x | {wall / wall_base:.2f}x |"
        )
    run_exec = _ms([r["run"] for r in cold["exec (default)"]])  # type: ignore[misc]
    run_loky = _ms([r["run"] for r in cold["loky"]])  # type: ignore[misc]
    print(f"\nexec / loky (build..shutdown): {run_exec / run_loky:.2f}x")
    run_fork = _ms([r["run"] for r in cold["PPE fork"]])  # type: ignore[misc]
    print(f"exec / PPE fork (build..shutdown): {run_exec / run_fork:.2f}x")

    print("\n### (3) processes of the interpreter left after shutdown()\n")
    print("| start method | left | what |")
    print("|---|---:|---|")
    for m in ["exec (default)", "loky", "spawn", "forkserver", "fork"]:
        left: list[str] = _cold(m)["left"]  # type: ignore[assignment]
        print(f"| {m} | {len(left)} | {'; '.join(left) or '-'} |")


if __name__ == "__main__":
    main()
