"""sharedctx as a LangGraph store: ``SharedContextStore`` (``pip install 'sharedctx[langgraph]'``).

    >>> from sharedctx.integrations.langgraph import SharedContextStore
    >>> store = SharedContextStore("session-1")            # or a SharedContext, or backend=URL
    >>> store.put(("runs", "r1", "results"), "tim", {"score": 0.9})
    >>> store.get(("runs", "r1", "results"), "tim").value
    {'score': 0.9}
    >>> store.pattern_for(("runs", "r1"))                  # for context.wait_for / watch
    'lg:runs/r1/*'
    >>> store.close()

**Keys.** Item ``key`` of namespace ``(l1, ..., ln)`` is the context key
``<key_prefix><l1>/.../<ln>/<key>`` (``key_prefix`` defaults to ``"lg:"``), with the
characters ``%``, ``/``, ``*``, ``?``, ``[``, ``]`` and ``\\`` of every label and of the
key percent-encoded (``%25``, ``%2F``, ``%2A``...). A label may hold anything else,
``:`` included. The encoding is reversible; the keys of a namespace and of the
namespaces below it are those that start with its literal prefix; and an encoded key
holds no glob metacharacter, so ``pattern_for(namespace)`` is that prefix and ``*``,
and a search reads only that prefix's range of keys. A key is at most 1024 characters
once encoded (``InvalidKeyError`` beyond).

**Search** results are sorted by their context key (label by label in encoded form,
then key), filtered as ``InMemoryStore`` filters (``$eq``, ``$ne``, ``$gt``, ``$gte``,
``$lt``, ``$lte``; an ordering never matches a missing field or one of another type),
then paged with ``offset`` and ``limit``. A search reads its prefix in key order only
as far as that page needs: ``offset + limit`` entries without a filter, pages of at
least 100 until ``offset + limit`` match with one (such a search is then several
reads, not one snapshot). Semantic search (a ``query``) is not supported: it raises
``NotImplementedError``.

**TTLs** are LangGraph's, in minutes (``supports_ttl`` is True), at most ten years
(``InvalidTTLError`` beyond): a put's ``ttl`` (or ``ttl_config['default_ttl']`` when it
gives none) becomes the entry's TTL in seconds, and ``ttl=None`` means none, whatever
the context's ``default_ttl``. A get or search with ``refresh_ttl`` restarts the TTL of
each item it returns with ``context.expire`` (no new version, no event); without it, a
read changes nothing. Items expire by themselves, with ``expire`` events, and an expired
one is never seen.

**Created and updated** times are the entry's: ``created_at`` stays across puts,
``updated_at`` is the last put's; a read that refreshes a TTL changes neither.

Importing ``sharedctx`` does not import LangGraph; importing this module without it
raises ``ImportError`` naming the extra.
"""

try:
    import langgraph.store.base  # noqa: F401
except ModuleNotFoundError as exc:
    raise ImportError(
        f"sharedctx.integrations.langgraph needs LangGraph ({exc}): "
        "pip install 'sharedctx[langgraph]'"
    ) from exc

from sharedctx.integrations.langgraph._store import SharedContextStore

__all__ = ["SharedContextStore"]
