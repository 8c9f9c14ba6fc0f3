"""Large payloads on the process runner against its peers and a bare pipe (issue 13, items 3 and 5).

(1) 50 tasks of 1 MB in and 1 MB out (``echo``), 2 workers: MB/s (100 MB moved
    per repetition). Contenders: woflo's ProcessRunner ("exec", the default),
    ProcessPoolExecutor with "fork" and "spawn", loky, pebble, mpire
    (``apply_async``, and ``imap``).
(2) one result of 100 MB (the worker made it once before: the transfer is
    timed, not the making), against a bare pipe: a child that writes 100 MB
    to a pipe, the parent reads them into a fresh buffer (``_bare.BarePipe``).

Every contender is started and warmed up first, then the repetitions go
round-robin (each repetition runs every contender once), so load on this
shared machine falls on all alike. Medians, ranges, and ratios of the medians.

    python benchmarks/bench_payload.py [--reps 7] [--big-reps 5] [--only 1,2]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _bare import BarePipe
from _common import compare_samples, rate_table
from _payload_funcs import big, echo
from _peers import Peer, make_peers, mpire_imap, woflo_peer

W = 2
MB = 1 << 20
N_SMALL = 50
BIG = 100 * MB


def echo_wave(peer: Peer, data: bytes, n: int) -> None:
    runs = [peer.submit(echo, data) for _ in range(n)]
    for r in runs:
        assert len(r.result()) == len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--big-reps", type=int, default=5)
    ap.add_argument("--only", default="1,2")
    args = ap.parse_args()
    cases = args.only.split(",")
    peers = [woflo_peer("woflo exec", W), *make_peers(W, ["PPE fork", "PPE spawn", "loky", "pebble", "mpire"])]
    for p in peers:  # start every worker, import the tasks' module there
        for r in [p.submit(echo, b"x") for _ in range(4 * W)]:
            r.result()
    closers = [p.close for p in peers]
    print(f"{W} workers, cpus={os.cpu_count()}, Python {sys.version.split()[0]}\n")
    try:
        if "1" in cases:
            data = os.urandom(MB)
            contenders = {p.name: (lambda p=p: echo_wave(p, data, N_SMALL)) for p in peers}
            if any(p.name.startswith("mpire") for p in peers):
                from mpire import WorkerPool

                # A pool of its own: one kept alive for apply_async does not take imap.
                mp = WorkerPool(W, keep_alive=True)
                closers.append(mp.terminate)
                contenders["mpire imap"] = lambda: mpire_imap(mp, echo, "data", [data] * N_SMALL, N_SMALL)
            times = compare_samples(contenders, repeat=args.reps)
            title = f"(1) {N_SMALL} tasks of 1 MB in, 1 MB out"
            print(rate_table(title, times, 2 * N_SMALL, "MB/s", ["PPE fork", "PPE spawn"]), "\n")
        if "2" in cases:
            bare = BarePipe()
            for p in peers:
                assert len(p.submit(big, BIG).result()) == BIG  # made once in one worker...
                assert len(p.submit(big, BIG).result()) == BIG  # ... and most likely in the other
            contenders = {"bare pipe": lambda: bare.fetch(BIG)}
            contenders.update({p.name: (lambda p=p: p.submit(big, BIG).result()) for p in peers})
            times = compare_samples(contenders, repeat=args.big_reps, warmup=2)
            bare.close()
            title = "(2) one 100 MB result (made in the worker beforehand)"
            print(rate_table(title, times, BIG / MB, "MB/s", ["bare pipe", "PPE fork"]), "\n")
    finally:
        for close in closers:
            close()


if __name__ == "__main__":
    main()
