"""BENCHMARK BASELINE ONLY - not part of the sharedctx library.

A small Python port of the ``SharedContext`` class from the reference design
(story CL2-051, ``/work/shared/reference/000_af0a5067a97d200e.txt``). It keeps
the reference's algorithms *and its flaws on purpose*, so that benchmarks
compare sharedctx against what the story actually specified:

* plain ``dict`` store; values stored by reference (no copy), live entries are
  handed to subscribers and returned by the queries;
* expiry by the wall clock (``time.time()``), checked lazily on read;
* ``find_by_pattern`` / ``find_by_tag`` scan every entry;
* ``pattern_to_regex`` turns ``*`` into ``.*`` and ``?`` into ``.`` and escapes
  nothing else (``.``, ``(``, ``[`` keep their regex meaning or raise);
* ``notify_subscribers`` builds a regex for every subscription on every write;
* ``cleanup_expired`` (the once-a-minute sweep, only when ``max_entries`` is
  set) is a plain method here: no timer thread is started. It notifies nobody.

Deviations: TTLs are in seconds (the reference uses milliseconds) and the
methods are synchronous. The only addition is one ``threading.Lock`` taken
around each public method body, so the baseline can be used from threads like
the other baselines (dict+lock, cachetools+lock). Subscriber callbacks run
while that lock is held and must not call back into the same context.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Action = Literal["set", "delete"]


@dataclass(slots=True)
class ContextMetadata:
    source: str
    version: int
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ContextEntry:
    key: str
    value: Any
    created_at: float
    updated_at: float
    ttl: float | None
    expires_at: float | None
    metadata: ContextMetadata


@dataclass(slots=True)
class ContextSubscription:
    id: str
    pattern: str
    callback: Callable[[ContextEntry, Action], None]


class ReferenceSharedContext:
    """Port of the reference ``SharedContext`` (baseline; flaws kept)."""

    def __init__(self, session_id: str, default_ttl: float | None = None,
                 max_entries: int | None = None,
                 enable_notifications: bool = False) -> None:
        self.session_id = session_id
        self.default_ttl = default_ttl
        self.max_entries = max_entries
        self.enable_notifications = enable_notifications
        self.store: dict[str, ContextEntry] = {}
        self.subscriptions: list[ContextSubscription] = []
        self._lock = threading.Lock()  # the only addition to the reference

    # Core operations
    def get(self, key: str) -> Any:
        with self._lock:
            return self._get(key)

    def set(self, key: str, value: Any, ttl: float | None = None,
            source: str | None = None, tags: list[str] | None = None) -> None:
        with self._lock:
            self._set(key, value, ttl, source, tags)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._delete(key)

    def has(self, key: str) -> bool:
        with self._lock:
            entry = self.store.get(key)
            if entry is None:
                return False
            if self._is_expired(entry):
                self._delete(key)
                return False
            return True

    # Bulk operations
    def get_multiple(self, keys: list[str]) -> dict[str, Any]:
        with self._lock:
            result: dict[str, Any] = {}
            for key in keys:
                value = self._get(key)
                if value is not None:
                    result[key] = value
            return result

    def set_multiple(self, entries: dict[str, Any], ttl: float | None = None,
                     source: str | None = None) -> None:
        with self._lock:
            for key, value in entries.items():
                self._set(key, value, ttl, source, None)

    # Query operations (full scans)
    def find_by_pattern(self, pattern: str) -> list[ContextEntry]:
        with self._lock:
            regex = self.pattern_to_regex(pattern)
            return [e for e in self.store.values()
                    if regex.search(e.key) and not self._is_expired(e)]

    def find_by_tag(self, tag: str) -> list[ContextEntry]:
        with self._lock:
            return [e for e in self.store.values()
                    if tag in e.metadata.tags and not self._is_expired(e)]

    # Subscriptions
    def subscribe(self, pattern: str,
                  callback: Callable[[ContextEntry, Action], None]) -> str:
        with self._lock:
            sub = ContextSubscription(uuid.uuid4().hex, pattern, callback)
            self.subscriptions.append(sub)
            return sub.id

    def unsubscribe(self, subscription_id: str) -> bool:
        with self._lock:
            for i, sub in enumerate(self.subscriptions):
                if sub.id == subscription_id:
                    del self.subscriptions[i]
                    return True
            return False

    # Lifecycle
    def clear(self) -> None:
        with self._lock:
            self.store.clear()

    def destroy(self) -> None:
        with self._lock:
            self.store.clear()
            self.subscriptions = []

    def cleanup_expired(self) -> None:
        with self._lock:
            for key, entry in list(self.store.items()):
                if self._is_expired(entry):
                    del self.store[key]
            if self.max_entries and len(self.store) > self.max_entries:
                entries = sorted(self.store.items(), key=lambda kv: kv[1].updated_at)
                for key, _ in entries[:len(self.store) - self.max_entries]:
                    del self.store[key]

    @staticmethod
    def pattern_to_regex(pattern: str) -> re.Pattern[str]:
        regex_str = pattern.replace("*", ".*").replace("?", ".")
        return re.compile(f"^{regex_str}$")

    # Internals (caller holds the lock)
    def _get(self, key: str) -> Any:
        entry = self.store.get(key)
        if entry is None:
            return None
        if self._is_expired(entry):
            self._delete(key)
            return None
        return entry.value

    def _set(self, key: str, value: Any, ttl: float | None,
             source: str | None, tags: list[str] | None) -> None:
        now = time.time()
        ttl = ttl if ttl is not None else self.default_ttl
        old = self.store.get(key)
        entry = ContextEntry(
            key=key, value=value,
            created_at=old.created_at if old is not None else now,
            updated_at=now, ttl=ttl,
            expires_at=now + ttl if ttl else None,
            metadata=ContextMetadata(
                source=source or "unknown",
                version=old.metadata.version + 1 if old is not None else 1,
                tags=tags or []))
        self.store[key] = entry
        self._notify_subscribers(key, entry, "set")

    def _delete(self, key: str) -> bool:
        entry = self.store.pop(key, None)
        if entry is None:
            return False
        self._notify_subscribers(key, entry, "delete")
        return True

    @staticmethod
    def _is_expired(entry: ContextEntry) -> bool:
        if not entry.expires_at:
            return False
        return time.time() > entry.expires_at

    def _notify_subscribers(self, key: str, entry: ContextEntry, action: Action) -> None:
        if not self.enable_notifications:
            return
        for sub in self.subscriptions:
            regex = self.pattern_to_regex(sub.pattern)
            if regex.search(key):
                try:
                    sub.callback(entry, action)
                except Exception as error:  # console.error in the reference
                    print("Subscription callback error:", error, file=sys.stderr)
