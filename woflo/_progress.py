"""`progress`: done / failed / retrying / running counts, rate and ETA of a batch of runs.

Three ways in:

- ``for run in woflo.progress(runs)``: the runs in completion order, with
  progress shown as they finish;
- ``with woflo.progress(runner):``: everything the runner has in flight
  (runs submitted inside the block too), shown until they have all finished;
- ``runner.map(fn, items, progress=True)``: through `map_progress`.

Where it goes: a terminal or a Jupyter notebook gets a tqdm bar (the optional
extra ``woflo[progress]``); any other stream (a log file, CI output) gets one
plain line every few seconds and a last one at the end, so a batch job's log
is not flooded with carriage returns.

Cost: one done-callback per run (``SimpleQueue.put``, a C call) and the
counting, done on the consuming thread; the states of the runs still in
flight are read only when a line or the bar is redrawn.
"""

from __future__ import annotations

import collections
import functools
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent import futures
from types import TracebackType
from typing import IO, Any, TypeVar

from woflo._taskrun import RunState, TaskRun

__all__ = ["Progress", "map_progress", "progress"]

T = TypeVar("T")

#: Seconds between two plain lines when the output is not a terminal.
LINE_INTERVAL = 5.0
#: Seconds between two redraws of a bar.
BAR_INTERVAL = 0.1

_MISSING_TQDM = (
    "woflo.progress draws its bar with tqdm, which is not installed: "
    "pip install 'woflo[progress]' (or pip install tqdm); or pass bar=False for plain lines"
)


def _in_notebook() -> bool:
    # A Jupyter kernel's stderr is not a terminal, yet a bar is what fits there.
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return shell is not None and hasattr(shell, "kernel")


def _runner_of(source: Any) -> Any:
    """The runner of ``source`` (a runner, or a `WofloExecutor` over one), else None."""
    runner = getattr(source, "runner", source)
    return runner if callable(getattr(runner, "active_runs", None)) else None


def _on_submit(progress: weakref.ReferenceType[Progress]) -> Callable[[TaskRun[Any]], None]:
    # Holds the progress weakly: a progress dropped unclosed must not stay
    # subscribed to a long-lived runner for ever.
    def submitted(run: TaskRun[Any]) -> None:
        shown = progress()
        if shown is not None:
            shown._track(run)

    return submitted


_OVER = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class Progress:
    """The progress of a batch of runs, drawn as a bar or as plain lines.

    Made by `progress`; see there. Attributes, as of the last drawing:
    ``done`` (finished, whatever the outcome), ``succeeded``, ``failed``,
    ``cancelled``, ``retrying``, ``running``, and ``total`` (runs known).

    How it stays cheap: nothing is done per run while runs finish, except,
    when iterated, one done-callback (``SimpleQueue.put``, a C call) to hand
    each run over in completion order. The counts come from reading the
    states of the unfinished runs when drawing; a drawing that took long
    (many runs in flight) spaces out the next ones so that drawing never
    takes more than about 2% of the time.
    """

    def __init__(
        self,
        source: Iterable[TaskRun[Any]] | Any,
        *,
        total: int | None = None,
        desc: str | None = None,
        file: IO[str] | None = None,
        bar: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        runner = _runner_of(source)
        self._active: Callable[[], Iterable[TaskRun[Any]]] | None = None if runner is None else runner.active_runs
        if total is None and self._active is None and isinstance(source, Sized):
            total = len(source)
        self._file: IO[str] = file if file is not None else sys.stderr
        self._desc = desc or "runs"
        self._clock = clock
        self._bar: Any = None
        if bar is None:
            isatty = getattr(self._file, "isatty", None)
            if bool(callable(isatty) and isatty()) or _in_notebook():
                try:
                    self._bar = _make_bar(self._file, self._desc, total)
                except ImportError:
                    # Chosen, not asked for: lines do, with a word on how to get the bar.
                    self._file.write(f"({_MISSING_TQDM.split(': ', 1)[1].split(';')[0]} for a progress bar)\n")
            bar = self._bar is not None
        elif bar:
            self._bar = _make_bar(self._file, self._desc, total)
        self._interval = interval if interval is not None else (BAR_INTERVAL if bar else LINE_INTERVAL)
        self._expected = total or 0
        self._runs: list[TaskRun[Any]] = []  # every run tracked
        self._open: list[TaskRun[Any]] = []  # the runs not yet counted as finished
        # Runs added since the last count: a deque, since the submitting thread
        # appends while the drawing thread takes (both atomic, nothing lost).
        self._incoming: collections.deque[TaskRun[Any]] = collections.deque()
        self._seen: set[TaskRun[Any]] = set()  # for a runner: the runs already tracked
        self._seen_snapshot = False  # for a runner: its runs in flight were looked at
        self._queue: queue.SimpleQueue[TaskRun[Any]] | None = None  # set when iterated
        self.done = self.succeeded = self.failed = self.cancelled = self.retrying = self.running = 0
        self._started = clock()
        self._next_draw = self._started + self._interval
        self._lock = threading.Lock()  # one drawing at a time (the thread's and close's)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._track_lock = threading.Lock()  # the runner's submitting threads and _poll
        self._unsubscribe: Callable[[], object] | None = None
        if runner is not None:
            subscribe = getattr(runner, "add_submit_callback", None)
            if callable(subscribe):
                # Told of every run at its submit, short ones too; then the
                # runs already in flight (a run in both is tracked once).
                callback = _on_submit(weakref.ref(self))
                subscribe(callback)
                self._unsubscribe = functools.partial(runner.remove_submit_callback, callback)
            self._poll()
        else:
            for run in source:
                self.add(run)

    @property
    def total(self) -> int:
        """How many runs are known (or expected, if more were announced)."""
        return max(len(self._runs), self._expected)

    # -- tracking ------------------------------------------------------------------

    def add(self, run: TaskRun[Any]) -> None:
        """Track one more run (called on the thread that submits)."""
        self._runs.append(run)
        self._incoming.append(run)
        q = self._queue
        if q is not None:
            run.add_done_callback(q.put)  # type: ignore[arg-type]

    def _track(self, run: TaskRun[Any]) -> None:
        with self._track_lock:
            if run not in self._seen:
                self._seen.add(run)
                self.add(run)

    def _poll(self) -> None:
        # New runs of the watched runner. Needed once for a runner that tells
        # of its submits (the runs in flight before), and every look for one
        # that does not: then a run that starts and ends between two looks is
        # not seen (see the note on runners in `progress`).
        assert self._active is not None
        if self._unsubscribe is not None and self._seen_snapshot:
            return
        self._seen_snapshot = True
        for run in self._active():
            self._track(run)

    def _count(self) -> None:
        """Update the counts from the states of the runs not yet counted as finished."""
        incoming, opened = self._incoming, self._open
        while incoming:
            opened.append(incoming.popleft())
        still: list[TaskRun[Any]] = []
        running = retrying = 0
        over = _OVER
        for run in self._open:
            state = run._run_state
            if state in over:
                self.done += 1
                if state is RunState.SUCCEEDED:
                    self.succeeded += 1
                elif state is RunState.FAILED:
                    self.failed += 1
                else:
                    self.cancelled += 1
            else:
                still.append(run)
                if state is RunState.RUNNING:
                    running += 1
                elif state is RunState.RETRYING:
                    retrying += 1
        self._open = still
        self.running, self.retrying = running, retrying

    # -- drawing ---------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Count now: ``done``, ``succeeded``, ``failed``, ``cancelled``, ``retrying``, ``running``, ``total``."""
        with self._lock:
            self._count()
            return self._counts()

    def _counts(self) -> dict[str, int]:
        return {
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "retrying": self.retrying,
            "running": self.running,
            "total": self.total,
        }

    def line(self) -> str:
        """The progress as one line.

        ``"runs: 120/500 done (118 ok, 2 failed), 3 retrying, 8 running, 40.0/s, ETA 9s"``
        """
        return self._line(self.counts())

    def _line(self, c: dict[str, int]) -> str:
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = c["done"] / elapsed
        total = c["total"]
        parts = [f"{c['succeeded']} ok", f"{c['failed']} failed"]
        if c["cancelled"]:
            parts.append(f"{c['cancelled']} cancelled")
        text = f"{self._desc}: {c['done']}/{total} done ({', '.join(parts)}), "
        text += f"{c['retrying']} retrying, {c['running']} running, {rate:.1f}/s"
        if c["done"] < total:
            text += f", ETA {_duration((total - c['done']) / rate)}" if rate > 0 else ", ETA ?"
        else:
            text += f", in {_duration(elapsed)}"
        return text

    def draw(self) -> None:
        """Count and redraw now: the bar, or one more line."""
        with self._lock:
            began = time.perf_counter()
            self._count()
            c = self._counts()
            if self._bar is not None:
                bar = self._bar
                if c["total"] != bar.total:
                    bar.total = c["total"]
                bar.n = c["done"]
                bar.set_postfix_str(
                    f"ok={c['succeeded']} failed={c['failed']} retrying={c['retrying']} running={c['running']}",
                    refresh=False,
                )
                bar.refresh()
            else:
                self._file.write(self._line(c) + "\n")
                self._file.flush()
            # Counting reads every unfinished run: with very many in flight,
            # draw less often rather than spend more than ~2% of the time here.
            cost = time.perf_counter() - began
            self._next_draw = self._clock() + max(self._interval, 50 * cost)

    def close(self) -> None:
        """Draw the final state once and release the bar (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.draw()
        if self._bar is not None:
            self._bar.close()

    # -- iteration: runs in completion order --------------------------------------------

    def __iter__(self) -> Iterator[TaskRun[Any]]:
        """The tracked runs as they finish, drawing on the way; the final state is drawn at the end."""
        if self._thread is not None:
            raise RuntimeError("a progress used as a context manager cannot be iterated too")
        if self._queue is not None:
            raise RuntimeError("a progress is iterated once")
        q = self._queue = queue.SimpleQueue()
        put: Any = q.put
        for run in list(self._runs):
            run.add_done_callback(put)
        get, clock = q.get, self._clock
        handed = 0
        try:
            while handed < len(self._runs) or (self._active is not None and self._more()):
                wait = self._next_draw - clock()
                if wait <= 0:
                    self.draw()
                    continue
                try:
                    run = get(timeout=min(wait, POLL_INTERVAL) if self._active is not None else wait)
                except queue.Empty:
                    continue
                handed += 1
                yield run
        finally:
            self.close()

    def _more(self) -> bool:
        self._poll()
        return any(not run.done() for run in self._runs)

    # -- context manager: a thread draws until everything tracked has finished ----------

    def __enter__(self) -> Progress:
        if self._thread is None and not self._closed:
            thread = threading.Thread(target=self._watch, name="woflo-progress", daemon=True)
            thread.start()  # kept only once started: __exit__ joins it
            self._thread = thread
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            # The block's runs are shown to their end, as shutdown(wait=True) would wait for them.
            self._wait_all()
        self.close()

    def _wait_all(self) -> None:
        while True:
            if self._active is not None:
                with self._lock:
                    self._poll()
            waiting = [run for run in list(self._runs) if not run.done()]
            if not waiting:
                return
            futures.wait(waiting)

    def _watch(self) -> None:
        clock = self._clock
        while not self._stop.is_set():
            if self._active is not None:
                with self._lock:
                    self._poll()
                wait = min(self._next_draw - clock(), POLL_INTERVAL)
            else:
                wait = self._next_draw - clock()
            if wait > 0:
                self._stop.wait(wait)
            elif not self._stop.is_set():
                self.draw()


#: Seconds between two looks at a runner's runs in flight (``progress(runner)``).
POLL_INTERVAL = 0.05


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s"
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m"


def _make_bar(file: IO[str], desc: str, total: int | None) -> Any:
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise ImportError(_MISSING_TQDM, name="tqdm") from exc
    # Redrawn by Progress.draw at its own pace; tqdm's own throttle is left at
    # its default for the updates in between.
    return tqdm(total=total, desc=desc, file=file, unit="run", dynamic_ncols=True)


def progress(
    runs: Iterable[TaskRun[Any]] | Any,
    *,
    total: int | None = None,
    desc: str | None = None,
    file: IO[str] | None = None,
    bar: bool | None = None,
    interval: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Progress:
    """Show the progress of ``runs``: done / failed / retrying / running, rate, ETA.

    Iterate it to get the runs in completion order, or use it as a context
    manager; give it a runner (or a `WofloExecutor`) to follow everything
    that runner has in flight, runs submitted inside the ``with`` block too
    (the block's end then waits until they have all finished).

    Given a woflo runner, every run submitted to it from the call on is
    counted (`Runner.add_submit_callback`), with the runs it already had in
    flight. Given another object with ``active_runs()``, that is looked at
    every 50 ms, and a run that starts and ends in between is not counted.

    Args:
        runs: `TaskRun` s, or a runner.
        total: how many runs to expect, if more are coming than given.
        desc: the label; default ``"runs"``.
        file: where to draw; default standard error.
        bar: a tqdm bar (True) or plain lines (False); default a bar on a
            terminal or in a Jupyter notebook, lines anywhere else.
        interval: seconds between two redraws; default 0.1 for a bar, 5 for lines.
        clock: the clock the interval, rate and ETA are measured with.

    Raises:
        ImportError: ``bar=True`` and tqdm, the ``woflo[progress]`` extra, is
            not installed. (When the bar is only chosen because the output is
            a terminal, lines are drawn instead, after a word on the extra.)

    Example:
        >>> import io, woflo
        >>> from woflo import SequentialRunner
        >>> runs = [SequentialRunner().submit(abs, -i) for i in range(3)]
        >>> out = io.StringIO()
        >>> [run.result() for run in woflo.progress(runs, file=out)]
        [0, 1, 2]
        >>> out.getvalue().startswith("runs: 3/3 done (3 ok, 0 failed), 0 retrying, 0 running")
        True
    """
    return Progress(runs, total=total, desc=desc, file=file, bar=bar, interval=interval, clock=clock)


def map_progress(
    submissions: Iterator[TaskRun[T]], total: int | None, desc: str | None = None
) -> tuple[Iterator[TaskRun[T]], Callable[[Iterator[Any]], Iterator[Any]]]:
    """The hook of ``map(..., progress=True)``: track each run as it is submitted, draw until the results are consumed.

    Returns the submissions, each run tracked as it is made, and a wrapper for
    the results iterator that closes the progress when the iteration ends
    (exhausted, failed or closed).
    """
    shown = Progress((), total=total, desc=desc)
    shown.__enter__()

    def tracked() -> Iterator[TaskRun[T]]:
        for run in submissions:
            shown.add(run)
            yield run

    def closing(results: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from results
        finally:
            shown.close()

    return tracked(), closing
