"""The Redis backend: one session shared by many processes and hosts.

Its parts each own one thing (see ``docs/architecture.md``): ``backend.py``
(``RedisBackend``: the parts put together, and the admin calls), ``servers.py`` (one
server or a cluster's nodes, and connections), ``calls.py`` (the call loop: retries,
redirects, deadlines), ``sessions.py`` (the open stores and their follower),
``store.py`` (one session's store), ``follower.py`` (sweeps; a pub/sub listener per
node), ``operations.py`` (the function's operations and replies, no I/O),
``keys.py``, ``retry.py`` and ``urls.py``, and ``script.lua``, the server side: a
Redis Functions library whose one function does every operation atomically.
"""

from sharedctx.backends.redis.backend import RedisBackend, SessionSummary
from sharedctx.backends.redis.store import RedisStore
from sharedctx.backends.redis.urls import redact

__all__ = ["RedisBackend", "RedisStore", "SessionSummary", "redact"]
