"""The ``sharedctx`` command: run the demo pipeline, and look into live sessions.

    sharedctx demo [--minds N] [--seed N] [--ttl S] [--timeout S] [--pace S]
                   [--json|--quiet] [--interactive] [--backend URL --workers N]
    sharedctx sessions --backend URL [--json]
    sharedctx delete SESSION --backend URL [--yes]
    sharedctx prune --backend URL [--yes]
    sharedctx inspect SESSION [PATTERN] --backend URL [--json] [--schema MODULE:CLASS]
                      [--revision REV]
    sharedctx history SESSION KEY --backend URL [--limit N] [--json]
    sharedctx fork SESSION NEW --backend URL [--revision REV]
    sharedctx watch SESSION [PATTERN] --backend URL [--json] [--since REV]
    sharedctx export SESSION [PATTERN] --backend URL > run.jsonl
    sharedctx import SESSION --backend URL [--overwrite] < run.jsonl
    sharedctx --version

``--backend`` defaults to ``$SHAREDCTX_BACKEND``, else ``memory``. Every error (a bad
argument, a bad URL, an unknown session, an unreachable server, a failed demo run)
prints one line on stderr and exits with 2; Ctrl-C exits with 130. ``inspect --schema``
prints the entries that do not fit the typed keys of a ``Schema`` and exits with 1 if
there are any.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console

from sharedctx import (
    ContextError,
    InvalidArgumentError,
    Schema,
    SchemaError,
    SessionLostError,
    SharedContext,
    Watch,
    __version__,
)
from sharedctx.backends import Backend, open_backend
from sharedctx.cli import _history as history
from sharedctx.terminal import (
    entries_table,
    entry_row,
    event_line,
    event_row,
    print_unsqueezed,
    printable,
    sessions_table,
    summary_row,
)

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

__all__ = ["run"]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line (rich is installed); return the exit status."""
    args = _parser().parse_args(argv)
    # Session data must never be read as markup, emoji codes or highlighted: the
    # views build Text from it, and the console has all three off besides.
    console = Console(markup=False, emoji=False, highlight=False)
    try:
        status: int = args.run(args, console)
    except ContextError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`sharedctx inspect ... | head`): stop without a word
        # and with status 1, as rich does when it meets this in its own output.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


def _error(message: str) -> None:
    print(f"sharedctx: error: {printable(message)}", file=sys.stderr)


def _note(message: str) -> None:
    """A line for people beside the output (which stays data): on stderr."""
    print(printable(message), file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (saying where help is), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sharedctx", description="Shared context for multi-step pipelines.")
    parser.add_argument("--version", action="version", version=f"sharedctx {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the persona-cloning demo pipeline")
    demo.add_argument("--minds", type=int, default=6, help="analysis minds to run (1-6)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the source order")
    demo.add_argument("--ttl", type=float, default=3600.0, help="seconds entries live")
    demo.add_argument("--interactive", action="store_true", help="ask for the checkpoint decision")
    demo.add_argument("--workers", type=int, default=0, help="run the minds in N processes (Redis)")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the minds")
    demo.add_argument(
        "--pace",
        type=float,
        default=None,
        help="seconds a phase lasts at least, so that people can follow (default 1.25 "
        "on a terminal, else 0: full speed)",
    )
    output = demo.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON summary only")
    output.add_argument("--quiet", action="store_true", help="print the summary line only")
    _backend_option(demo)
    demo.set_defaults(run=_demo)

    sessions = commands.add_parser(
        "sessions", help="list the sessions on a backend, with their size and lifetime"
    )
    _backend_option(sessions)
    sessions.add_argument("--json", action="store_true", help="print JSON")
    sessions.set_defaults(run=_sessions)

    delete = commands.add_parser("delete", help="delete a session and all its data")
    delete.add_argument("session")
    _backend_option(delete)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_delete)

    prune = commands.add_parser("prune", help="delete every session with no live entry")
    _backend_option(prune)
    prune.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(run=_prune)

    inspect = _session_command(commands, "inspect", "show a session's entries", _inspect)
    inspect.add_argument("--json", action="store_true", help="print JSON (with the values)")
    inspect.add_argument(
        "--schema",
        metavar="MODULE:CLASS",
        help="report the entries that do not fit the typed keys of this Schema subclass",
    )
    history.register(commands, inspect, _existing_session, _backend_option)
    watch = _session_command(commands, "watch", "tail a session's events until Ctrl-C", _watch)
    watch.add_argument("--json", action="store_true", help="print one JSON object per event")
    watch.add_argument(
        "--since",
        type=_revision,
        metavar="REV",
        help="first replay the kept changes after revision REV",
    )
    _session_command(
        commands, "export", "print a session's entries as JSON lines (for import)", _export
    )
    load = commands.add_parser("import", help="load JSON lines (from export) into a session")
    load.add_argument("session")
    _backend_option(load)
    load.add_argument(
        "--overwrite", action="store_true", help="replace entries that exist (else: refuse)"
    )
    load.set_defaults(run=_import)
    return parser


def _revision(text: str) -> int:
    """A revision: an int >= 0 (argparse turns a ValueError into a usage error)."""
    revision = int(text)
    if revision < 0:
        raise ValueError(text)
    return revision


def _session_command(
    commands: Any, name: str, help: str, run: Callable[..., int]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
    parser.add_argument("session")
    parser.add_argument("pattern", nargs="?", default="*", help="glob pattern (default *)")
    _backend_option(parser)
    parser.set_defaults(run=run)
    return parser


def _backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default=os.environ.get("SHAREDCTX_BACKEND", "memory"),
        help="memory, or redis://[:password@]host:port/db (default $SHAREDCTX_BACKEND or memory)",
    )


# -- backends and sessions ---------------------------------------------------------


@contextmanager
def _backend(argument: str) -> Iterator[Backend]:
    """The backend a ``--backend`` argument names, closed afterwards. The one place
    where the CLI resolves a backend: the core's ``open_backend`` does it."""
    try:
        backend, _ = open_backend(argument)
    except ImportError as exc:  # the Redis extra is missing: say which to install
        raise InvalidArgumentError(str(exc)) from None
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def _shared_backend(argument: str) -> Iterator[RedisBackend]:
    """The backend of a ``--backend`` argument that names one other processes share."""
    if argument == "memory":
        raise InvalidArgumentError(
            "a memory context lives inside one process: give --backend redis://... "
            "(or set SHAREDCTX_BACKEND) to look into a shared session"
        )
    with _backend(argument) as backend:
        from sharedctx.backends.redis import RedisBackend

        if not isinstance(backend, RedisBackend):
            raise InvalidArgumentError(f"--backend {argument!r} is not a Redis server")
        yield backend


@contextmanager
def _existing_session(argument: str, session_id: str) -> Iterator[SharedContext]:
    """The context of a session that exists: opening one on Redis registers its id, so
    looking into a session must not open one that is not there."""
    with _shared_backend(argument) as backend:
        if not backend.has_session(session_id):
            raise InvalidArgumentError(f"no session {session_id!r} on {backend!r}")
        with SharedContext(session_id, backend=backend) as context:
            yield context


# -- the commands ------------------------------------------------------------------


def _demo(args: argparse.Namespace, console: Console) -> int:
    from sharedctx.demo import DEFAULT_PACE, DemoOptions, Output, run_demo

    if args.interactive and not sys.stdin.isatty():
        raise InvalidArgumentError("--interactive needs a terminal to ask on")
    output: Output = "live" if console.is_interactive else "lines"
    if args.json or args.quiet:
        output = "json" if args.json else "quiet"
    paced = console.is_terminal and output in ("live", "lines")  # someone is watching
    with _backend(args.backend) as backend:
        options = DemoOptions(
            minds=args.minds,
            seed=args.seed,
            ttl=args.ttl,
            interactive=args.interactive,
            backend=backend,
            workers=args.workers,
            timeout=args.timeout,
            pace=args.pace if args.pace is not None else DEFAULT_PACE if paced else 0.0,
        )
        summary = run_demo(options, console, output=output)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _sessions(args: argparse.Namespace, console: Console) -> int:
    with _shared_backend(args.backend) as backend:
        summaries = backend.session_summaries()
    if args.json:
        print(json.dumps([summary_row(summary) for summary in summaries], indent=2))
    else:
        print_unsqueezed(console, sessions_table(summaries))
    return 0


def _delete(args: argparse.Namespace, console: Console) -> int:
    with _shared_backend(args.backend) as backend:
        if not backend.has_session(args.session):
            raise InvalidArgumentError(f"no session {args.session!r} on {backend!r}")
        question = f"delete session {args.session!r} and all its data, for everyone?"
        if not (args.yes or _confirm(question)):
            _note("nothing deleted")
            return 1
        backend.drop_session(args.session)
    _note(f"deleted session {args.session!r}")
    return 0


def _prune(args: argparse.Namespace, console: Console) -> int:
    with _shared_backend(args.backend) as backend:
        empty = [
            summary.session_id for summary in backend.session_summaries() if not summary.entries
        ]
        if not empty:
            _note("no session without live entries")
            return 0
        names = ", ".join(repr(session) for session in empty)
        question = f"delete {len(empty)} session(s) with no live entry ({names})?"
        if not (args.yes or _confirm(question)):
            _note("nothing deleted")
            return 1
        dropped = sum(backend.drop_session(session) for session in empty)
    _note(f"deleted {dropped} session(s)")
    return 0


def _confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin: only y or yes is a yes (end of input,
    or no terminal to ask on, is a no)."""
    print(f"{printable(question)} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer:
        print(file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


def _inspect(args: argparse.Namespace, console: Console) -> int:
    with _existing_session(args.backend, args.session) as context:
        if args.schema is not None:
            return _report_misfits(_schema(args.schema).check(context, args.pattern), args)
        entries = context.find_by_pattern(args.pattern)
    if args.json:
        rows = [entry_row(entry) | {"value": entry.value} for entry in entries]
        print(json.dumps(rows, indent=2, default=_json_default))
    else:
        print_unsqueezed(console, entries_table(entries, title=f"{args.session} {args.pattern}"))
    return 0


def _schema(spec: str) -> type[Schema]:
    """The ``Schema`` subclass that ``module:Class`` names, imported as Python would
    from the current directory."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise InvalidArgumentError(
            f"--schema {spec!r} must be MODULE:CLASS, such as app.schema:Review"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = getattr(importlib.import_module(module), name, None)
    except Exception as exc:  # the module's own error, in one line
        raise InvalidArgumentError(
            f"--schema {spec!r}: cannot import {module!r}: {exc!r}"
        ) from None
    if not (isinstance(found, type) and issubclass(found, Schema)):
        raise InvalidArgumentError(f"--schema {spec!r}: {module!r} has no Schema subclass {name!r}")
    return found


def _report_misfits(problems: list[SchemaError], args: argparse.Namespace) -> int:
    """Print each entry that does not fit (escaped, or exact with --json); 1 if any."""
    if args.json:
        rows = [
            {
                "key": problem.key,
                "expected": problem.expected,
                "errors": [{"path": path, "message": message} for path, message in problem.errors],
            }
            for problem in problems
        ]
        print(json.dumps(rows, indent=2))
    else:
        for problem in problems:
            print(printable(str(problem)))
        fits = f"{len(problems)} entries do not fit" if problems else "every entry fits"
        _note(f"{fits} the typed keys of {args.schema} in {args.session} {args.pattern}")
    return 1 if problems else 0


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _watch(args: argparse.Namespace, console: Console) -> int:
    with (
        _existing_session(args.backend, args.session) as context,
        context.watch(args.pattern, max_pending=100_000, since=args.since) as watch,
    ):
        _note(f"watching {args.session} {args.pattern} (Ctrl-C to stop)")
        try:
            _tail(watch, console, as_json=args.json)
        except KeyboardInterrupt:  # the way to end a watch: not an error
            _note("stopped")
    return 0


def _export(args: argparse.Namespace, console: Console) -> int:
    with _existing_session(args.backend, args.session) as context:
        for record in context.export(args.pattern):
            print(json.dumps(record, default=_json_default), flush=False)
    sys.stdout.flush()
    return 0


def _import(args: argparse.Namespace, console: Console) -> int:
    records = []
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"line {number} of the input is not JSON: {exc}") from None
    with (
        _shared_backend(args.backend) as backend,
        SharedContext(args.session, backend=backend) as context,
    ):
        imported = context.import_records(records, overwrite=args.overwrite)
    _note(f"imported {len(imported)} entries into {args.session}")
    return 0


def _tail(watch: Watch, console: Console, *, as_json: bool) -> None:
    while True:
        try:
            event = watch.get()
        except SessionLostError as lost:
            _note(f"warning: {lost}")
            continue
        if as_json:
            print(json.dumps(event_row(event)), flush=True)
        else:
            console.print(event_line(event))
