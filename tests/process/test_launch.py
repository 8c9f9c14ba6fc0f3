"""woflo's own start method, "exec" (woflo/_process/launch.py), the default.

It starts no helper process (loky's start path leaves loky's and
multiprocessing's resource trackers running), boots a worker without the
parent's side of woflo, and gives the pool a process handle: pid, a sentinel
that fires on exit, exit codes as multiprocessing reports them, reaping with
no zombie left, even when someone else reaped the pid first.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import funcs
import psutil
import pytest
from funcs import crash

from woflo import ProcessRunner, WorkerCrashed
from woflo._process import launch

TESTS = str(Path(__file__).parent.parent)
REPO = str(Path(__file__).parent.parent.parent)


def _run_script(code: str, *args: str, cwd: Path, timeout: float = 120, options: tuple[str, ...] = ()) -> str:
    """Run ``code`` as a script file (its own ``__main__``, in a folder of its
    own under ``cwd``) in a fresh interpreter started with ``options``; return its stdout."""
    folder = cwd / "script"
    folder.mkdir()
    script = folder / "main.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, TESTS])}
    proc = subprocess.run(
        [sys.executable, *options, str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"script failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


@pytest.mark.timeout(120)
def test_default_runner_leaves_no_process_after_shutdown(tmp_path: Path) -> None:
    # A fresh interpreter: nothing else started a resource tracker there.
    out = _run_script(
        """
        import json, psutil
        import funcs
        from woflo import ProcessRunner

        r = ProcessRunner(2)
        assert [run.result(60) for run in [r.submit(funcs.add, i, 1) for i in range(20)]] == list(range(1, 21))
        workers = r.worker_pids
        r.shutdown()
        left = [(p.pid, p.cmdline()) for p in psutil.Process().children(recursive=True)]
        print(json.dumps({"method": r.start_method, "workers": workers, "left": left}))
        """,
        cwd=tmp_path,
    )
    report = json.loads(out)
    assert report["method"] == "exec" and report["workers"]
    assert report["left"] == [], f"processes left after shutdown: {report['left']}"


@pytest.mark.timeout(120)
def test_main_functions_sys_argv_and_cwd_modules_work_in_exec_workers(tmp_path: Path) -> None:
    # A script with no __main__ guard: "exec" does not re-import it. Its lambda
    # and function travel by value; a module found only through "" (the
    # directory the script runs in, not the script's) travels by reference.
    (tmp_path / "cwd_module.py").write_text("def triple(x):\n    return 3 * x\n")
    out = _run_script(
        """
        import json, os, sys
        sys.path.insert(0, "")  # the worker gets the directory the parent started in
        import cwd_module
        from woflo import ProcessRunner

        double = lambda x: 2 * x

        def where():
            return sys.argv[1:], os.getcwd(), os.readlink("/proc/self/fd/0")

        with ProcessRunner(1) as r:
            print(json.dumps({
                "lambda": r.submit(double, 21).result(60),
                "function": r.submit(where).result(60),
                "by_reference": r.submit(cwd_module.triple, 5).result(60),
                "module_file": r.submit(lambda: sys.modules["cwd_module"].__file__).result(60),
            }))
        """,
        "first",
        "second",
        cwd=tmp_path,
    )
    report = json.loads(out)
    here = os.path.realpath(tmp_path)
    assert report["lambda"] == 42
    assert report["function"] == [["first", "second"], here, "/dev/null"]
    assert report["by_reference"] == 15
    assert os.path.realpath(report["module_file"]) == os.path.join(here, "cwd_module.py")


@pytest.mark.timeout(120)
def test_workers_run_with_the_parent_s_interpreter_options(tmp_path: Path) -> None:
    # python -O / -X ... / -W ...: the tasks run under them, as in the parent and
    # as in multiprocessing's spawn children. Before, an exec worker started
    # with none of them (asserts ran under -O; warnings filters were lost).
    out = _run_script(
        """
        import json, multiprocessing, sys
        from concurrent.futures import ProcessPoolExecutor
        from woflo import ProcessRunner

        def options():
            return [sys.flags.optimize, sys.flags.dev_mode, sorted(sys._xoptions), sys.warnoptions]

        if __name__ == "__main__":
            with ProcessRunner(1) as r:
                mine = r.submit(options).result(60)
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
                stdlib = ex.submit(options).result(60)
            print(json.dumps({"parent": options(), "woflo": mine, "spawn": stdlib}))
        """,
        cwd=tmp_path,
        options=("-O", "-X", "utf8", "-W", "error::ResourceWarning"),
    )
    report = json.loads(out)
    assert report["parent"][0] == 1 and "utf8" in report["parent"][2]
    assert report["woflo"] == report["parent"] == report["spawn"]


@pytest.mark.timeout(60)
def test_by_reference_function_from_a_folder_added_to_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "added_module.py").write_text(
        "import os\nCALLS = []\n\ndef record(x):\n    CALLS.append(x)\n    return os.getpid(), list(CALLS)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import added_module

    with ProcessRunner(1) as r:
        first = r.submit(added_module.record, 1).result(30)
        second = r.submit(added_module.record, 2).result(30)
    # The same module object in the worker kept its state: imported, not sent by value.
    assert first[0] == second[0] != os.getpid()
    assert second[1] == [1, 2] and added_module.CALLS == []


def _woflo_in_a_task() -> tuple[str, str, int]:
    import woflo
    from woflo import SequentialRunner, __version__

    return __version__, woflo.ProcessRunner.__name__, SequentialRunner().submit(len, "abc").result()


@pytest.mark.timeout(60)
def test_exec_worker_boots_without_the_parent_side_and_woflo_still_imports() -> None:
    import woflo

    with ProcessRunner(1) as r:
        # funcs does not import woflo: what the worker holds is what its boot imported
        parent_side = (
            "structlog",
            "tenacity",
            "asyncio",
            "loky",
            "woflo.runners",
            "woflo._runner",
            "woflo._process.pool",
        )
        assert r.submit(funcs.loaded_modules, *parent_side).result(30) == []
        assert r.submit(_woflo_in_a_task).result(30) == (woflo.__version__, "ProcessRunner", 3)
        # chunked map sends woflo.runners.process._run_chunk by reference
        assert list(r.map(funcs.add, range(6), range(6), chunksize=3)) == [0, 2, 4, 6, 8, 10]
        # a runner inside a task, on the same worker (its woflo now fully imported)
        assert r.submit(funcs.call_task_inside, 4).result(60)[0] == 5


@pytest.fixture(params=["pidfd", "pipe"])
def sentinel_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with a pidfd sentinel (where the platform has one) and with the pipe fallback."""
    if request.param == "pidfd" and not launch._USE_PIDFD:
        pytest.skip("no pidfd on this platform")
    monkeypatch.setattr(launch, "_USE_PIDFD", request.param == "pidfd")
    yield request.param


def _start_idle() -> tuple[launch.ExecProcess, list[int]]:
    """A worker that waits for its start frame; returns it and the parent's pipe ends."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    try:
        proc = launch.start((in_r, out_w, ctl_r))
    finally:
        for fd in (in_r, out_w, ctl_r):
            os.close(fd)
    return proc, [in_w, out_r, ctl_w]


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


@pytest.mark.timeout(60)
def test_sentinel_fires_on_sigkill_and_join_reports_the_signal(sentinel_kind: str) -> None:
    proc, ends = _start_idle()
    try:
        assert not _readable(proc.sentinel, 0)
        os.kill(proc.pid, signal.SIGKILL)
        assert _readable(proc.sentinel, 30)
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL
        with pytest.raises(psutil.NoSuchProcess):
            psutil.Process(proc.pid).status()  # reaped: no zombie
        proc.kill()  # known gone: a no-op, never a signal to a reused pid
    finally:
        proc.close()
        for fd in ends:
            os.close(fd)


@pytest.mark.timeout(60)
def test_worker_exits_with_code_1_when_the_parent_closes_before_the_start_frame(sentinel_kind: str) -> None:
    proc, ends = _start_idle()
    for fd in ends:
        os.close(fd)
    proc.join(30)
    proc.close()
    assert proc.exitcode == 1


@pytest.mark.timeout(60)
def test_reaped_elsewhere_leaves_the_exit_status_unknown(sentinel_kind: str) -> None:
    proc, ends = _start_idle()
    try:
        os.kill(proc.pid, signal.SIGKILL)
        assert os.waitpid(proc.pid, 0)[0] == proc.pid  # as a SIGCHLD handler or os.wait() would
        proc.join(30)
        assert proc.exitcode is None
        proc.kill()  # must not signal the pid: it may name another process now
    finally:
        proc.close()
        for fd in ends:
            os.close(fd)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("how", "code"), [("os._exit", 3), ("sigkill", -signal.SIGKILL), ("segfault", -signal.SIGSEGV)]
)
def test_crash_exit_codes_and_no_zombie(how: str, code: int, sentinel_kind: str) -> None:
    with ProcessRunner(1) as r:
        pid = r.submit(funcs.worker_pid).result(30)
        err = r.submit(crash, how).exception(60)
        assert isinstance(err, WorkerCrashed)
        assert err.exitcode == code and err.worker == pid
        zombies = [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
        assert pid not in zombies
        assert r.submit(funcs.add, 1, 1).result(30) == 2  # a new worker took over


@pytest.mark.timeout(90)
def test_pipe_sentinel_pool_leaves_no_fd_or_process(sentinel_kind: str) -> None:
    fds = set(os.listdir("/proc/self/fd"))
    r = ProcessRunner(2)
    assert [run.result(30) for run in [r.submit(funcs.add, i, 1) for i in range(30)]] == list(range(1, 31))
    assert isinstance(r.submit(crash, "os._exit").exception(30), WorkerCrashed)
    assert r.submit(funcs.add, 2, 2).result(30) == 4
    workers = r.worker_pids
    r.shutdown()
    assert not any(psutil.pid_exists(pid) for pid in workers)
    assert set(os.listdir("/proc/self/fd")) == fds


def test_start_methods() -> None:
    from woflo.runners.process import START_METHODS

    assert {"exec", "loky", "spawn", "forkserver", "fork"} == START_METHODS
    with ProcessRunner(1) as default, ProcessRunner(1, start_method="exec") as exec_:
        assert default.start_method == exec_.start_method == "exec"
    with pytest.raises(ValueError, match="start_method"):
        ProcessRunner(1, start_method="posix_spawn")
