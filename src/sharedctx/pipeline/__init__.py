"""Typed access to the data of each phase of a persona-cloning pipeline.

``PipelineContext`` wraps a ``SharedContext`` with validated accessors per phase (it is
a ``Schema`` of typed keys); ``StandardKeys`` names the keys; the phase models are
pydantic models. All of them are re-exported from ``sharedctx``.
"""

from sharedctx.pipeline._context import PipelineContext, StandardKeys
from sharedctx.pipeline._models import (
    CheckpointDecision,
    CheckpointStatus,
    DNAProfile,
    ExtractedData,
    ManifestContent,
    MindResult,
    OrchestratorResult,
    PipelineStatus,
    SessionInfo,
    SourceKind,
    SourceMetadata,
    SynthesisResult,
    TaskResult,
    ValidationSummary,
)

__all__ = [
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
    "SourceKind",
    "SourceMetadata",
    "StandardKeys",
    "SynthesisResult",
    "TaskResult",
    "ValidationSummary",
]
