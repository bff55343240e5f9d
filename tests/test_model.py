"""The memory store against the dict model with a fake clock that the machine moves,
so entries expire mid-run (the kit, ``sharedctx.testing``, runs the model on every
backend without the clock rules)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from sharedctx import CapacityError, SharedContext
from sharedctx.testing import StoreMachine


class MemoryMachine(StoreMachine):
    """The memory store, with a fake clock that the machine moves."""

    def open(self, **options: Any) -> SharedContext:
        return SharedContext("model", clock=self.clock, **options)

    @rule(seconds=st.sampled_from([0.5, 1, 3, 10]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def purge_expired(self) -> None:
        assert self.ctx.purge_expired() == self.purge()


def test_capacity_error_is_impossible_with_lru() -> None:
    # The machine relies on LRU eviction never refusing a write of <= MAX_ENTRIES keys.
    with SharedContext("s", max_entries=1) as ctx:
        ctx.set("a", 1)
        ctx.set("b", 2)
        assert ctx.keys() == ["b"]
        with pytest.raises(CapacityError):
            ctx.set_multiple({"c": 1, "d": 2})


MemoryMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_memory_store_matches_the_model = MemoryMachine.TestCase
