"""The worker process: run the jobs the pool sends, write one result frame per job.

Runs in the child only. It knows nothing of futures or retries: it unpickles a
batch, runs each job in order, and writes each outcome as soon as the job ends.

Whatever a task raises, ``BaseException`` included (``SystemExit`` from
``sys.exit``, ``KeyboardInterrupt``), is that job's exception, and the worker
takes the next job, as in ``ProcessPoolExecutor``. Only a real death of the
process (a signal, ``os._exit``) is a crash, which the parent reports as
``WorkerCrashed``. Everything that runs user code here (unpickling the function
and arguments, the call, pickling the result or the exception, formatting the
traceback) fails only its job, whatever it raises, with one exception kept
from the stdlib: a ``SystemExit`` (or other non-``Exception``) raised while the
call's function or arguments are unpickled ends the worker, as it ends a
``ProcessPoolExecutor`` worker (the run fails with ``WorkerCrashed``, a
``BrokenProcessPool``). One raised while the result or the exception is
pickled is the run's exception, as in the stdlib.

Each job unpickles its own callable unless the stdlib would send it by name
(see ``wire``): a callable object's state never carries over from one job to
the next, while a module-level function is one object, as in the stdlib.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from woflo._errors import SerializationError
from woflo._process import wire, worklog

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["worker_main"]


class _State:
    """What the main thread and the watchdog share, under ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = -1  # jid running now, -1 between jobs
        self.last_started = -1  # jids reach a worker in increasing order
        self.cancelled: set[int] = set()


def _kill_self() -> None:
    # Our process group holds the task's own children too; never signal a group
    # we do not lead (that would be the parent's).
    try:
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os.kill(os.getpid(), signal.SIGKILL)


def _watchdog(ctl_fd: int, state: _State, ppid: int) -> None:
    """Apply cancels; when the parent is gone (EOF on control, or reparented), end
    this worker and its process group, so the processes its task started go too."""
    buf = b""
    while True:
        ready, _, _ = select.select([ctl_fd], [], [], 1.0)
        if not ready:
            if os.getppid() != ppid:  # backstop when a sibling holds the pipe open
                _kill_self()
            continue
        try:
            data = os.read(ctl_fd, 4096)
        except OSError:
            data = b""
        if not data:
            _kill_self()
        buf += data
        while len(buf) >= wire.CTL.size:
            (jid,) = wire.CTL.unpack_from(buf)
            buf = buf[wire.CTL.size :]
            with state.lock:
                if jid == state.current:
                    _kill_self()
                elif jid > state.last_started:
                    state.cancelled.add(jid)


def _read_exact(fd: int, n: int) -> bytearray | None:
    # Straight into one buffer: joining pipe-sized chunks would copy a large
    # argument once more, into fresh memory.
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if not k:
            return None
        got += k
    return buf


class _Inbox:
    """The worker's end of its inbox pipe, read in bulk: one ``read`` takes a whole batch of small jobs.

    ``take(n)`` returns the next ``n`` bytes; `_ArgReader` reads a large
    argument's bytes through it, straight into the objects being unpickled.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.pos = 0

    def take(self, n: int) -> bytes | None:
        """The next ``n`` bytes, or ``None`` at EOF (the parent is gone)."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos >= n:
            self.pos = pos + n
            return buf[pos : pos + n]
        parts = [buf[pos:]]
        have = len(parts[0])
        self.buf, self.pos = b"", 0
        while have < n:
            data = os.read(self.fd, max(n - have, _READ_SIZE))
            if not data:
                return None
            parts.append(data)
            have += len(data)
        joined = b"".join(parts)
        self.buf, self.pos = joined, n
        return joined[:n]

    def take_into(self, view: memoryview) -> int:
        """Fill ``view`` (buffered bytes first, then straight from the pipe); 0 at EOF."""
        n = len(view)
        got = min(n, len(self.buf) - self.pos)
        if got:
            view[:got] = self.buf[self.pos : self.pos + got]
            self.pos += got
        while got < n:
            k = os.readv(self.fd, [view[got:]])
            if not k:
                return 0
            got += k
        return n


_READ_SIZE = 1 << 16


class _ArgReader:
    """A file of ``size`` bytes of the inbox, for ``pickle.Unpickler``.

    The C unpickler reads a large ``bytes`` (or ``bytearray``) by allocating
    it and calling ``readinto`` on its memory: the payload goes from the pipe
    into the argument once, where reading the frame into a buffer first
    and unpickling from there would copy it once more (and fault its pages).
    It reads only what the pickle asks for (no ``peek``): the rest is `drain`ed.
    """

    def __init__(self, inbox: _Inbox, size: int) -> None:
        self._inbox = inbox
        self.left = size

    def read(self, n: int) -> bytes:
        n = min(n, self.left)
        data = self._inbox.take(n) if n else b""
        if data is None:
            raise EOFError("the parent closed the inbox")
        self.left -= n
        return data

    def readinto(self, view: memoryview) -> int:
        n = min(len(view), self.left)
        if n and not self._inbox.take_into(memoryview(view).cast("B")[:n]):
            raise EOFError("the parent closed the inbox")
        self.left -= n
        return n

    def readline(self) -> bytes:  # only protocol 0 pickles use it; ours are protocol 5
        raise pickle.UnpicklingError("readline on a binary pickle")

    def drain(self) -> bool:
        """Skip what the unpickler left of the argument; False at EOF."""
        while self.left:
            n = min(self.left, _READ_SIZE)
            if self._inbox.take(n) is None:
                return False
            self.left -= n
        return True


class _Loaded:
    """A job's arguments unpickled as they were read (a large argument), or why they could not be."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


def _read_batch(inbox: _Inbox, size: int) -> list[tuple[int, bytes | None, bool, bytes | _Loaded]] | None:
    """Read one inbox frame of ``size`` bytes into (jid, fn_bytes, shared, args) jobs; None at EOF.

    A small job's arguments stay pickled until it runs. A large one's (after
    the list, see ``wire.META_LEN``) are unpickled now, from the pipe: the
    frame must be read through to reach the next one, and they are
    unpickled only once (an error is kept for its job, see `_run_job`).
    """
    head = inbox.take(wire.META_LEN.size)
    if head is None:
        return None
    (meta_len,) = wire.META_LEN.unpack(head)
    meta = inbox.take(meta_len)
    if meta is None:
        return None
    jobs: list[tuple[int, bytes | None, bool, bytes | _Loaded]] = []
    for jid, fn_bytes, shared, args in pickle.loads(meta):
        if jid == 0:  # not a job: the parent's log levels, to apply before the jobs
            worklog.apply_levels(args)
        elif isinstance(args, int):  # a large argument, after the list
            reader = _ArgReader(inbox, args)
            try:
                loaded = _Loaded(pickle.Unpickler(reader).load(), None)
            except BaseException as err:  # user code (a reconstructor): its job's error
                loaded = _Loaded(None, err)
            if not reader.drain():
                return None
            jobs.append((jid, fn_bytes, shared, loaded))
        else:
            jobs.append((jid, fn_bytes, shared, args))
    return jobs


# Results (main thread) and forwarded log records (any thread of a task) share
# the result pipe: one frame is written whole before the next begins.
_send_lock = threading.Lock()
# Threads inside _send: waiting for the lock or writing (set before the lock is
# taken, cleared after it is released, so that no instant is left uncovered).
_sending: set[int] = set()


def _send(fd: int, kind: int, jid: int, payload: bytes | list[Any] = b"") -> None:
    # ``payload``: bytes, or parts written back to back (see wire.PartsPickler).
    if isinstance(payload, list):
        size = sum(map(len, payload))
        if size < 65536:
            payload = b"".join(payload)
    else:
        size = len(payload)
    header = wire.OUT_HEADER.pack(9 + size, kind, jid)
    me = threading.get_ident()
    _sending.add(me)
    try:
        with _send_lock:
            if isinstance(payload, list):
                wire.write_all(fd, [header, *payload])
            elif size < 65536:
                wire.write_all(fd, [header + payload])
            else:
                wire.write_all(fd, [header, payload])
    finally:
        _sending.discard(me)


def _send_log(fd: int, jid: int, payload: bytes) -> None:
    if threading.get_ident() in _sending:
        # Logged by a signal handler that interrupted this very thread in the
        # middle of a frame: waiting for the lock would wait for ourselves, and
        # writing now would cut the frame in two. Dropped.
        return
    _send(fd, wire.KIND_LOG, jid, payload)


class _BadFunction:
    """Stands in for a function that could not be unpickled in the worker."""

    def __init__(self, err: BaseException) -> None:
        self.err = err


def _run_job(fn: Any, arg_bytes: bytes | _Loaded, pickler: wire.PartsPickler) -> tuple[int, bytes | list[Any]]:
    """Run one job; returns the kind and payload of its result frame. Never raises.

    Every error is a new exception object, even for jobs that share a function
    that could not be unpickled: each run gets its own. ``arg_bytes`` is the
    pickled arguments, or (a large argument) what unpickling them gave.
    """
    if isinstance(fn, _BadFunction):
        # A new SerializationError per job; the unpickling error it wraps travels
        # as text only (in the traceback), never as an object shared by runs.
        bad = SerializationError.wrap(f"cannot unpickle the function in the worker: {wire.reason(fn.err)}", fn.err)
        return wire.KIND_EXC, wire.dumps_exception(bad, "the function")
    try:
        if isinstance(arg_bytes, _Loaded):
            if arg_bytes.error is not None:
                raise arg_bytes.error
            args, kwargs = arg_bytes.value
        else:
            args, kwargs = pickle.loads(arg_bytes)
    except Exception as err:  # a SystemExit here ends the worker, as in ProcessPoolExecutor
        what = wire.describe(fn)
        bad = SerializationError.wrap(f"cannot unpickle the arguments of {what} in the worker: {wire.reason(err)}", err)
        return wire.KIND_EXC, wire.dumps_exception(bad, what)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt of a task are its result too
        return wire.KIND_EXC, wire.dumps_exception(exc, wire.describe(fn))
    try:
        return wire.KIND_OK, pickler.dumps(result)
    except BaseException as err:
        what = wire.describe(fn)
        if not isinstance(err, Exception):  # a SystemExit is the run's exception, as in ProcessPoolExecutor
            return wire.KIND_EXC, wire.dumps_exception(err, what)
        bad = SerializationError.wrap(
            f"cannot pickle the result of {what} ({type(result).__qualname__}): {wire.reason(err)}", err
        )
        return wire.KIND_EXC, wire.dumps_exception(bad, what)


def worker_main(*args: Any) -> None:
    """Entry point of a worker process (the ``target`` of its Process); see ``_serve``."""
    try:
        _serve(*args)
    except (BrokenPipeError, ConnectionResetError):
        sys.exit(1)  # the parent closed our pipes: it is gone or killed us on purpose
    finally:
        _end_leftovers()


_LEFTOVER_JOIN_S = 5.0


def _end_leftovers() -> None:
    """End the processes this worker's tasks left behind, so that it can exit.

    ``multiprocessing`` joins a process's non-daemon children when its target
    returns, before the atexit hooks that would shut down a runner left open:
    the workers of a `ProcessRunner` a task dropped without ``shutdown`` (or of
    the shared runner of a ``@task`` called inside a task, idle for 10 s before
    its workers leave) would keep this worker from exiting (pebble #76). Pools
    of this process are shut down first (their running jobs killed, and no
    replacement started), then what is left is killed: the reaper would kill
    this worker's process group anyway.
    """
    # Only pools made here: a "fork" worker holds copies of its parent's. No
    # pool module imported (an "exec" worker whose tasks made none): no pool.
    pool = sys.modules.get("woflo._process.pool")
    live = list(pool._live_pools) if pool is not None else []
    pools = [p for p in live if p._pid == os.getpid()]
    for p in pools:
        with contextlib.suppress(Exception):
            p.shutdown(wait=False, kill=True)
    for p in pools:
        p._thread.join(_LEFTOVER_JOIN_S)
    # No multiprocessing imported (an "exec" worker whose tasks used none): no
    # multiprocessing children, and no need to pay for the import at exit.
    process = sys.modules.get("multiprocessing.process")
    children = process.active_children() if process is not None else []
    for child in children:
        with contextlib.suppress(Exception):
            child.kill()
    for child in children:
        child.join(_LEFTOVER_JOIN_S)


def _serve(
    inbox: Connection,
    outbox: Connection,
    control: Connection,
    init: bytes | None,
    max_tasks: int | None,
    close_fds: list[int],
) -> None:
    """Set up the process, run the initializer, then serve jobs until told to stop."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # so that kill() reaches the task's own children too
    for fd in close_fds:  # "fork" only: parent-side fds we must not keep open
        with contextlib.suppress(OSError):
            os.close(fd)
    in_fd, out_fd, ctl_fd = inbox.fileno(), outbox.fileno(), control.fileno()
    state = _State()
    threading.Thread(target=_watchdog, args=(ctl_fd, state, os.getppid()), daemon=True, name="woflo-watchdog").start()
    # What tasks (and the initializer) log goes to the parent as it is emitted.
    worklog.install(lambda jid, payload: _send_log(out_fd, jid, payload), lambda: max(state.current, 0))

    if init is not None:
        # The parent charges the initializer's time, not the interpreter's
        # start, to the timeout of the attempts waiting for this worker.
        _send(out_fd, wire.KIND_INITIALIZING, 0)
        try:
            initializer, initargs = pickle.loads(init)
            initializer(*initargs)
        except BaseException as exc:
            _send(out_fd, wire.KIND_INIT_FAILED, 0, wire.dumps_exception(exc))
            sys.exit(3)
    _send(out_fd, wire.KIND_READY, 0)

    jobs: deque[tuple[int, bytes | None, bool, bytes | _Loaded]] = deque()
    pipe_in = _Inbox(in_fd)
    pickler = wire.PartsPickler()
    fn: Any = None
    shared_bytes: bytes | None = None  # the last shared function (see wire), kept as the stdlib keeps it
    shared_fn: Any = None
    done = 0
    while max_tasks is None or done < max_tasks:
        if not jobs:
            header = pipe_in.take(wire.INBOX_HEADER.size)
            if header is None:
                break  # parent gone
            (size,) = wire.INBOX_HEADER.unpack(header)
            if size == 0:
                break  # asked to stop
            batch = _read_batch(pipe_in, size)
            if batch is None:
                break
            jobs.extend(batch)
            del batch
        jid, fn_bytes, shared, arg_bytes = jobs.popleft()
        if fn_bytes is None:
            pass  # the previous job's function, shared
        elif shared and fn_bytes == shared_bytes:
            fn = shared_fn
        else:
            # Not shared: unpickled for this job alone, so that a callable
            # object's state does not leak from one call into the next.
            try:
                fn = pickle.loads(fn_bytes)
            except Exception as err:  # a SystemExit here ends the worker, as in ProcessPoolExecutor
                fn = _BadFunction(err)
            if shared:
                shared_bytes, shared_fn = fn_bytes, fn
        with state.lock:
            state.last_started = jid
            skip = jid in state.cancelled
            if skip:
                state.cancelled.discard(jid)
            else:
                state.current = jid
        if skip:
            _send(out_fd, wire.KIND_SKIPPED, jid)
            continue
        kind, payload = _run_job(fn, arg_bytes, pickler)
        # Clear before writing: a cancel that arrives now must not kill a worker
        # whose job already ended (the next job would be blamed).
        with state.lock:
            state.current = -1
        _send(out_fd, kind, jid, payload)
        del payload, arg_bytes
        done += 1
    sys.stdout.flush()
    sys.stderr.flush()
