"""Tasks of the payload and latency benchmarks, importable by every peer's workers."""

from __future__ import annotations

_BIG: dict[int, bytes] = {}


def noop() -> None:
    return None


def echo(data: bytes) -> bytes:
    return data


def big(n: int) -> bytes:
    """``n`` bytes, made once per worker: the transfer is timed, not the making."""
    data = _BIG.get(n)
    if data is None:
        _BIG.clear()
        data = _BIG[n] = b"\x5a" * n
    return data
