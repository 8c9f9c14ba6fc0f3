"""mypy on typed usage examples: the decorator keeps signatures (ParamSpec)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

pytestmark = pytest.mark.timeout(300)

HERE = Path(__file__).parent / "typing"


def _mypy(path: Path) -> tuple[str, int]:
    out, err, status = api.run(["--strict", "--no-incremental", "--cache-dir=/dev/null", str(path)])
    return out + err, status


def test_typed_usage_checks_cleanly() -> None:
    out, status = _mypy(HERE / "usage.py")
    assert status == 0, out


def test_misuse_is_caught() -> None:
    out, status = _mypy(HERE / "errors.py")
    assert status == 1
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert len(lines) == 3, out
    assert 'Argument 1 to "__call__" of "Task" has incompatible type "str"' in out
    assert "TaskRun[int]" in out
