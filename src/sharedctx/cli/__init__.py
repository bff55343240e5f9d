"""The ``sharedctx`` command line (needs the ``cli`` extra: rich)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    ``--help`` and ``--version`` work with sharedctx alone. Without rich (``pip
    install sharedctx`` without the ``cli`` extra) every command prints one line
    saying what to install, and exits with status 2.
    """
    try:
        from sharedctx.cli._commands import run
    except KeyboardInterrupt:  # Ctrl-C while starting: as quiet as later
        print("sharedctx: interrupted", file=sys.stderr)
        return 130
    return run(argv)
