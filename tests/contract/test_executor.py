"""The Executor contract, as the stdlib executors keep it, on every runner.

The tests are shipped in `woflo.testing` (`ExecutorContract`), so that a
runner written elsewhere runs them too; `AllKinds` runs them on every kind of
``tests/runners.py``: a runner added there gets all of it.
"""

from __future__ import annotations

from runners import AllKinds

from woflo.testing.contract import ExecutorContract


class TestExecutor(AllKinds, ExecutorContract):
    pass
