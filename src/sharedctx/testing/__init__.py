"""The conformance kit: the behavioural suite every sharedctx backend must pass.

A backend author points it at their backend with one fixture, the way cachetools
runs one test mixin over every cache::

    # test_my_backend.py
    import pytest
    from sharedctx.testing import BackendSuite

    class TestMyBackend(BackendSuite):
        @pytest.fixture
        def backend(self):
            backend = MyBackend(...)   # a Backend, or a URL that open_backend knows
            yield backend
            backend.close()

Every test then runs against it: reads and writes, values and snapshots, versions,
TTLs, queries and pages, capacity and eviction, events, watches and waits (also
from a revision), export and import, the asyncio twins, concurrency, history (past
versions, reads at a revision, snapshots, forks), and hypothesis state machines that
compare the store with a dict model and with a model of every version. The tests use
only sharedctx's public API through ``SharedContext(..., backend=backend)``. It
needs pytest, pytest-asyncio and hypothesis (``pip install 'sharedctx[testing]'``).
sharedctx runs it on its own backends (memory, Redis, Redis Cluster and a third one
written in its tests against the public protocol alone). The topic classes can be
used one by one (``class TestMine(EventTests)``).
"""

from sharedctx.testing._async import AsyncTests
from sharedctx.testing._base import ContextFactory, FakeClock, SuiteBase, contexts
from sharedctx.testing._capacity import CapacityTests
from sharedctx.testing._concurrency import ConcurrencyTests
from sharedctx.testing._context import ContextTests
from sharedctx.testing._events import EventTests
from sharedctx.testing._expiry import ExpiryTests
from sharedctx.testing._export import ExportTests
from sharedctx.testing._history import HistoryMachine, HistoryTests
from sharedctx.testing._model import ModelTests, StoreMachine
from sharedctx.testing._revisions import RevisionTests
from sharedctx.testing._values import ValueTests

__all__ = [
    "AsyncTests",
    "BackendSuite",
    "CapacityTests",
    "ConcurrencyTests",
    "ContextFactory",
    "ContextTests",
    "EventTests",
    "ExpiryTests",
    "ExportTests",
    "FakeClock",
    "HistoryMachine",
    "HistoryTests",
    "ModelTests",
    "RevisionTests",
    "StoreMachine",
    "SuiteBase",
    "ValueTests",
    "contexts",
]


class BackendSuite(
    ContextTests,
    ValueTests,
    ExpiryTests,
    CapacityTests,
    EventTests,
    RevisionTests,
    ExportTests,
    AsyncTests,
    ConcurrencyTests,
    ModelTests,
    HistoryTests,
):
    """Every suite of the kit: subclass it and give it a ``backend`` fixture."""
