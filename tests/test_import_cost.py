"""What ``import woflo`` costs: the modules it does not load, and that it starts nothing.

The regression fence of issue #13 item 1, by module rather than by time
(benchmarks/bench_import.py measures the time): each check runs in a fresh
interpreter, where nothing was imported before.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import woflo

REPO = str(Path(__file__).parent.parent)
TESTS = str(Path(__file__).parent)

# What `import woflo` used to import up front, and now leaves to the path that needs it.
HEAVY = (
    "asyncio",
    "cloudpickle",
    "concurrent.futures",
    "distributed",
    "loky",
    "multiprocessing",
    "psutil",
    "structlog",
    "subprocess",
    "tenacity",
)


def _fresh(code: str) -> object:
    """Run ``code`` in a fresh interpreter (woflo of this checkout); return the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = [{REPO!r}, {TESTS!r}]\n" + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _loaded(names: tuple[str, ...]) -> str:
    return f"[m for m in {names!r} if m in sys.modules]"


@pytest.mark.timeout(120)
def test_import_woflo_loads_none_of_the_heavy_modules_and_starts_nothing() -> None:
    result = _fresh(
        f"""
        import json, os, sys, threading
        import woflo
        children = os.listdir(f"/proc/{{os.getpid()}}/task") if os.path.isdir("/proc") else []
        print(json.dumps({{
            "loaded": {_loaded(HEAVY)},
            "threads": [t.name for t in threading.enumerate()],
            "os_threads": len(children),
            "woflo_modules": sorted(m for m in sys.modules if m.startswith("woflo")),
        }}))
        """
    )
    assert result == {
        "loaded": [],
        "threads": ["MainThread"],
        "os_threads": 1 if Path("/proc").is_dir() else 0,
        "woflo_modules": ["woflo"],
    }


@pytest.mark.timeout(120)
def test_import_woflo_starts_no_process() -> None:
    # A child would be listed by the kernel as ours until reaped; psutil is
    # imported after woflo, so it is not what woflo imported.
    assert (
        _fresh(
            """
        import json, woflo, psutil
        print(json.dumps([p.pid for p in psutil.Process().children(recursive=True)]))
        """
        )
        == []
    )


@pytest.mark.timeout(120)
def test_a_task_and_a_process_runner_import_only_what_their_first_submit_needs() -> None:
    # Decorating and building cost no tenacity (no retry yet), structlog (not
    # configured, as nobody imported it), asyncio (nothing awaited) or loky.
    later = ("asyncio", "cloudpickle", "distributed", "loky", "psutil", "structlog", "tenacity")
    result = _fresh(
        f"""
        import json, sys
        from woflo import ProcessRunner, ThreadRunner, WofloExecutor, task

        @task(retries=2)
        def double(x):
            return 2 * x

        after_task = {_loaded(later)}
        with ThreadRunner(1) as runner:
            threads = runner.submit(double.fn, 2).result(60)
        after_threads = {_loaded(later)}
        runner = ProcessRunner(1)
        after_build = {_loaded(later)}
        runner.shutdown()
        print(json.dumps([after_task, threads, after_threads, after_build]))
        """
    )
    assert result == [[], 4, [], []]


@pytest.mark.timeout(120)
def test_what_a_path_needs_is_imported_when_it_first_needs_it() -> None:
    # The deferred imports still happen, each where it is needed: a retry
    # imports tenacity, sending a job cloudpickle, awaiting a run asyncio.
    result = _fresh(
        """
        import json, sys
        from woflo import ProcessRunner, SequentialRunner

        seen = {}
        with SequentialRunner(retries=1) as runner:
            calls = []
            def flaky():
                calls.append(1)
                if len(calls) == 1:
                    raise ValueError("first")
                return len(calls)
            seen["retried"] = runner.submit(flaky).result(60)
        seen["tenacity"] = "tenacity" in sys.modules
        with ProcessRunner(1) as runner:
            seen["cloudpickle_before"] = "cloudpickle" in sys.modules
            seen["process"] = runner.submit(abs, -3).result(60)
            seen["cloudpickle"] = "cloudpickle" in sys.modules
        import asyncio
        async def main():
            with SequentialRunner() as runner:
                return await runner.submit(abs, -5)
        seen["awaited"] = asyncio.run(main())
        print(json.dumps(seen))
        """
    )
    assert result == {
        "retried": 2,
        "tenacity": True,
        "cloudpickle_before": False,
        "process": 3,
        "cloudpickle": True,
        "awaited": 5,
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("order", ["structlog first", "woflo first"])
def test_structlog_imported_before_or_after_woflo_gets_its_events(order: str) -> None:
    # woflo's switch learns of structlog when structlog is imported, whenever
    # that is: before woflo, or after it (an import hook), then configured.
    first, second = ("import structlog", "import woflo") if order == "structlog first" else ("import woflo", "")
    result = _fresh(
        f"""
        import json
        {first}
        {second}
        from woflo import SequentialRunner
        with SequentialRunner() as runner:
            runner.submit(abs, -1).result(60)  # structlog not configured: nothing
            import structlog.testing
            with structlog.testing.capture_logs() as logs:
                runner.submit(abs, -2).result(60)
        print(json.dumps([e["event"] for e in logs]))
        """
    )
    assert result == ["task.submitted", "attempt.started", "attempt.succeeded", "task.succeeded"]


@pytest.mark.timeout(120)
def test_stdlib_logging_gets_the_events_without_structlog_ever_imported() -> None:
    result = _fresh(
        """
        import json, logging, sys
        logging.basicConfig(level="INFO", stream=sys.stderr)
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.event)
        logging.getLogger("woflo").addHandler(Keep())
        from woflo import SequentialRunner
        with SequentialRunner() as runner:
            runner.submit(abs, -1).result(60)
        print(json.dumps([records, "structlog" in sys.modules]))
        """
    )
    assert result == [["task.succeeded"], False]


def test_dir_lists_every_public_name_and_each_one_resolves() -> None:
    names = dir(woflo)
    for name in woflo.__all__:
        assert name in names
        assert getattr(woflo, name) is not None
    import woflo.runners as runners

    for name in runners.__all__:
        assert name in dir(runners)
        assert getattr(runners, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        woflo.nope  # noqa: B018
    with pytest.raises(ImportError):
        from woflo import nope  # type: ignore[attr-defined]  # noqa: F401


@pytest.mark.timeout(120)
def test_a_missing_dependency_fails_at_first_use_with_its_name() -> None:
    # distributed made unimportable: import woflo works, DaskRunner says what is missing.
    result = _fresh(
        """
        import json, sys
        sys.modules["distributed"] = None
        import woflo
        try:
            woflo.DaskRunner()
        except ImportError as err:
            print(json.dumps(str(err)))
        """
    )
    assert isinstance(result, str)
    assert "distributed" in result


def test_cpu_count_is_lokys() -> None:
    loky = pytest.importorskip("loky")
    from woflo._cpus import cpu_count

    assert cpu_count() == loky.cpu_count()


# -- woflo._errors: the broken-pool classes are defined on first use (issue #13 item 2) --

_LAZY_ERRORS = ("WorkerCrashed", "BrokenRunner", "BrokenProcessRunner", "BrokenThreadRunner")


@pytest.mark.timeout(120)
def test_the_errors_a_worker_needs_import_no_stdlib_pool() -> None:
    # An "exec" worker imports woflo._errors for SerializationError; that must
    # not pull concurrent.futures.process (multiprocessing, socket...).
    result = _fresh(
        f"""
        import json, sys, pickle
        import woflo._errors as errors
        from woflo._errors import AttemptTimeout, SerializationError
        exc = SerializationError.wrap("cannot pickle", TypeError("lock"))
        before = {_loaded(("concurrent.futures", "multiprocessing", "socket"))}
        defined_before = [n for n in {_LAZY_ERRORS!r} if n in vars(errors)]
        from woflo._errors import WorkerCrashed
        print(json.dumps([before, defined_before, isinstance(exc, TypeError),
                          "concurrent.futures.process" in sys.modules, WorkerCrashed.__qualname__]))
        """
    )
    assert result == [[], [], True, True, "WorkerCrashed"]


@pytest.mark.timeout(120)
def test_broken_pool_errors_pickled_elsewhere_unpickle_where_they_are_not_defined_yet() -> None:
    from woflo import BrokenProcessRunner, BrokenThreadRunner, WorkerCrashed

    blob = pickle.dumps(
        [WorkerCrashed("died", exitcode=-9, worker=123), BrokenProcessRunner("p"), BrokenThreadRunner("t")]
    ).hex()
    result = _fresh(
        f"""
        import json, pickle, sys
        from concurrent.futures import BrokenExecutor
        from concurrent.futures.process import BrokenProcessPool
        from concurrent.futures.thread import BrokenThreadPool
        import woflo._errors
        fresh = "WorkerCrashed" not in vars(woflo._errors)
        crashed, proc, thread = pickle.loads(bytes.fromhex({blob!r}))
        from woflo import BrokenRunner, WofloError
        print(json.dumps([
            fresh,
            [type(e).__module__ + "." + type(e).__qualname__ for e in (crashed, proc, thread)],
            [crashed.exitcode, crashed.worker, str(crashed)],
            [isinstance(crashed, BrokenProcessPool), isinstance(crashed, WofloError)],
            [isinstance(proc, BrokenProcessPool), isinstance(proc, BrokenRunner)],
            [isinstance(thread, BrokenThreadPool), isinstance(thread, BrokenExecutor)],
            type(crashed) is woflo._errors.WorkerCrashed,
        ]))
        """
    )
    assert result == [
        True,
        ["woflo._errors.WorkerCrashed", "woflo._errors.BrokenProcessRunner", "woflo._errors.BrokenThreadRunner"],
        [-9, 123, "died"],
        [True, True],
        [True, True],
        [True, True],
        True,
    ]


@pytest.mark.timeout(120)
def test_threads_asking_at_once_get_the_same_broken_pool_classes() -> None:
    result = _fresh(
        f"""
        import json, threading
        import woflo._errors as errors
        barrier = threading.Barrier(8)
        got = []
        def ask():
            barrier.wait(30)
            got.append(tuple(getattr(errors, n) for n in {_LAZY_ERRORS!r}))
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        print(json.dumps([len(got), len(set(got)), sorted(n for n in {_LAZY_ERRORS!r} if n in dir(errors))]))
        """
    )
    assert result == [8, 1, sorted(_LAZY_ERRORS)]


def test_the_typing_stubs_of_the_broken_pool_classes_match_the_classes() -> None:
    # mypy reads the `if TYPE_CHECKING:` declarations of woflo/_errors.py; the
    # classes are defined at run time by _define_broken: same names, same bases.
    import ast
    import inspect

    import woflo._errors as errors

    tree = ast.parse(Path(errors.__file__).read_text())
    stubs = {
        node.name: node
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ClassDef)
    }
    assert sorted(stubs) == sorted(_LAZY_ERRORS)
    for name, stub in stubs.items():
        cls = getattr(errors, name)
        assert [ast.unparse(b) for b in stub.bases] == [b.__name__ for b in cls.__bases__], name
        init = [n for n in stub.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
        if init:
            stub_params = [a.arg for a in (*init[0].args.args, *init[0].args.kwonlyargs)]
            assert stub_params == list(inspect.signature(cls.__init__).parameters), name
