"""The awaitable twins: same behaviour as the sync API, shared with threads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from sharedctx import (
    ContextClosedError,
    ContextError,
    ContextEvent,
    InvalidKeyError,
    SchemaError,
    SharedContext,
    VersionConflictError,
    WaitTimeoutError,
    WatchOverflowError,
)
from sharedctx.testing._base import ContextFactory, SuiteBase


class AsyncTests(SuiteBase):
    """The awaitable twins: same behaviour as the sync API, shared with threads."""

    @pytest.mark.asyncio
    async def test_async_twins_behave_like_the_sync_calls(self, ctx: SharedContext) -> None:
        entry = await ctx.aset("analysis:mind:tim", {"score": 1}, source="mind", tags=["m"])
        assert entry.metadata.version == 1
        assert await ctx.aget("analysis:mind:tim") == {"score": 1}
        assert await ctx.aget("missing", "default") == "default"
        assert (await ctx.aget_entry("analysis:mind:tim")) == ctx.get_entry("analysis:mind:tim")
        assert await ctx.ahas("analysis:mind:tim")
        assert await ctx.akeys("analysis:*") == ["analysis:mind:tim"]
        assert [e.key for e in await ctx.afind_by_pattern("analysis:mind:*")] == [
            "analysis:mind:tim"
        ]
        assert [e.key for e in await ctx.afind_by_tag("m")] == ["analysis:mind:tim"]
        await ctx.aset_multiple({"a": 1, "b": 2})
        assert await ctx.aget_multiple(["a", "b", "c"]) == {"a": 1, "b": 2}
        assert (await ctx.aupdate("a", lambda value: value + 1)).value == 2
        assert await ctx.aexpire("a", 30)
        assert (await ctx.aget_entry("a")).ttl == 30  # type: ignore[union-attr]
        assert await ctx.adelete("a")
        assert not await ctx.adelete("a")
        assert (await ctx.astats()).entries == 2
        assert await ctx.apurge_expired() == 0
        assert await ctx.aclear() == 2

    @pytest.mark.asyncio
    async def test_async_twins_raise_the_same_errors(self, ctx: SharedContext) -> None:
        with pytest.raises(InvalidKeyError):
            await ctx.aget("")
        await ctx.aset("k", {"name": 1})
        with pytest.raises(VersionConflictError):
            await ctx.aset("k", 2, if_version=5)
        with pytest.raises(SchemaError):
            await ctx.aget("k", type=int)

    @pytest.mark.asyncio
    async def test_aupdate_and_aget_or_set_accept_coroutine_functions(
        self, ctx: SharedContext
    ) -> None:
        async def compute() -> dict[str, int]:
            await asyncio.sleep(0)
            return {"n": 1}

        async def bump(value: dict[str, int]) -> dict[str, int]:
            await asyncio.sleep(0)
            return {"n": value["n"] + 1}

        assert await ctx.aget_or_set("k", compute) == {"n": 1}
        assert (await ctx.aupdate("k", bump)).value == {"n": 2}

    @pytest.mark.asyncio
    async def test_concurrent_tasks_update_without_losing_increments(
        self, ctx: SharedContext
    ) -> None:
        async def bump(value: int) -> int:
            await asyncio.sleep(0)  # let other tasks interleave between read and write
            return value + 1

        async def worker() -> None:
            for _ in range(50):
                await ctx.aupdate("counter", bump, default=0)

        await asyncio.gather(*(worker() for _ in range(10)))
        assert ctx.get("counter") == 500

    @pytest.mark.asyncio
    async def test_aget_or_set_runs_the_factory_once_for_concurrent_tasks(
        self,
        ctx: SharedContext,
    ) -> None:
        calls = 0

        async def factory() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return "value"

        results = await asyncio.gather(*(ctx.aget_or_set("k", factory) for _ in range(20)))
        assert results == ["value"] * 20
        assert calls == 1

    @pytest.mark.asyncio
    async def test_a_thread_and_a_task_share_one_context(self, ctx: SharedContext) -> None:
        def thread_work() -> None:
            for n in range(200):
                ctx.update("shared", lambda value: value + 1, default=0)
                ctx.set(f"thread:{n}", n)

        async def task_work() -> None:
            for n in range(200):
                await ctx.aupdate("shared", lambda value: value + 1, default=0)
                await ctx.aset(f"task:{n}", n)

        thread = threading.Thread(target=thread_work)
        thread.start()
        await task_work()
        await asyncio.to_thread(thread.join)
        assert ctx.get("shared") == 400
        assert len(await ctx.akeys("thread:*")) == 200
        assert len(await ctx.akeys("task:*")) == 200

    @pytest.mark.asyncio
    async def test_await_for_returns_at_once_when_the_keys_are_there(
        self, ctx: SharedContext
    ) -> None:
        await ctx.aset("analysis:mind:a", 1)
        found = await ctx.await_for("analysis:mind:*", timeout=0)
        assert [entry.key for entry in found] == ["analysis:mind:a"]

    @pytest.mark.asyncio
    async def test_await_for_wakes_when_other_threads_deliver(self, ctx: SharedContext) -> None:
        def writers() -> None:
            for mind in ["c", "a", "b"]:
                ctx.set(f"analysis:mind:{mind}", mind)

        waiting = asyncio.create_task(ctx.await_for("analysis:mind:*", count=3, timeout=10))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await asyncio.to_thread(writers)
        found = await waiting
        assert [entry.key for entry in found] == [
            "analysis:mind:a",
            "analysis:mind:b",
            "analysis:mind:c",
        ]

    @pytest.mark.asyncio
    async def test_await_for_times_out(self, ctx: SharedContext) -> None:
        await ctx.aset("analysis:mind:a", 1)
        with pytest.raises(WaitTimeoutError, match="1 of 2"):
            await ctx.await_for("analysis:mind:*", count=2, timeout=0.05)
        with pytest.raises(WaitTimeoutError) as timed_out:
            await ctx.await_for_keys(["analysis:mind:a", "analysis:mind:b"], timeout=0.05)
        assert timed_out.value.missing == ("analysis:mind:b",)
        # Both: `except TimeoutError` and `except ContextError` each catch it.
        assert isinstance(timed_out.value, TimeoutError)
        assert isinstance(timed_out.value, ContextError)
        assert ctx.stats().subscriptions == 0  # the waiter's subscription is gone

    def test_wait_for_blocks_until_count_keys_match(self, ctx: SharedContext) -> None:
        def deliver() -> None:
            ctx.set("validation:task:1", 1)
            ctx.set("other", 1)
            ctx.set("validation:task:2", 2)

        timer = threading.Timer(0.05, deliver)
        timer.start()
        found = ctx.wait_for("validation:task:*", count=2, timeout=10)
        assert [entry.key for entry in found] == ["validation:task:1", "validation:task:2"]
        timer.join()

    def test_wait_for_times_out_and_rejects_bad_arguments(self, ctx: SharedContext) -> None:
        with pytest.raises(TimeoutError):
            ctx.wait_for("nothing:*", timeout=0.05)
        with pytest.raises(ValueError, match="count"):
            ctx.wait_for("x", count=0)
        with pytest.raises(ValueError, match="timeout"):
            ctx.wait_for("x", timeout=-1)

    def test_wait_for_ignores_a_key_deleted_before_the_count_is_reached(
        self, ctx: SharedContext
    ) -> None:
        ctx.set("job:1", 1)

        def churn() -> None:
            ctx.delete("job:1")
            ctx.set("job:2", 2)
            ctx.set("job:3", 3)

        timer = threading.Timer(0.05, churn)
        timer.start()
        found = ctx.wait_for("job:*", count=2, timeout=10)
        timer.join()
        assert [entry.key for entry in found] == ["job:2", "job:3"]

    @pytest.mark.asyncio
    async def test_async_watch_receives_events_from_concurrent_writers(
        self, ctx: SharedContext
    ) -> None:
        writers, per_writer = 4, 50
        received: list[ContextEvent] = []

        def write(n: int) -> None:
            for i in range(per_writer):
                ctx.set(f"w{n}:{i}", i)

        async with ctx.watch("w*", max_pending=writers * per_writer) as watch:
            threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
            for thread in threads:
                thread.start()
            async for event in watch:
                received.append(event)
                if len(received) == writers * per_writer:
                    break
            for thread in threads:
                await asyncio.to_thread(thread.join)
        revisions = [event.revision for event in received]
        assert revisions == sorted(revisions)
        assert len({event.key for event in received}) == writers * per_writer

    @pytest.mark.asyncio
    async def test_async_watch_does_not_block_the_event_loop(self, ctx: SharedContext) -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticking = asyncio.create_task(ticker())
        with ctx.watch() as watch:
            timer = threading.Timer(0.1, lambda: ctx.set("late", 1))
            timer.start()
            event = await watch.aget(timeout=5)
        ticking.cancel()
        # The event comes before the write has read its reply: wait for the write,
        # or the teardown closes its connection under it.
        await asyncio.to_thread(timer.join)
        assert event.key == "late"
        assert ticks >= 3  # the loop kept running while the watch waited (blocked: 0 or 1)

    @pytest.mark.asyncio
    async def test_async_watch_timeout_and_overflow(self, ctx: SharedContext) -> None:
        watch = ctx.watch(max_pending=2)
        with pytest.raises(TimeoutError):
            await watch.aget(timeout=0.02)
        for n in range(5):
            await ctx.aset(f"k{n}", n)
        assert [(await watch.aget()).key for _ in range(2)] == ["k0", "k1"]
        with pytest.raises(WatchOverflowError):
            await watch.aget()

    @pytest.mark.asyncio
    async def test_async_iteration_ends_when_the_context_closes(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context()
        watch = ctx.watch()
        seen: list[Any] = []

        async def consume() -> None:
            async for event in watch:
                seen.append(event.key)

        consumer = asyncio.create_task(consume())
        await ctx.aset("a", 1)
        await asyncio.sleep(0.01)
        ctx.close()
        await asyncio.wait_for(consumer, 5)
        assert seen == ["a"]

    @pytest.mark.asyncio
    async def test_aclose_closes_the_context_without_blocking(
        self, make_context: ContextFactory
    ) -> None:
        ctx = make_context()
        await ctx.aset("k", 1)
        watch = ctx.watch()
        await ctx.aclose()
        await ctx.aclose()  # idempotent
        assert ctx.closed
        assert watch.closed
        with pytest.raises(ContextClosedError):
            await ctx.aget("k")

    @pytest.mark.asyncio
    async def test_async_with_closes_and_adestroy_removes_the_data(
        self,
        make_context: ContextFactory,
    ) -> None:
        async with make_context() as ctx:
            await ctx.aset("k", 1)
            session = ctx.session_id
        assert ctx.closed
        other = make_context(session)
        await other.aset("k", 2)
        await other.adestroy()
        assert other.closed
        fresh = make_context(session)
        assert await fresh.aget("k") is None  # destroyed for everyone

    @pytest.mark.asyncio
    async def test_a_blocking_wait_on_the_event_loop_thread_is_refused(
        self, ctx: SharedContext
    ) -> None:
        with pytest.raises(ContextError, match="await_for"):
            ctx.wait_for("k", timeout=5)
        with pytest.raises(ContextError, match="await_for_keys"):
            ctx.wait_for_keys(["k"], timeout=5)
        await ctx.aset("k", 1)
        assert ctx.wait_for("k", timeout=5)[0].value == 1  # already there: nothing to wait for
