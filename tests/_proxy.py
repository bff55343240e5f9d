"""A fault-injecting TCP proxy between a client and a real redis-server.

It listens on a free loopback port and forwards every connection to the server.
Faults are real: the client's socket sees exactly what it would see on a bad
network.

- :meth:`FaultProxy.drop_replies` forwards the next matching request to the server,
  throws its reply away and resets the client's connection: the server applied the
  call, the client never learns its outcome (a lost reply).
- :meth:`FaultProxy.stall` holds every byte, both ways, for N seconds: the server
  gets the request late and the client's reply comes late (or, past its timeout,
  never), as with a server paused or a network partition that heals.
- :meth:`FaultProxy.hold_reply` holds the reply of the next matching request until
  :meth:`FaultProxy.release`: the server applied the call, its reply comes late, after
  the replies of calls made since on other connections.
- :meth:`FaultProxy.reset` closes every connection at once.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class _Link:
    """One client connection and its connection to the server."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.drop_reply = False  # the reply to the request just forwarded is dropped
        self.held: bytearray | None = None  # replies held back (None: none are)
        self.sending = threading.Lock()  # the pump's and release()'s writes to the client
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                # An abortive close (RST), as a broken network gives.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """See the module docstring. Use as a context manager, or call :meth:`close`."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._match: bytes | None = None
        self._every = 0  # drop the reply of every n-th matching request (0: next only)
        self._seen = 0
        self._left = 0  # replies still to drop
        self._hold: bytes | None = None  # hold the reply of the next request with this
        self.dropped = 0
        self._stalled_until = 0.0
        self._closed = False
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- faults ------------------------------------------------------------------------

    def drop_replies(self, match: bytes, *, count: int = 1, every: int = 0) -> None:
        """Drop the replies of the next ``count`` requests containing ``match`` (or,
        with ``every``, of every ``every``-th one from now on), resetting their
        connections."""
        with self._lock:
            self._match, self._left, self._every, self._seen = match, count, every, 0

    def hold_reply(self, match: bytes) -> None:
        """Hold the reply of the next request containing ``match`` (and what follows
        it on that connection) until :meth:`release`."""
        with self._lock:
            self._hold = match

    @property
    def holding(self) -> bool:
        """Whether a held reply has come from the server."""
        with self._lock:
            return any(link.held for link in self._links)

    def release(self) -> None:
        """Send the held replies on, and hold nothing more."""
        with self._lock:
            self._hold, links = None, list(self._links)
        for link in links:
            with link.sending:
                held, link.held = link.held, None
                if held:
                    link.client.sendall(held)

    def stall(self, seconds: float) -> None:
        """Hold all traffic, both ways, for ``seconds`` from now."""
        with self._lock:
            self._stalled_until = time.monotonic() + seconds

    def reset(self) -> None:
        """Close every connection now (the client sees them reset)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def heal(self) -> None:
        """Stop injecting faults."""
        with self._lock:
            self._match, self._left, self._every, self._stalled_until = None, 0, 0, 0.0

    # -- forwarding --------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.server_port), timeout=5)
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            with self._lock:
                closing = self._closed  # closed since accept(): reset() has run
                if not closing:
                    self._links.append(link)
            if closing:
                link.close()
                return
            threading.Thread(target=self._pump, args=(link,), daemon=True).start()

    def _wait_while_stalled(self) -> None:
        while True:
            with self._lock:
                left = self._stalled_until - time.monotonic()
            if left <= 0 or self._closed:
                return
            time.sleep(min(left, 0.02))

    def _pump(self, link: _Link) -> None:
        sockets = [link.client, link.server]
        try:
            while not link.closed and not self._closed:
                readable, _, _ = select.select(sockets, [], [], 0.05)
                for sock in readable:
                    self._wait_while_stalled()
                    data = sock.recv(65536)
                    if not data:
                        link.close()
                        return
                    if sock is link.client:
                        self._to_server(link, data)
                    elif link.drop_reply:
                        link.close()  # the reply is lost, the connection reset
                        return
                    else:
                        with link.sending:
                            if link.held is not None:
                                link.held += data
                            else:
                                link.client.sendall(data)
        except (OSError, ValueError):
            link.close()

    def _to_server(self, link: _Link, data: bytes) -> None:
        with self._lock:
            if self._hold is not None and self._hold in data:
                self._hold, link.held = None, bytearray()
            if self._match is not None and self._match in data:
                self._seen += 1
                if self._every:
                    drop = self._seen % self._every == 0
                else:
                    drop = self._left > 0
                    self._left -= 1
                if drop:
                    link.drop_reply = True
                    self.dropped += 1
        link.server.sendall(data)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.reset()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
