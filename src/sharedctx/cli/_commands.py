"""The ``sharedctx`` command: run the demo pipeline, and look into live sessions.

    sharedctx demo [--minds N] [--seed N] [--ttl S] [--timeout S] [--pace S]
                   [--json|--quiet] [--interactive] [--backend URL --workers N] [--web [PORT]]
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
    sharedctx keygen | rekey --backend URL | acl NAMESPACE   (sealed sessions: _keys.py)
    sharedctx serve --backend URL [--host H] [--port N] [--allow-writes] [--token T]
    sharedctx --version

``--backend`` defaults to ``$SHAREDCTX_BACKEND``, else ``memory``. Every error (a bad
argument, a bad URL, an unknown session, an unreachable server, a failed demo run)
prints one line on stderr, saying what to do where there is a fix, and exits with 2;
Ctrl-C prints one line and exits with 130 (the demo's worker processes end with it),
except for ``watch``, which Ctrl-C ends with 0. ``watch`` waits for a session that does
not exist yet, and says on stderr when the server stops answering and when it is back.
``inspect --schema`` prints the entries that do not fit the typed keys of a ``Schema``
and exits with 1 if there are any. ``--help`` and ``--version`` need only the standard
library; the commands need rich (the ``cli`` extra).
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

from sharedctx import (
    BackendUnavailableError,
    ContextError,
    InvalidArgumentError,
    Schema,
    SchemaError,
    SessionLostError,
    SharedContext,
    VersionConflictError,
    WaitTimeoutError,
    Watch,
    __version__,
    printable,
)
from sharedctx.backends import Backend, open_backend
from sharedctx.cli import _history as history
from sharedctx.cli import _keys
from sharedctx.cli._serve import add_serve_command

try:  # the cli extra; without it --help and --version work, and commands say what to install
    from rich.console import Console

    from sharedctx.terminal import (
        entries_table,
        entry_row,
        event_line,
        event_row,
        print_unsqueezed,
        sessions_table,
        summary_row,
    )
except ImportError as missing:  # tested in a subprocess where rich cannot be imported
    _WITHOUT_RICH: ImportError | None = missing
else:
    _WITHOUT_RICH = None

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

__all__ = ["run"]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status. ``--help``, ``--version`` and
    usage errors need only the standard library; the commands need rich (the ``cli``
    extra), and without it say so in one line, status 2."""
    args = _parser().parse_args(argv)
    if _WITHOUT_RICH is not None:
        _error(
            f"sharedctx {args.command} needs rich, which the cli extra installs: "
            "pip install 'sharedctx[cli]'"
        )
        return 2
    # Session data must never be read as markup, emoji codes or highlighted: the
    # views build Text from it, and the console has all three off besides.
    console = Console(markup=False, emoji=False, highlight=False)
    try:
        _keys.load(args)  # the key ring of sealed sessions, if any
        status: int = args.run(args, console)
    except ContextError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _interrupted()
        return 130
    except BrokenPipeError:
        # The reader went away (`sharedctx inspect ... | head`): stop without a word
        # and with status 1, as rich does when it meets this in its own output.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


def _interrupted() -> None:
    """Ctrl-C: one line, no traceback (the caller exits with 130)."""
    print("sharedctx: interrupted", file=sys.stderr, flush=True)


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
    demo.add_argument(
        "--web",
        nargs="?",
        const=8765,
        type=int,
        metavar="PORT",
        help="show the run in the browser on PORT (8765; 0: any); with --interactive, decide there",
    )
    demo.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run the minds in N processes (Redis; they read the key ring where the demo does)",
    )
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
        type=history.parse_revision,
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
    _keys.add_commands(commands, _backend_option, _shared_backend)
    add_serve_command(commands, _backend_option)
    return parser


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
    _keys.add_keys_option(parser)


# -- backends and sessions ---------------------------------------------------------


@contextmanager
def _backend(argument: str) -> Iterator[Backend]:
    """The backend a ``--backend`` argument names, closed afterwards. The one place
    where the CLI resolves a backend: the core's ``open_backend`` does it."""
    try:
        backend, _ = open_backend(argument, keyring=_keys.keyring())
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
            raise InvalidArgumentError(
                f"--backend {argument!r} is not a Redis server: give a redis://, rediss://, "
                "unix:// or redis+cluster:// URL"
            )
        yield backend


@contextmanager
def _existing_session(argument: str, session_id: str) -> Iterator[SharedContext]:
    """The context of a session that exists: opening one on Redis registers its id, so
    looking into a session must not open one that is not there."""
    with _shared_backend(argument) as backend:
        if not backend.has_session(session_id):
            raise _unknown(session_id, backend)
        with SharedContext(session_id, backend=backend) as context:
            yield context


def _unknown(session_id: str, backend: Backend) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"no session {session_id!r} on {backend}: `sharedctx sessions --backend "
        f"{backend}` lists the sessions there"
    )


# -- the commands ------------------------------------------------------------------


def _demo(args: argparse.Namespace, console: Console) -> int:
    from sharedctx.demo import DEFAULT_PACE, DemoOptions, Output, run_demo

    if args.interactive and args.web is None and not sys.stdin.isatty():
        raise InvalidArgumentError("--interactive needs a terminal to ask on")
    output: Output = "live" if console.is_interactive else "lines"
    if args.json or args.quiet:
        output = "json" if args.json else "quiet"
    # Someone is watching: on the terminal, or on the page.
    paced = (console.is_terminal or args.web is not None) and output in ("live", "lines")
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
            keys_file=args.keys_file,
        )
        summary = run_demo(options, console, output=output, web=args.web)
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
            raise _unknown(args.session, backend)
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
        rows = [entry_row(entry) | {"value": _keys.shown(entry)} for entry in entries]
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
    # A session that does not exist yet is waited for, so that a watch can start
    # before the pipeline (watching, like any read, creates no session).
    with _shared_backend(args.backend) as backend:
        exists = backend.has_session(args.session)
        with (
            SharedContext(args.session, backend=backend) as context,
            context.watch(args.pattern, max_pending=100_000, since=args.since) as watch,
        ):
            waiting = "" if exists else f": no session {args.session!r} yet, waiting for it"
            _note(f"watching {args.session} {args.pattern}{waiting} (Ctrl-C to stop)")
            try:
                _tail(watch, console, as_json=args.json, server=_Server(backend, args.session))
            except KeyboardInterrupt:  # the way to end a watch: not an error
                _note("stopped")
    return 0


class _Server:
    """Whether a watch's server answers: said on stderr when it stops, and when it is
    back (a watch on its own would only go quiet)."""

    every = 1.0
    """Seconds without an event after which the server is asked."""

    def __init__(self, backend: RedisBackend, session_id: str) -> None:
        self._backend, self._session_id = backend, session_id
        self._down = False

    def check(self) -> None:
        try:
            self._backend.has_session(self._session_id)
        except BackendUnavailableError as unavailable:
            if not self._down:
                self._down = True
                _note(f"warning: {unavailable}; the watch goes on when it is back")
            return
        if self._down:
            self._down = False
            _note(f"Redis at {self._backend} is back: watching again")


def _export(args: argparse.Namespace, console: Console) -> int:
    with _existing_session(args.backend, args.session) as context:
        for record in _keys.exported(context, args.pattern):
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
            raise InvalidArgumentError(
                f"line {number} of the input is not JSON ({exc}): import reads what "
                "`sharedctx export` prints, one JSON object per line"
            ) from None
    if not records:  # nothing to do, and no session to create
        _note(f"no record in the input: nothing imported into {args.session}")
        return 0
    _keys.refuse_sealed(records)
    with (
        _shared_backend(args.backend) as backend,
        SharedContext(args.session, backend=backend) as context,
    ):
        try:
            imported = context.import_records(records, overwrite=args.overwrite)
        except VersionConflictError as conflict:
            raise InvalidArgumentError(
                f"session {args.session!r} has key {conflict.key!r} already: nothing was "
                "imported (add --overwrite to replace the entries that exist)"
            ) from None
    _note(f"imported {len(imported)} entries into {args.session}")
    return 0


def _tail(watch: Watch, console: Console, *, as_json: bool, server: _Server) -> None:
    while True:
        try:
            event = watch.get(timeout=server.every)
        except WaitTimeoutError:  # quiet: is the server there?
            server.check()
            continue
        except SessionLostError as lost:
            _note(f"warning: {lost}")
            continue
        if as_json:
            print(json.dumps(event_row(event)), flush=True)
        else:
            console.print(event_line(event))
