"""``sharedctx serve``: the web view of a backend's sessions (needs the ``web`` extra).

    sharedctx serve --backend URL [--host 127.0.0.1] [--port 8765] [--allow-writes]
                    [--token TOKEN] [--keys-file PATH]

It prints the URL to open (with its token, if any) and serves until Ctrl-C. Bound to
a loopback address unless ``--host`` says otherwise, and then only with a token
(``--token``, or ``$SHAREDCTX_TOKEN``). Read-only unless ``--allow-writes``. With the
key ring (``--keys-file`` or ``$SHAREDCTX_KEYS``, as every command) the page shows
sealed sessions' values; without it, ``(sealed)`` in place of each.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sharedctx import InvalidArgumentError
from sharedctx.backends import open_backend
from sharedctx.cli import _keys

__all__ = ["add_serve_command"]


def add_serve_command(
    commands: Any, backend_option: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add ``serve`` to the command line's subcommands."""
    serve: argparse.ArgumentParser = commands.add_parser(
        "serve", help="serve a live view of the sessions in the browser"
    )
    backend_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port to listen on (8765; 0: any)")
    serve.add_argument(
        "--allow-writes",
        action="store_true",
        help="let the page set values (checkpoints), with if_version; read-only without",
    )
    serve.add_argument(
        "--token",
        default=os.environ.get("SHAREDCTX_TOKEN") or None,
        help="every request must carry it (needed with a --host that is not loopback; "
        "default $SHAREDCTX_TOKEN)",
    )
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace, console: object) -> int:
    try:
        from sharedctx.web import WebServer, create_app, is_loopback_name
    except ImportError:
        raise InvalidArgumentError(
            "sharedctx serve needs the web extra: pip install 'sharedctx[web]'"
        ) from None
    if not is_loopback_name(args.host) and not args.token:
        raise InvalidArgumentError(
            f"--host {args.host} is reachable from other machines: give --token TOKEN "
            "(or set SHAREDCTX_TOKEN), which every request must then carry"
        )
    if not 0 <= args.port <= 65535:
        raise InvalidArgumentError(f"--port must be between 0 and 65535, not {args.port}")
    if args.backend == "memory":
        raise InvalidArgumentError(
            "a memory backend lives inside one process, and this one would be empty: give "
            "--backend redis://... (to see a memory session, serve sharedctx.web.create_app"
            "(MemoryBackend.shared()) in its own process, or run sharedctx demo --web)"
        )
    try:
        ring = _keys.keyring()
        backend, _ = open_backend(args.backend, keyring=ring)
    except ImportError as exc:  # the Redis extra is missing: say which to install
        raise InvalidArgumentError(str(exc)) from None
    try:
        app = create_app(backend, allow_writes=args.allow_writes, token=args.token)
        server = WebServer(app, host=args.host, port=args.port)
        url = server.url if not args.token else f"{server.url}?token={quote(args.token, safe='')}"
        mode = "values can be set from the page" if args.allow_writes else "read-only"
        if ring is None:
            mode += "; sealed values show as (sealed): no key ring"
        else:
            mode += f"; sealed sessions opened with the key ring of {', '.join(ring.key_ids)}"
        print(
            f"serving the sessions of {backend} ({mode}); open {url} (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        print(url, flush=True)
        server.run()
    finally:
        backend.close()
    return 0
