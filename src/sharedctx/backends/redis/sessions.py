"""The open sessions of one Redis backend: who opens a store, and who follows it.

:class:`Sessions` is the one owner of a backend's open stores: it makes each
``RedisStore`` (with the session's keys and settings packed once), hands it to the
follower that sweeps it and, while its context listens, hears its channel, and
forgets it when the store closes. The store sees it only as its
:class:`~sharedctx.backends.redis.store.Listening`.
"""

from __future__ import annotations

import threading
import weakref

from sharedctx._codec import Codec
from sharedctx._events import EventHub
from sharedctx._sealed import KeyProvider, SessionKeys
from sharedctx.backends.base import StoreOptions
from sharedctx.backends.redis import keys
from sharedctx.backends.redis.calls import LIBRARY, Caller
from sharedctx.backends.redis.follower import Follower
from sharedctx.backends.redis.operations import Settings, prefix
from sharedctx.backends.redis.store import RedisStore

__all__ = ["SessionSettings", "Sessions"]


class SessionSettings:
    """What the function is told of a backend's sessions on every call (see the
    header of ``script.lua``), and how long a ``get_or_set`` lease lives."""

    def __init__(
        self,
        *,
        namespace: str,
        stream_max_len: int,
        event_retention: float,
        session_ttl: float | None,
        request_window: float,
        lease_ttl: float,
        history_versions: int = 0,
        history_retention: float | None = None,
        listeners_counted: bool = False,
    ) -> None:
        self.namespace = namespace
        self.listeners_counted = listeners_counted
        self.history_versions = history_versions
        self.history_retention = event_retention if history_retention is None else history_retention
        self.stream_max_len = stream_max_len
        self.event_retention = event_retention
        self.session_ttl = session_ttl
        self.request_window = request_window
        self.lease_ttl = lease_ttl

    def for_store(self, options: StoreOptions) -> Settings:
        return Settings(
            self.stream_max_len,
            options.max_entries,
            options.eviction,
            self.session_ttl,
            self.event_retention,
            self.request_window,
            self.history_versions if options.history_versions is None else options.history_versions,
            self.history_retention
            if options.history_retention is None
            else options.history_retention,
            self.listeners_counted,
        )


class Sessions:
    """A backend's open stores and its follower (see the module docstring)."""

    def __init__(
        self,
        caller: Caller,
        settings: SessionSettings,
        purge_interval: float,
        keyring: KeyProvider | None = None,
    ) -> None:
        self._caller = caller
        self._settings = settings
        self._keyring = keyring
        # What this process knows of each sealed session's data keys, shared by the
        # session's stores (and by their entries) while any holds it.
        self._keys: weakref.WeakValueDictionary[str, SessionKeys] = weakref.WeakValueDictionary()
        self._keys_lock = threading.Lock()
        self.follower = Follower(
            caller, purge_interval=purge_interval, lease_ttl=settings.lease_ttl
        )

    def open(
        self, session_id: str, hub: EventHub, options: StoreOptions, codec: Codec
    ) -> RedisStore:
        """A store of ``session_id`` for one context, swept from now on."""
        names = keys.session_keys(self._settings.namespace, session_id)
        store = RedisStore(
            session_id,
            hub,
            options,
            codec,
            calls=self._caller,
            prefix=prefix(LIBRARY, names, self._settings.for_store(options)),
            channel=names[-1],
            lease_ttl=self._settings.lease_ttl,
            listening=self,
            keys=self._session_keys(session_id),
        )
        self.follower.add(store)
        return store

    def _session_keys(self, session_id: str) -> SessionKeys | None:
        if self._keyring is None:
            return None
        with self._keys_lock:
            keys = self._keys.get(session_id)
            if keys is None:
                keys = SessionKeys(self._keyring, self._settings.namespace, session_id)
                self._keys[session_id] = keys
            return keys

    def listen(self, store: RedisStore) -> None:
        """Hand ``store`` its session's changes made elsewhere."""
        self.follower.listen(store)

    def unlisten(self, store: RedisStore) -> None:
        """Stop handing ``store`` its session's changes."""
        self.follower.unlisten(store)

    def forget(self, store: RedisStore) -> None:
        """``store`` closed: no more sweeps or listening."""
        self.follower.remove(store)

    def close(self) -> None:
        """Stop the follower for good (the backend is closing)."""
        self.follower.stop()
