"""The parent's handle on one worker process: its pipes, its FIFO of jobs, its life.

Only the pool's manager thread reads and writes the pipes. ``kill_group`` and
``cancel`` may be called from any thread, under the pool lock; the pool also
reaps under that lock, so a pid is never signalled after it was reaped.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import itertools
import os
import selectors
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from woflo._process import launch, stream, wire
from woflo._process.worker import worker_main

__all__ = ["Worker", "start_worker"]

_PIPE_SIZE = 1 << 20  # fewer wake-ups per large payload; Linux caps it, we ignore failures
_READS_PER_EVENT = 16
_IOV_BATCH = 64  # buffers per writev, well under IOV_MAX  # then let other workers have a turn


def _grow_pipe(fd: int) -> None:
    setsz = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsz is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setsz, _PIPE_SIZE)


class Worker:
    """One worker process seen from the parent.

    ``proc`` is a `launch.ExecProcess` (the ``"exec"`` start method) or a
    ``multiprocessing`` process object (the others).
    """

    def __init__(self, proc: Any, in_w: int, out_r: int, ctl_w: int, budget: int | None) -> None:
        self.proc = proc
        self.pid: int = proc.pid
        self.sentinel: int = proc.sentinel
        self.in_w = in_w
        self.out_r = out_r
        self.ctl_w = ctl_w
        self.budget = budget  # jobs it may still be sent (max_tasks_per_child)
        self.inflight: collections.deque[Any] = collections.deque()  # jobs sent, in order
        self.ready = False  # its initializer finished
        self.born = time.monotonic()  # for the pool's worker_start_timeout
        self.init_since: float | None = None  # when its initializer began
        self.expired = False  # killed for not becoming ready in time: a failed start
        self.stopping = False  # asked to exit
        # SIGKILLed by the pool (stop, timeout, shutdown(kill=True)): it takes no
        # more jobs, and its jobs other than the killed one go back to the queue.
        self.doomed = False
        self.dead = False  # reaped
        self.idle_since = 0.0
        self._rbuf = bytearray()
        self._big: bytearray | None = None  # payload of a large frame being read
        self._big_fill = 0
        self._big_meta = (0, 0)
        self._wbuf: collections.deque[memoryview] = collections.deque()
        self._writing = False
        self._reading = True
        self.stream: stream.Stream | None = None  # a large result being read by its own thread
        self._cut = False  # a stream ended mid-frame: what the pipe holds now is no frame

    def takes_jobs(self) -> bool:
        """Whether the pool may send it more jobs."""
        return not (self.dead or self.stopping or self.doomed) and (self.budget is None or self.budget > 0)

    def idle(self) -> bool:
        """Ready, taking jobs, holding none and with nothing left to write (call under the pool lock).

        Then its inbox pipe is empty (it read every frame it was sent to answer
        its jobs) and only the thread holding the lock may write to it.
        """
        return self.ready and not self.inflight and not self._wbuf and self.takes_jobs()

    def kill_group(self) -> None:
        """SIGKILL the worker and its process group (call under the pool lock); it is then ``doomed``."""
        self.doomed = True
        if self.dead:
            return
        with contextlib.suppress(OSError):
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signal.SIGKILL)
                return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)

    def cancel(self, jid: int) -> bool:
        """Ask the worker's watchdog to skip (or, if it already runs, kill) job ``jid``."""
        try:
            return os.write(self.ctl_w, wire.CTL.pack(jid)) == wire.CTL.size
        except OSError:
            return False

    def send(self, parts: list[Any], sel: selectors.BaseSelector) -> None:
        """Queue one inbox frame, given as parts, and write what the pipe takes now."""
        header = wire.INBOX_HEADER.pack(sum(map(len, parts)))
        if len(parts) == 1:  # small jobs only: one buffer
            self._wbuf.append(memoryview(header + parts[0]))
        else:  # large arguments go out as they are (writev), not copied
            self._wbuf.append(memoryview(header))
            self._wbuf.extend(map(memoryview, parts))
        self.flush(sel)

    def stop(self, sel: selectors.BaseSelector) -> None:
        """Ask the worker to exit once the jobs it holds are done."""
        if not self.stopping and not self.dead:
            self.stopping = True
            self._wbuf.append(memoryview(wire.INBOX_HEADER.pack(0)))
            self.flush(sel)

    def flush(self, sel: selectors.BaseSelector) -> None:
        """Write queued inbox bytes without blocking; watch for writability if some remain."""
        wbuf = self._wbuf
        while wbuf:
            try:
                n = os.writev(self.in_w, list(itertools.islice(wbuf, _IOV_BATCH)))
            except BlockingIOError:
                break
            except OSError:  # the worker is gone; its sentinel tells the rest
                wbuf.clear()
                break
            while n:
                head = wbuf[0]
                if n >= len(head):
                    n -= len(head)
                    wbuf.popleft()
                else:
                    wbuf[0] = head[n:]
                    n = 0
        if self._wbuf and not self._writing:
            sel.register(self.in_w, selectors.EVENT_WRITE, self)
            self._writing = True
        elif not self._wbuf and self._writing:
            sel.unregister(self.in_w)
            self._writing = False

    def read_frames(
        self,
        big: int,
        sel: selectors.BaseSelector,
        scratch: memoryview,
        drain: bool = False,
        on_stream_end: Callable[[Worker], None] | None = None,
    ) -> list[tuple[int, int, Any]]:
        """Read what the result pipe holds now; return complete ``(kind, jid, payload)`` frames.

        ``scratch`` is a reusable buffer the pipe is read into. With
        ``on_stream_end``, a large result is handed to a `stream.Stream`
        (``self.stream``), which owns the pipe until it ends, then calls it
        with this worker (from its own thread).
        """
        frames: list[tuple[int, int, Any]] = []
        if self.stream is not None or self._cut:
            return frames
        hsize = wire.OUT_HEADER.size
        for _ in range(1 << 30 if drain else _READS_PER_EVENT):
            try:
                if self._big is not None:
                    n = os.readv(self.out_r, [memoryview(self._big)[self._big_fill :]])
                    if n == 0:
                        break
                    self._big_fill += n
                    if self._big_fill == len(self._big):
                        frames.append((*self._big_meta, self._big))
                        self._big = None
                    continue
                got = os.readv(self.out_r, [scratch])
                data = scratch[:got]
            except BlockingIOError:
                return frames
            except OSError:
                data = scratch[:0]
            if not data:
                break
            # A read shorter than the buffer emptied the pipe: stop here rather
            # than read again into BlockingIOError (a lone result is the common
            # case). The selector is level-triggered: bytes written after this
            # read wake the manager again. A dead worker's pipe (``drain``) is
            # read to EOF.
            short = not drain and len(data) < len(scratch)
            buf = self._rbuf
            buf += data
            pos = 0
            while len(buf) - pos >= hsize:
                size, kind, jid = wire.OUT_HEADER.unpack_from(buf, pos)
                end = pos + 8 + size
                if end <= len(buf):
                    frames.append((kind, jid, bytes(buf[pos + hsize : end])))
                    pos = end
                    continue
                if kind == wire.KIND_OK and size - 9 > stream.STREAM_MIN and on_stream_end is not None:
                    # Unpickled from the pipe by a thread of its own (see stream);
                    # the manager stops reading this pipe until it ends.
                    first = bytes(buf[pos + hsize :])
                    self.stream = stream.Stream(self.out_r, kind, jid, first, size - 9, lambda: on_stream_end(self))
                    if self._reading:
                        sel.unregister(self.out_r)
                        self._reading = False
                    del buf[:]
                    return frames
                if size - 9 > big:  # read the rest straight into its own buffer
                    self._big = bytearray(size - 9)
                    have = buf[pos + hsize :]
                    self._big[: len(have)] = have
                    self._big_fill = len(have)
                    self._big_meta = (kind, jid)
                    pos = len(buf)
                break
            del buf[:pos]
            if short:
                return frames
        else:
            return frames
        # EOF: the worker closed its end; stop watching it so the loop does not spin.
        if self._reading:
            sel.unregister(self.out_r)
            self._reading = False
        return frames

    def end_stream(self, sel: selectors.BaseSelector) -> list[tuple[int, int, Any]]:
        """Take the frame of the stream that ended (none if the pipe ended first); read the pipe again."""
        st = self.stream
        assert st is not None and st.done.is_set()
        self.stream = None
        if st.outcome is None:  # the pipe ended mid-frame: nothing more to read from it
            self._cut = True
            return []
        if not self._reading and not self.dead:
            sel.register(self.out_r, selectors.EVENT_READ, self)
            self._reading = True
        return [st.outcome]

    def reap(self, sel: selectors.BaseSelector) -> int | None:
        """Stop watching the worker, wait for its exit and return the exit code (None: unknown)."""
        for fd, flag in ((self.out_r, self._reading), (self.in_w, self._writing), (self.sentinel, True)):
            if flag:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(fd)
        self._reading = self._writing = False
        # Leftover children of the task live in its process group; the zombie
        # still holds the pid, so the group id cannot name someone else's group.
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        proc = self.proc
        proc.join(5)
        if proc.exitcode is None:
            if isinstance(proc, launch.ExecProcess):
                proc.kill()  # a no-op once it is known reaped elsewhere: its pid may be reused
                proc.join(5)
            else:
                # Someone else may have reaped it (a SIGCHLD handler, os.wait()).
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                    proc.join(5)
        code: int | None = proc.exitcode
        return code

    def close(self) -> None:
        """Close the parent's ends of the pipes and release the process object."""
        for fd in (self.in_w, self.out_r, self.ctl_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if isinstance(self.proc, launch.ExecProcess):
            self.proc.close()
        elif getattr(self.proc._popen, "close", None) is not None:
            self.proc.close()  # stdlib popens close their sentinel here; loky's on GC
        self.proc = None
        self._wbuf.clear()
        self._rbuf = bytearray()
        self._big = None


def start_worker(
    ctx: Any, sel: selectors.BaseSelector, init: bytes | None, max_tasks: int | None, parent_fds: list[int]
) -> Worker:
    """Start one worker process and register its pipes with ``sel``.

    ``ctx`` is ``None`` for woflo's ``"exec"`` start method (`launch.start`;
    ``init`` and ``max_tasks`` then go in the worker's first inbox frame), or
    a ``multiprocessing`` context whose ``Process`` runs `worker_main`.

    Raises what starting a process raises (``OSError`` such as ``EMFILE`` when
    the process is out of file descriptors); nothing is left open then.
    """
    frame = launch.start_frame(init, max_tasks) if ctx is None else b""
    opened: list[int] = []
    try:
        for _ in range(3):
            opened += os.pipe()
    except BaseException:
        for fd in opened:  # a pipe made before the one that failed
            os.close(fd)
        raise
    in_r, in_w, out_r, out_w, ctl_r, ctl_w = opened
    for fd in (in_w, out_r):
        _grow_pipe(fd)
    for fd in (in_w, out_r, ctl_w):
        os.set_blocking(fd, False)
    child_ends: list[Connection] = []
    try:
        if ctx is None:
            proc: Any = launch.start((in_r, out_w, ctl_r))
        else:
            child_ends = [Connection(in_r), Connection(out_w), Connection(ctl_r)]
            close_fds = [*parent_fds, in_w, out_r, ctl_w] if parent_fds else []
            args = (*child_ends, init, max_tasks, close_fds)
            proc = ctx.Process(target=worker_main, args=args, name="woflo-worker")
            proc.start()
    except BaseException:
        for fd in (in_w, out_r, ctl_w):
            os.close(fd)
        raise
    finally:  # the child has its own copies now
        if child_ends:
            for conn in child_ends:
                conn.close()
        else:
            for fd in (in_r, out_w, ctl_r):
                os.close(fd)
    w = Worker(proc, in_w, out_r, ctl_w, max_tasks)
    if ctx is None:
        w.send([frame], sel)
    sel.register(out_r, selectors.EVENT_READ, w)
    sel.register(w.sentinel, selectors.EVENT_READ, w)
    return w
