"""Serving the web view with uvicorn: in the foreground (``sharedctx serve``) or on a
thread of this process (``sharedctx demo --web``, which must share its memory
backend with the page; tests and benchmarks do the same)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp

from sharedctx import InvalidArgumentError

__all__ = ["WebServer"]


class _Uvicorn(uvicorn.Server):
    """uvicorn, ending the app's event streams first when it shuts down: else it
    would wait for them (they never end by themselves)."""

    def __init__(self, config: uvicorn.Config, app: ASGIApp) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: Any = None) -> None:
        _close_streams(self._app)
        await super().shutdown(sockets)


def _close_streams(app: ASGIApp) -> None:
    watches = getattr(getattr(app, "state", None), "sharedctx_watches", None)
    if watches is not None:
        watches.close_all()


class WebServer:
    """Serve ``app`` (from :func:`create_app`) on ``host``:``port`` (0: a free port).

    The socket is bound at once (``InvalidArgumentError`` if it cannot be: a port in
    use, an address not of this machine), so :attr:`url` is known before it serves.
    :meth:`run` serves in the foreground until Ctrl-C; :meth:`start` on a daemon
    thread until :meth:`stop` (or leaving the ``with`` block).
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.app = app
        self.host = host
        family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(128)
        except OSError as exc:
            self._socket.close()
            raise InvalidArgumentError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another "
                "--port, or a --host of this machine)"
            ) from None
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,  # leave the process's logging as it is
            log_level="warning",
            access_log=False,
            http="h11",
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = _Uvicorn(config, app)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open: ``http://host:port/`` (this machine's name for a
        wildcard host)."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        elif _is_ipv6(host):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve until Ctrl-C (uvicorn then raises ``KeyboardInterrupt`` again)."""
        self._server.run(sockets=[self._socket])

    def start(self) -> Self:
        """Serve on a daemon thread; return once it answers (within 10 s)."""
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="sharedctx-web",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web view's server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """End the streams, stop serving, and wait for the thread (idempotent)."""
        _close_streams(self.app)
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False
