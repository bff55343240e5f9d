"""The ``sharedctx`` command line (needs the ``cli`` extra: rich)."""

from sharedctx.cli._commands import main

__all__ = ["main"]
