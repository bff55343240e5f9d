"""The ``sharedctx`` command line (needs the ``cli`` extra: rich)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Without rich (``pip install sharedctx`` without the ``cli`` extra) every command
    prints one line saying what to install, and exits with status 2.
    """
    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            "sharedctx: error: the command line needs rich: pip install 'sharedctx[cli]'",
            file=sys.stderr,
        )
        return 2
    from sharedctx.cli._commands import run

    return run(argv)
