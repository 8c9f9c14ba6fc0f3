"""Large arguments and results on the process runner: intact at every size, nothing left after a death mid-transfer.

The sizes straddle each boundary the wire has: a pickled argument of
``wire.INLINE_ARGS`` (64 KiB) or more travels after the job list and is
unpickled in the worker straight from the pipe; a result frame of
``stream.STREAM_MIN`` (4 MiB) or more is unpickled in the parent by a stream
thread straight from the pipe; the C pickler hands payloads of 64 KiB or more
to its file as they are (``wire.PartsPickler``).
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
from pathlib import Path

import funcs
import psutil
import pytest
from helpers import assert_nothing_new, snapshot, wait_for

from woflo import ProcessRunner, WorkerCrashed
from woflo._process import stream, wire

KB64 = 64 * 1024
MB = 1 << 20
# The pickle of a bytes object of n bytes is n plus a few bytes of opcodes:
# +-32 around each threshold puts the pickled size on both sides of it.
SIZES = sorted(
    {0, 1, KB64 - 1, KB64, KB64 + 1, MB}
    | {wire.INLINE_ARGS + d for d in (-32, 0, 32)}
    | {stream.STREAM_MIN + d for d in (-32, 0, 32)}
)


@pytest.fixture(scope="module")
def runner():
    with ProcessRunner(2) as r:
        yield r


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", SIZES)
def test_bytes_round_trip_intact_at_every_boundary(runner: ProcessRunner, n: int) -> None:
    data = funcs.payload(n, seed=n)
    back = runner.submit(funcs.identity, data).result(60)
    assert type(back) is bytes and back == data


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", [KB64 + 1, stream.STREAM_MIN + 32])
def test_mixed_payloads_keep_their_types(runner: ProcessRunner, n: int) -> None:
    # bytearray stays writable, str and bytes inside containers, the same object twice stays one.
    blob = funcs.payload(n, seed=1)
    arr = bytearray(funcs.payload(n, seed=2))
    value = {"b": blob, "a": arr, "s": "x" * n, "again": blob, "small": (1, b"z")}
    back = runner.submit(funcs.identity, value).result(60)
    assert back == value
    assert type(back["a"]) is bytearray and type(back["b"]) is bytes
    assert back["again"] is back["b"]
    back["a"][0] ^= 1  # writable


@pytest.mark.timeout(120)
def test_many_large_arguments_in_one_batch(runner: ProcessRunner) -> None:
    # Several large arguments after one job list, each read from the pipe in turn.
    datas = [funcs.payload(KB64 + i * 4099, seed=i) for i in range(12)]
    runs = [runner.submit(funcs.sha256, d) for d in datas]
    assert [r.result(60) for r in runs] == [funcs.sha256(d) for d in datas]


@pytest.mark.timeout(180)
def test_100_mb_result_and_argument(runner: ProcessRunner) -> None:
    data = runner.submit(funcs.payload, 100 * MB, 7).result(120)
    assert len(data) == 100 * MB
    assert runner.submit(funcs.sha256, data).result(120) == funcs.sha256(data)


def _shm() -> set[str]:
    """The names in /dev/shm, less those another live process tree made.

    /dev/shm is the machine's, not this test's: a name that carries the pid
    of a live process outside this one's tree (loky's ``sem.loky-<pid>-...``
    of another test run on the same machine) is not ours to count.
    """
    if not os.path.isdir("/dev/shm"):
        return set()
    ours = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    names = set()
    for name in os.listdir("/dev/shm"):
        pids = {int(token) for token in re.findall(r"(?<![0-9a-z])[0-9]{2,7}(?![0-9a-z])", name)}
        if any(pid not in ours and psutil.pid_exists(pid) for pid in pids):
            continue
        names.add(name)
    return names


def _blocked_writing(pid: int) -> bool:
    # The main thread of ``pid`` waits in a pipe write ("pipe_write", "anon_pipe_write"): the pipe is full.
    return "pipe_write" in Path(f"/proc/{pid}/wchan").read_text()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("while_streaming", [False, True], ids=["manager-held", "streaming"])
def test_worker_killed_while_sending_a_large_result(while_streaming: bool) -> None:
    """The worker dies with part of a 32 MB result in the pipe: that run fails with WorkerCrashed, nothing leaks."""
    before, shm = snapshot(), _shm()
    n = 32 * MB
    with tempfile.TemporaryDirectory() as tmp, ProcessRunner(2) as r:
        flag = f"{tmp}/go"
        big = r.submit(funcs.big_result_when, flag, n)
        wait_for(lambda: os.path.exists(flag + ".pid"), 60, "the big task to start")
        pid = int(Path(flag + ".pid").read_text())
        # Hold the manager thread in a done-callback: nobody reads the result pipe.
        entered, gate = threading.Event(), threading.Event()
        blocker = r.submit(funcs.identity, 1)

        def hold(_: object) -> None:
            entered.set()
            gate.wait(60)

        blocker.add_done_callback(hold)
        assert entered.wait(60)
        Path(flag).touch()
        # The worker wrote what the pipe holds (1 MiB) and is blocked in the write.
        wait_for(lambda: _blocked_writing(pid), 60, "the result to fill the pipe")
        if while_streaming:
            os.kill(pid, signal.SIGSTOP)
            gate.set()
            wait_for(
                lambda: any(t.name == "woflo-result-stream" for t in threading.enumerate()),
                60,
                "a stream to read the result",
            )
        os.kill(pid, signal.SIGKILL)
        gate.set()
        err = big.exception(60)
        assert isinstance(err, WorkerCrashed), err
        assert err.exitcode == -signal.SIGKILL
        # The runner goes on, large payloads too.
        data = funcs.payload(stream.STREAM_MIN + 32, seed=3)
        assert r.submit(funcs.identity, data).result(60) == data
    assert_nothing_new(before)
    assert _shm() <= shm


@pytest.mark.timeout(120)
def test_worker_killed_while_receiving_a_large_argument() -> None:
    """The worker dies while a 32 MB argument is on its way to it: the run ends, nothing leaks."""
    before, shm = snapshot(), _shm()
    with ProcessRunner(1) as r:
        pid = r.submit(os.getpid).result(60)
        os.kill(pid, signal.SIGSTOP)  # it reads nothing: the argument fills the pipe and waits
        argument = funcs.payload(32 * MB, seed=4)
        try:
            run = r.submit(funcs.sha256, argument)
            wait_for(run.running, 60, "the job to be sent to the worker")
        finally:
            os.kill(pid, signal.SIGKILL)
        err = run.exception(60)
        # Blamed on the job (WorkerCrashed); or, when the death is seen before
        # the job was counted as the worker's (its argument still on the way,
        # so it never started there), sent again to the replacement, which
        # runs it. Never lost, never hung. (Seen once in CI under heavy load.)
        if err is None:
            assert run.result() == funcs.sha256(argument)
        else:
            assert isinstance(err, WorkerCrashed), err
        data = funcs.payload(32 * MB, seed=5)
        assert r.submit(funcs.sha256, data).result(60) == funcs.sha256(data)
    assert_nothing_new(before)
    assert _shm() <= shm


@pytest.mark.timeout(120)
def test_large_payloads_are_not_copied_in_the_parent(runner: ProcessRunner) -> None:
    """Sending a 32 MB argument and receiving the 32 MB result allocates about one copy in the parent.

    Before, the argument was pickled into fresh memory (a copy), and the result
    read into a buffer and unpickled from it (two): about 3x the payload.
    """
    import tracemalloc

    n = 32 * MB
    data = funcs.payload(n, seed=6)
    tracemalloc.start()
    try:
        back = runner.submit(funcs.identity, data).result(60)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert back == data
    assert peak < 1.5 * n, f"peak {peak / MB:.1f} MB for a {n // MB} MB payload"


@pytest.mark.timeout(120)
def test_large_payloads_are_not_copied_in_the_worker() -> None:
    """A 32 MB argument is unpickled from the pipe, a 32 MB result written as it is: one copy each in the worker.

    Before, the argument was read into a buffer and unpickled from there (2x),
    and the result pickled into fresh memory before being written (2x).
    """
    n = 32 * MB
    with ProcessRunner(1, initializer=funcs.start_tracing) as r:
        r.submit(funcs.traced_peak).result(60)
        data = funcs.payload(n, seed=8)
        assert r.submit(funcs.sha256, data).result(60) == funcs.sha256(data)
        received = r.submit(funcs.traced_peak).result(60)
        assert r.submit(bytes, n).result(60) == bytes(n)  # the task allocates n bytes, once
        sent = r.submit(funcs.traced_peak).result(60)
    assert received < 1.5 * n, f"peak {received / MB:.1f} MB receiving a {n // MB} MB argument"
    assert sent < 1.5 * n, f"peak {sent / MB:.1f} MB sending a {n // MB} MB result"
