"""The store against a plain dict model (hypothesis stateful testing).

The model keeps, per key, the value, version, deadline, tags and source, plus the
recency order for LRU eviction, and applies the rules literally: scan everything,
sort, compare. The store must agree after every step. On a backend under test the
machine runs with TTLs long enough that nothing expires during the run (its clock
is its own); a backend with an injectable clock can run a subclass that moves it
(sharedctx's own tests do so for the memory backend).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sharedctx import Backend, CapacityError, SharedContext, VersionConflictError
from sharedctx.backends import compile_glob
from sharedctx.testing._base import FakeClock, SuiteBase

__all__ = ["ModelTests", "StoreMachine"]

KEYS = st.sampled_from(["a", "ab", "abc", "b:1", "b:2", "b:10", "c.d", "c[d]", "z"])
PATTERNS = st.sampled_from(["*", "a*", "b:*", "b:?", "*1*", "ab", "[ab]*", "?", "c.*", "c\\[*"])
TAGS = st.lists(st.sampled_from(["x", "y", "z"]), max_size=2, unique=True)
TTLS = st.one_of(st.none(), st.integers(min_value=1, max_value=20))
VALUES = st.one_of(
    st.integers(-5, 5),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.sampled_from("pq"), st.integers(0, 3), max_size=2),
)
MAX_ENTRIES = 5


@dataclass
class Item:
    value: Any
    version: int
    deadline: float | None
    tags: tuple[str, ...]
    source: str


class StoreMachine(RuleBasedStateMachine):
    """The rules every backend follows (no clock: see :class:`MemoryMachine`)."""

    ttl_scale = 1  # seconds per TTL unit of the TTLS strategy

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()  # the model's; it moves only in MemoryMachine
        self.ctx = self.open(max_entries=MAX_ENTRIES, eviction="lru")
        self.model: OrderedDict[str, Item] = OrderedDict()  # order = LRU recency

    def open(self, **options: Any) -> SharedContext:
        raise NotImplementedError

    def teardown(self) -> None:
        self.ctx.destroy()

    def ttl(self, units: int | None) -> int | None:
        return None if units is None else units * self.ttl_scale

    # -- the model's rules ---------------------------------------------------------

    def purge(self) -> int:
        due = [key for key, item in self.model.items() if _due(item, self.clock.now)]
        for key in sorted(due, key=lambda key: (self.model[key].deadline, key)):
            self.removed(key, "expire")  # in the order of their deadlines, then keys
        return len(due)

    def removed(self, key: str, action: str) -> None:
        """``key`` was removed (``"delete"``, ``"expire"`` or ``"evict"``)."""
        del self.model[key]

    def touch(self, key: str) -> None:
        self.model.move_to_end(key)

    def write(
        self, key: str, value: Any, ttl: int | None, tags: tuple[str, ...], source: str
    ) -> None:
        old = self.model.get(key)
        deadline = None if ttl is None else self.clock.now + ttl
        self.model[key] = Item(value, (old.version if old else 0) + 1, deadline, tags, source)
        self.touch(key)

    def room_for(self, batch: set[str]) -> bool:
        fresh = [key for key in batch if key not in self.model]
        overflow = len(self.model) + len(fresh) - MAX_ENTRIES
        if len(batch) > MAX_ENTRIES:
            return False
        victims = [key for key in self.model if key not in batch][: max(overflow, 0)]
        for key in victims:
            self.removed(key, "evict")
        return True

    # -- rules -----------------------------------------------------------------------

    @rule(key=KEYS, value=VALUES, ttl=TTLS, tags=TAGS, conditional=st.booleans())
    def set(
        self, key: str, value: Any, ttl: int | None, tags: list[str], conditional: bool
    ) -> None:
        self.purge()
        current = self.model[key].version if key in self.model else 0
        if_version = (current if self.clock.now % 2 else current + 1) if conditional else None
        ttl = self.ttl(ttl)
        if if_version is not None and if_version != current:
            with pytest.raises(VersionConflictError):
                self.ctx.set(key, value, ttl=ttl, tags=tags, if_version=if_version)
            return
        entry = self.ctx.set(key, value, ttl=ttl, tags=tags, source="s", if_version=if_version)
        assert self.room_for({key})
        self.write(key, value, ttl, tuple(tags), "s")
        assert entry.metadata.version == self.model[key].version

    @rule(values=st.dictionaries(KEYS, VALUES, max_size=7), ttl=TTLS)
    def set_multiple(self, values: dict[str, Any], ttl: int | None) -> None:
        self.purge()
        ttl = self.ttl(ttl)
        if not self.room_for(set(values)):
            with pytest.raises(CapacityError):
                self.ctx.set_multiple(values, ttl=ttl, tags=["m"])
            return
        self.ctx.set_multiple(values, ttl=ttl, tags=["m"])
        for key, value in values.items():
            self.write(key, value, ttl, ("m",), "unknown")

    @rule(key=KEYS, step=st.integers(1, 3))
    def update(self, key: str, step: int) -> None:
        self.purge()
        entry = self.ctx.update(key, lambda value: [value, step], ttl=None)
        old = self.model.get(key)
        if old is None:
            assert self.room_for({key})
            self.write(key, [None, step], None, (), "unknown")
        else:
            self.touch(key)
            self.write(key, [old.value, step], None, old.tags, old.source)
        assert entry.value == self.model[key].value

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        self.purge()
        found = key in self.model
        assert self.ctx.delete(key) is found
        if found:
            self.removed(key, "delete")

    @rule(key=KEYS, ttl=TTLS)
    def expire(self, key: str, ttl: int | None) -> None:
        self.purge()
        ttl = self.ttl(ttl)
        found = key in self.model
        assert self.ctx.expire(key, ttl) is found
        if found:
            self.model[key].deadline = None if ttl is None else self.clock.now + ttl

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        self.purge()
        item = self.model.get(key)
        entry = self.ctx.get_entry(key)
        if item is None:
            assert entry is None
            return
        self.touch(key)
        assert entry is not None
        assert entry.value == item.value
        assert entry.metadata.version == item.version
        assert entry.metadata.tags == item.tags
        assert entry.metadata.source == item.source

    @rule(keys=st.lists(KEYS, max_size=4, unique=True))
    def get_multiple(self, keys: list[str]) -> None:
        self.purge()
        expected = {key: self.model[key].value for key in keys if key in self.model}
        for key in expected:
            self.touch(key)
        assert self.ctx.get_multiple(keys) == expected

    @rule(key=KEYS)
    def has(self, key: str) -> None:
        self.purge()
        assert self.ctx.has(key) is (key in self.model)

    @rule(pattern=PATTERNS)
    def find_by_pattern(self, pattern: str) -> None:
        self.purge()
        glob = compile_glob(pattern)
        expected = sorted(key for key in self.model if glob.match(key))
        assert [entry.key for entry in self.ctx.find_by_pattern(pattern)] == expected
        assert self.ctx.keys(pattern) == expected

    @rule(tag=st.sampled_from(["x", "y", "z", "m"]))
    def find_by_tag(self, tag: str) -> None:
        self.purge()
        expected = sorted(key for key, item in self.model.items() if tag in item.tags)
        assert [entry.key for entry in self.ctx.find_by_tag(tag)] == expected

    @rule(
        tag=st.sampled_from(["x", "y", "z"]),
        after=st.one_of(st.none(), KEYS),
        limit=st.one_of(st.none(), st.integers(1, 3)),
    )
    def find_a_page_by_tag(self, tag: str, after: str | None, limit: int | None) -> None:
        self.purge()
        tagged = sorted(key for key, item in self.model.items() if tag in item.tags)
        expected = [key for key in tagged if after is None or key > after][:limit]
        page = self.ctx.find_by_tag(tag, limit=limit, after=after)
        assert [entry.key for entry in page] == expected

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self) -> None:
        self.purge()
        assert self.ctx.clear() == len(self.model)
        for key in sorted(self.model):  # in key order
            self.removed(key, "delete")

    @invariant()
    def same_live_keys(self) -> None:
        self.purge()
        assert len(self.ctx) == len(self.model) <= MAX_ENTRIES
        assert self.ctx.keys() == sorted(self.model)


def _due(item: Item, now: float) -> bool:
    return item.deadline is not None and item.deadline <= now


class ModelTests(SuiteBase):
    """The backend under test agrees with the dict model after every step."""

    model_examples = 40
    """Runs of the machine (each up to 30 steps); a subclass may ask for more."""

    def test_the_store_matches_a_dict_model(self, backend: str | Backend) -> None:
        class Machine(StoreMachine):
            ttl_scale = 3600  # nothing expires during a run

            def open(self, **options: Any) -> SharedContext:
                session = f"model-{uuid.uuid4().hex[:8]}"
                return SharedContext(session, backend=backend, **options)

        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=self.model_examples,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
