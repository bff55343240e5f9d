"""The conformance kit (``sharedctx.testing``) on each of sharedctx's backends: memory,
the third backend of ``tests/backends/_recording.py``, Redis and Redis Cluster (the
``backend`` fixture of conftest.py)."""

from sharedctx.testing import BackendSuite


class TestEveryBackend(BackendSuite):
    """The whole behavioural suite, once per backend."""
