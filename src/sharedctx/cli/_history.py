"""The history commands of ``sharedctx``: a key's versions, a session at a revision,
and a fork.

    sharedctx history SESSION KEY --backend URL [--limit N] [--json]
    sharedctx inspect SESSION [PATTERN] --revision REV --backend URL [--json]
    sharedctx fork SESSION NEW [--revision REV] --backend URL

``register`` adds them to the command's parser (``_commands.py``): ``history`` and
``fork`` as commands of their own, ``--revision`` as an option of ``inspect``. A
session's history is what it keeps by its ``history_versions`` (see
``docs/guides/history.md``); a revision it no longer keeps is an error naming the
oldest one it does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sharedctx import InvalidArgumentError, SharedContext, printable
from sharedctx.cli import _keys

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["parse_revision", "register"]

OpenSession = Callable[[str, str], AbstractContextManager[SharedContext]]
"""Opens an existing session of a ``--backend``: ``open_session(backend, session)``."""


def register(
    commands: Any,
    inspect: argparse.ArgumentParser,
    open_session: OpenSession,
    backend_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``history`` and ``fork`` to ``commands`` and ``--revision`` to ``inspect``."""
    history = commands.add_parser("history", help="show the kept versions of a key")
    history.add_argument("session")
    history.add_argument("key")
    backend_option(history)
    history.add_argument("--limit", type=_positive, metavar="N", help="at most N versions")
    history.add_argument("--json", action="store_true", help="print JSON (with the values)")
    history.set_defaults(run=lambda args, console: _history(args, console, open_session))

    fork = commands.add_parser(
        "fork", help="copy a session, as it is or was at a revision, into a new one"
    )
    fork.add_argument("session")
    fork.add_argument("new", help="the new session's id (it must not exist)")
    backend_option(fork)
    fork.add_argument(
        "--revision", type=parse_revision, metavar="REV", help="as it was at revision REV"
    )
    fork.set_defaults(run=lambda args, console: _fork(args, open_session))

    inspect.add_argument(
        "--revision", type=parse_revision, metavar="REV", help="the entries as they were at REV"
    )
    current = inspect.get_default("run")

    def run(args: argparse.Namespace, console: Console) -> int:
        if args.revision is None:
            return int(current(args, console))
        if args.schema is not None:
            raise InvalidArgumentError(
                "--schema checks the session as it is now, not at --revision"
            )
        return _inspect_at(args, console, open_session)

    inspect.set_defaults(run=run)


def _positive(text: str) -> int:
    """How many versions: an int >= 1 (a usage error otherwise, saying what to give)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"give how many versions to show, a whole number >= 1, not {text!r}"
        )
    return number


def parse_revision(text: str) -> int:
    """A revision given on the command line (``--revision``, ``--since``): an int >= 0,
    else a usage error saying what to give. Used by every command that takes one."""
    try:
        revision = int(text)
    except ValueError:
        revision = -1
    if revision < 0:
        raise argparse.ArgumentTypeError(
            f"give a revision, a whole number >= 0 (the 'revision' of an event that watch "
            f"--json printed, or of a version that sharedctx history printed), not {text!r}"
        )
    return revision


def _note(message: str) -> None:
    print(printable(message), file=sys.stderr, flush=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _history(args: argparse.Namespace, console: Console, open_session: OpenSession) -> int:
    from sharedctx.terminal import print_unsqueezed, version_row, versions_table  # (rich)

    with open_session(args.backend, args.session) as context:
        versions = context.history(args.key, limit=args.limit)
    if args.json:
        rows = [version_row(entry) | {"value": _keys.shown(entry)} for entry in versions]
        print(json.dumps(rows, indent=2, default=_json_default))
    else:
        print_unsqueezed(console, versions_table(versions, title=f"{args.session} {args.key}"))
        if not versions:
            _note(f"no version of {args.key!r} is kept in {args.session}")
    return 0


def _inspect_at(args: argparse.Namespace, console: Console, open_session: OpenSession) -> int:
    from sharedctx.terminal import entries_table, entry_row, print_unsqueezed  # (rich)

    with open_session(args.backend, args.session) as context:
        entries = list(context.snapshot(args.revision).entries(args.pattern))
    if args.json:
        rows = [entry_row(entry) | {"value": _keys.shown(entry)} for entry in entries]
        print(json.dumps(rows, indent=2, default=_json_default))
    else:
        title = f"{args.session} {args.pattern} at revision {args.revision}"
        print_unsqueezed(console, entries_table(entries, title=title))
    return 0


def _fork(args: argparse.Namespace, open_session: OpenSession) -> int:
    with open_session(args.backend, args.session) as context:
        forked = context.fork(args.new, revision=args.revision)
        try:
            count = len(forked)
        finally:
            forked.close()
    at = "as it is" if args.revision is None else f"as it was at revision {args.revision}"
    _note(f"forked {args.session} {at} into {args.new} ({count} entries)")
    return 0
