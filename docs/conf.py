"""Sphinx configuration of the sharedctx docs: `make docs` builds them into docs/_build/.

The pages are Markdown (MyST-Parser), the theme is furo, and the API reference comes
from the docstrings (autodoc; the Google-style
sections, such as ``Args:``, read by napoleon). `make test` builds them with -W: a
warning or a broken reference fails it.
"""

from sphinx.ext.napoleon import Config, GoogleDocstring

import sharedctx

project = "sharedctx"
author = "the sharedctx developers"
copyright = "the sharedctx developers"
release = sharedctx.__version__
version = release

SOURCE = "https://github.com/sharedctx/sharedctx"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"exclude-members": "model_config"}

NAPOLEON = Config(napoleon_google_docstring=True, napoleon_numpy_docstring=False)

html_theme = "furo"
html_title = f"sharedctx {release}"
html_theme_options = {
    "source_repository": SOURCE,
    "source_branch": "main",
    "source_directory": "docs/",
}


def _google_sections(app, what, name, obj, options, lines):
    """Napoleon for the docstrings of classes and functions only. On an attribute or a
    property, napoleon reads a first line "text: more" as "type: description", and
    sharedctx's prose uses such colons ("None: forever")."""
    if what in ("attribute", "data", "property"):
        return
    lines[:] = GoogleDocstring(lines, NAPOLEON, app, what, name, obj, options).lines()


def _model_signature(app, what, name, obj, options, signature, return_annotation):
    """A pydantic model is shown by its fields, listed below it: not by the keyword
    signature pydantic makes of them (every constraint spelled out)."""
    if what == "class" and hasattr(obj, "model_fields"):
        return "", None
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _google_sections)
    app.connect("autodoc-process-signature", _model_signature)
    return {"parallel_read_safe": True}
