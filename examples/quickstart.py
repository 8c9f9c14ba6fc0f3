"""woflo in one minute: parallel tasks, a retried flaky task, a timed-out attempt, progress and a summary.

Run: python examples/quickstart.py   (pip install 'woflo[progress]' for a progress bar in a terminal)

The log on stderr: one line per run, one per retry, the failure's, and what a
task logged in its worker process, with the run that logged it.
"""

from __future__ import annotations

import os
import tempfile
import time

import structlog

import woflo
from woflo import AttemptTimeout, WofloExecutor, task

COUNTER = os.path.join(tempfile.mkdtemp(prefix="woflo-quickstart-"), "calls")


@task
def square(x: int) -> int:
    """A plain task: each call runs in parallel with the others."""
    time.sleep(0.2)
    return x * x


@task(retries=3, retry_wait_time=0.2, run_name="fetch {url}")
def flaky_fetch(url: str) -> str:
    """Fails twice, then succeeds: the retries are woflo's, the waits are scheduled, not slept in a worker."""
    with open(COUNTER, "a") as f:
        f.write("x")
    if os.path.getsize(COUNTER) < 3:
        raise ConnectionError(f"{url}: connection reset")
    # Logged in a worker process; printed by this one, with the run and attempt that logged it.
    structlog.get_logger("quickstart").info("page fetched", url=url)
    return f"<html>{url}</html>"


@task(timeout=0.5)
def stuck() -> None:
    """Never returns in time: its attempt is stopped after 0.5 s."""
    time.sleep(60)


def main() -> None:
    woflo.configure_logging(level="INFO")  # one readable line per run on stderr ("DEBUG": every attempt)

    started = time.monotonic()
    runs = [square(x) for x in range(6)]
    # Progress as the runs finish: a bar in a terminal, a line every few seconds elsewhere.
    done = [run.result() for run in woflo.progress(runs, desc="squares")]
    print("squares:", sorted(done), f"in {time.monotonic() - started:.2f}s")

    page = flaky_fetch("https://example.org")
    print("fetched:", page.result(), "after", len(page.attempts), "attempts")

    hung = stuck()
    try:
        hung.result()
    except AttemptTimeout as exc:
        print("timed out:", exc)

    # The same thing as a drop-in concurrent.futures executor.
    with WofloExecutor(max_workers=2, retries=1) as ex:
        print("map:", list(ex.map(abs, [-1, -2, -3])))

    # What happened, in one table: states, retries, timeouts, durations, failures, workers.
    print(woflo.summary([*runs, page, hung]))


if __name__ == "__main__":
    main()
