"""Subscriptions and watches: every matching change, once, in order, outside the lock."""

from __future__ import annotations

import threading
import time

import pytest

from sharedctx import (
    ContextClosedError,
    ContextError,
    ContextEvent,
    InvalidArgumentError,
    SharedContext,
    WaitTimeoutError,
    WatchOverflowError,
)
from sharedctx.testing._base import ContextFactory, SuiteBase


class EventTests(SuiteBase):
    """Subscriptions and watches: every matching change, once, in order, outside the lock."""

    def test_subscribers_get_matching_events_with_entries(self, ctx: SharedContext) -> None:
        minds: list[ContextEvent] = []
        everything: list[ContextEvent] = []
        ctx.subscribe("analysis:mind:*", minds.append)
        ctx.subscribe("*", everything.append)
        ctx.set("analysis:mind:tim", {"score": 1}, source="mind:tim")
        ctx.set("synthesis:dna", 2)
        ctx.delete("analysis:mind:tim")
        assert [(e.action, e.key) for e in minds] == [
            ("set", "analysis:mind:tim"),
            ("delete", "analysis:mind:tim"),
        ]
        assert len(everything) == 3
        set_event, _, delete_event = everything
        assert set_event.entry.value == {"score": 1}
        assert set_event.entry.metadata.source == "mind:tim"
        assert set_event.session_id == ctx.session_id
        # A removal carries the removed entry's metadata, never its value: it is gone.
        assert (delete_event.entry.version, delete_event.entry.source) == (1, "mind:tim")
        assert not delete_event.entry.has_value
        assert delete_event.entry.value is None
        revisions = [event.revision for event in everything]
        assert revisions == sorted(revisions)
        assert len(set(revisions)) == 3

    def test_clear_notifies_a_delete_per_entry(self, ctx: SharedContext) -> None:
        events: list[ContextEvent] = []
        ctx.set_multiple({"a": 1, "b": 2})
        ctx.subscribe("*", events.append)
        ctx.clear()
        assert sorted((event.action, event.key) for event in events) == [
            ("delete", "a"),
            ("delete", "b"),
        ]

    def test_expire_call_emits_no_event(self, ctx: SharedContext) -> None:
        ctx.set("k", 1)
        events: list[ContextEvent] = []
        ctx.subscribe("*", events.append)
        ctx.expire("k", 100)
        assert events == []

    def test_a_subscription_sees_nothing_from_before_it_started(self, ctx: SharedContext) -> None:
        ctx.set("before", 1)
        events: list[ContextEvent] = []
        ctx.subscribe("*", events.append)
        ctx.set("after", 2)
        assert [event.key for event in events] == ["after"]

    def test_unsubscribe_stops_delivery(self, ctx: SharedContext) -> None:
        events: list[ContextEvent] = []
        subscription = ctx.subscribe("*", events.append)
        ctx.set("a", 1)
        assert ctx.unsubscribe(subscription) is True
        assert ctx.unsubscribe(subscription) is False
        assert ctx.unsubscribe("no-such-id") is False
        ctx.set("b", 2)
        assert [event.key for event in events] == ["a"]

    def test_a_callback_may_write_to_the_context_and_unsubscribe_itself(
        self, ctx: SharedContext
    ) -> None:
        seen: list[str] = []
        subscription = ""

        def echo(event: ContextEvent) -> None:
            seen.append(event.key)
            if event.key == "ping":
                ctx.set("pong", ctx.get("ping"))
                ctx.unsubscribe(subscription)

        subscription = ctx.subscribe("p*", echo)
        ctx.set("ping", 1)
        ctx.set("ping", 2)
        assert seen == ["ping"]
        assert ctx.get("pong") == 1

    def test_callbacks_see_the_change_already_visible(self, ctx: SharedContext) -> None:
        read_back: list[object] = []
        ctx.subscribe("k", lambda event: read_back.append(ctx.get("k")))
        ctx.set("k", "new")
        assert read_back == ["new"]

    def test_events_caused_inside_a_callback_keep_revision_order(self, ctx: SharedContext) -> None:
        events: list[ContextEvent] = []

        def cascade(event: ContextEvent) -> None:
            if event.key == "start":
                ctx.set("second", 2)

        ctx.subscribe("*", cascade)
        ctx.subscribe("*", events.append)
        ctx.set("start", 1)
        assert [event.key for event in events] == ["start", "second"]

    def test_notifications_false_disables_subscribe_and_watch(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context(notifications=False)
        with pytest.raises(ContextError, match="notifications"):
            ctx.subscribe("*", print)
        with pytest.raises(ContextError, match="notifications"):
            ctx.watch()
        ctx.set("k", 1)
        assert ctx.get("k") == 1

    def test_subscribe_rejects_a_non_callable(self, ctx: SharedContext) -> None:
        with pytest.raises(InvalidArgumentError, match="callable"):
            ctx.subscribe("*", "not callable")  # type: ignore[arg-type]

    def test_watch_yields_matching_events_in_order(self, ctx: SharedContext) -> None:
        with ctx.watch("analysis:*") as watch:
            ctx.set("analysis:a", 1)
            ctx.set("other", 2)
            ctx.delete("analysis:a")
            first, second = watch.get(timeout=5), watch.get(timeout=5)
        assert [(first.action, first.key), (second.action, second.key)] == [
            ("set", "analysis:a"),
            ("delete", "analysis:a"),
        ]
        assert watch.closed

    def test_watch_get_times_out(self, ctx: SharedContext) -> None:
        with ctx.watch() as watch, pytest.raises(WaitTimeoutError, match="no event on '\\*'"):
            watch.get(timeout=0.05)

    def test_iteration_ends_when_the_watch_is_closed(self, ctx: SharedContext) -> None:
        watch = ctx.watch()
        got: list[str] = []

        def consume() -> None:
            got.extend(event.key for event in watch)

        consumer = threading.Thread(target=consume)
        consumer.start()
        ctx.set("a", 1)
        ctx.set("b", 2)
        while len(got) < 2 and consumer.is_alive():
            consumer.join(0.01)
        watch.close()
        consumer.join(5)
        assert not consumer.is_alive()
        assert got == ["a", "b"]
        with pytest.raises(ContextClosedError):
            watch.get(timeout=0)

    def test_iteration_ends_when_the_context_is_closed(self, make_context: ContextFactory) -> None:
        ctx = make_context()
        watch = ctx.watch()
        finished = threading.Event()

        def consume() -> None:
            list(watch)
            finished.set()

        consumer = threading.Thread(target=consume)
        consumer.start()
        ctx.close()
        assert finished.wait(5)
        assert watch.closed

    def test_a_watch_that_falls_behind_is_closed_and_reports_overflow(
        self, ctx: SharedContext
    ) -> None:
        watch = ctx.watch(max_pending=3)
        for n in range(10):
            ctx.set(f"k{n}", n)  # never blocks, however far behind the watch is
        assert watch.closed
        assert [watch.get(timeout=1).key for _ in range(3)] == ["k0", "k1", "k2"]
        with pytest.raises(WatchOverflowError, match="3"):
            watch.get(timeout=1)
        with pytest.raises(WatchOverflowError):
            next(watch)
        assert ctx.stats().subscriptions == 0  # its subscription is gone

    def test_watch_rejects_a_bad_max_pending(self, ctx: SharedContext) -> None:
        with pytest.raises(InvalidArgumentError, match="max_pending"):
            ctx.watch(max_pending=0)

    def test_events_from_many_threads_arrive_complete_and_in_revision_order(
        self,
        ctx: SharedContext,
    ) -> None:
        events: list[ContextEvent] = []
        ctx.subscribe("*", events.append)
        threads, writes = 8, 300

        def writer(n: int) -> None:
            for i in range(writes):
                ctx.set(f"t{n}:{i % 7}", i)

        workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        revisions = [event.revision for event in events]
        assert len(events) == threads * writes
        assert revisions == sorted(revisions)
        assert len(set(revisions)) == len(revisions)
        for n in range(threads):  # per key, the last event carries the stored value
            for i in range(7):
                key = f"t{n}:{i}"
                last = [event for event in events if event.key == key][-1]
                assert last.entry.value == ctx.get(key)

    def test_callbacks_writing_to_each_others_context_do_not_deadlock(
        self,
        make_context: ContextFactory,
    ) -> None:
        first, second = make_context(), make_context()
        first.subscribe("x*", lambda event: second.set("y" + event.key, 1))
        second.subscribe("x*", lambda event: first.set("y" + event.key, 1))

        def write(ctx: SharedContext) -> None:
            for n in range(100):
                ctx.set(f"x{n}", n)

        writers = [threading.Thread(target=write, args=(ctx,)) for ctx in (first, second)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(30)
        assert not any(writer.is_alive() for writer in writers)
        deadline = time.monotonic() + 10  # the echoes are delivered after their writes
        while (len(first.keys("y*")), len(second.keys("y*"))) != (100, 100):
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def test_a_slow_subscriber_never_delays_a_write_it_does_not_watch(
        self, ctx: SharedContext
    ) -> None:
        in_callback, release = threading.Event(), threading.Event()

        def slow(event: ContextEvent) -> None:
            in_callback.set()
            release.wait(10)  # blocks until the other thread's write has returned

        ctx.subscribe("watched", slow)
        writer = threading.Thread(target=ctx.set, args=("watched", 1))
        writer.start()
        assert in_callback.wait(5)
        other = threading.Thread(target=ctx.set, args=("unwatched", 2))
        other.start()
        other.join(5)
        finished = not other.is_alive()  # the write returned while the callback still ran
        release.set()
        writer.join(5)
        assert finished, "a write to a key nobody watches waited for a slow subscriber"
        assert ctx.get("unwatched") == 2
