"""sharedctx: one shared context per pipeline session.

Components of a pipeline put results, read each other's, let data expire, find
entries by glob pattern or tag, get notified of changes and wait for each other,
safely from many threads and asyncio tasks.

    >>> from sharedctx import SharedContext
    >>> with SharedContext("session-1", default_ttl=3600) as ctx:
    ...     _ = ctx.set("analysis:mind:tim", {"score": 0.9}, source="mind:tim")
    ...     ctx.get("analysis:mind:tim")
    {'score': 0.9}
"""

import importlib
from typing import TYPE_CHECKING, Any

from sharedctx._checks import MAX_KEY_LENGTH, MAX_TTL
from sharedctx._closeable import Closeable
from sharedctx._codec import Codec, MsgpackCodec
from sharedctx._context import TTL, SharedContext
from sharedctx._errors import (
    AccessDeniedError,
    BackendUnavailableError,
    CapacityError,
    ContextClosedError,
    ContextError,
    HistoryCompactedError,
    IntegrityError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPatternError,
    InvalidTTLError,
    KeyUnavailableError,
    OutcomeUnknownError,
    SchemaError,
    SerializationError,
    SessionExistsError,
    SessionLostError,
    ValueTooLargeError,
    VersionConflictError,
    WaitTimeoutError,
    WatchOverflowError,
)
from sharedctx._events import Watch
from sharedctx._printable import printable
from sharedctx._sealed import KeyProvider, KeyRing
from sharedctx._sessions import ContextManager, context_manager
from sharedctx._snapshot import Snapshot
from sharedctx._typed import BoundKey, OnInvalid, Schema, TypedEvent, TypedKey, TypedWatch
from sharedctx._types import KEEP_TTL, ContextEntry, ContextEvent, ContextStats, EntryMetadata
from sharedctx.backends import Backend, Eviction, MemoryBackend
from sharedctx.telemetry import Telemetry

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend
    from sharedctx.pipeline import (
        CheckpointDecision,
        CheckpointStatus,
        DNAProfile,
        ExtractedData,
        ManifestContent,
        MindResult,
        OrchestratorResult,
        PipelineContext,
        PipelineStatus,
        SessionInfo,
        SourceMetadata,
        StandardKeys,
        SynthesisResult,
        TaskResult,
        ValidationSummary,
    )

# Imported when first used (PEP 562): the pipeline's schema (pydantic models) and
# RedisBackend (redis-py) are not needed by most users of the core.
_LAZY = {
    "RedisBackend": "sharedctx.backends.redis",
    **dict.fromkeys(
        [
            "CheckpointDecision",
            "CheckpointStatus",
            "DNAProfile",
            "ExtractedData",
            "ManifestContent",
            "MindResult",
            "OrchestratorResult",
            "PipelineContext",
            "PipelineStatus",
            "SessionInfo",
            "SourceMetadata",
            "StandardKeys",
            "SynthesisResult",
            "TaskResult",
            "ValidationSummary",
        ],
        "sharedctx.pipeline",
    ),
}

__version__ = "0.1.0"

__all__ = [
    "KEEP_TTL",
    "AccessDeniedError",
    "IntegrityError",
    "KeyProvider",
    "KeyRing",
    "KeyUnavailableError",
    "MAX_KEY_LENGTH",
    "MAX_TTL",
    "Backend",
    "BoundKey",
    "MemoryBackend",
    "CheckpointDecision",
    "Closeable",
    "Codec",
    "MsgpackCodec",
    "CheckpointStatus",
    "DNAProfile",
    "Eviction",
    "ExtractedData",
    "ManifestContent",
    "MindResult",
    "OnInvalid",
    "OrchestratorResult",
    "PipelineContext",
    "PipelineStatus",
    "RedisBackend",
    "Schema",
    "SessionInfo",
    "SourceMetadata",
    "StandardKeys",
    "TTL",
    "TypedEvent",
    "TypedKey",
    "TypedWatch",
    "SynthesisResult",
    "TaskResult",
    "Telemetry",
    "ValidationSummary",
    "BackendUnavailableError",
    "CapacityError",
    "ContextClosedError",
    "ContextEntry",
    "ContextManager",
    "ContextError",
    "ContextEvent",
    "ContextStats",
    "EntryMetadata",
    "HistoryCompactedError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidPatternError",
    "InvalidTTLError",
    "OutcomeUnknownError",
    "SchemaError",
    "SerializationError",
    "SessionExistsError",
    "SessionLostError",
    "SharedContext",
    "Snapshot",
    "ValueTooLargeError",
    "VersionConflictError",
    "WaitTimeoutError",
    "Watch",
    "WatchOverflowError",
    "__version__",
    "context_manager",
    "printable",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sharedctx' has no attribute {name!r}")
    if name == "RedisBackend":
        from sharedctx.backends import registry

        value: Any = registry.redis_backend_class()
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
