"""`DaskRunner`: attempts run on a ``distributed`` cluster.

Each attempt is one ``client.submit(fn, *args, pure=False, **kwargs)``;
retries, timeouts and events stay woflo's (Dask's own ``retries=`` is not
used). ``distributed`` is optional: it is imported when a DaskRunner is built,
never by ``import woflo``.

Results come back in batches: Dask's done callbacks (which run on its single
callback thread) only queue the finished future; one woflo thread drains the
queue and fetches the ready results with one ``client.gather``, the way a
hand-written ``client.gather(futures)`` would. While other attempts are still
in flight it lets a batch grow for up to 10 ms first (a result can thus arrive
up to 10 ms late); a batch holding every attempt in flight is fetched at once.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from woflo._errors import SerializationError, WorkerCrashed
from woflo._names import callable_name
from woflo._policy import POLICY_OPTIONS, Policy
from woflo._runner import Attempt, Runner
from woflo._shared import untrack
from woflo._taskrun import TaskRun

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["DaskRunner", "DaskTaskRun"]

T = TypeVar("T")

# How long the collector waits for more finished attempts before it gathers
# their results, while other attempts are still in flight. Each gather is a
# round trip through the scheduler to the workers, and on the client's event
# loop it costs about as much for one result as for twenty: batching them cut
# the loop's time per task by ~40% on the 2,000-task benchmark.
_LINGER = 0.01

# client.submit's own keywords: a task's keyword argument with one of these
# names must not be taken by submit, so such calls go through a partial.
_SUBMIT_KEYWORDS_KNOWN = frozenset(
    {"self", "func", "key", "workers", "resources", "retries", "priority", "fifo_timeout"}
    | {"allow_other_workers", "actor", "actors", "pure"}
)


def _submit_keywords(client_cls: Any) -> frozenset[str]:
    """Every parameter name of ``client_cls.submit`` (its positional ones too)."""
    try:
        names = set(inspect.signature(client_cls.submit).parameters)
    except (TypeError, ValueError):
        names = set()
    names.discard("args")
    names.discard("kwargs")
    return _SUBMIT_KEYWORDS_KNOWN | names


def _distributed() -> ModuleType:
    try:
        # import_module is typed as returning a module whether or not
        # distributed (and so its annotations) is installed: a plain import is
        # Any without it, which mypy --strict rejects here.
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise ImportError("DaskRunner needs dask.distributed: pip install 'woflo[dask]'") from exc


def _cluster_keywords(distributed: ModuleType) -> set[str]:
    """The keywords a LocalCluster accepts, its workers' included."""
    names: set[str] = set()
    for cls in (distributed.LocalCluster, distributed.Nanny, distributed.Worker):
        names.update(name for name, p in inspect.signature(cls).parameters.items() if p.kind is not p.VAR_KEYWORD)
    return names


class _OnCluster:
    """The result of a run that stayed on the cluster: its final attempt's Dask future."""

    __slots__ = ("future",)

    def __init__(self, future: Any) -> None:
        self.future = future


class DaskTaskRun(TaskRun[T]):
    """A run of a `DaskRunner`: its result may stay on the cluster until asked for.

    A run that is an input of another run of the same `DaskRunner` (seen
    before it finished) keeps its result on the cluster: the consumer gets
    its Dask future, and ``result()`` fetches the value only when called.
    """

    # Set (never cleared) when a run of the same runner takes this one as an
    # input before it finished: its result is then not gathered.
    _on_cluster: bool = False

    def result(self, timeout: float | None = None) -> T:
        """The run's value (`TaskRun.result`); a result kept on the cluster is fetched now.

        ``timeout`` bounds the whole call, the wait for the run and the fetch
        together.

        Raises:
            concurrent.futures.TimeoutError: the run did not end, or its result
                did not arrive, within ``timeout`` seconds (what distributed
                raises for the fetch is turned into the stdlib's class, which
                differs from asyncio's before Python 3.11).
        """
        end = None if timeout is None else time.monotonic() + timeout
        value: Any = super().result(timeout)
        if type(value) is _OnCluster:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                value = value.future.result(left)
            except (TimeoutError, asyncio.TimeoutError) as exc:
                if left is None:
                    raise
                raise FuturesTimeoutError(f"the result of {self.name} did not arrive within {timeout:g}s") from exc
        return value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        text = super().__repr__()
        return text.replace(" returned _OnCluster ", " returned (on the cluster) ")


def _call_with(fn: Callable[..., Any], kwargs: dict[str, Any], *args: Any) -> Any:
    # For a call whose keywords clash with client.submit's own: Dask resolves
    # the futures inside this dict argument (it would not inside a partial).
    return fn(*args, **kwargs)


class DaskRunner(Runner):
    """Runs attempts on a Dask ``distributed`` cluster.

    With no ``client`` and no ``address`` it starts a ``LocalCluster`` of
    worker processes (``processes=True``; extra keywords go to ``LocalCluster``)
    and closes it at shutdown. That cluster listens on the loopback interface
    only (LocalCluster's default ``host``) and runs no dashboard unless
    ``dashboard=True`` (on ``127.0.0.1:8787``) or a ``dashboard_address`` is
    given; its scheduler's other HTTP routes (health, metrics) take a free
    loopback port. With ``address=`` it connects a client to that
    scheduler, with ``client=`` it uses that client; either way the cluster is
    left running at shutdown (a client made from ``address`` is closed).

    Stopping and timeouts call ``client.cancel`` and end the `TaskRun` at once,
    but Dask cannot interrupt a task a worker is already running: it runs to its
    end there and its result is dropped. The timeout clock starts at submission,
    so time spent queued on the cluster counts. A worker that dies during an
    attempt fails that attempt with `WorkerCrashed` (Dask's ``KilledWorker``),
    retried per the policy; on the cluster woflo starts, Dask's own resubmission
    is turned off (``allowed-failures=0``) so woflo's policy decides alone.
    Events name the attempt's Dask key as ``worker`` (and the worker's address
    when it crashed): asking the scheduler where each task ran would cost a
    round trip per task.

    Args:
        client: a ``distributed.Client`` to use.
        address: a scheduler address to connect to (``"tcp://host:8786"``).
        dashboard: serve the Dask dashboard of the LocalCluster this runner
            starts, on ``127.0.0.1:8787`` (``runner.client.dashboard_link``).
        **kwargs: the policy options of `Runner` (``retries``, ``timeout``...);
            any other keyword is passed to ``LocalCluster``.

    Raises:
        ImportError: ``distributed`` is not installed.
        ValueError: ``client`` and ``address`` both given, or cluster keywords
            (or ``dashboard``) with either.
        OSError: ``address`` cannot be reached (Dask's connect timeout).

    Example:
        >>> from woflo import DaskRunner, WofloExecutor
        >>> with WofloExecutor(runner=DaskRunner(n_workers=2, threads_per_worker=1)) as ex:  # doctest: +SKIP
        ...     list(ex.map(pow, [2, 3], [5, 2]))
        [32, 9]
    """

    runner_name = "dask"

    run_class: ClassVar[type[TaskRun[Any]]] = DaskTaskRun

    def __init__(
        self, client: Any = None, *, address: str | None = None, dashboard: bool = False, **kwargs: Any
    ) -> None:
        distributed = _distributed()
        options = {k: v for k, v in kwargs.items() if k in POLICY_OPTIONS}
        cluster_kwargs = {k: v for k, v in kwargs.items() if k not in POLICY_OPTIONS}
        unknown = set(cluster_kwargs) - _cluster_keywords(distributed)
        if unknown:
            # LocalCluster passes unknown keywords on to its workers, where a
            # typo (retires=3) would only fail later, in another process.
            raise TypeError(
                f"unknown option(s) {', '.join(sorted(unknown))}: neither a policy option "
                f"({', '.join(sorted(POLICY_OPTIONS))}) nor a LocalCluster, Nanny or Worker keyword"
            )
        if client is not None and address is not None:
            raise ValueError("give client= or address=, not both")
        if (client is not None or address is not None) and cluster_kwargs:
            raise ValueError(f"LocalCluster options {sorted(cluster_kwargs)} make no sense with client= or address=")
        if client is not None and not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
        if dashboard and (client is not None or address is not None):
            raise ValueError("dashboard=True is for the LocalCluster a DaskRunner starts, not with client= or address=")
        # Check the policy before starting anything: a cluster started for a
        # runner that then fails to build would be left behind.
        Policy.build(**options)
        cluster: Any = None
        own_client = client is None
        if client is None and address is None:
            import dask

            cluster_kwargs.setdefault("processes", True)
            # What woflo starts listens on the loopback interface only (the
            # scheduler and workers already do: LocalCluster's host defaults
            # to 127.0.0.1 for tcp) and serves no dashboard unless asked:
            # Dask's default dashboard listens on every interface (0.0.0.0:8787).
            if not cluster_kwargs["processes"]:
                # Workers in this process talk inproc, so their HTTP server
                # has no host to bind to and listens on every interface.
                cluster_kwargs.setdefault("worker_dashboard_address", "127.0.0.1:0")
            if dashboard:
                cluster_kwargs.setdefault("dashboard_address", "127.0.0.1:8787")
            elif "dashboard_address" not in cluster_kwargs:
                # dashboard_address=None alone still has the scheduler serve its
                # HTTP routes (health, metrics, info pages) on port 8787, with a
                # warning when another cluster holds that port: a free port
                # on the loopback interface instead, and no dashboard.
                cluster_kwargs["dashboard_address"] = None
                cluster_kwargs["scheduler_kwargs"] = {
                    "dashboard": False,
                    "dashboard_address": "127.0.0.1:0",
                    **(cluster_kwargs.get("scheduler_kwargs") or {}),
                }
            # woflo's policy decides about retries; Dask resubmitting a task
            # whose worker died would hide the crash and run it up to 4 times.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                cluster = distributed.LocalCluster(**cluster_kwargs)
            try:
                client = distributed.Client(cluster, set_as_default=False)
            except BaseException:
                cluster.close()
                raise
        elif client is None:
            client = distributed.Client(address, set_as_default=False)
        try:
            super().__init__(**options)
            self._cluster = cluster
            self._own_client = own_client
            self._client: Any = client
            self._killed_worker: type[BaseException] = distributed.KilledWorker
            self._future_class: type[Any] = distributed.Future
            self._submit_keywords = _submit_keywords(type(client))
            self._done: queue.SimpleQueue[tuple[Attempt, Any] | None] = queue.SimpleQueue()
            # Attempts whose done callback is registered and not yet collected.
            self._lock_in_flight = threading.Lock()
            self._in_flight = 0
            self._collector = threading.Thread(
                target=self._collect, name=f"woflo-dask-results-{id(self):x}", daemon=True
            )
            self._collector.start()
        except BaseException:
            # Half built: nothing for the exit hook to shut down, and what was
            # started for this runner goes.
            untrack(self)
            if own_client:
                client.close()
            if cluster is not None:
                cluster.close()
            raise

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` attempts are submitted through."""
        return self._client

    # -- the backend ------------------------------------------------------------------

    def start_attempt(self, attempt: Attempt) -> None:
        fn, args, kwargs = attempt.fn, attempt.args, attempt.kwargs
        key = f"{attempt.run.name}-{uuid.uuid4().hex}"
        if not attempt.begin(key):
            return
        if kwargs and not self._submit_keywords.isdisjoint(kwargs):
            fn, args, kwargs = _call_with, (fn, kwargs, *args), {}
        try:
            future = self._client.submit(fn, *args, key=key, pure=False, **kwargs)
        except TypeError as exc:
            if not _is_serialization_failure(exc):
                raise
            error = exc.__cause__ if exc.__cause__ is not None else exc
            # Not distributed's message: it holds a repr of the task, which may show the arguments.
            raise SerializationError.wrap(
                f"cannot pickle argument of {callable_name(attempt.fn)}: {_reason(error)}", error
            ) from None
        attempt.handle = future
        if attempt.settled:
            # Stopped or timed out between begin and now: _stop saw no handle.
            self._cancel(future)
            return
        with self._lock_in_flight:
            self._in_flight += 1
        future.add_done_callback(functools.partial(_deliver, weakref.ref(attempt), self._done.put))

    # -- runs as inputs ------------------------------------------------------------------

    def _note_input(self, run: TaskRun[Any]) -> None:
        # A run of this runner feeding one of its runs: its result stays on
        # the cluster, and the consumer gets its Dask future. Not under a
        # custom retry policy, whose predicate reads the result.
        if type(run) is DaskTaskRun and run._runner is self and not run.done():
            policy = self._policy_of(run)
            if policy is not None and not policy.custom:
                run._on_cluster = True

    def _input_value(self, run: TaskRun[Any]) -> Any:
        if run._runner is self and run._exception is None and type(run._result) is _OnCluster:
            return run._result.future
        return run.result()

    def _inputs_ready(self, run: TaskRun[Any], control: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Dask resolves its futures inside lists, tuples, dicts and sets, not
        # frozensets: those inputs are fetched here and sent as values.
        if any(type(a) is frozenset for a in (*args, *kwargs.values())):
            args = tuple(self._fetch_in_frozenset(a) for a in args)
            kwargs = {k: self._fetch_in_frozenset(a) for k, a in kwargs.items()}
        super()._inputs_ready(run, control, args, kwargs)

    def _fetch_in_frozenset(self, value: Any) -> Any:
        if type(value) is not frozenset:
            return value
        future_class = self._future_class
        return frozenset(item.result() if isinstance(item, future_class) else item for item in value)

    def stop_attempt(self, attempt: Attempt) -> None:
        future = attempt.handle
        if future is not None:
            self._cancel(future)

    def _cancel(self, future: Any) -> None:
        # client.cancel waits for the scheduler; do it on the client's loop
        # instead, so a timer or a stop() never blocks on a round trip.
        client = self._client
        if client.status in ("running", "connecting", "newly-created"):
            client.loop.add_callback(client.cancel, [future], asynchronous=True, reason="stopped by woflo")

    # -- results ------------------------------------------------------------------------

    def _collect(self) -> None:
        get = self._done.get
        while True:
            item = get()
            batch: list[tuple[Attempt | None, Any]] = []
            linger_until = time.monotonic() + _LINGER
            while item is not None:
                batch.append(item)
                if len(batch) >= self._in_flight:
                    break  # nothing else is running: no reason to wait
                remaining = linger_until - time.monotonic()
                try:
                    item = get(timeout=remaining) if remaining > 0 else self._done.get_nowait()
                except queue.Empty:
                    break
            with self._lock_in_flight:
                self._in_flight -= len(batch)
            try:
                self._report(batch)
            except BaseException as exc:  # never let one bad batch stop result delivery
                self.report_internal_error(exc)
            # Nothing here may keep a result alive until the next batch: the
            # attempt and its Dask future hold each other (the future's
            # callback closes over the attempt), a cycle that reaches the run
            # and its result; cut it, and drop this batch, now.
            _drop_handles(batch)
            done = item is None
            batch = item = None  # type: ignore[assignment]
            if done:
                return
            # Not held while blocked in get(): the last attempt would keep its
            # call's arguments alive after its run finished (as a stdlib worker
            # drops its work item, CPython gh-80313).
            del batch, item

    def _report(self, batch: list[tuple[Attempt | None, Any]]) -> None:
        finished: list[tuple[Attempt, Any]] = []
        # Each settle in its own try: what a done-callback raises (SystemExit)
        # must not keep the rest of the batch from being delivered.
        for attempt, future in batch:
            if attempt is None or attempt.settled:  # stopped or timed out: its late result is dropped
                continue
            try:
                status = future.status
                if status == "finished":
                    if attempt.run._on_cluster:  # type: ignore[attr-defined]
                        # Consumed on the cluster: the value is fetched only if asked for.
                        attempt.succeed(_OnCluster(future))
                    else:
                        finished.append((attempt, future))
                elif status == "error":
                    self._fail(attempt, future.exception(), future.traceback())
                else:
                    # Cancelled or lost by someone else than woflo (a client.restart,
                    # a closed client): the attempt did not run to its end.
                    attempt.fail(WorkerCrashed(f"Dask reported task {future.key!r} as {status}"), outcome="crashed")
            except BaseException as raised:
                self.survive(attempt, raised)
        if not finished:
            return
        try:
            values = self._client.gather([f for _, f in finished])
        except BaseException:
            # One result could not be fetched: fetch them one by one, so
            # only that attempt fails.
            for attempt, future in finished:
                try:
                    try:
                        value = future.result()
                    except BaseException as exc:
                        self._fail(attempt, exc, None)
                    else:
                        attempt.succeed(value)
                except BaseException as raised:
                    self.survive(attempt, raised)
            return
        for (attempt, _), value in zip(finished, values, strict=True):
            try:
                attempt.succeed(value)
            except BaseException as raised:
                self.survive(attempt, raised)

    def _fail(self, attempt: Attempt, exc: BaseException, tb: Any) -> None:
        if isinstance(exc, self._killed_worker):
            worker = getattr(getattr(exc, "last_worker", None), "address", None)
            crash = WorkerCrashed(f"the Dask worker {worker} running {attempt.run.name} died", worker=worker)
            crash.__cause__ = exc
            if worker is not None:
                attempt.worker = worker
            attempt.fail(crash, outcome="crashed")
            return
        if tb is not None and exc.__traceback__ is None:
            exc = exc.with_traceback(tb)
        if _is_serialization_failure(exc):
            # The worker could not send the result back.
            error = exc.__cause__ if exc.__cause__ is not None else exc
            exc = SerializationError.wrap(f"cannot pickle the result of {attempt.run.name}: {_reason(error)}", error)
        attempt.fail(exc)

    # -- shutdown -----------------------------------------------------------------------

    def owns_current_thread(self) -> bool:
        # Results are reported, and done-callbacks called, on the collector.
        return super().owns_current_thread() or threading.current_thread() is self._collector

    def close_workers(self, wait: bool) -> None:
        self._done.put(None)
        if wait:
            self._collector.join()
        if self._own_client:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _deliver(ref: weakref.ref[Attempt], put: Callable[[Any], None], future: Any) -> None:
    # Called on the client's callback thread, whenever distributed gets to it.
    # A weak reference: distributed may keep this callback a while after the
    # future is done, and the attempt it held would keep its run, and the
    # run's result, alive after the caller dropped them. While the attempt
    # is in flight its run's bookkeeping holds it; once gone it was settled
    # otherwise (stopped), and its late result is dropped.
    attempt = ref()
    put((attempt, future) if attempt is not None else (None, future))


def _drop_handles(batch: list[tuple[Attempt | None, Any]]) -> None:
    # A function of its own: a loop variable in _collect would keep the last
    # attempt (and its run's result) alive until the next batch.
    for attempt, _ in batch:
        if attempt is not None:
            attempt.handle = None


def _is_serialization_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is distributed's report of a value it could not pickle.

    distributed raises ``TypeError("Could not serialize object of type ...")``
    (``distributed.protocol.serialize``) with the pickler's own error as
    ``__cause__``, when the client sends a call and when a worker sends a
    result back. woflo reports both as a `woflo.SerializationError`, never
    retried, as on the process runner.
    """
    return isinstance(exc, TypeError) and bool(exc.args) and str(exc.args[0]).startswith("Could not serialize")


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:200]}"
