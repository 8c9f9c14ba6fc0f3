"""A runner written elsewhere, only against woflo's public interface, passes the shipped contract suite.

The runner and its test module are the code blocks of docs/writing-a-runner.md
(the blocks that start with ``# file: tiny_runner.py`` and ``# file: test_tiny_runner.py``,
the convention of tests/test_docs_examples.py for a file that later blocks import):
run here as they are, so that the page cannot rot.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from woflo import Runner

DOC = Path(__file__).parents[1] / "docs" / "writing-a-runner.md"
SOURCES: dict[str, str] = {}


def _doc_module(name: str) -> types.ModuleType:
    """The page's code block that starts with ``# file: {name}.py``, run as the module ``name``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (source,) = [b for b in blocks if b.startswith(f"# file: {name}.py\n")]
    SOURCES[name] = source
    module = types.ModuleType(name)
    module.__file__ = f"{DOC}:{name}.py"
    sys.modules[name] = module  # importable by the next block, and by pickle
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


tiny_runner = _doc_module("tiny_runner")
TestTinyRunner: Any = _doc_module("test_tiny_runner").TestTinyRunner


def test_the_doc_runner_is_a_public_subclass() -> None:
    assert issubclass(tiny_runner.TinyRunner, Runner)
    # Only public names of woflo: the point of the page.
    assert "from woflo import Attempt, Runner" in SOURCES["tiny_runner"]
    assert not re.search(r"woflo(\.\w+)*\._", SOURCES["tiny_runner"])


@pytest.mark.timeout(30)
def test_a_runner_without_start_attempt_is_refused_at_construction() -> None:
    class Unfinished(Runner):
        pass

    with pytest.raises(TypeError, match="start_attempt"):
        Unfinished()


@pytest.mark.timeout(30)
def test_the_doc_runner_validates_max_workers() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        tiny_runner.TinyRunner(0)


@pytest.mark.timeout(60)
def test_woflo_testing_needs_pytest_only_for_the_contract() -> None:
    code = """
import sys
sys.modules["pytest"] = None  # as if it were not installed
from woflo.testing import capture_events, RunnerKind, tasks
try:
    from woflo.testing import RunnerContract
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install pytest" in out.stdout, out.stdout + out.stderr
