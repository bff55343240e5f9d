"""The places where the sealed tests keep sessions: memory, a Redis server, a Redis
Cluster, each opened with any key ring, and read raw (as someone with the server's
files would) or tampered with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from msgspec.structs import replace

from sharedctx import Backend, KeyRing, MemoryBackend, RedisBackend
from sharedctx.backends.redis import keys

from .._cluster import LocalCluster


class Place:
    """One backend's sessions, opened with one key ring or another."""

    def __init__(self, kind: str, url: str = "", cluster: LocalCluster | None = None) -> None:
        self.kind = kind
        self.url = url
        self.cluster = cluster
        self.namespace = f"t{uuid.uuid4().hex[:8]}"
        self.memory = MemoryBackend()
        self.opened: list[Backend] = []

    def backend(self, keyring: KeyRing | None = None) -> Backend:
        """This place, with ``keyring`` (None: plain)."""
        if self.kind == "memory":
            return self.memory.with_keyring(keyring)
        backend = RedisBackend(self.url, namespace=self.namespace, keyring=keyring)
        self.opened.append(backend)
        return backend

    def key(self, session_id: str, part: str) -> bytes:
        return keys.session_keys(self.namespace, session_id)[keys.SUFFIXES.index(part)]

    def raw(self, session_id: str, key: str) -> bytes:
        """The stored value of ``key`` as the backend holds it."""
        if self.kind == "memory":
            return self.memory._sessions[session_id].entries[key].encoded  # type: ignore[return-value]
        blob = self._redis(session_id, "HGET", self.key(session_id, "entries"), key)
        size = int(blob[:8])
        return bytes(blob[8 + size :])

    def set_raw(self, session_id: str, key: str, data: bytes) -> None:
        """Replace the stored value of ``key`` behind sharedctx's back."""
        if self.kind == "memory":
            entries = self.memory._sessions[session_id].entries
            entries[key] = replace(entries[key], encoded=data)
            return
        name = self.key(session_id, "entries")
        blob = self._redis(session_id, "HGET", name, key)
        size = int(blob[:8])
        self._redis(session_id, "HSET", name, key, bytes(blob[: 8 + size]) + data)

    def _redis(self, session_id: str, *command: Any) -> Any:
        if self.cluster is not None:
            node = self.cluster.node_for_key(self.key(session_id, "meta"))
            client = redis.Redis(host=node.host, port=node.port)
        else:
            client = redis.Redis.from_url(self.url)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def command(self, session_id: str, *command: Any) -> Any:
        """A raw command on the node of ``session_id``."""
        return self._redis(session_id, *command)

    def close(self) -> None:
        for backend in self.opened:
            backend.close()
        self.memory.close()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
    ]
)
def place(request: pytest.FixtureRequest) -> Iterator[Place]:
    if request.param == "memory":
        found = Place("memory")
    elif request.param == "redis":
        found = Place("redis", str(request.getfixturevalue("redis_server").url))
    else:
        cluster = request.getfixturevalue("redis_cluster")
        found = Place("cluster", cluster.url, cluster)
    yield found
    found.close()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing({"2026-12": KeyRing.generate_key()})
