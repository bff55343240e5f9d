"""Session data made safe to show: :func:`printable`.

Whoever can write to a session chooses its id and its keys, sources and tags. A
terminal acts on the escape sequences and bidi overrides they may hold, and a log
line read in one does too; so every human-readable output of sharedctx (the CLI's
and the demo's views, the log records) shows session data through :func:`printable`.
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped as Python does.

    Control characters (C0, DEL, C1: ``ESC`` starts the terminal's escape sequences),
    bidi overrides and isolates, line and paragraph separators and other invisible
    format characters become ``\\x1b``, ``\\n``, ``\\u202e``...: shown, never acted on.
    "Printable" is what ``str.isprintable`` (and so ``repr``) means by it. The result
    is one line.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
