"""Typed usage, checked by mypy in tests/test_typing.py: it must type-check cleanly."""

from __future__ import annotations

import concurrent.futures as cf

import tenacity

from woflo import SequentialRunner, TaskRun, ThreadRunner, WofloExecutor, task


@task
def double(x: int) -> int:
    return 2 * x


@task(retries=2, timeout=5.0, runner=SequentialRunner)
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@task(wait=tenacity.wait_exponential_jitter(max=30), stop=tenacity.stop_after_attempt(3))
def backoff() -> None:
    return None


run: TaskRun[int] = double(21)
value: int = run.result()
text: str = greet("ada", punctuation="?").result()
plain: int = double.fn(2)

with ThreadRunner(max_workers=2, retries=3) as ex:
    r2: cf.Future[int] = ex.submit(pow, 2, 8)
    squares: list[int] = list(ex.map(abs, [-1, -2]))

with WofloExecutor(2, runner=ThreadRunner, timeout=3.0) as wex:
    r3: TaskRun[str] = wex.submit(str.upper, "x")

later = double.options(retries=5)
r4: TaskRun[int] = later(3)


@task
async def fetch_len(url: str) -> int:
    return len(url)


@task(retries=1)
async def fetch_text(url: str) -> str:
    return url


async def use_async() -> None:
    n: int = await fetch_len("https://example.org")
    r5: TaskRun[int] = fetch_len("x")
    s: str = await fetch_text("y")
    del n, r5, s
