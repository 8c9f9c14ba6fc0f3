"""Canaries: woflo's uses of other projects' private APIs, and the fallbacks that replace them.

Each speed trick that rests on a private API of CPython, asyncio or structlog
has a test here that states the assumption exactly and fails with a message
naming the woflo file to fix. ``WOFLO_NO_FAST_PATHS=1`` (read once, in
`woflo._fastpath`) selects the plain public way instead; CI (``.ci/run``)
runs the tests of those modules a second time with it set.
"""

from __future__ import annotations

import pytest
from cpython_helpers import run_script

# -- AsyncRunner: plain functions still queued at interpreter exit ----------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("warm", [False, True], ids=["threads-not-started", "threads-started"])
def test_async_runner_finishes_plain_functions_queued_at_interpreter_exit(warm: bool) -> None:
    # Each runner's one slot is held by a coroutine until an exit hook opens
    # its gate, so the plain function queued behind it reaches the runner's
    # threads only while woflo's exit hook waits for it, after the main
    # thread has finished. Not warm: no thread of the runner exists yet, and
    # Python 3.12 starts none at interpreter shutdown (the run failed with
    # "can't create new thread at interpreter shutdown"). Warm: the runner's
    # inner ThreadRunner exists, and the exit hook, which shuts runners down
    # in no set order, must not shut it down before the run queued for it
    # (it failed with "cannot schedule new futures after shutdown"; eight
    # runners, so that some inner one comes first).
    proc = run_script(
        f"""
        import asyncio, atexit
        import funcs
        from woflo import AsyncRunner

        async def future_on_loop():
            return asyncio.get_running_loop().create_future()

        async def hold(gate):
            await gate

        if __name__ == "__main__":
            runners = [AsyncRunner(max_concurrency=1) for _ in range(8)]
            for n, runner in enumerate(runners):
                if {warm}:
                    runner.submit(funcs.identity, n).result(30)
                gate = asyncio.run_coroutine_threadsafe(future_on_loop(), runner.loop).result(30)
                runner.submit(hold, gate)
                runner.submit(funcs.sleep_and_print, 0, f"queued-{{n}}")
                # Registered after woflo's own exit hook: runs before it.
                atexit.register(runner.loop.call_soon_threadsafe, gate.set_result, None)
        """
    )
    assert proc.stderr == ""
    assert sorted(proc.stdout.split()) == sorted(f"queued-{n}" for n in range(8))
    assert proc.returncode == 0
