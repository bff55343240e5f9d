"""The Redis backend: one session shared by many processes and hosts.

``backend.py`` holds ``RedisBackend`` and its connections, ``store.py`` the store of
one session, ``follower.py`` the thread that sweeps and reads events, ``protocol.py``
the I/O-free part (script arguments, replies, retries), and ``script.lua`` the
server side: every operation is one call of it, atomic on the server.
"""

from sharedctx.backends.redis.backend import RedisBackend, SessionSummary
from sharedctx.backends.redis.protocol import redact
from sharedctx.backends.redis.store import RedisAsyncStore, RedisStore

__all__ = ["RedisAsyncStore", "RedisBackend", "RedisStore", "SessionSummary", "redact"]
