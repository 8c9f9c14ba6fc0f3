"""Whether woflo's speed tricks on other projects' private APIs are allowed: `ENABLED`.

Three modules go faster by relying on private details of another project:
`woflo._condition` (the C ``RLock``'s ``_release_save``/``_acquire_restore``),
`woflo._looprun` (asyncio's future protocol, ``loop._thread_id``,
``asyncio._get_running_loop``) and `woflo._events` (structlog's ``_CONFIG``;
the stdlib ``logging`` module's ``_lock`` and ``Logger._cache``).
Each checks at import that the detail is there and otherwise takes the plain
public way, which is correct, only slower. Setting the environment variable
``WOFLO_NO_FAST_PATHS=1`` before woflo is imported forces the plain way
everywhere, so the fallbacks are tested too (CI runs part of the suite a
second time with it; ``tests/test_canaries.py`` pins every private detail).

The variable is read once, here, at import: changing it later has no effect.
"""

from __future__ import annotations

import os

__all__ = ["ENABLED", "ENV_VAR"]

#: The environment variable that turns the fast paths off when set to a
#: non-empty value other than ``0``.
ENV_VAR = "WOFLO_NO_FAST_PATHS"

#: False when ``WOFLO_NO_FAST_PATHS`` was set (to anything but "" or "0") at import.
ENABLED: bool = os.environ.get(ENV_VAR, "") in ("", "0")
