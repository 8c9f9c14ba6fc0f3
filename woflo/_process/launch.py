"""woflo's own start method, ``"exec"``: each worker is a fresh interpreter, started by fork+exec.

Parent side, `start`: ``subprocess.Popen`` runs ``sys.executable -c _BOOT``
(fork+exec, safe from the manager thread while other threads run; nothing of
the parent is inherited but the worker's three pipe ends, passed as they are
with ``pass_fds``). What the worker needs to begin travels as the first frame
of its inbox (`start_frame`): the parent's ``sys.path`` and ``sys.argv``, the
pickled initializer and ``max_tasks``. ``__main__`` is not re-imported, as
with loky: functions of ``__main__`` travel by value (cloudpickle), the others
by reference, importable through the parent's ``sys.path``.

Unlike loky's start (``popen_loky_posix``, ``spawn.get_preparation_data``),
it starts no helper process: loky's path runs loky's and multiprocessing's
resource trackers, two processes that live until the interpreter exits, for
named semaphores and shared memory that woflo's workers never create.

Child side, `boot`: the ``woflo`` package is registered without running its
``__init__`` (which imports the runners, structlog, tenacity, asyncio), so a
worker starts with only what serving jobs needs (``worker``, ``wire``,
``_errors``). The package's ``__init__`` runs the first time something reads
one of its attributes (``from woflo import task`` in a task), as it would have.

`ExecProcess` is the parent's handle: ``pid``, a ``sentinel`` fd that becomes
readable when the process exits (a pidfd where the platform has one, else a
pipe whose write end only the worker holds), ``join``, ``exitcode`` (negative
signal number when killed, as with ``multiprocessing``), ``kill``, ``close``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import threading
import time
import types
from importlib.machinery import ModuleSpec
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

__all__ = ["ExecProcess", "boot", "start", "start_frame"]

# The worker's ``-c`` program. argv: the folder holding the parent's ``woflo``
# package, then the fds to keep. The package is registered from there, not
# executed; ``boot`` makes it run its ``__init__`` on first use. If woflo is
# not found there (a frozen app, an import hook), it is imported the usual way.
_BOOT = """\
import sys
if sys.path[:1] == [""]:
    del sys.path[0]
from importlib.machinery import PathFinder
from importlib.util import module_from_spec
spec = None if "woflo" in sys.modules else PathFinder.find_spec("woflo", [sys.argv[1]])
if spec is not None:
    sys.modules["woflo"] = module_from_spec(spec)
from woflo._process.launch import boot
boot(spec, *map(int, sys.argv[2:]))
"""

# The folder that holds the ``woflo`` package the parent runs.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A pidfd is a sentinel no one else can reap from under us and that never
# names a reused pid (Linux 5.3+, Python 3.9+); elsewhere, a pipe.
_USE_PIDFD = hasattr(os, "pidfd_open") and hasattr(os, "P_PIDFD")

_init_lock = threading.RLock()
_initialising = False


def start_frame(init: bytes | None, max_tasks: int | None) -> bytes:
    """The body of a worker's first inbox frame: what `boot` needs to begin."""
    from multiprocessing.process import ORIGINAL_DIR  # type: ignore[attr-defined]

    # "" means the current directory: the one the parent started in, as
    # multiprocessing's and loky's start methods send it.
    path = [p if p != "" else ORIGINAL_DIR for p in sys.path]
    return pickle.dumps((path, list(sys.argv), init, max_tasks), pickle.HIGHEST_PROTOCOL)


class ExecProcess:
    """A worker process started by `start`, as the pool sees it.

    Reaped with ``waitid`` on its pidfd (or ``waitpid``), never by
    ``subprocess``: the ``Popen`` object is kept only so that it does not reap
    the pid behind our back (it would when garbage collected while running).
    """

    def __init__(self, popen: subprocess.Popen[bytes], sentinel: int) -> None:
        self._popen = popen
        self.pid: int = popen.pid
        self.sentinel: int = sentinel  # readable once the process has exited
        self.exitcode: int | None = None  # negative: killed by that signal; None: running or unknown
        self._gone = False  # reaped, here or (status unknown) elsewhere

    def _reap(self) -> bool:
        """Collect the exit status if the process ended; True once it is gone."""
        if self._gone:
            return True
        try:
            if _USE_PIDFD:
                info = os.waitid(os.P_PIDFD, self.sentinel, os.WEXITED | os.WNOHANG)
                if info is None:
                    return False
                code: int | None = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    return False
                code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = None  # reaped elsewhere (os.wait(), a SIGCHLD handler): status unknown
        self._gone = True
        self.exitcode = code
        # Popen would otherwise warn when collected, or reap a reused pid.
        self._popen.returncode = 0 if code is None else code
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds (None: for ever) for the process to end, and reap it."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._reap():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return
            if select.select([self.sentinel], [], [], left)[0] and not _USE_PIDFD:
                # The pipe closes as the process exits, a moment before
                # waitpid can collect it.
                time.sleep(0.001)

    def kill(self) -> None:
        """SIGKILL the process, unless it is known to be gone (its pid may name another now)."""
        if self._gone:
            return
        with contextlib.suppress(ProcessLookupError):
            if _USE_PIDFD:
                signal.pidfd_send_signal(self.sentinel, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Close the sentinel. Call after the process was reaped (`join`)."""
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def _interpreter_flags() -> list[str]:
    """The parent's interpreter options (``-O``, ``-X ...``, ``-W ...``, ``-I``...) for the worker.

    As multiprocessing's "spawn" and "forkserver" start their children
    (``multiprocessing.spawn.get_command_line``), so that ``python -O`` or
    ``-X dev`` or ``-W error`` applies to the tasks as it would in the
    parent. ``subprocess._args_from_interpreter_flags`` is private but is
    what multiprocessing itself calls; pinned by tests/test_canaries.py.
    """
    import subprocess

    flags = getattr(subprocess, "_args_from_interpreter_flags", None)
    if flags is None:  # gone from a future Python: the worker runs with defaults
        return []
    args: list[str] = flags()
    return args


def start(fds: tuple[int, int, int]) -> ExecProcess:
    """Start a worker interpreter that holds ``fds`` (its inbox, result and control ends).

    The caller keeps its own copies of ``fds`` (close them after this returns)
    and sends `start_frame` as the worker's first inbox frame.

    Raises:
        OSError: the process could not be started (``EMFILE``, ``EAGAIN``,
            ``ENOENT`` for ``sys.executable``); nothing is left open or running.
    """
    # Imported here, not at the top: the worker imports this module too, to
    # boot, and never starts a process itself.
    import subprocess

    keep = list(fds)
    sentinel = sentinel_w = -1
    if not _USE_PIDFD:
        sentinel, sentinel_w = os.pipe()
        keep.append(sentinel_w)  # held open by the worker until it exits
    try:
        popen = subprocess.Popen(
            [sys.executable, *_interpreter_flags(), "-c", _BOOT, _ROOT, *map(str, keep)],
            stdin=subprocess.DEVNULL,  # as multiprocessing's children: no shared terminal input
            pass_fds=keep,
        )
    except BaseException:
        if sentinel >= 0:
            os.close(sentinel)
        raise
    finally:
        if sentinel_w >= 0:
            os.close(sentinel_w)
    if _USE_PIDFD:
        try:
            sentinel = os.pidfd_open(popen.pid)
        except BaseException:
            popen.kill()
            popen.wait()
            raise
    return ExecProcess(popen, sentinel)


class _Package(types.ModuleType):
    """The ``woflo`` package in a worker until its ``__init__`` has run: on the first
    attribute it lacks (``woflo.task``, ``from woflo import ProcessRunner``)."""

    def __getattr__(self, name: str) -> Any:
        global _initialising
        with _init_lock:  # another thread waits, as it would for an import in progress
            if type(self) is _Package:
                if _initialising:  # read by the __init__ itself, before it set the name
                    raise AttributeError(f"partially initialized module 'woflo' has no attribute {name!r}")
                _initialising = True
                try:
                    spec = self.__spec__
                    assert spec is not None and spec.loader is not None
                    spec.loader.exec_module(self)
                    self.__class__ = types.ModuleType  # type: ignore[assignment]  # a plain package from now on
                finally:
                    _initialising = False
        return getattr(self, name)


def boot(spec: ModuleSpec | None, in_fd: int, out_fd: int, ctl_fd: int, *keep: int) -> None:
    """Entry point of an ``"exec"`` worker (run by `_BOOT`): read the start frame, then serve.

    ``spec`` is the ``woflo`` package's, when `_BOOT` registered the package
    without running its ``__init__``. ``keep`` holds the sentinel pipe's write
    end where there is no pidfd: it stays open until the process exits.
    Exits as a ``multiprocessing`` worker would: ``sys.exit`` codes as they
    are, 1 with a traceback on stderr for an exception.
    """
    if spec is not None:
        sys.modules["woflo"].__class__ = _Package
    from woflo._process import wire
    from woflo._process.worker import _read_exact, worker_main

    for fd in (in_fd, out_fd, ctl_fd, *keep):
        os.set_inheritable(fd, False)  # the task's own processes must not hold them
    header = _read_exact(in_fd, wire.INBOX_HEADER.size)
    body = None if header is None else _read_exact(in_fd, *wire.INBOX_HEADER.unpack(header))
    if body is None:
        sys.exit(1)  # the parent is gone before it said what to run
    path, argv, init, max_tasks = pickle.loads(body)
    del header, body
    sys.path[:] = path
    sys.argv[:] = argv
    _name_process("woflo-worker")
    # The worker only asks its pipe ends for their fds: no multiprocessing
    # Connection (and no multiprocessing import) needed for that.
    worker_main(_Fd(in_fd), _Fd(out_fd), _Fd(ctl_fd), init, max_tasks, [])


class _Fd:
    """A pipe end as `woflo._process.worker` uses it: ``fileno()`` only."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def _name_process(name: str) -> None:
    """Name this process ``multiprocessing.current_process().name``, as the other start methods do.

    Now if ``multiprocessing`` is imported; otherwise right after a task
    imports it: importing it at boot would cost every worker's start the
    ``multiprocessing`` package (``socket``, its reduction machinery).
    """
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process.current_process().name = name
    else:
        sys.meta_path.insert(0, _NameOnImport(name))


class _NameOnImport:
    """A ``sys.meta_path`` finder: names the process once ``multiprocessing.process`` is imported."""

    def __init__(self, name: str) -> None:
        self._name = name

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname != "multiprocessing.process":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenName(spec.loader, self._name)  # type: ignore[assignment]
        return spec


class _ThenName:
    """A loader that runs the real one, then names the process (see `_name_process`)."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        module.current_process().name = self._name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
