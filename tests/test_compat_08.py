"""woflo 0.8's README examples run unchanged (sleeps shortened), as scripts.

Each example runs in a fresh interpreter, as a user would run it: as the main
script, without an ``if __name__ == "__main__":`` guard, on the default runner.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.timeout(120)


def run_script(source: str, epilogue: str = "") -> tuple[str, float]:
    """Run ``source`` (dedented), then ``epilogue``, as a script; return its output and elapsed time."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source) + epilogue],
        capture_output=True,
        text=True,
        timeout=100,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, elapsed


# Appended to an example: how many of its runs ran at once at most, from their
# attempts' start times and durations (not from the script's elapsed time,
# which a busy machine stretches).
PEAK = """
import gc, woflo
runs = [o for o in gc.get_objects() if isinstance(o, woflo.TaskRun)]
assert runs and all(run.result(60) is None for run in runs)
edges = sorted(
    (t, step)
    for run in runs
    for a in run.attempts
    for t, step in ((a.started_at, 1), (a.started_at + a.duration_s, -1))
)
now = peak = 0
for _, step in edges:
    now += step
    peak = max(peak, now)
print("runs", len(runs), "peak", peak)
"""


def test_sleepy_workers_run_in_parallel() -> None:
    out, _ = run_script(
        """
        import time
        from woflo import task


        @task
        def sleepy_worker():
            time.sleep(0.5)
            print('I am done')


        for _ in range(10):
            sleepy_task_run = sleepy_worker()
        """,
        PEAK,
    )
    assert out.count("I am done") == 10
    # Sequentially, never more than one at a time.
    words = out.split()
    assert words[words.index("runs") + 1] == "10"
    assert int(words[words.index("peak") + 1]) >= 2, out


def test_retries_with_retry_sleep_time() -> None:
    out, _ = run_script(
        """
        import os, tempfile
        from woflo import task

        # Attempts may run in other processes: count them in a file.
        counter = os.path.join(tempfile.mkdtemp(), "calls")

        @task(retries=2, retry_sleep_time=0.05)
        def fetch_data_from_unstable_api():
            with open(counter, "a") as f:
                f.write("x")
            if os.path.getsize(counter) < 3:
                raise ConnectionError("flaky")
            return "data"

        print(fetch_data_from_unstable_api().get_result())
        """
    )
    assert out.strip() == "data"


def test_sequential_task_run() -> None:
    out, _ = run_script(
        """
        import time
        from woflo import task
        from woflo.runners import SequentialTaskRun


        @task(runner=SequentialTaskRun)
        def sequential_sleepy_worker():
            time.sleep(0.01)
            print('I am done')


        for _ in range(10):
            sleepy_task_run = sequential_sleepy_worker()
            assert not sleepy_task_run.is_running()
        """
    )
    assert out.count("I am done") == 10


def test_quick_nap_methods() -> None:
    out, _ = run_script(
        """
        import time
        from woflo import task

        @task
        def quick_nap(duration):
            time.sleep(duration / 20)
            if duration < 10:
                raise Exception("Ouch oof")
            else:
                return 'Well rested'

        napping = quick_nap(10)
        assert napping.is_running()

        napping.wait()
        assert napping.get_result() == "Well rested"

        ouch = quick_nap(1)
        ouch.wait()
        err = ouch.get_result()
        assert isinstance(err, Exception) and str(err) == "Ouch oof"
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_base_task_run_custom_runner() -> None:
    out, _ = run_script(
        """
        from woflo import task
        from woflo.runners import BaseTaskRun

        class EagerRun(BaseTaskRun):
            def __init__(self, task, instance_name, fn, args, kwargs):
                super().__init__(task, instance_name, fn, args, kwargs)
                self.value = fn(*args, **kwargs)
            def get_result(self): return self.value
            def wait(self): pass
            def stop(self): pass
            def is_running(self): return False

        @task(runner=EagerRun)
        def add(a, b):
            return a + b

        run = add(2, 3)
        assert isinstance(run, EagerRun) and run.instance_name.startswith("add-")
        print(run.get_result())
        """
    )
    assert out.strip() == "5"


def test_process_type_spawn_without_main_guard_does_not_hang() -> None:
    # 0.8.2 hung the parent here. Spawned workers re-import the script; the
    # parent must still get its result.
    out, _ = run_script(
        """
        from woflo import task
        from woflo.runners.multiprocess import SpawnProcess, MultiprocessTaskRun

        MultiprocessTaskRun.process_type = SpawnProcess

        @task(runner=MultiprocessTaskRun)
        def double(x):
            return 2 * x

        run = double(21)
        print("parent" if __name__ == "__main__" else "child", run.runner.start_method, run.get_result())
        """
    )
    assert "parent spawn 42" in out


def test_many_runs_under_a_low_fd_limit() -> None:
    # 0.8.2 held 4 fds per run and failed after 254 runs under `ulimit -n 1024`.
    out, _ = run_script(
        """
        import resource
        from woflo import task

        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

        @task
        def inc(x):
            return x + 1

        runs = [inc(i) for i in range(2000)]
        done = [r.get_result() for r in runs]
        again = [inc(i).get_result() for i in range(300)]
        print(done == [i + 1 for i in range(2000)], again == [i + 1 for i in range(300)])
        """
    )
    assert out.strip() == "True True"
