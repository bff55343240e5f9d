"""The ``sharedctx`` command: run the demo pipeline, and look into live sessions.

    sharedctx demo [--minds N] [--seed N] [--ttl S] [--json|--quiet] [--interactive]
                   [--backend URL --workers N]
    sharedctx sessions --backend URL [--json]
    sharedctx inspect SESSION [PATTERN] --backend URL [--json]
    sharedctx watch SESSION [PATTERN] --backend URL
    sharedctx bench [--quick]

``--backend`` defaults to ``$SHAREDCTX_BACKEND``, else ``memory``. A bad argument, a
bad URL or an unreachable server prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from sharedctx._context import SharedContext
from sharedctx._errors import ContextError, InvalidArgumentError, SessionLostError
from sharedctx.cli._views import entries_table, entry_row, event_line

__all__ = ["main"]

_DEFAULT_BACKEND = os.environ.get("SHAREDCTX_BACKEND", "memory")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    console = Console()
    try:
        status: int = args.run(args, console)
    except ContextError as exc:
        print(f"sharedctx: error: {exc}", file=sys.stderr)  # one line, no markup
        return 2
    except KeyboardInterrupt:
        return 130
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sharedctx", description="Shared context for multi-step pipelines."
    )
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

    sessions = commands.add_parser("sessions", help="list the sessions on a backend")
    _backend_option(sessions)
    sessions.add_argument("--json", action="store_true", help="print JSON")
    sessions.set_defaults(run=_sessions)

    inspect = _session_command(commands, "inspect", "show a session's entries", _inspect)
    inspect.add_argument("--json", action="store_true", help="print JSON (with the values)")
    _session_command(commands, "watch", "tail a session's events until Ctrl-C", _watch)

    bench = commands.add_parser("bench", help="run the benchmarks (needs a source checkout)")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, fewer samples")
    bench.add_argument("--out", help="where to write results.json and benchmark.png")
    bench.add_argument("--only", nargs="+", metavar="WORKLOAD", help="run only these")
    bench.set_defaults(run=_bench)
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
        default=_DEFAULT_BACKEND,
        help="memory, or redis://[:password@]host:port/db (default $SHAREDCTX_BACKEND or memory)",
    )


def _demo(args: argparse.Namespace, console: Console) -> int:
    from sharedctx.demo._pipeline import DemoOptions
    from sharedctx.demo._runner import DEFAULT_PACE, Output, run_demo

    if args.interactive and not sys.stdin.isatty():
        raise InvalidArgumentError("--interactive needs a terminal to ask on")
    output: Output = "live" if console.is_interactive else "lines"
    if args.json or args.quiet:
        output = "json" if args.json else "quiet"
    paced = console.is_terminal and output in ("live", "lines")  # someone is watching
    options = DemoOptions(
        minds=args.minds,
        seed=args.seed,
        ttl=args.ttl,
        interactive=args.interactive,
        backend=args.backend,
        workers=args.workers,
        timeout=args.timeout,
        pace=args.pace if args.pace is not None else DEFAULT_PACE if paced else 0.0,
    )
    summary = run_demo(options, console, output=output)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _redis(url: str) -> Any:
    if url == "memory":
        raise InvalidArgumentError(
            "a memory context lives inside one process: give --backend redis://... "
            "(or set SHAREDCTX_BACKEND) to look into a shared session"
        )
    from sharedctx.backends import redis_backend

    return redis_backend(url)


def _sessions(args: argparse.Namespace, console: Console) -> int:
    backend = _redis(args.backend)
    try:
        sessions = backend.sessions()
    finally:
        backend.close()
    if args.json:
        print(json.dumps(sessions))
    else:
        for session in sessions:
            console.print(session, markup=False, highlight=False)
    return 0


def _inspect(args: argparse.Namespace, console: Console) -> int:
    backend = _redis(args.backend)
    try:
        if args.session not in backend.sessions():
            raise InvalidArgumentError(f"no session {args.session!r} on {backend!r}")
        with SharedContext(args.session, backend=backend) as context:
            entries = context.find_by_pattern(args.pattern)
    finally:
        backend.close()
    if args.json:
        rows = [entry_row(entry) | {"value": entry.value} for entry in entries]
        print(json.dumps(rows, indent=2, default=_json_default))
    else:
        console.print(entries_table(entries, title=f"{args.session} {args.pattern}"))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _watch(args: argparse.Namespace, console: Console) -> int:
    backend = _redis(args.backend)
    try:
        with (
            SharedContext(args.session, backend=backend) as context,
            context.watch(args.pattern, max_pending=100_000) as watch,
        ):
            console.print(f"watching {args.session} {args.pattern} (Ctrl-C to stop)", style="dim")
            while True:
                try:
                    console.print(event_line(watch.get()))
                except SessionLostError as lost:
                    console.print(f"warning: {lost}", style="yellow", markup=False)
                except KeyboardInterrupt:
                    console.print("stopped", style="dim")
                    return 0
    finally:
        backend.close()


def _bench(args: argparse.Namespace, console: Console) -> int:
    # run_path, not a bare exec_module: the benchmarks' dataclasses need their module.
    module = runpy.run_path(str(_benchmark_script()), run_name="sharedctx_benchmarks")
    options = ["--quick"] if args.quick else []
    options += ["--out", args.out] if args.out else []
    options += ["--only", *args.only] if args.only else []
    return int(module["main"](options))


def _benchmark_script() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        script = root / "benchmarks" / "run.py"
        if script.is_file():
            return script
    raise InvalidArgumentError(
        "the benchmarks live in the source checkout (benchmarks/run.py): run this from it"
    )
