"""How many CPUs this process may use: the default number of process workers.

The same answer as ``loky.cpu_count()`` (what woflo used before), without
importing loky and psutil (about 40 ms) for it: the smallest of the machine's
CPUs, the process's affinity mask, the cgroup CPU quota (containers), and the
``LOKY_MAX_CPU_COUNT`` environment variable, at least 1.
tests/test_import_cost.py checks the two agree.
"""

from __future__ import annotations

import math
import os

__all__ = ["cpu_count"]


def _cgroup_quota(cpus: int) -> int:
    """CPUs allowed by the cgroup's CPU bandwidth limit (v2, else v1); ``cpus`` if none."""
    quota = period = None
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:  # cgroup v2: "max 100000" or "200000 100000"
            parts = fh.read().split()
        if len(parts) == 2:
            quota, period = parts
    except OSError:
        pass
    if quota is None:
        try:  # cgroup v1
            with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fh:
                quota = fh.read().strip()
            with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fh:
                period = fh.read().strip()
        except OSError:
            return cpus  # no cgroup limit (or not Linux)
    if quota == "max" or period is None:
        return cpus
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return cpus
    return math.ceil(q / p) if q > 0 and p > 0 else cpus


def cpu_count() -> int:
    """The number of CPUs the current process can use (see the module docstring); at least 1.

    Raises:
        ValueError: ``LOKY_MAX_CPU_COUNT`` is set and is not an integer (as loky).
    """
    cpus = os.cpu_count() or 1
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, NotImplementedError, OSError):  # not on this platform
        affinity = cpus
    user = int(os.environ.get("LOKY_MAX_CPU_COUNT", cpus))
    return max(1, min(cpus, affinity, _cgroup_quota(cpus), user))
