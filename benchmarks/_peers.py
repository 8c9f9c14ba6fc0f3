"""Executors of other projects behind one small interface, for the benchmarks.

Each peer is ``Peer(name, submit, close)``: ``submit(fn, *args)`` returns an
object with ``.result()`` (a future, or a wrapper around mpire's ``AsyncResult``),
``close()`` stops it. ``make_peers`` builds only the peers whose packages are
installed (loky, pebble, mpire come with the ``bench`` extra).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple


class Peer(NamedTuple):
    name: str
    submit: Callable[..., Any]
    close: Callable[[], None]
    ex: Any = None  # the executor itself, for map-like calls


class _MpireResult:
    def __init__(self, res: Any) -> None:
        self._res = res

    def result(self, timeout: float | None = None) -> Any:
        return self._res.get(timeout)


def woflo_peer(name: str, workers: int, **kwargs: Any) -> Peer:
    from woflo import ProcessRunner

    r = ProcessRunner(workers, **kwargs)
    return Peer(name, r.submit, r.shutdown, r)


def ppe_peer(method: str, workers: int) -> Peer:
    ppe = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    return Peer(f"PPE {method}", ppe.submit, ppe.shutdown, ppe)


def loky_peer(workers: int) -> Peer:
    from loky import get_reusable_executor

    lk = get_reusable_executor(workers)
    return Peer("loky", lk.submit, lk.shutdown, lk)


def pebble_peer(workers: int, method: str = "spawn") -> Peer:
    from pebble import ProcessPool

    pb = ProcessPool(workers, context=multiprocessing.get_context(method))

    def close() -> None:
        pb.close()
        pb.join()

    return Peer(f"pebble {method}", lambda fn, *a: pb.schedule(fn, args=a), close, pb)


def mpire_peer(workers: int) -> Peer:
    """mpire's ``WorkerPool`` (fork, workers kept alive), through ``apply_async``."""
    from mpire import WorkerPool

    pool = WorkerPool(workers, keep_alive=True)
    return Peer("mpire apply_async", lambda fn, *a: _MpireResult(pool.apply_async(fn, a)), pool.terminate, pool)


def mpire_imap(pool: Any, fn: Callable[..., Any], kwarg: str, items: Iterable[Any], n: int) -> list[Any]:
    """mpire's ``imap`` of ``fn`` over ``items``, each passed as keyword ``kwarg``, as a list.

    (mpire unpacks a tuple item into arguments, and a dict into keywords.)
    """
    return list(pool.imap(fn, [{kwarg: x} for x in items], iterable_len=n))


def make_peers(workers: int, names: Iterable[str]) -> list[Peer]:
    """The peers named (``"PPE fork"``, ``"PPE spawn"``, ``"loky"``, ``"pebble"``, ``"mpire"``) that are installed."""
    out: list[Peer] = []
    for name in names:
        try:
            if name.startswith("PPE "):
                out.append(ppe_peer(name[4:], workers))
            elif name == "loky":
                out.append(loky_peer(workers))
            elif name == "pebble":
                out.append(pebble_peer(workers))
            elif name == "mpire":
                out.append(mpire_peer(workers))
            else:
                raise ValueError(name)
        except ImportError as err:
            print(f"(skipped {name}: {err})")
    return out
