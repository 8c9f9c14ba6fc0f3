"""Bare-pipe baselines: what a pipe to one child process does with nothing on top.

``BarePipe`` forks a child holding two pipes (request and reply, both sized
like woflo's, 1 MiB). ``ping`` writes one byte and waits for the one-byte
reply (a round trip, the floor of a one-at-a-time task); ``fetch(n)`` asks the
child for ``n`` bytes it already holds and reads them into fresh memory, as
any receiver must (the floor of a large result).

``RelayedPipe`` is the same pipe with one thing every process pool has on
top: a thread in the parent that reads each reply and wakes the waiting
caller through a lock (a pool's result or manager thread). No pickling, no
future: what that thread hop alone costs per round trip.
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import mmap
import os
import signal
import struct
import threading


def _grow(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[attr-defined]


class BarePipe:
    def __init__(self) -> None:
        req_r, self._req_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        for fd in (self._req_w, rep_w):
            _grow(fd)
        self._pid = os.fork()
        if self._pid == 0:  # the child: serve until the request pipe closes
            os.close(self._req_w)
            os.close(self._rep_r)
            data = b""
            while True:
                head = os.read(req_r, 9)
                if not head:
                    os._exit(0)
                (n,) = struct.unpack_from("<Q", head, 1)
                if head[:1] == b"p":
                    os.write(rep_w, b"p")
                    continue
                if len(data) != n:
                    data = b"\x5a" * n
                view = memoryview(data)
                while view:
                    view = view[os.write(rep_w, view) :]
        os.close(req_r)
        os.close(rep_w)

    def ping(self) -> None:
        os.write(self._req_w, b"p" + bytes(8))
        os.read(self._rep_r, 1)

    def fetch(self, n: int) -> mmap.mmap:
        os.write(self._req_w, b"f" + struct.pack("<Q", n))
        # Fresh memory, not zeroed first (bytearray(n) would write every page
        # twice): its pages fault in as the read fills them, as in C.
        buf = mmap.mmap(-1, n)
        view = memoryview(buf)
        got = 0
        while got < n:
            got += os.readv(self._rep_r, [view[got:]])
        return buf

    def close(self) -> None:
        os.close(self._req_w)
        os.close(self._rep_r)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        os.waitpid(self._pid, 0)


class RelayedPipe(BarePipe):
    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[_thread.LockType] = []
        self._relay = threading.Thread(target=self._serve, name="relay", daemon=True)
        self._relay.start()

    def _serve(self) -> None:
        while os.read(self._rep_r, 1):
            self._waiting.pop().release()

    def ping(self) -> None:
        done = _thread.allocate_lock()
        done.acquire()
        self._waiting.append(done)
        os.write(self._req_w, b"p" + bytes(8))
        done.acquire()

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)  # the relay reads EOF and ends
        self._relay.join(10)
        os.close(self._req_w)
        os.close(self._rep_r)
        os.waitpid(self._pid, 0)
