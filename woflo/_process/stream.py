"""Large results read by a thread of their own, unpickled straight from the pipe.

A result frame larger than ``STREAM_MIN`` is not gathered into a buffer by the
manager thread and unpickled from there (which copies every large ``bytes`` in
it once more, into fresh memory: a page fault per 4 KiB). A `Stream` thread
unpickles it from the pipe instead: the C unpickler allocates each large
``bytes`` (or ``bytearray``) and asks its file to ``readinto`` that memory, so
the payload goes from the pipe into the result once, as a bare pipe read would.

While a stream runs, the manager does not read that worker's result pipe (the
stream owns it); other workers are served as usual. The stream waits on the
pipe with a timeout and gives up when told to (`abandon`: the worker died),
so no stray writer of the pipe can hold the manager. When it ends, ``on_end``
is called (from the stream's thread), and the manager takes the outcome
(`Stream.outcome`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["STREAM_MIN", "Loaded", "Stream"]

#: Result frames larger than this are streamed (see the module's docstring).
STREAM_MIN = 4 << 20  # measured: a thread per result pays from 2-4 MB on (1 MB: half the speed)

_WAIT_S = 0.5  # how often a stream waiting for data looks at its abandon flag


class Loaded:
    """A result frame's payload, already unpickled by a stream: ``value``, or ``error`` if that failed."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


class _Truncated(Exception):
    """The pipe ended (or the stream was abandoned) before the frame did."""


class _PipeFile:
    """``size`` bytes of a non-blocking pipe, ``head`` first, as a file for ``pickle.Unpickler``."""

    def __init__(self, fd: int, head: bytes, size: int, stream: Stream) -> None:
        self._fd = fd
        self._head = head
        self._pos = 0
        self.left = size  # bytes of the frame not yet consumed, head included
        self._stream = stream

    def _fill(self, view: memoryview) -> None:
        # Fill all of ``view`` from the head, then from the pipe.
        got = 0
        n = len(view)
        if self._pos < len(self._head):
            k = min(n, len(self._head) - self._pos)
            view[:k] = self._head[self._pos : self._pos + k]
            self._pos += k
            got = k
        while got < n:
            try:
                k = os.readv(self._fd, [view[got:]])
            except BlockingIOError:
                # Only when the pipe is empty: what a dead worker wrote is read to the end.
                if self._stream.abandoned:
                    raise _Truncated from None
                select.select([self._fd], [], [], _WAIT_S)
                continue
            if not k:
                raise _Truncated
            got += k

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        n = min(len(view), self.left)
        self._fill(view[:n])
        self.left -= n
        return n

    def read(self, n: int) -> bytes:
        buf = bytearray(min(n, self.left))
        self.readinto(buf)
        return bytes(buf)

    def readline(self) -> bytes:  # only protocol 0 pickles use it; results are protocol 5
        raise pickle.UnpicklingError("readline on a binary pickle")

    def drain(self) -> None:
        scratch = bytearray(min(self.left, 1 << 20))
        while self.left:
            n = min(self.left, len(scratch))
            self._fill(memoryview(scratch)[:n])
            self.left -= n


class Stream:
    """One large result frame being read and unpickled by its own thread.

    Args:
        fd: the worker's result pipe (non-blocking); the stream owns it until it ends.
        kind, jid: the frame's header.
        head: the frame's payload bytes already read from the pipe.
        size: the payload's whole size, ``head`` included.
        on_end: called once, from the stream's thread, when `outcome` is set.
    """

    def __init__(self, fd: int, kind: int, jid: int, head: bytes, size: int, on_end: Callable[[], None]) -> None:
        self.kind = kind
        self.jid = jid
        self.abandoned = False
        # (kind, jid, Loaded) once the frame was read whole; None if the pipe
        # ended first (the worker died mid-frame) or the stream was abandoned.
        self.outcome: tuple[int, int, Loaded] | None = None
        self.done = threading.Event()
        self._file = _PipeFile(fd, head, size, self)
        self._on_end = on_end
        self._thread = threading.Thread(target=self._run, name="woflo-result-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        file = self._file
        try:
            try:
                loaded = Loaded(pickle.Unpickler(file).load(), None)
            except _Truncated:
                return
            except BaseException as err:  # user code (a reconstructor) may raise anything
                loaded = Loaded(None, err)
            with contextlib.suppress(_Truncated):
                file.drain()  # what the unpickler did not read (it failed): the next frame follows
                self.outcome = (self.kind, self.jid, loaded)
        finally:
            self.done.set()
            self._on_end()

    def abandon(self) -> None:
        """Make the stream end soon (within ``_WAIT_S``) and wait for it: its worker is dead."""
        self.abandoned = True
        self.done.wait()
