"""``import sharedctx`` is light: the extras and the heavy standard modules load when used.

Each test runs a fresh interpreter (pytest itself has imported most of these modules).
What ``import sharedctx`` costs is measured by ``benchmarks/import_time.py``, never
asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import sharedctx

EXTRAS = [
    "pydantic",
    "rich",
    "redis",
    "langgraph",
    "cryptography",
    "sharedctx.pipeline",
    "sharedctx.backends.redis",
    "sharedctx.cli",
    "sharedctx.demo",
    "sharedctx.terminal",
    "sharedctx.integrations",
    "sharedctx.testing",
]
"""What most users never touch: the demo pipeline's schema, the optional dependencies."""
HEAVY = ["asyncio", "concurrent.futures", "importlib.metadata"]
"""Standard modules that take most of an import's time, needed only by some calls:
asyncio by the awaitable twins, a thread pool by event delivery, the package metadata
by a backend URL whose scheme an entry point registers."""


def run(code: str) -> object:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def loaded_after_import(names: list[str]) -> object:
    return run(
        f"""
        import json, sys
        import sharedctx
        print(json.dumps([name for name in {names!r} if name in sys.modules]))
        """
    )


def test_import_sharedctx_loads_no_extra() -> None:
    assert loaded_after_import(EXTRAS) == []


def test_import_sharedctx_loads_neither_asyncio_nor_a_thread_pool_nor_package_metadata() -> None:
    assert loaded_after_import(HEAVY) == []


def test_every_public_name_is_importable_and_the_lazy_ones_are_the_real_ones() -> None:
    found = run(
        """
        import json, sys
        import sharedctx
        before = "sharedctx.pipeline" in sys.modules
        values = {name: getattr(sharedctx, name) for name in sharedctx.__all__}
        from sharedctx import *  # noqa: F403
        from sharedctx import MindResult, PipelineContext, RedisBackend
        import sharedctx.backends.redis, sharedctx.pipeline
        print(json.dumps({
            "before": before,
            "missing": [name for name, value in values.items() if value is None],
            "pipeline": PipelineContext is sharedctx.pipeline.PipelineContext
                and MindResult is sharedctx.pipeline.MindResult,
            "redis": RedisBackend is sharedctx.backends.redis.RedisBackend,
            "dir": dir(sharedctx) == sorted(sharedctx.__all__),
            "loaded": ["pydantic" in sys.modules, "redis" in sys.modules],
        }))
        """
    )
    assert found == {
        "before": False,
        "missing": [],
        "pipeline": True,
        "redis": True,
        "dir": True,
        "loaded": [True, True],
    }


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchName"):
        sharedctx.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_the_calls_that_need_the_deferred_modules_load_them() -> None:
    """Waits on threads, callbacks, get_or_set, twins, and the refusal of a blocking
    wait on an event loop, in an interpreter where sharedctx was imported first."""
    found = run(
        """
        import json, sys, threading
        import sharedctx
        from sharedctx import ContextError, SharedContext

        ctx = SharedContext("lazy")
        assert "asyncio" not in sys.modules
        threading.Timer(0.05, ctx.set, ("result:a", 1)).start()
        waited = [entry.key for entry in ctx.wait_for("result:*", timeout=10)]
        heard = []
        ctx.subscribe("result:*", lambda event: heard.append(event.key))
        ctx.set("result:b", 2)
        made = ctx.get_or_set("profile", lambda: {"built": True})

        import asyncio

        async def main():
            task = asyncio.create_task(ctx.await_for("late:*", timeout=10))
            await ctx.aset("late:x", 3)
            awaited = [entry.key for entry in await task]
            try:
                ctx.wait_for("never:*", timeout=1)
            except ContextError as error:
                refused = "await_for" in str(error)
            async with ctx.watch("late:*") as changes:
                await ctx.adelete("late:x")
                event = await changes.aget(timeout=5)
            return awaited, refused, event.action

        awaited, refused, action = asyncio.run(main())
        print(json.dumps([waited, heard, made, awaited, refused, action]))
        """
    )
    assert found == [["result:a"], ["result:b"], {"built": True}, ["late:x"], True, "delete"]
