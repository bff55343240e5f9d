"""The behavioural suite (``sharedctx.testing``) on sealed sessions: every context of
the suite opens its session with a key ring, on memory, Redis and Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sharedctx import Backend, KeyRing, MemoryBackend, RedisBackend
from sharedctx.testing import BackendSuite


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing({"2026-12": KeyRing.generate_key(), "2026-06": KeyRing.generate_key()})


class TestSealedBackends(BackendSuite):
    """The whole suite, sealed, on each backend."""

    @pytest.fixture(
        params=[
            "memory",
            pytest.param("redis", marks=pytest.mark.redis),
            pytest.param("cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
        ]
    )
    def backend(self, request: pytest.FixtureRequest, ring: KeyRing) -> Iterator[Backend]:
        if request.param == "memory":
            memory = MemoryBackend(keyring=ring)
            yield memory
            memory.close()
            return
        server = request.getfixturevalue(
            "redis_server" if request.param == "redis" else "redis_cluster"
        )
        redis = RedisBackend(str(server.url), keyring=ring)
        yield redis
        redis.close()
