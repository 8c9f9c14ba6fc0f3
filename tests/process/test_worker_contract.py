"""The worker side of ProcessRunner against ProcessPoolExecutor: what a task raises, what each call sees.

Each behaviour is checked on every start method, and where the stdlib can
run the same case its outcome is what woflo must match: a task's
``sys.exit`` is its exception (the worker lives on), every call gets its own
copy of its callable, an initializer of ``__main__`` sets globals that the
tasks of ``__main__`` see, errors around pickling are what the pickler
raised (and `SerializationError`), nothing a task's objects do while being
pickled or formatted kills the worker, and no two runs share an exception.

Task functions and classes live at module level so the workers import them.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import pickle
import random
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import woflo
from woflo import ProcessRunner, SerializationError
from woflo._process import wire

pytestmark = pytest.mark.timeout(120)

START_METHODS = ["loky", "spawn", "forkserver"]
REPO = str(Path(woflo.__file__).resolve().parent.parent)


# -- task functions and callables (imported by the workers) ----------------------------


class Counter:
    """A callable object with state: each call counts."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *args: object) -> int:
        self.n += 1
        return self.n


class Bag:
    """A stateful object whose bound method is the task."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def add(self, item: object = None) -> int:
        self.items.append(item)
        return len(self.items)


def append_to(items: list[object], item: object = None) -> int:
    items.append(item)
    return len(items)


def make_appender() -> Callable[[], int]:
    """A closure over a list."""
    items: list[object] = []

    def append() -> int:
        items.append(None)
        return len(items)

    return append


def pid_of_worker() -> int:
    return os.getpid()


def exit_with(code: int) -> None:
    sys.exit(code)


class Custom(BaseException):
    """A BaseException that is not an Exception, raised by a task."""


def raise_base(kind: str) -> None:
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt("from the task")
    raise Custom("custom")


def identity(x: object) -> object:
    return x


def make_lock() -> object:
    return threading.Lock()


class ReduceRaises:
    """Cannot be pickled: its ``__reduce__`` raises ``pickle.PicklingError``."""

    def __reduce__(self) -> Any:
        raise pickle.PicklingError("ReduceRaises refuses to be pickled")


def make_reduce_raises() -> object:
    return ReduceRaises()


def _refuse_in(pid: int) -> str:
    if os.getpid() == pid:
        raise ValueError("cannot be rebuilt in this process")
    return "rebuilt"


def _refuse_outside(pid: int) -> str:
    if os.getpid() != pid:
        raise ValueError("cannot be rebuilt in this process")
    return "rebuilt"


class FailsToLoadIn:
    """Pickles fine; unpickling it raises ValueError in process ``pid``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __reduce__(self) -> Any:
        return (_refuse_in, (self.pid,))


class FailsToLoadOutside:
    """Pickles fine; unpickling it raises ValueError in any process but ``pid``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __reduce__(self) -> Any:
        return (_refuse_outside, (self.pid,))


def make_fails_to_load_in(pid: int) -> object:
    return FailsToLoadIn(pid)


class Nasty(Exception):
    """Neither picklable nor printable: ``__reduce__``, ``__repr__`` and ``__str__`` raise."""

    def __reduce__(self) -> Any:
        raise TypeError("Nasty cannot be pickled")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


def raise_nasty() -> None:
    raise Nasty()


def raise_lock_error() -> None:
    raise ValueError(threading.Lock())


class ReducesToExit:
    """Pickling it raises SystemExit (a BaseException)."""

    def __reduce__(self) -> Any:
        raise SystemExit(7)


def make_reduces_to_exit() -> object:
    return ReducesToExit()


class ExitOnPickle(Exception):
    """An exception whose pickling raises KeyboardInterrupt."""

    def __reduce__(self) -> Any:
        raise KeyboardInterrupt("while pickling")


def raise_exit_on_pickle() -> None:
    raise ExitOnPickle("x")


class _NoSource:
    def get_source(self, name: str) -> str:
        raise RuntimeError("no source")


def raise_with_unformattable_traceback() -> None:
    # A frame whose module loader raises from get_source: traceback formatting
    # (linecache) raises too.
    namespace: dict[str, Any] = {"__name__": "nosource_mod", "__loader__": _NoSource()}
    exec(compile("def f():\n    raise ValueError('deep')\n", "/nonexistent/nosource_mod.py", "exec"), namespace)
    namespace["f"]()


class Unrebuildable(Exception):
    """Pickles, but cannot be rebuilt: its ``__init__`` needs two arguments."""

    def __init__(self, a: object, b: object) -> None:
        super().__init__(a)


def raise_unrebuildable() -> None:
    raise Unrebuildable(1, 2)


def fail_value() -> None:
    raise ValueError("same failure")


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=START_METHODS)
def method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def runner(method: str) -> Iterator[ProcessRunner]:
    """One worker, so that "the same pid serves the next task" is meaningful."""
    r = ProcessRunner(1, start_method=method)
    yield r
    r.shutdown(wait=True)


@pytest.fixture(scope="module")
def ppe(method: str) -> Iterator[cf.ProcessPoolExecutor]:
    """The stdlib twin: loky's method has none, spawn is the nearest (a fresh interpreter)."""
    ctx = multiprocessing.get_context("spawn" if method == "loky" else method)
    ex = cf.ProcessPoolExecutor(1, mp_context=ctx)
    yield ex
    ex.shutdown(wait=True)


def one_by_one(submit: Callable[..., Any], fn: Callable[..., Any], n: int = 3) -> list[Any]:
    return [submit(fn).result(60) for _ in range(n)]


def burst(submit: Callable[..., Any], fn: Callable[..., Any], n: int = 3) -> list[Any]:
    runs = [submit(fn) for _ in range(n)]  # dispatched together: one frame to the worker
    return [r.result(60) for r in runs]


# -- 1. a task's BaseException is its run's exception ------------------------------------


@pytest.mark.parametrize("how", ["sys.exit", "KeyboardInterrupt", "Custom"])
def test_base_exception_of_a_task_is_its_result_and_the_worker_lives(runner: ProcessRunner, how: str) -> None:
    pid = runner.submit(pid_of_worker).result(60)
    run = runner.submit(exit_with, 3) if how == "sys.exit" else runner.submit(raise_base, how)
    expected = {"sys.exit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt, "Custom": Custom}[how]
    with pytest.raises(expected) as info:
        run.result(60)
    if how == "sys.exit":
        assert info.value.code == 3  # type: ignore[attr-defined]
    assert isinstance(info.value.__cause__, wire.RemoteTraceback)
    assert [a.outcome for a in run.attempts] == ["failed"]
    assert run.attempts[0].worker == pid
    assert runner.submit(pid_of_worker).result(60) == pid  # the same worker takes the next task


def test_sys_exit_in_a_task_matches_the_stdlib(runner: ProcessRunner, ppe: cf.ProcessPoolExecutor) -> None:
    theirs = ppe.submit(exit_with, 5).exception(60)
    ours = runner.submit(exit_with, 5).exception(60)
    assert type(ours) is type(theirs) is SystemExit
    assert ours.code == theirs.code == 5  # type: ignore[union-attr]


@pytest.mark.timeout(120)
def test_system_exit_is_not_retried_by_default() -> None:
    with ProcessRunner(1, retries=2, retry_wait_time=0) as r:
        exited = r.submit(exit_with, 4)
        assert isinstance(exited.exception(60), SystemExit)
        failed = r.submit(fail_value)  # the control: an Exception is retried
        assert isinstance(failed.exception(60), ValueError)
    assert len(exited.attempts) == 1
    assert len(failed.attempts) == 3


# -- 2. every call gets its own callable ----------------------------------------------


STATEFUL: dict[str, Callable[[], Callable[..., Any]]] = {
    "callable object": Counter,
    "random.Random(42).random": lambda: random.Random(42).random,
    "partial over a list": lambda: functools.partial(append_to, []),
    "closure over a list": make_appender,
    "bound method": lambda: Bag().add,
    "lambda with a mutable default": lambda: lambda acc=[]: append_to(acc),
}


@pytest.mark.parametrize("case", list(STATEFUL), ids=list(STATEFUL))
def test_each_call_gets_its_own_callable(runner: ProcessRunner, ppe: cf.ProcessPoolExecutor, case: str) -> None:
    fn = STATEFUL[case]()
    ours = [one_by_one(runner.submit, fn), burst(runner.submit, fn)]
    assert ours[0] == ours[1] and len(set(ours[0])) == 1, ours  # every call saw a fresh copy
    if case not in ("closure over a list", "lambda with a mutable default"):  # the stdlib cannot pickle these
        assert ours == [one_by_one(ppe.submit, fn), burst(ppe.submit, fn)]
    assert fn() == 1 or case == "random.Random(42).random"  # the parent's object was never touched


def test_chunked_map_shares_one_callable_per_chunk_as_the_stdlib(
    runner: ProcessRunner, ppe: cf.ProcessPoolExecutor
) -> None:
    counter = Counter()
    ours = list(runner.map(counter, range(7), chunksize=3))
    assert ours == list(ppe.map(counter, range(7), chunksize=3))
    assert ours == [1, 2, 3, 1, 2, 3, 1]


# -- 3. initializer and tasks of __main__ share its globals -----------------------------


SCRIPT = """
import concurrent.futures as cf
import multiprocessing
import sys

from woflo import ProcessRunner

CONFIG = "unset"
SEEN = []


def init(value):
    global CONFIG
    CONFIG = value


def helper():
    return CONFIG


def task(x, calls=[]):
    SEEN.append(x)  # module state of the worker, as a module global would be
    calls.append(x)  # a module-level function is one object per worker, as in the stdlib
    return (helper(), x, len(SEEN), len(calls))


if __name__ == "__main__":
    method = sys.argv[1]
    with ProcessRunner(1, start_method=method, initializer=init, initargs=("configured",)) as r:
        ours = [r.submit(task, i).result(60) for i in range(3)]
    ctx = multiprocessing.get_context("spawn" if method == "loky" else method)
    with cf.ProcessPoolExecutor(1, mp_context=ctx, initializer=init, initargs=("configured",)) as ex:
        theirs = [ex.submit(task, i).result(60) for i in range(3)]
    print(ours)
    print(theirs)
"""


@pytest.mark.parametrize("method", START_METHODS)
def test_initializer_of_main_sets_globals_its_tasks_read(tmp_path: Path, method: str) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=100, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    ours, theirs = proc.stdout.strip().splitlines()
    assert ours == theirs
    assert ours == str([("configured", i, i + 1, i + 1) for i in range(3)])


def test_cloudpickle_hook_is_in_place() -> None:
    # Pins cloudpickle's private _dynamic_function_reduce that taskpickler.TaskPickler
    # hooks: two functions of one module, pickled apart, share one namespace
    # once unpickled, and the namespace keeps what was set there first.
    namespace: dict[str, Any] = {"__name__": "woflo_canary_module", "VALUE": "first"}
    exec("def get():\n    return VALUE\n\ndef put(v):\n    global VALUE\n    VALUE = v\n", namespace)
    get, put = namespace["get"], namespace["put"]
    assert b"_shared_function" in wire.dumps_task(get)
    put_copy = pickle.loads(wire.dumps_task(put))
    put_copy("set in the worker")
    namespace["VALUE"] = "changed in the parent"
    get_copy = pickle.loads(wire.dumps_task(get))
    assert get_copy.__globals__ is put_copy.__globals__
    assert get_copy() == "set in the worker"


# -- 4. errors around pickling are what the stdlib raises --------------------------------


def pickling_cases(parent: int) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...], type[BaseException] | None]]:
    """name -> (fn, args, the error class when ProcessPoolExecutor breaks instead)."""
    secret = {"password": "s3cr3t-value"}
    return {
        "argument holds a lock": (identity, ((secret, threading.Lock()),), None),
        "argument's __reduce__ raises PicklingError": (identity, ((secret, ReduceRaises()),), None),
        "argument fails to unpickle in the worker": (identity, ((secret, FailsToLoadOutside(parent)),), ValueError),
        "result is a lock": (make_lock, (), None),
        "result's __reduce__ raises PicklingError": (make_reduce_raises, (), None),
        "result fails to unpickle in the parent": (make_fails_to_load_in, (parent,), ValueError),
        "exception cannot be pickled": (raise_lock_error, (), None),
        "exception cannot be pickled nor printed": (raise_nasty, (), None),
        "exception cannot be rebuilt in the parent": (raise_unrebuildable, (), TypeError),
    }


CASE_NAMES = list(pickling_cases(0))


@pytest.mark.parametrize("case", CASE_NAMES, ids=CASE_NAMES)
def test_pickling_errors_are_what_the_stdlib_raises(
    runner: ProcessRunner, ppe: cf.ProcessPoolExecutor, case: str
) -> None:
    fn, args, breaks_stdlib = pickling_cases(os.getpid())[case]
    pid = runner.submit(pid_of_worker).result(60)
    ours = runner.submit(fn, *args).exception(60)
    assert isinstance(ours, SerializationError), repr(ours)
    if breaks_stdlib is None:
        theirs = ppe.submit(fn, *args).exception(60)
        assert theirs is not None
        expected: type[BaseException] = type(theirs)
    else:  # ProcessPoolExecutor breaks (BrokenProcessPool); woflo raises the unpickler's error
        expected = breaks_stdlib
    assert isinstance(ours, expected), (type(ours).__mro__, expected)
    assert isinstance(ours, pickle.PicklingError)
    text = str(ours)
    assert fn.__qualname__ in text and "s3cr3t" not in text, text
    assert runner.submit(pid_of_worker).result(60) == pid  # the worker lives on


# -- 5. nothing a task's objects do while pickled or formatted kills the worker ---------


UNRULY: dict[str, tuple[Callable[..., Any], str, type[BaseException]]] = {
    "exception neither picklable nor printable": (raise_nasty, "Nasty", TypeError),
}


@pytest.mark.parametrize("case", list(UNRULY), ids=list(UNRULY))
def test_unruly_objects_fail_only_their_run(runner: ProcessRunner, case: str) -> None:
    fn, type_name, also = UNRULY[case]
    pid = runner.submit(pid_of_worker).result(60)
    for _ in range(2):  # twice: the first did not cost the worker
        run = runner.submit(fn)
        exc = run.exception(60)
        assert isinstance(exc, SerializationError) and isinstance(exc, also), repr(exc)
        assert type_name in str(exc) and fn.__qualname__ in str(exc)
        assert [a.outcome for a in run.attempts] == ["failed"]
        assert run.attempts[0].worker == pid
    assert runner.submit(pid_of_worker).result(60) == pid


@pytest.mark.parametrize(
    ("fn", "expected"),
    [(make_reduces_to_exit, SystemExit), (raise_exit_on_pickle, KeyboardInterrupt)],
    ids=["result whose pickling raises SystemExit", "exception whose pickling raises KeyboardInterrupt"],
)
def test_base_exception_while_pickling_is_the_runs_exception_as_in_the_stdlib(
    runner: ProcessRunner, ppe: cf.ProcessPoolExecutor, fn: Callable[..., Any], expected: type[BaseException]
) -> None:
    theirs = ppe.submit(fn).exception(60)
    pid = runner.submit(pid_of_worker).result(60)
    for _ in range(2):  # twice: the first did not cost the worker
        run = runner.submit(fn)
        ours = run.exception(60)
        assert type(ours) is type(theirs) is expected
        assert run.attempts[0].worker == pid
    assert runner.submit(pid_of_worker).result(60) == pid


def test_traceback_that_cannot_be_formatted_fails_only_its_run(runner: ProcessRunner) -> None:
    pid = runner.submit(pid_of_worker).result(60)
    exc = runner.submit(raise_with_unformattable_traceback).exception(60)
    assert isinstance(exc, ValueError) and str(exc) == "deep"  # the exception itself still comes back
    assert "could not be formatted" in str(exc.__cause__)
    assert runner.submit(pid_of_worker).result(60) == pid


# -- 6. every run gets its own exception -----------------------------------------------


def _ghost_function() -> Callable[[], None]:
    """A function pickled by reference whose module the workers cannot import."""
    module = types.ModuleType("woflo_ghost_module")
    exec("def ghost():\n    return None\n", module.__dict__)
    sys.modules[module.__name__] = module
    fn: Callable[[], None] = module.ghost
    assert pickle.dumps(fn, wire.PROTOCOL) == wire.dumps_task(fn)  # by reference
    return fn


def tb_length(exc: BaseException) -> int:
    n, tb = 0, exc.__traceback__
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


SHARED_FAILURES: dict[str, Callable[[], tuple[Callable[..., Any], tuple[Any, ...]]]] = {
    "task raises": lambda: (fail_value, ()),
    "argument cannot be pickled": lambda: (identity, (threading.Lock(),)),
    "function cannot be unpickled in the worker": lambda: (_ghost_function(), ()),
    "argument cannot be unpickled in the worker": lambda: (identity, (FailsToLoadOutside(os.getpid()),)),
    "result cannot be pickled": lambda: (make_lock, ()),
    "result cannot be unpickled": lambda: (make_fails_to_load_in, (os.getpid(),)),
    "exception cannot be unpickled": lambda: (raise_unrebuildable, ()),
}


@pytest.mark.parametrize("case", list(SHARED_FAILURES), ids=list(SHARED_FAILURES))
def test_every_run_gets_its_own_exception(runner: ProcessRunner, case: str) -> None:
    fn, args = SHARED_FAILURES[case]()
    try:
        runs = [runner.submit(fn, *args) for _ in range(100)]  # a burst: shares frames and functions
        errors = [run.exception(60) for run in runs]
        assert len({id(e) for e in errors}) == 100, case
        lengths = set()
        for run in runs:
            with pytest.raises(BaseException) as info:
                run.result(60)
            lengths.add(tb_length(info.value))
        assert len(lengths) == 1, lengths  # a shared object's traceback would grow with each result()
    finally:
        sys.modules.pop("woflo_ghost_module", None)
