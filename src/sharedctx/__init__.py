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

from typing import TYPE_CHECKING, Any

from sharedctx._closeable import Closeable
from sharedctx._codec import Codec, MsgpackCodec
from sharedctx._context import TTL, SharedContext
from sharedctx._errors import (
    BackendUnavailableError,
    CapacityError,
    ContextClosedError,
    ContextError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPatternError,
    InvalidTTLError,
    OutcomeUnknownError,
    SchemaError,
    SerializationError,
    SessionExistsError,
    SessionLostError,
    ValueTooLargeError,
    VersionConflictError,
    WatchOverflowError,
)
from sharedctx._events import Watch
from sharedctx._sessions import ContextManager, context_manager

# Before the pipeline, whose PipelineContext is a Schema of typed keys imported from here.
from sharedctx._typed import BoundKey, OnInvalid, Schema, TypedEvent, TypedKey, TypedWatch
from sharedctx._types import KEEP_TTL, ContextEntry, ContextEvent, ContextStats, EntryMetadata
from sharedctx.backends import Backend, Eviction, MemoryBackend
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

if TYPE_CHECKING:
    from sharedctx.backends.redis import RedisBackend

__version__ = "0.1.0"

__all__ = [
    "KEEP_TTL",
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
    "ValueTooLargeError",
    "VersionConflictError",
    "Watch",
    "WatchOverflowError",
    "__version__",
    "context_manager",
]


def __getattr__(name: str) -> Any:
    # RedisBackend imports redis-py, which the memory backend does not need.
    if name == "RedisBackend":
        from sharedctx import backends

        return backends.RedisBackend
    raise AttributeError(f"module 'sharedctx' has no attribute {name!r}")
