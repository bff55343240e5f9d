"""The ``sharedctx`` command line (needs the ``cli`` extra: rich)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    ``--help`` and ``--version`` work with sharedctx alone. Without rich (``pip
    install sharedctx`` without the ``cli`` extra) every command prints one line
    saying what to install, and exits with status 2.
    """
    from sharedctx.cli._commands import run

    return run(argv)
