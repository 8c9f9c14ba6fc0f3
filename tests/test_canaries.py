"""Canaries: woflo's uses of other projects' private APIs, and the fallbacks that replace them.

Each use of a private detail of CPython, asyncio, structlog, tenacity,
cloudpickle or multiprocessing has a test here that states the assumption
exactly and fails with a message naming the woflo file to fix. The speed
tricks among them have a fallback, the plain public way, chosen at import
when the detail is missing or when ``WOFLO_NO_FAST_PATHS=1`` (read once, in
`woflo._fastpath`); CI (``.ci/run``) runs the tests of those modules a second
time with it set, and the first tests here check that it selects them.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures as cf
import inspect
import json
import multiprocessing
import multiprocessing.process
import os
import pickle
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import tenacity
from cpython_helpers import REPO_DIR, TESTS_DIR, run_script
from helpers import wait_for

from woflo import AsyncRunner, _condition, _events, _fastpath, _looprun, _tasklog
from woflo._condition import FastRunCondition, PlainRunCondition

pytestmark = pytest.mark.timeout(60)


def canary(condition: object, file: str, assumption: str) -> None:
    """Fail, naming the woflo file that relies on ``assumption``, unless ``condition`` holds."""
    if not condition:
        pytest.fail(
            f"private API changed: {assumption}. {file} relies on it: update it (or its fallback) "
            f"and this canary ({sys.version.split()[0]}, structlog {structlog.__version__})",
            pytrace=False,
        )


# -- the switch: WOFLO_NO_FAST_PATHS selects every fallback --------------------------------

_SELECTION = """
import asyncio, json
import structlog
from woflo import AsyncRunner, _condition, _events, _fastpath, _looprun, _tasklog

async def main():
    runner = AsyncRunner(loop=asyncio.get_running_loop())
    run = runner.submit(asyncio.sleep, 0, 5)
    try:
        return asyncio.isfuture(run), await asyncio.gather(run)
    finally:
        runner.shutdown(wait=False)

is_future, gathered = asyncio.run(main())
switch = _events.structlog_switch()
print(json.dumps({
    "enabled": _fastpath.ENABLED,
    "condition": _condition.RunCondition.__name__,
    "looprun": _looprun.FAST,
    "running_loop_here": _looprun.running_loop_here.__name__,
    "running_loop": getattr(_looprun.running_loop, "__name__", "?"),
    "events": _events.FAST,
    # The switch reads structlog's _CONFIG's own attributes (its __dict__ is _CONFIG's).
    "switch": "structlog's _CONFIG" if vars(switch) is vars(structlog._config._CONFIG) else type(switch).__name__,
    "stdlib_switch": type(_events.stdlib_switch()).__name__,
    "levels_item": _tasklog.levels_item.__name__,
    "run_is_asyncio_future": is_future,
    "gathered": gathered,
}))
"""

FAST_SELECTION = {
    "enabled": True,
    "condition": "FastRunCondition",
    "looprun": True,
    "running_loop_here": "_running_loop_here_fast",
    "running_loop": "_get_running_loop",
    "events": True,
    "switch": "structlog's _CONFIG",
    "stdlib_switch": "_StdlibGate",
    "levels_item": "_levels_item_fast",
    "run_is_asyncio_future": True,
    "gathered": [5],
}
PLAIN_SELECTION = {
    "enabled": False,
    "condition": "PlainRunCondition",
    "looprun": False,
    "running_loop_here": "_running_loop_here_public",
    "running_loop": "_running_loop_public",
    "events": False,
    "switch": "_AskStructlog",
    "stdlib_switch": "_AskLogging",
    "levels_item": "_levels_item_public",
    "run_is_asyncio_future": False,
    "gathered": [5],
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, FAST_SELECTION), ("0", FAST_SELECTION), ("1", PLAIN_SELECTION), ("yes", PLAIN_SELECTION)],
    ids=["unset", "0", "1", "yes"],
)
def test_the_variable_selects_the_fast_paths_or_every_fallback(value: str | None, expected: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if k != _fastpath.ENV_VAR}
    if value is not None:
        env[_fastpath.ENV_VAR] = value
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_DIR), str(TESTS_DIR)])
    proc = subprocess.run(
        [sys.executable, "-c", _SELECTION], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    selected = json.loads(proc.stdout)
    canary(
        selected == expected,
        "woflo/_fastpath.py, woflo/_condition.py, woflo/_looprun.py, woflo/_events.py, woflo/_tasklog.py",
        f"{_fastpath.ENV_VAR}={value} should select {expected}, selected {selected}",
    )


def test_this_process_uses_what_the_variable_says() -> None:
    # The suite itself runs with the fast paths (CI's first pass) or with
    # WOFLO_NO_FAST_PATHS=1 (its second pass): each module follows the switch.
    enabled = os.environ.get(_fastpath.ENV_VAR, "") in ("", "0")
    assert _fastpath.ENABLED is enabled
    assert _condition.FAST is _looprun.FAST is _events.FAST is enabled
    assert _condition.RunCondition is (FastRunCondition if enabled else PlainRunCondition)
    switch = _events.structlog_switch()
    assert (_events._CONFIG is not None and vars(switch) is vars(_events._CONFIG)) is enabled
    assert (type(_events.stdlib_switch()).__name__ == "_StdlibGate") is enabled
    assert _tasklog.levels_item is (_tasklog._levels_item_fast if enabled else _tasklog._levels_item_public)

    async def main() -> bool:
        runner = AsyncRunner(loop=asyncio.get_running_loop())
        run = runner.submit(asyncio.sleep, 0)
        try:
            await run
            return asyncio.isfuture(run)
        finally:
            runner.shutdown(wait=False)

    assert asyncio.run(main()) is enabled


# -- woflo/_condition.py: the C RLock's Condition hooks ----------------------------------


def test_rlock_can_be_subclassed_with_slots() -> None:
    canary(
        isinstance(_thread.RLock, type) and issubclass(FastRunCondition, _thread.RLock),
        "woflo/_condition.py",
        "_thread.RLock is a class that can be subclassed (FastRunCondition)",
    )
    cond = FastRunCondition()
    canary(
        not hasattr(cond, "__dict__"), "woflo/_condition.py", "a __slots__ subclass of _thread.RLock has no __dict__"
    )


def test_rlock_release_save_and_acquire_restore_hand_a_reentrant_hold_over() -> None:
    # What FastRunCondition.wait relies on: _release_save() releases a lock
    # held several times completely and returns its state; _acquire_restore
    # takes it back with the same recursion count.
    for name in ("_release_save", "_acquire_restore"):
        canary(callable(getattr(_thread.RLock, name, None)), "woflo/_condition.py", f"_thread.RLock.{name} exists")
    lock = _thread.RLock()
    taken: list[bool] = []

    def try_take() -> None:
        got = lock.acquire(True, 10)
        taken.append(got)
        if got:
            lock.release()

    lock.acquire()
    lock.acquire()
    state = lock._release_save()  # type: ignore[attr-defined]
    other = threading.Thread(target=try_take)
    other.start()
    other.join(30)
    canary(taken == [True], "woflo/_condition.py", "RLock._release_save() releases a lock held twice completely")
    lock._acquire_restore(state)  # type: ignore[attr-defined]
    lock.release()
    taken.clear()
    other = threading.Thread(target=lambda: taken.append(lock.acquire(False)))
    other.start()
    other.join(30)
    canary(taken == [False], "woflo/_condition.py", "RLock._acquire_restore(state) restores the recursion count")
    lock.release()
    canary(lock.acquire(False), "woflo/_condition.py", "the lock is free after as many releases as acquires")
    lock.release()


def _base_source() -> str:
    import concurrent.futures._base as base

    return inspect.getsource(base)


def test_the_stdlib_future_calls_only_what_a_run_condition_has() -> None:
    # TaskRun replaces Future's threading.Condition by a RunCondition (both
    # kinds have acquire, release, wait, notify_all and the with statement):
    # concurrent.futures must not call anything else on a future's condition.
    source = _base_source()
    called = set(re.findall(r"\._condition\.(\w+)", source))
    canary(
        called <= {"acquire", "release", "wait", "notify_all"},
        "woflo/_condition.py (RunCondition) and woflo/_taskrun.py",
        f"concurrent.futures calls only acquire/release/wait/notify_all on Future._condition, calls {sorted(called)}",
    )
    for cls in (FastRunCondition, PlainRunCondition):
        for name in ("acquire", "release", "wait", "notify_all", "__enter__", "__exit__"):
            assert callable(getattr(cls, name, None)) or hasattr(cls(), name), (cls, name)


@pytest.mark.parametrize("cls", [FastRunCondition, PlainRunCondition], ids=["fast", "plain"])
def test_both_conditions_serve_a_stdlib_future_across_threads(cls: Any) -> None:
    # The fast class and its fallback, in a real Future, with real threads:
    # result(timeout) and concurrent.futures.wait block until another thread
    # finishes the future; _waiters is truthy exactly while a thread waits.
    fut: cf.Future[int] = cf.Future()
    cond = cls()
    cond._waiters = None  # as TaskRun._create leaves it
    fut._condition = cond  # type: ignore[attr-defined]
    got: list[object] = []
    waiting = threading.Event()

    def wait_for_result() -> None:
        waiting.set()
        got.append(fut.result(30))

    waiter = threading.Thread(target=wait_for_result)
    waiter.start()
    assert waiting.wait(30)
    # The waiter is inside cond.wait once it shows in _waiters (read under the lock).

    def in_wait() -> bool:
        with cond:
            return bool(cond._waiters)

    wait_for(in_wait, 30, "the waiter inside wait()")
    setter = threading.Thread(target=fut.set_result, args=(7,))
    setter.start()
    done, _ = cf.wait([fut], timeout=30)
    waiter.join(30)
    setter.join(30)
    assert done == {fut}
    assert got == [7]
    assert not cond._waiters


# -- woflo/_taskrun.py, woflo/_looprun.py, woflo/_runner.py: concurrent.futures' Future layout ----


def test_future_fields_are_the_ones_taskrun_creates() -> None:
    # TaskRun._create skips Future.__init__ and sets (or has as class
    # defaults) exactly these fields: a new one in Future would be missing.
    fields = set(vars(cf.Future()))
    canary(
        fields == {"_condition", "_state", "_result", "_exception", "_waiters", "_done_callbacks"},
        "woflo/_taskrun.py (TaskRun._create)",
        "Future.__init__ sets _condition, _state, _result, _exception, _waiters and _done_callbacks; "
        f"it sets {sorted(fields)}",
    )
    canary(
        callable(getattr(cf.Future, "_invoke_callbacks", None)),
        "woflo/_taskrun.py, woflo/_looprun.py",
        "Future._invoke_callbacks exists (TaskRun and LoopTaskRun call and override it)",
    )


def test_future_states_are_the_constants_woflo_imports() -> None:
    from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING

    fut: cf.Future[int] = cf.Future()
    seen = [fut._state]  # type: ignore[attr-defined]
    fut.set_running_or_notify_cancel()
    seen.append(fut._state)  # type: ignore[attr-defined]
    fut.set_result(1)
    seen.append(fut._state)  # type: ignore[attr-defined]
    cancelled: cf.Future[int] = cf.Future()
    cancelled.cancel()
    seen.append(cancelled._state)  # type: ignore[attr-defined]
    cancelled.set_running_or_notify_cancel()
    seen.append(cancelled._state)  # type: ignore[attr-defined]
    canary(
        seen == [PENDING, RUNNING, FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED],
        "woflo/_taskrun.py, woflo/_looprun.py, woflo/_runner.py",
        f"Future._state goes PENDING, RUNNING, FINISHED (or CANCELLED, CANCELLED_AND_NOTIFIED); saw {seen}",
    )


def test_wait_and_as_completed_use_a_futures_waiters_as_taskrun_feeds_them() -> None:
    # TaskRun notifies the items of _waiters itself (add_result,
    # add_exception, add_cancelled), and LoopTaskRun's _Sleeper is one.
    source = _base_source()
    methods = set(re.findall(r"\._waiters\.(\w+)", source))
    canary(
        methods <= {"append", "remove"},
        "woflo/_taskrun.py (_waiters)",
        f"concurrent.futures only appends to and removes from Future._waiters; calls {sorted(methods)}",
    )
    notified = set(re.findall(r"waiter\.(add_\w+)", source))
    canary(
        notified == {"add_result", "add_exception", "add_cancelled"},
        "woflo/_taskrun.py, woflo/_looprun.py (_Sleeper)",
        f"a future notifies its waiters with add_result/add_exception/add_cancelled; uses {sorted(notified)}",
    )


# -- woflo/_looprun.py: asyncio's future protocol and running-loop helpers -----------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class ProbeFuture:
    """The smallest object asyncio takes for a future: a done, cancelled one."""

    _asyncio_future_blocking = False
    _cancel_message = "the probe's cancel message"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.asked: list[str] = []

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return True

    def cancel(self, msg: Any = None) -> bool:
        return False

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        self.loop.call_soon(fn, self, context=context)

    def remove_done_callback(self, fn: Any) -> int:
        return 0

    def _make_cancelled_error(self) -> asyncio.CancelledError:
        self.asked.append("_make_cancelled_error")
        return asyncio.CancelledError("made by the probe")

    def result(self) -> Any:
        raise AssertionError("gather must not ask a cancelled future for its result")

    def exception(self) -> Any:
        raise AssertionError("gather must not ask a cancelled future for its exception")


def test_isfuture_looks_for_the_class_attribute_asyncio_future_blocking(loop: asyncio.AbstractEventLoop) -> None:
    class NoFlag:
        pass

    instance_flag = NoFlag()
    instance_flag._asyncio_future_blocking = False  # type: ignore[attr-defined]
    canary(
        asyncio.isfuture(ProbeFuture(loop)) and not asyncio.isfuture(instance_flag),
        "woflo/_looprun.py (LoopTaskRun._asyncio_future_blocking)",
        "asyncio.isfuture(obj) is true when obj's class has _asyncio_future_blocking (not None)",
    )


def test_asyncio_takes_a_protocol_future_as_it_is(loop: asyncio.AbstractEventLoop) -> None:
    probe = ProbeFuture(loop)

    async def main() -> tuple[object, object]:
        return asyncio.ensure_future(probe), asyncio.wrap_future(probe)  # type: ignore[arg-type]

    wrapped = loop.run_until_complete(main())
    canary(
        wrapped == (probe, probe),
        "woflo/_looprun.py",
        "asyncio.ensure_future and wrap_future return an object that isfuture() accepts as it is",
    )


def test_gather_asks_a_cancelled_child_for_make_cancelled_error(loop: asyncio.AbstractEventLoop) -> None:
    probe = ProbeFuture(loop)

    async def main() -> BaseException:
        try:
            await asyncio.gather(probe)  # type: ignore[arg-type]
        except asyncio.CancelledError as exc:
            return exc
        raise AssertionError("gather of a cancelled child did not raise")

    exc = loop.run_until_complete(main())
    canary(
        probe.asked == ["_make_cancelled_error"] and exc.args == ("made by the probe",),
        "woflo/_looprun.py (LoopTaskRun._make_cancelled_error)",
        "gather raises what a cancelled child's _make_cancelled_error() returns",
    )


def test_gather_with_return_exceptions_reads_cancel_message(loop: asyncio.AbstractEventLoop) -> None:
    probe = ProbeFuture(loop)

    async def main() -> list[Any]:
        return await asyncio.gather(probe, return_exceptions=True)  # type: ignore[arg-type,no-any-return]

    [result] = loop.run_until_complete(main())
    canary(
        isinstance(result, asyncio.CancelledError) and result.args == (ProbeFuture._cancel_message,),
        "woflo/_looprun.py (LoopTaskRun._cancel_message)",
        "gather(return_exceptions=True) reports a cancelled child as CancelledError(child._cancel_message)",
    )


def test_looptaskrun_has_every_name_asyncio_calls() -> None:
    run_class = _looprun.LoopTaskRun
    for name in ("get_loop", "add_done_callback", "remove_done_callback", "cancel", "_make_cancelled_error"):
        assert callable(getattr(run_class, name, None)), name
    assert hasattr(run_class, "_cancel_message")
    assert "msg" in inspect.signature(run_class.cancel).parameters  # gather's child.cancel(msg=msg)
    assert "context" in inspect.signature(run_class.add_done_callback).parameters


def test_get_running_loop_helper_is_there_and_answers() -> None:
    helper = getattr(asyncio, "_get_running_loop", None)
    canary(callable(helper), "woflo/_looprun.py (running_loop)", "asyncio._get_running_loop exists")
    assert helper is not None
    assert helper() is None

    async def main() -> object:
        return helper()

    loop = asyncio.new_event_loop()
    try:
        canary(
            loop.run_until_complete(main()) is loop,
            "woflo/_looprun.py (running_loop)",
            "asyncio._get_running_loop() is the running loop inside it",
        )
    finally:
        loop.close()


def test_loop_thread_id_is_the_ident_of_the_thread_running_it() -> None:
    # running_loop_here compares loop._thread_id to the caller's thread.
    loop = asyncio.new_event_loop()
    started = threading.Event()
    seen: dict[str, object] = {"before": getattr(loop, "_thread_id", "missing")}

    def serve() -> None:
        seen["runner"] = threading.get_ident()
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert started.wait(30)
        seen["running"] = loop._thread_id  # type: ignore[attr-defined]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
    seen["after"] = loop._thread_id  # type: ignore[attr-defined]
    loop.close()
    canary(
        seen["before"] is None and seen["running"] == seen["runner"] and seen["after"] is None,
        "woflo/_looprun.py (running_loop_here)",
        f"an asyncio loop's _thread_id is None unless running, then its thread's ident; saw {seen}",
    )


# -- woflo/_events.py: structlog's configuration object ----------------------------------


@pytest.fixture
def structlog_reset() -> Iterator[None]:
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.reset_defaults()
        if was_configured:
            structlog.configure(**saved)


def test_structlog_config_object_has_the_fields_woflo_reads(structlog_reset: None) -> None:
    config = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
    canary(config is not None, "woflo/_events.py", "structlog._config._CONFIG exists")
    for name in (*_events._CONFIG_FIELDS, "is_configured"):
        canary(hasattr(config, name), "woflo/_events.py", f"structlog's _CONFIG has {name}")
    structlog.reset_defaults()
    canary(
        config.is_configured is False and structlog.is_configured() is False,
        "woflo/_events.py (structlog_switch)",
        "_CONFIG.is_configured is False after structlog.reset_defaults()",
    )
    processors: list[Any] = [structlog.processors.KeyValueRenderer()]
    structlog.configure(processors=processors)
    canary(
        config.is_configured is True and config.default_processors is processors,
        "woflo/_events.py (structlog_switch, _current_logger)",
        "configure(processors=p) sets _CONFIG.is_configured and makes _CONFIG.default_processors p itself",
    )
    public = structlog.get_config()
    canary(
        public["wrapper_class"] is config.default_wrapper_class
        and public["logger_factory"] is config.logger_factory
        and public["context_class"] is config.default_context_class,
        "woflo/_events.py (_current_logger)",
        "_CONFIG's fields are the objects structlog.get_config() reports",
    )


def test_a_bound_logger_follows_in_place_changes_of_the_processor_list(structlog_reset: None) -> None:
    # _current_logger keeps one bound logger per configuration: it must see
    # processors added to the configured list in place, as the proxy would.
    seen: list[str] = []

    def collect(logger: Any, method: str, event: dict[str, Any]) -> Any:
        seen.append(event["event"])
        raise structlog.DropEvent

    processors: list[Any] = [collect]
    structlog.configure(processors=processors)
    bound = structlog.get_logger("woflo").bind()

    def tag(logger: Any, method: str, event: dict[str, Any]) -> Any:
        event["event"] = "tagged " + event["event"]
        return event

    processors.insert(0, tag)
    bound.info("hello")
    canary(
        seen == ["tagged hello"],
        "woflo/_events.py (_current_logger)",
        "a logger bound from structlog's proxy keeps the configured processor list itself",
    )


# -- woflo/_policy.py: tenacity's per-thread state --------------------------------------


def test_tenacity_keeps_statistics_and_iter_state_in_local() -> None:
    # Policy.retry_state gives a run's copy of a Retrying its own _local.
    retrying = tenacity.Retrying()
    own = type("Own", (), {"__slots__": ("statistics", "iter_state")})()
    retrying._local = own  # type: ignore[assignment]
    retrying.begin()
    ok = retrying.statistics is own.statistics
    if hasattr(type(retrying), "iter_state"):
        ok = ok and retrying.iter_state is own.iter_state
    canary(
        ok,
        "woflo/_policy.py (_RunLocal, Policy.retry_state)",
        "tenacity.Retrying keeps .statistics (and .iter_state) in its _local",
    )


# -- woflo/_process/wire.py: cloudpickle's function reduction -----------------------------


def test_cloudpickle_reduces_a_dynamic_function_as_wire_expects() -> None:
    import io

    import cloudpickle
    import cloudpickle.cloudpickle as cp

    from woflo._process import wire

    namespace: dict[str, Any] = {"__name__": "woflo_canary_module"}
    exec("def f():\n    return 1\n", namespace)
    pickler = cloudpickle.Pickler(io.BytesIO())
    rv = pickler._dynamic_function_reduce(namespace["f"])
    canary(
        len(rv) == 6 and rv[0] is cp._make_function and rv[5] is cp._function_setstate and len(rv[1]) == 5,
        "woflo/_process/taskpickler.py (TaskPickler._dynamic_function_reduce)",
        "cloudpickle's Pickler._dynamic_function_reduce returns "
        "(_make_function, 5 args, state, None, None, _function_setstate)",
    )
    canary(
        b"_shared_function" in wire.dumps_task(namespace["f"]),
        "woflo/_process/wire.py",
        "TaskPickler's hook is called for a function pickled by value",
    )
    assert pickle.loads(wire.dumps_task(namespace["f"]))() == 1


# -- woflo/_process/handle.py, launch.py: multiprocessing -------------------------------


def test_multiprocessing_process_popen_and_original_dir() -> None:
    canary(
        hasattr(multiprocessing.process, "ORIGINAL_DIR"),
        "woflo/_process/launch.py",
        "multiprocessing.process.ORIGINAL_DIR exists (the directory the parent started in)",
    )
    proc = multiprocessing.get_context("spawn").Process(target=int)
    canary(
        getattr(proc, "_popen", "missing") is None, "woflo/_process/handle.py", "Process._popen is None before start"
    )
    proc.start()
    try:
        canary(
            callable(getattr(proc._popen, "close", None)),  # type: ignore[attr-defined]
            "woflo/_process/handle.py (WorkerHandle.close)",
            "a started Process's _popen has close()",
        )
    finally:
        proc.join(60)
        proc.close()


def test_subprocess_args_from_interpreter_flags_gives_the_parent_s_options() -> None:
    # What multiprocessing's spawn passes to its children, and woflo's exec launcher too.
    flags = getattr(subprocess, "_args_from_interpreter_flags", None)
    canary(callable(flags), "woflo/_process/launch.py", "subprocess._args_from_interpreter_flags exists")
    assert flags is not None
    probe = "import subprocess; print(subprocess._args_from_interpreter_flags())"
    out = subprocess.run(
        [sys.executable, "-O", "-X", "utf8", "-W", "error::ResourceWarning", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for option in ("-O", "utf8", "error::ResourceWarning"):
        canary(option in out, "woflo/_process/launch.py", f"{option} is among the flags: {out.strip()}")


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
