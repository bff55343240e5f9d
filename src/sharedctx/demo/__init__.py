"""The demo pipeline of ``sharedctx demo``: a small persona-cloning run over sample
sources shipped here (``data/``), with real text statistics instead of AI.

``run_pipeline`` runs it without any terminal; ``run_demo`` (with ``DEFAULT_PACE``
and ``Output``) runs it with the terminal views, and needs the ``cli`` extra (rich),
which is imported only when one of those is used: the worker processes of
``--workers`` import this package without it.
"""

from typing import TYPE_CHECKING, Any

from sharedctx.demo._pipeline import DemoError, DemoOptions, DemoOutcome, run_pipeline

if TYPE_CHECKING:
    from sharedctx.demo._runner import DEFAULT_PACE, Output, run_demo

__all__ = [
    "DEFAULT_PACE",
    "DemoError",
    "DemoOptions",
    "DemoOutcome",
    "Output",
    "run_demo",
    "run_pipeline",
]


def __getattr__(name: str) -> Any:
    if name in ("DEFAULT_PACE", "Output", "run_demo"):
        from sharedctx.demo import _runner

        return getattr(_runner, name)
    raise AttributeError(f"module 'sharedctx.demo' has no attribute {name!r}")
