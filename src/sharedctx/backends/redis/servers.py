"""The servers behind a ``RedisBackend``: one Redis server, or a Redis Cluster's nodes.

A backend sends every call to the node that serves the session's slot. ``OneServer``
has a single connection pool (per process, and one per event loop for asyncio).
``ClusterServers`` keeps the cluster's slot map with redis-py's cluster client
(``RedisCluster``: its ``NodesManager`` finds the nodes, follows ``MOVED`` and
reloads the map after a failover) and hands out each node's own connection pool. The
calls themselves are made by the backend, on those pools: redis-py's cluster client
would send a call again after a lost reply, without backoff, and its asyncio client
loses calls during a resharding under load, which the backend's one call loop does
not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from sharedctx.backends.redis.urls import Target

__all__ = ["Address", "ClusterServers", "Connections", "OneServer", "Servers", "servers_for"]

Address = tuple[str, int] | None
"""A node's host and port (None: the one server of a plain URL)."""


class Connections:
    """Connections to one node, each lent to one call at a time (a free list).

    redis-py's pool does the same and more (health checks, limits, observability
    hooks): measured, its lending cost a call more than the rest of the client side.
    A connection is made by redis-py (handshake, password, TLS) and connects when
    first used. After a fork the child starts a list of its own.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._free: deque[Any] = deque()
        self._made: list[Any] = []
        self._pid = os.getpid()

    def take(self) -> Any:
        """A connection for one call; give it back with :meth:`give`."""
        if self._pid != os.getpid():
            self._free, self._made, self._pid = deque(), [], os.getpid()
        try:
            return self._free.pop()
        except IndexError:
            connection = self._make()
            self._made.append(connection)
            return connection

    def give(self, connection: Any) -> None:
        self._free.append(connection)

    def close(self) -> list[Any]:
        """Forget every connection; return them, for the caller to disconnect."""
        made, self._made, self._free = self._made, [], deque()
        return made if self._pid == os.getpid() else []


class Servers:
    """Where a key's slot is served, and connections to it (see the module docstring).

    Thread-safe. ``options`` are redis-py's connection options (timeouts, TLS...).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        # No retry by redis-py: sharedctx retries (see retry.py). An asyncio client
        # takes an asyncio Retry (given the sync one, redis-py >= 6 warns).
        self.options = {**options, "retry": Retry(NoBackoff(), 0)}
        self.async_options = {**options, "retry": AsyncRetry(NoBackoff(), 0)}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )
        self._connections: dict[Address, Connections] = {}
        self._lock = threading.Lock()

    def connections(self, address: Address) -> Connections:
        """The sync connections to a node."""
        connections = self._connections.get(address)
        if connections is None:
            with self._lock:
                connections = self._connections.get(address)
                if connections is None:
                    make = _maker(self.client(address).connection_pool)
                    connections = self._connections[address] = Connections(make)
        return connections

    def async_connections(self, address: Address) -> Connections:
        """The asyncio connections to a node, for the running event loop."""
        loop_clients = self._loops.get(asyncio.get_running_loop())
        connections = None if loop_clients is None else loop_clients.connections.get(address)
        if connections is None:
            make = _maker(self.async_client(address).connection_pool)
            with self._lock:
                by_address = self._loop_clients().connections
                connections = by_address.setdefault(address, Connections(make))
        return connections

    def new_connection(self, address: Address) -> Any:
        """A sync connection to a node of its own, outside :meth:`connections`."""
        return _maker(self.client(address).connection_pool)()

    def address(self, key: bytes) -> Address:
        """The node that serves ``key``'s slot (as far as this process knows)."""
        raise NotImplementedError

    def client(self, address: Address) -> redis.Redis:
        """The sync client of a node (its pool is shared by every thread)."""
        raise NotImplementedError

    def masters(self) -> list[redis.Redis]:
        """A sync client of every master (admin calls that scan every node)."""
        raise NotImplementedError

    def moved(self, error: redis.exceptions.AskError) -> None:
        """A node answered ``MOVED``: the slot map changed."""

    def refresh(self) -> None:
        """Reload the slot map (after a failover, or a node that cannot be reached)."""

    def async_client(self, address: Address) -> redis.asyncio.Redis:
        """The asyncio client of a node for the running event loop (one per loop)."""
        with self._lock:
            clients = self._loop_clients().clients
            client = clients.get(address)
            if client is None:
                client = clients[address] = self._new_async_client(address)
        return client

    def _loop_clients(self) -> _LoopClients:
        """The running loop's clients (the lock held), made on first use: they are
        closed when the loop shuts down (``asyncio.run``'s end), if not before."""
        loop = asyncio.get_running_loop()
        loop_clients = self._loops.get(loop)
        if loop_clients is None:
            loop_clients = self._loops[loop] = _LoopClients()
        return loop_clients

    def _new_async_client(self, address: Address) -> redis.asyncio.Redis:
        raise NotImplementedError

    def close(self) -> None:
        """Close every connection: the sync ones now, the asyncio ones on their loops
        (a loop that is not running closes its own when it next runs, or shuts down)."""
        with self._lock:
            lent, self._connections = list(self._connections.values()), {}
            loops, self._loops = list(self._loops.items()), weakref.WeakKeyDictionary()
        for connections in lent:
            for connection in connections.close():
                connection.disconnect()
        for loop, loop_clients in loops:
            if not loop.is_closed() and loop.is_running():
                asyncio.run_coroutine_threadsafe(loop_clients.aclose(), loop)

    async def aclose(self) -> None:
        """Close the running loop's asyncio connections (awaited)."""
        with self._lock:
            loop_clients = self._loops.pop(asyncio.get_running_loop(), None)
        if loop_clients is not None:
            await loop_clients.aclose()


class _LoopClients:
    """One event loop's asyncio clients and connections, by node.

    Closed by ``Servers.aclose``, or else when the loop shuts down: an asyncio loop
    finalizes the async generators it started (``shutdown_asyncgens``, which
    ``asyncio.run`` and ``asyncio.Runner`` call), and one is started here for that.
    """

    def __init__(self) -> None:
        self.clients: dict[Address, redis.asyncio.Redis] = {}
        self.connections: dict[Address, Connections] = {}

        async def at_shutdown() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                await self.aclose()

        self._at_shutdown = at_shutdown()  # held here: the loop holds it weakly
        with contextlib.suppress(StopIteration):  # it runs to its yield, awaiting nothing
            self._at_shutdown.asend(None).send(None)

    async def aclose(self) -> None:
        """Disconnect everything (again: nothing)."""
        clients, self.clients = list(self.clients.values()), {}
        lent, self.connections = list(self.connections.values()), {}
        for connections in lent:
            for connection in connections.close():
                await connection.disconnect()
        for client in clients:
            await client.aclose()


class OneServer(Servers):
    """A single Redis server, from its URL."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.url = url
        self._client = redis.Redis.from_url(url, **self.options)

    def address(self, key: bytes) -> Address:
        return None

    def client(self, address: Address) -> redis.Redis:
        return self._client

    def masters(self) -> list[redis.Redis]:
        return [self._client]

    def _new_async_client(self, address: Address) -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_url(self.url, **self.async_options)

    def close(self) -> None:
        super().close()
        self._client.close()
        self._client.connection_pool.disconnect()


class ClusterServers(Servers):
    """A Redis Cluster, found from some of its nodes."""

    def __init__(self, nodes: list[tuple[str, int]], options: dict[str, Any]) -> None:
        super().__init__(options)
        self.nodes = nodes
        # The cluster is asked for its nodes now. During a failover that may fail for a
        # while: try again until the deadline of a call.
        deadline = time.monotonic() + float(options.get("socket_timeout") or 2.0)
        while True:
            try:
                self._cluster = RedisCluster(
                    startup_nodes=[ClusterNode(host, port) for host, port in nodes],
                    reinitialize_steps=1,
                    **self.options,
                )
                return
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                if not_a_cluster(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def address(self, key: bytes) -> Address:
        node = self._cluster.nodes_manager.get_node_from_slot(key_slot(key))
        return node.host, node.port

    def client(self, address: Address) -> redis.Redis:
        assert address is not None
        host, port = address
        node = self._cluster.get_node(host=host, port=port)
        if node is None:  # a node this process does not know yet (a new master)
            self.refresh()
            node = self._cluster.get_node(host=host, port=port)
            if node is None:
                raise redis.exceptions.ConnectionError(f"no cluster node {host}:{port}")
        client: redis.Redis = self._cluster.get_redis_connection(node)
        return client

    def masters(self) -> list[redis.Redis]:
        return [self._cluster.get_redis_connection(node) for node in self._cluster.get_primaries()]

    def moved(self, error: redis.exceptions.AskError) -> None:
        self._cluster.nodes_manager.move_slot(error)

    def refresh(self) -> None:
        self._cluster.nodes_manager.initialize()

    def _new_async_client(self, address: Address) -> redis.asyncio.Redis:
        assert address is not None
        host, port = address
        return redis.asyncio.Redis(host=host, port=port, **self.async_options)

    def close(self) -> None:
        super().close()
        self._cluster.close()


def not_a_cluster(error: BaseException) -> bool:
    """Whether redis-py found a server that is not in cluster mode."""
    return "cluster mode is not enabled" in str(error).lower()


def _maker(pool: Any) -> Callable[[], Any]:
    """Make connections as redis-py's ``pool`` would (its class and options), without
    counting them: its sync pool counts each one it makes against ``max_connections``
    (100 by default) until it is given back to it, and these never are (they are lent
    by :class:`Connections`, or held by a listener until it ends)."""
    return lambda: pool.connection_class(**pool.connection_kwargs)


def servers_for(target: Target, options: dict[str, Any]) -> Servers:
    """The servers a checked URL names."""
    if target.cluster:
        return ClusterServers(target.nodes, {**options, **target.options})
    return OneServer(target.url, options)
