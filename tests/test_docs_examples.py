"""Every code example in README.md and docs/ runs, so an example that stops working fails CI.

The convention (written for authors in docs/contributing-docs.md):

- A ```` ```python ```` block is run. The blocks of one Markdown file run in
  order, in one fresh interpreter (``python -W error``: a warning is a
  failure), as one ``__main__`` module, so a later block uses what an earlier
  one defined; the working directory is an empty temporary one. A failure is
  reported with the Markdown file and line.
- A python block whose first line is ``# file: NAME.py`` is not run: it is
  written to ``NAME.py`` in that directory, where later blocks import it; a
  written ``test_*.py`` is then run with pytest.
- A python block whose first line is ``# not run: REASON`` is skipped; the
  reason is visible on the page. There are few (`MAX_NOT_RUN`).
- A ```` ```pycon ```` block is a doctest (``>>>`` lines and their output);
  a file's doctests run in their own fresh interpreter.
- A ```` ```json ```` block must parse: as one document, or one per line.
- Other blocks (``shell``, ``text``, output, MyST directives) are not run;
  the README's two shell commands are what CI runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts]

#: At most this many python blocks in all the pages may be marked ``# not run:``.
MAX_NOT_RUN = 6
#: Seconds one page's examples may take together (a Dask example starts a LocalCluster).
PAGE_TIMEOUT = 240

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_NOT_RUN = re.compile(r"#\s*not run:\s*(?P<reason>.*)")
_FILE = re.compile(r"#\s*file:\s*(?P<name>[\w.-]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its code (dedented) and where it starts."""

    page: Path
    line: int  # 1-based line of the first line of code
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.code.split("\n", 1)[0].strip()


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for m in _FENCE.finditer(text):
        info = m.group("info").strip()
        lang = info.split()[0].lower() if info else ""
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").split("\n"))
        line = text.count("\n", 0, m.start()) + 2
        found.append(Block(page, line, lang, textwrap.dedent(body)))
    return found


def python_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang in ("python", "py")]


def not_run(block: Block) -> str | None:
    """The reason a python block is not run, or None if it is run."""
    m = _NOT_RUN.fullmatch(block.first_line)
    return m.group("reason").strip() if m else None


# Runs in the fresh interpreter: each block compiled with its page's name and
# line numbers (a traceback points into the Markdown), executed in __main__.
_DRIVER = """\
import json as _json, sys as _sys
with open(_sys.argv[1]) as _f:
    _blocks = _json.load(_f)
for _b in _blocks:
    if _b["file"]:
        with open(_b["file"], "w") as _f:
            _f.write(_b["code"])
        continue
    print(f"--- {_b['where']}", file=_sys.stderr, flush=True)
    exec(compile("\\n" * (_b["line"] - 1) + _b["code"], _b["page"], "exec"), globals())
"""


def _env() -> dict[str, str]:
    # The woflo of this checkout, whatever is installed; the page's directory is the cwd.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _fail(what: str, proc: subprocess.CompletedProcess[str]) -> None:
    out, err = proc.stdout[-4000:], proc.stderr[-8000:]
    pytest.fail(f"{what} failed (exit {proc.returncode})\n--- stdout\n{out}\n--- stderr\n{err}")


def run_page(page: Path, workdir: Path, timeout: float = PAGE_TIMEOUT) -> None:
    """Run a page's examples as the convention says; fail the test with the output if one fails."""
    todo = []
    for b in python_blocks(page):
        if not_run(b) is not None:
            continue
        m = _FILE.fullmatch(b.first_line)
        todo.append(
            {"page": str(b.page), "where": b.where, "line": b.line, "code": b.code, "file": m and m.group("name")}
        )
    if todo:
        (workdir / "_blocks.json").write_text(json.dumps(todo))
        (workdir / "_driver.py").write_text(_DRIVER)
        proc = subprocess.run(
            [sys.executable, "-W", "error", "_driver.py", "_blocks.json"],
            cwd=workdir,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            _fail(f"the python examples of {page.name}", proc)
        for test_file in sorted({b["file"] for b in todo if b["file"] and b["file"].startswith("test_")}):
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file],
                cwd=workdir,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
            if proc.returncode != 0:
                _fail(f"{test_file} written by {page.name}", proc)
    doctests = [b for b in blocks(page) if b.lang == "pycon"]
    if doctests:
        (workdir / "_doctests.txt").write_text("\n\n".join(b.code for b in doctests))
        proc = subprocess.run(
            [sys.executable, "-W", "error", "-m", "doctest", "-o", "ELLIPSIS", "_doctests.txt"],
            cwd=workdir,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            _fail(f"the pycon examples of {page.name}", proc)
    for b in blocks(page):
        if b.lang == "json":
            try:
                json.loads(b.code)
            except ValueError:
                for line in filter(str.strip, b.code.split("\n")):
                    json.loads(line)  # raises, naming the bad line's position


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_of_the_page_run(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path)


def test_the_pages_have_examples_and_few_are_not_run() -> None:
    every = [b for page in PAGES for b in python_blocks(page)]
    skipped = {b.where: not_run(b) for b in every if not_run(b) is not None}
    assert len(every) > 40, "the extraction found too few examples: is the fence pattern broken?"
    assert all(skipped.values()), f"a '# not run:' without its reason: {skipped}"
    assert len(skipped) <= MAX_NOT_RUN, f"too many examples not run: {skipped}"


# The machinery itself: a broken example fails, and says where.
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        ("```python\nx = 1\n```\n\ntext\n\n```python\nassert x == 2, 'x is not 2'\n```\n", 'page.md", line 8'),
        ("```pycon\n>>> 1 + 1\n3\n```\n", "Expected:"),
        ('```json\n{"a": }\n```\n', "Expecting value"),
        ("- item\n\n    ```python\n    import no_such_module_anywhere\n    ```\n", 'page.md", line 4'),
        (
            "```python\n# file: test_it.py\ndef test_it():\n    assert False\n```\n",
            "1 failed",
        ),
    ],
    ids=["assert", "doctest", "json", "indented", "written-test"],
)
def test_a_broken_example_fails_and_names_its_place(markdown: str, message: str, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(markdown)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises((pytest.fail.Exception, ValueError)) as info:
        run_page(page, work, timeout=50)
    assert message in str(info.value)


@pytest.mark.timeout(60)
def test_a_block_marked_not_run_is_skipped_and_blocks_share_one_main(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\n# not run: needs a cluster\nraise SystemExit(1)\n```\n"
        "```python\ndef f(x):\n    return x + 1\n```\n"
        "```python\nimport __main__\nfrom woflo import ProcessRunner\n"
        "with ProcessRunner(1) as ex:\n    assert ex.submit(f, 1).result(30) == 2\n"
        "assert __main__.f is f\nopen('done', 'w').close()\n```\n"
    )
    run_page(page, tmp_path)
    assert (tmp_path / "done").exists()


def test_every_public_name_is_in_the_api_reference() -> None:
    # A public name added without its place in docs/api.md is a name users
    # cannot look up (UpstreamFailed, limit, Limit and unresolved were missing).
    import re

    import woflo

    api = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"\.\. auto\w+:: woflo\.(\w+)", api))
    missing = sorted(set(woflo.__all__) - documented - {"__version__"})
    assert missing == [], f"not in docs/api.md: {missing}"
