"""Sphinx configuration of woflo's documentation site.

Build it as CI does (warnings fail the build):
``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``pip install -e '.[docs]'`` first). The pages are Markdown (MyST); the API
reference is autodoc over the docstrings (Google style, through napoleon).
"""

from __future__ import annotations

import woflo

project = "woflo"
author = "woflo developers"
copyright = "woflo developers"  # noqa: A001 - Sphinx's name for it
release = woflo.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
# Headings get anchors to link to (`page.md#a-heading`), down to ###.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections as fields of their class: autodoc documents the
# attributes themselves too (namedtuple fields, dataclass fields), and two
# descriptions of one name is a warning.
napoleon_use_ivar = True
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Type hints name classes of optional dependencies and typing helpers that
# need not be importable to read the docs.
autodoc_type_aliases: dict[str, str] = {}

html_theme = "furo"
html_title = f"woflo {release}"
html_theme_options = {
    "source_repository": "https://github.com/woflo/woflo/",
    "source_branch": "main",
    "source_directory": "docs/",
}
