"""The Redis backend: one session shared by many processes and hosts."""

from sharedctx.backends.redis._store import RedisAsync, RedisBackend, RedisStore, redact

__all__ = ["RedisAsync", "RedisBackend", "RedisStore", "redact"]
