"""History: past versions, reads at a revision, snapshots and forks.

:class:`HistoryMachine` runs the store against a model that keeps every version of
every key (the truth at every revision) and the rules of what a session keeps (see
``docs/guides/history.md``): at or above the floor the rules give, every read at a
revision equals the truth; below it, ``HistoryCompactedError`` names that floor.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from sharedctx import (
    Backend,
    CapacityError,
    ContextEntry,
    ContextError,
    HistoryCompactedError,
    InvalidArgumentError,
    SessionExistsError,
    SharedContext,
    Snapshot,
)
from sharedctx.backends import compile_glob
from sharedctx.testing._base import ContextFactory, SuiteBase
from sharedctx.testing._model import KEYS, PATTERNS, Item, StoreMachine

__all__ = ["HistoryMachine", "HistoryTests"]

HOT_KEYS = st.sampled_from(["a", "b:1"])
"""Keys that the machine writes often: their histories are long."""


@dataclasses.dataclass
class _Past:
    revision: int
    item: Item
    deadline: float


class HistoryMachine(StoreMachine):
    """The store against a model of every version, with the rules of what is kept.

    The truth: ``timeline[key]``, every state of every key with the revision that
    made it (None: removed). The rules: from the opening of the context (with
    ``history_versions``), the session keeps, for each live key, its last ``history_versions``
    past versions for ``retention`` each (in clock units; a version goes with every
    older one of its key), and for each removed key the revision of its removal as
    long; ``floor`` and ``snapshot_floor`` as in the guide.
    """

    history_versions = 2
    retention = 1e9  # units of the machine's clock: never, unless a subclass says

    def __init__(self) -> None:
        self.revision = 0
        self.tracking = bool(self.history_versions)  # from the context's opening on
        self.floor = self.snapshot_floor = 0
        self.timeline: dict[str, list[tuple[int, Item | None]]] = {}
        self.live_revision: dict[str, int] = {}
        self.past: dict[str, list[_Past]] = {}
        self.removals: dict[str, tuple[int, float]] = {}
        super().__init__()

    # -- the model's rules -------------------------------------------------------------

    def write(
        self, key: str, value: Any, ttl: int | None, tags: tuple[str, ...], source: str
    ) -> None:
        old = self.model.get(key)
        super().write(key, value, ttl, tags, source)
        revision = self._next()
        self.timeline.setdefault(key, []).append((revision, dataclasses.replace(self.model[key])))
        if old is not None and self.tracking:
            past = self.past.setdefault(key, [])
            deadline = self.clock.now + self.retention
            past.append(_Past(self.live_revision[key], dataclasses.replace(old), deadline))
            dropped = not self.history_versions
            if len(past) > self.history_versions:
                del past[: len(past) - self.history_versions]
                dropped = True
            if dropped:
                self._raise_snapshot_floor(past[0].revision if past else revision)
        self.live_revision[key] = revision

    def removed(self, key: str, action: str) -> None:
        super().removed(key, action)
        revision = self._next()
        self.timeline[key].append((revision, None))
        del self.live_revision[key]
        if self.tracking:
            self.past.pop(key, None)
            self.removals[key] = (revision, self.clock.now + self.retention)
            self._raise_snapshot_floor(revision)

    def _next(self) -> int:
        self.due()
        self.revision += 1
        return self.revision

    def _raise_snapshot_floor(self, revision: int) -> None:
        self.snapshot_floor = max(self.snapshot_floor, revision)

    def due(self) -> None:
        """Drop what the retention no longer keeps, as of the clock's time."""
        now = self.clock.now
        for key, (revision, deadline) in list(self.removals.items()):
            if deadline <= now:
                del self.removals[key]
                self.floor = max(self.floor, revision)
        for key, past in list(self.past.items()):
            kept = [version for version in past if version.deadline > now]
            if len(kept) < len(past):
                self.past[key] = kept
                self._raise_snapshot_floor(kept[0].revision if kept else self.live_revision[key])

    def key_floor(self, key: str) -> int:
        if not self.tracking:
            return self.revision
        removal = self.removals.get(key)
        floor = max(self.floor, removal[0] if removal else 0)
        past = self.past.get(key)
        if past:
            oldest_revision, oldest_version = past[0].revision, past[0].item.version
        elif key in self.model:
            oldest_revision, oldest_version = self.live_revision[key], self.model[key].version
        else:
            return floor
        if oldest_version > 1:
            return oldest_revision
        return min(oldest_revision, floor)

    def at(self, key: str, revision: int) -> tuple[int, Item] | None:
        """The truth: the version of ``key`` just after ``revision`` (None: absent)."""
        found: tuple[int, Item] | None = None
        for changed, item in self.timeline.get(key, ()):
            if changed > revision:
                break
            found = None if item is None else (changed, item)
        return found

    def revisions(self, back: int) -> list[int]:
        """Revisions worth reading at: ``back`` before the last, and each side of
        every boundary of what is kept (the floors, the kept versions, the removals)."""
        marks = {self.revision - back, self.floor, self.snapshot_floor}
        marks.update(self.live_revision.values())
        marks.update(past.revision for versions in self.past.values() for past in versions)
        marks.update(revision for revision, _ in self.removals.values())
        near = {mark + step for mark in marks for step in (-1, 0)}
        return sorted(revision for revision in near if 0 <= revision <= self.revision)

    # -- rules -------------------------------------------------------------------------

    @rule(key=HOT_KEYS, values=st.lists(st.integers(0, 9), max_size=4))
    def overwrite(self, key: str, values: list[int]) -> None:
        """Write one key several times: long histories, trimmed by the count."""
        for value in values:
            self.purge()
            self.ctx.set(key, value, source="o", tags=["x"] if value % 2 else [])
            assert self.room_for({key})
            self.write(key, value, None, ("x",) if value % 2 else (), "o")

    @rule(key=st.one_of(HOT_KEYS, KEYS), back=st.integers(0, 8), data=st.data())
    def get_at(self, key: str, back: int, data: st.DataObject) -> None:
        self.purge()
        self.due()
        revision = data.draw(st.sampled_from(self.revisions(back)), "revision")
        floor = self.key_floor(key)
        if revision < floor:
            with pytest.raises(HistoryCompactedError) as raised:
                self.ctx.get_entry(key, revision=revision)
            assert raised.value.oldest == floor
            assert raised.value.key == key
            return
        _same(self.ctx.get_entry(key, revision=revision), key, self.at(key, revision))
        expected = self.at(key, revision)
        assert self.ctx.get(key, "-", revision=revision) == (
            "-" if expected is None else expected[1].value
        )

    @rule(key=st.one_of(HOT_KEYS, KEYS), limit=st.one_of(st.none(), st.integers(1, 3)))
    def history(self, key: str, limit: int | None) -> None:
        self.purge()
        self.due()
        expected: list[tuple[int, Item]] = []
        if key in self.model:
            expected.append((self.live_revision[key], self.model[key]))
            expected += [(past.revision, past.item) for past in reversed(self.past.get(key, []))]
        found = self.ctx.history(key, limit=limit)
        expected = expected[:limit]
        assert len(found) == len(expected)
        for entry, version in zip(found, expected, strict=True):
            _same(entry, key, version)

    @rule(
        back=st.integers(0, 12),
        pattern=PATTERNS,
        tag=st.sampled_from(["x", "y", "m"]),
        limit=st.one_of(st.none(), st.integers(1, 3)),
        after=st.one_of(st.none(), KEYS),
        data=st.data(),
    )
    def snapshot(
        self,
        back: int,
        pattern: str,
        tag: str,
        limit: int | None,
        after: str | None,
        data: st.DataObject,
    ) -> None:
        self.purge()
        self.due()
        revision = data.draw(st.sampled_from(self.revisions(back)), "revision")
        floor = self.snapshot_floor if self.tracking else self.revision
        snapshot = self.ctx.snapshot(revision)
        if revision < floor:
            with pytest.raises(HistoryCompactedError) as raised:
                snapshot.find_by_pattern(pattern)
            assert raised.value.oldest == floor
            assert raised.value.key is None
            return
        then: dict[str, tuple[int, Item]] = {}
        for key in sorted(self.timeline):
            version = self.at(key, revision)
            if version is not None:
                then[key] = version
        glob = compile_glob(pattern)
        matching = [key for key in then if glob.match(key)]
        assert [entry.key for entry in snapshot.find_by_pattern(pattern)] == matching
        for entry in snapshot.find_by_pattern(pattern):
            _same(entry, entry.key, then[entry.key])
        paged = [key for key in matching if after is None or key > after][:limit]
        page = snapshot.find_by_pattern(pattern, limit=limit, after=after)
        assert [entry.key for entry in page] == paged
        tagged = [key for key, (_, item) in then.items() if tag in item.tags]
        assert [entry.key for entry in snapshot.find_by_tag(tag)] == tagged
        assert len(snapshot) == len(then)

    @rule()
    def a_revision_after_the_last_is_refused(self) -> None:
        self.purge()
        with pytest.raises(InvalidArgumentError):
            self.ctx.get_entry("a", revision=self.revision + 1)

    @rule()
    def past_versions_are_counted(self) -> None:
        self.purge()
        self.due()
        stats = self.ctx.stats()
        kept = [past.item for versions in self.past.values() for past in versions]
        assert stats.revision == self.revision
        assert stats.past_versions == len(kept)
        # What the session's codec adds to a value's msgpack (a sealed session's seal),
        # seen on a live entry: a key with past versions lives.
        overhead = 0
        for key, item in self.model.items():
            (entry,) = self.ctx.history(key, limit=1)  # (not a read: LRU order stays)
            overhead = entry.size - len(msgspec.msgpack.encode(item.value))
            break
        sizes = [len(msgspec.msgpack.encode(item.value)) + overhead for item in kept]
        assert stats.past_bytes == sum(sizes)


def _same(entry: ContextEntry | None, key: str, expected: tuple[int, Item] | None) -> None:
    if expected is None:
        assert entry is None, f"{key} was absent then, not {entry!r}"
        return
    assert entry is not None, f"{key} was {expected!r} then"
    revision, item = expected
    assert entry.key == key
    assert entry.revision == revision
    assert entry.value == item.value
    assert entry.version == item.version
    assert entry.tags == item.tags
    assert entry.source == item.source


class HistoryTests(SuiteBase):
    """Past versions, reads at a revision, snapshots and forks."""

    history_examples = 25
    """Runs of the history machine (each up to 30 steps)."""

    @pytest.fixture
    def fork_of(self) -> Iterator[Callable[[SharedContext, int | None], SharedContext]]:
        """``fork_of(ctx, revision)``: ``ctx.fork`` to a new session id; each fork is
        destroyed afterwards."""
        made: list[SharedContext] = []

        def fork(ctx: SharedContext, revision: int | None) -> SharedContext:
            forked = ctx.fork(f"fork-{uuid.uuid4().hex[:12]}", revision=revision)
            made.append(forked)
            return forked

        yield fork
        for forked in made:
            try:
                forked.destroy()
            except ContextError:  # a test may have stopped the server
                forked.close()

    # -- history and reads at a revision -----------------------------------------------

    def test_history_gives_the_kept_versions_newest_first(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=2)
        first = ctx.set("k", "one", source="a", tags=["t"])
        ctx.set("other", 0)
        second = ctx.set("k", "two", source="b")
        third = ctx.set("k", "three")
        fourth = ctx.set("k", "four", tags=[])
        found = ctx.history("k")
        assert [entry.value for entry in found] == ["four", "three", "two"]  # 2 past kept
        assert [entry.version for entry in found] == [4, 3, 2]
        assert [entry.revision for entry in found] == [
            fourth.revision,
            third.revision,
            second.revision,
        ]
        assert (found[2].source, found[2].tags) == ("b", ())  # set replaces the tags
        assert found[2].created == first.created
        assert [entry.value for entry in ctx.history("k", limit=2)] == ["four", "three"]
        assert ctx.history("other") == [ctx.get_entry("other")]
        assert ctx.history("absent") == []

    def test_a_read_at_a_revision_gives_the_key_as_it_was_then(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=8)
        before = ctx.revision
        ctx.set("dna", {"profile": 1}, source="extract")
        validated = ctx.set("validation", "ran").revision
        ctx.set("dna", {"profile": 2}, source="synthesis")
        ctx.delete("validation")
        assert ctx.get("dna", revision=validated) == {"profile": 1}
        assert ctx.get_entry("dna", revision=validated).source == "extract"  # type: ignore[union-attr]
        assert ctx.get("dna") == {"profile": 2}
        assert ctx.get("dna", revision=before) is None  # not written yet
        assert ctx.get("dna", "none", revision=before) == "none"
        assert ctx.get("later", revision=validated) is None

    def test_a_revision_older_than_what_is_kept_raises_naming_the_oldest_readable(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=1)
        revisions = [ctx.set("k", n).revision for n in range(4)]
        assert ctx.get("k", revision=revisions[2]) == 2
        with pytest.raises(HistoryCompactedError) as raised:
            ctx.get("k", revision=revisions[1])
        assert raised.value.oldest == revisions[2]
        assert raised.value.key == "k"
        assert str(revisions[2]) in str(raised.value)
        with pytest.raises(HistoryCompactedError) as whole:
            ctx.snapshot(revisions[1]).find_by_pattern("*")
        assert whole.value.oldest == revisions[2]

    def test_a_revision_after_the_last_change_is_refused(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=2)
        ctx.set("k", 1)
        for read in (
            lambda: ctx.get("k", revision=ctx.revision + 1),
            lambda: ctx.snapshot(ctx.revision + 1).find_by_pattern("*"),
            lambda: ctx.fork("never", revision=ctx.revision + 1),
        ):
            with pytest.raises(InvalidArgumentError, match="after session"):
                read()
        for bad in (-1, "3", 1.0, True):
            with pytest.raises(InvalidArgumentError, match="revision"):
                ctx.get("k", revision=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="limit"):
            ctx.history("k", limit=0)

    def test_without_history_only_the_current_revision_is_readable(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context()
        ctx.set("k", 1)
        ctx.set("k", 2)
        assert ctx.history("k") == [ctx.get_entry("k")]
        assert ctx.get("k", revision=ctx.revision) == 2
        with pytest.raises(HistoryCompactedError) as raised:
            ctx.get("k", revision=1)
        assert raised.value.oldest == ctx.revision
        assert dict(ctx.snapshot()) == {"k": ctx.get_entry("k")}
        assert ctx.stats().past_versions == ctx.stats().past_bytes == 0

    @pytest.mark.parametrize("removal", ["delete", "clear", "evict"])
    def test_a_removed_keys_past_versions_go_with_it(
        self, make_context: ContextFactory, removal: str
    ) -> None:
        ctx = make_context(history_versions=8, max_entries=2)
        ctx.set("k", "one")
        seen = ctx.set("k", "two").revision
        assert ctx.stats().past_versions == 1
        if removal == "delete":
            ctx.delete("k")
        elif removal == "clear":
            ctx.clear()
        else:
            ctx.set("x", 1)
            ctx.set("y", 2)  # k, the least recently used, is evicted
        assert ctx.history("k") == []
        assert ctx.stats().past_versions == 0
        with pytest.raises(HistoryCompactedError) as raised:
            ctx.get("k", revision=seen)
        removed_at = raised.value.oldest
        assert removed_at > seen
        assert ctx.get("k", revision=removed_at) is None  # absent from its removal on
        ctx.set("k", "again")
        assert [entry.value for entry in ctx.history("k")] == ["again"]

    def test_past_versions_and_their_bytes_show_in_stats(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=3)
        for value in ("a", "bb", "ccc", "dddd", "eeeee"):
            ctx.set("k", value)
        stats = ctx.stats()
        assert stats.past_versions == 3  # ccc, bb... the last three past versions
        past = ctx.history("k")[1:]
        assert [entry.value for entry in past] == ["dddd", "ccc", "bb"]
        # The bytes of the values as stored (sealed ones too: their seal counts).
        assert stats.past_bytes == sum(entry.size for entry in past)
        assert stats.past_bytes >= sum(
            len(msgspec.msgpack.encode(value)) for value in ("bb", "ccc", "dddd")
        )

    # -- snapshots -----------------------------------------------------------------------

    def test_a_snapshot_is_the_session_at_a_revision_with_queries_and_pages(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=4)
        ctx.set_multiple({"a:1": 1, "a:2": 2, "b:1": 3}, tags=["old"])
        at = ctx.revision
        ctx.set("a:1", 10, tags=["new"])
        ctx.set("c:1", 4, tags=["old"])
        snapshot = ctx.snapshot(at)
        assert isinstance(snapshot, Snapshot)
        assert snapshot.revision == at
        assert sorted(snapshot) == ["a:1", "a:2", "b:1"]
        assert len(snapshot) == snapshot.count() == 3
        assert snapshot["a:1"].value == 1
        assert snapshot.value("a:1") == 1
        assert "c:1" not in snapshot
        assert snapshot.get("c:1") is None
        with pytest.raises(KeyError):
            snapshot["c:1"]
        assert [entry.key for entry in snapshot.find_by_pattern("a:*")] == ["a:1", "a:2"]
        assert [entry.key for entry in snapshot.find_by_pattern("*:1")] == ["a:1", "b:1"]
        assert [entry.key for entry in snapshot.find_by_tag("old")] == ["a:1", "a:2", "b:1"]
        assert snapshot.find_by_tag("new") == []
        page = snapshot.find_by_pattern("*", limit=2)
        rest = snapshot.find_by_pattern("*", after=page[-1].key)
        assert [entry.key for entry in page + rest] == ["a:1", "a:2", "b:1"]
        assert [record["value"] for record in snapshot.export()] == [1, 2, 3]
        now = ctx.snapshot()
        assert now.revision == ctx.revision
        assert {key: entry.value for key, entry in now.items()} == {
            "a:1": 10,
            "a:2": 2,
            "b:1": 3,
            "c:1": 4,
        }

    def test_a_snapshot_before_a_removal_is_no_longer_readable(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=4)
        ctx.set("keep", 1)
        ctx.set("gone", "personal data")
        before = ctx.revision
        ctx.delete("gone")
        with pytest.raises(HistoryCompactedError) as raised:
            ctx.snapshot(before).find_by_pattern("*")
        assert raised.value.oldest == ctx.revision  # the removal's revision
        assert ctx.get("keep", revision=before) == 1  # another key still reads then

    # -- forks ---------------------------------------------------------------------------

    def test_a_fork_holds_the_session_at_its_revision(
        self, make_context: ContextFactory, fork_of: Any
    ) -> None:
        ctx = make_context(history_versions=4)
        ctx.set("extract", {"text": "x"}, source="extract", tags=["input"])
        ctx.set("minds", [1, 2], source="minds", ttl=3600)
        before_synthesis = ctx.revision
        ctx.set("synthesis", "first try", source="synth")
        ctx.set("minds", [1, 2, 3], source="minds")
        forked = fork_of(ctx, before_synthesis)
        assert _records(forked.export()) == _records(ctx.snapshot(before_synthesis).export())
        assert forked.get("minds") == [1, 2]
        minds, then = forked.get_entry("minds"), ctx.get_entry("minds", revision=before_synthesis)
        assert minds is not None
        assert then is not None
        assert (minds.version, minds.ttl, minds.created) == (1, 3600, then.created)
        assert minds.expires == pytest.approx(then.expires, abs=0.01)  # its TTL runs on
        assert forked.get("synthesis") is None
        assert forked.revision == 2  # its own revisions: one set per entry
        watch = forked.watch(since=0)
        first = watch.get(timeout=5)
        watch.close()
        assert first.revision == 1
        assert (first.forked_from, first.forked_at) == (ctx.session_id, before_synthesis)
        forked.set("synthesis", "second try")
        assert ctx.get("synthesis") == "first try"  # the sessions are apart

    def test_a_fork_of_now_reads_the_session_in_one_step_without_history(
        self, make_context: ContextFactory, fork_of: Any
    ) -> None:
        ctx = make_context()  # no history kept
        ctx.set_multiple({f"k{n}": n for n in range(7)})
        ctx.set("k0", "again")
        forked = fork_of(ctx, None)
        assert _records(forked.export()) == _records(ctx.export())
        watch = forked.watch(since=0)
        assert watch.get(timeout=5).forked_at == ctx.revision
        watch.close()

    def test_a_fork_of_a_fork(self, make_context: ContextFactory, fork_of: Any) -> None:
        ctx = make_context(history_versions=2)
        ctx.set("a", 1)
        child = fork_of(ctx, None)
        child.set("b", 2)
        child.set("a", 10)
        grandchild = fork_of(child, 2)
        assert {r["key"]: r["value"] for r in grandchild.export()} == {"a": 1, "b": 2}
        watch = grandchild.watch(since=0)
        event = watch.get(timeout=5)
        watch.close()
        assert (event.forked_from, event.forked_at) == (child.session_id, 2)

    def test_a_fork_onto_an_existing_session_fails_and_changes_nothing(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(history_versions=2)
        ctx.set("mine", 1)
        target = make_context()
        target.set("theirs", "kept")
        emptied = make_context()
        emptied.set("gone", 1)
        emptied.delete("gone")  # no entry, but the session has changed
        for existing in (target, emptied):
            before = (_records(existing.export()), existing.revision)
            with pytest.raises(SessionExistsError, match=existing.session_id):
                ctx.fork(existing.session_id)
            assert (_records(existing.export()), existing.revision) == before
        with pytest.raises(InvalidArgumentError):
            ctx.fork(ctx.session_id)
        with pytest.raises(InvalidArgumentError):
            ctx.fork("")

    def test_a_fork_does_not_copy_what_has_expired_by_now(
        self, make_context: ContextFactory, fork_of: Any
    ) -> None:
        ctx = make_context(history_versions=2)
        ctx.set("short", "soon gone", ttl=0.3)
        ctx.set("long", 1, ttl=3600)
        at = ctx.revision
        ctx.set("short", "kept", ttl=None)  # replaced before it expired: not removed
        time.sleep(0.4)
        assert ctx.snapshot(at)["short"].value == "soon gone"  # as it was then
        forked = fork_of(ctx, at)
        assert forked.keys() == ["long"]
        assert _records(forked.export()) == _records(ctx.snapshot(at).export())

    def test_a_fork_under_concurrent_writers_equals_the_snapshot_at_its_revision(
        self, make_context: ContextFactory, fork_of: Any
    ) -> None:
        ctx = make_context(history_versions=10_000)
        ctx.set_multiple({f"k{n}": 0 for n in range(20)})
        stop = threading.Event()

        def write(number: int) -> None:
            other = make_context(ctx.session_id, history_versions=10_000)
            step = 0
            while not stop.is_set():
                step += 1
                other.set(f"k{(number * 7 + step) % 20}", [number, step])
                if step % 5 == 0:
                    other.set(f"w{number}:{step}", step)  # new keys too

        writers = [threading.Thread(target=write, args=(number,)) for number in range(3)]
        for writer in writers:
            writer.start()
        try:
            time.sleep(0.05)
            forks = [fork_of(ctx, None), fork_of(ctx, ctx.revision), fork_of(ctx, None)]
        finally:
            stop.set()
            for writer in writers:
                writer.join()
        revisions = []
        for forked in forks:
            watch = forked.watch(since=0)
            at = watch.get(timeout=5).forked_at
            watch.close()
            assert at is not None
            revisions.append(at)
            assert _records(forked.export()) == _records(ctx.snapshot(at).export())
        assert revisions == sorted(revisions)
        assert revisions[0] < ctx.revision

    def test_a_fork_larger_than_its_max_entries_is_refused_whole(
        self, make_context: ContextFactory
    ) -> None:
        writer = make_context(history_versions=2)
        writer.set_multiple({f"k{n}": n for n in range(5)})
        small = make_context(writer.session_id, max_entries=3)  # the fork's options
        new_id = f"fork-{uuid.uuid4().hex[:12]}"
        with pytest.raises(CapacityError, match="no room"):
            small.fork(new_id)
        after = make_context(new_id)
        assert (after.keys(), after.revision) == ([], 0)

    # -- settings and twins ---------------------------------------------------------------

    def test_bad_history_settings_are_refused(self, make_context: ContextFactory) -> None:
        for versions in (-1, 10_001, True, 1.5, "2"):
            with pytest.raises(InvalidArgumentError, match="history_versions"):
                make_context(history_versions=versions)
        for retention in (0, -1, float("nan"), "60"):
            with pytest.raises(InvalidArgumentError, match="history_retention"):
                make_context(history_retention=retention)

    @pytest.mark.asyncio
    async def test_the_awaitable_twins(self, make_context: ContextFactory) -> None:
        ctx = make_context(history_versions=2)
        await ctx.aset("k", 1)
        at = await ctx.arevision()
        await ctx.aset("k", 2)
        assert [entry.value for entry in await ctx.ahistory("k")] == [2, 1]
        assert await ctx.aget("k", revision=at) == 1
        assert (await ctx.aget_entry("k", revision=at)).value == 1  # type: ignore[union-attr]
        snapshot = await ctx.asnapshot(at)
        assert [entry.value for entry in await snapshot.afind_by_pattern("*")] == [1]
        assert (await snapshot.aget_entry("k")).value == 1  # type: ignore[union-attr]
        assert await snapshot.acount() == 1
        assert [record["value"] async for record in snapshot.aexport()] == [1]
        forked = await ctx.afork(f"fork-{uuid.uuid4().hex[:8]}", revision=at)
        try:
            assert await forked.aget("k") == 1
        finally:
            await forked.adestroy()

    # -- the model -----------------------------------------------------------------------

    def test_history_matches_a_model_of_every_version(self, backend: str | Backend) -> None:
        class Machine(HistoryMachine):
            ttl_scale = 3600  # nothing expires during a run

            def open(self, **options: Any) -> SharedContext:
                session = f"history-{uuid.uuid4().hex[:8]}"
                return SharedContext(
                    session, backend=backend, history_versions=self.history_versions, **options
                )

        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=self.history_examples,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


def _records(records: Any) -> list[dict[str, Any]]:
    """Export records without their TTL left (read at different moments)."""
    return [
        {field: value for field, value in record.items() if field != "ttl"} for record in records
    ]
