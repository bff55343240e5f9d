"""``PipelineContext``: typed, validated accessors for each phase of the pipeline.

``PipelineContext`` is a :class:`~sharedctx.Schema`: every phase's data is one of the
typed keys declared at the top of the class, a standard key (or, for per-id data such
as mind results, a family of keys with an id), the model it must fit, and the source
and tags written with it. That table is the one place that says which key, source and
tags a phase writes; the typed keys validate each value, check a per-id model's own
id, and fill the id into the key, the source and the tags.

Each accessor is an explicit method over its typed key: ``set_dna_profile`` is
``return self.dna_profile.set(value)`` and its twin ``aset_dna_profile`` is ``return
await self.dna_profile.aset(value)``. So mypy checks each accessor's signature against
its typed key's model, and a test checks that its docstring names the key, source and
tags that it writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from sharedctx import ContextEntry, InvalidArgumentError, Schema, TypedKey, WaitTimeoutError
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
    SourceMetadata,
    SynthesisResult,
    TaskResult,
    ValidationSummary,
)

__all__ = ["PipelineContext", "StandardKeys"]


class StandardKeys:
    """The keys (and, with ``*`` for an id, the key patterns) of the pipeline's data."""

    EXTRACTED_DATA = "extraction:data"
    SOURCE_METADATA = "extraction:metadata"
    MIND_RESULTS = "analysis:mind:*"
    ORCHESTRATOR_RESULT = "analysis:orchestrator"
    DNA_PROFILE = "synthesis:dna"
    SYNTHESIS_RESULT = "synthesis:result"
    VALIDATION_RESULTS = "validation:task:*"
    VALIDATION_SUMMARY = "validation:summary"
    CHECKPOINT_STATUS = "checkpoint:*:status"
    CHECKPOINT_DECISION = "checkpoint:*:decision"
    MANIFEST_CONTENT = "generation:manifest"
    SESSION_INFO = "session:info"
    PIPELINE_STATUS = "pipeline:status"

    @staticmethod
    def for_id(pattern: str, id_: str) -> str:
        """The key of ``id_`` under a per-id pattern: ``for_id(MIND_RESULTS, "tim")``."""
        return TypedKey(_per_id(pattern, "id"), object).key(id_)

    @staticmethod
    def id_of(pattern: str, key: str) -> str:
        """The id in a key written under a per-id pattern (ids may contain ``:``)."""
        head, _, tail = pattern.partition("*")
        return key[len(head) : len(key) - len(tail)]


def _per_id(pattern: str, id_name: str) -> str:
    """The typed key template of a per-id pattern of :class:`StandardKeys`: its ``*``
    is the id ``{id_name}``, the rest is literal text (its braces doubled)."""
    head, star, tail = pattern.partition("*")
    if not star:
        raise InvalidArgumentError(f"{pattern!r} is not a per-id key pattern")
    return f"{_literal(head)}{{{id_name}}}{_literal(tail)}"


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


_K = StandardKeys


class PipelineContext(Schema):
    """Typed access to one pipeline session's shared context.

    Built from a ``SharedContext`` to wrap, or from a session id, looked up or created
    in ``manager``: then the context has the manager's settings. The default manager
    is the module-level ``context_manager``, whose contexts have ``SharedContext``'s
    defaults and share the session with every other context of that id in the
    process. For other settings, pass your own ``ContextManager(...)`` as
    ``manager``, or a ``SharedContext``.

    Each phase has ``set_...``/``get_...`` accessors (and ``aset_...``/``aget_...``
    twins): a write validates the value against the phase's pydantic model and raises
    ``SchemaError`` without storing anything if it does not fit; a read returns a
    model instance, None if absent, and raises ``SchemaError`` if what is stored does
    not fit. Writes record the phase's source and tags. A per-id write
    (``set_mind_result(mind_id, result)``...) also checks that the model's own id
    (``result.mind_id``...) is the id it is written under.

    It is a :class:`~sharedctx.Schema`: each phase's typed key is an attribute too
    (``pipeline.mind_results.watch()``, ``pipeline.dna_profile.update(fn)``...), and
    ``PipelineContext.check(context)`` reports the entries that do not fit.
    """

    # The schema: key (or family of per-id keys), model, source and tags of each phase.
    # fmt: off
    extracted_data = TypedKey(_K.EXTRACTED_DATA, list[ExtractedData], source="extraction",
                              tags=["phase:extraction", "data"])
    source_metadata = TypedKey(_K.SOURCE_METADATA, SourceMetadata, source="extraction",
                               tags=["phase:extraction", "metadata"])
    mind_results = TypedKey(_per_id(_K.MIND_RESULTS, "mind_id"), MindResult,
                            source="mind:{mind_id}", tags=["phase:analysis", "mind", "{mind_id}"],
                            id_field="mind_id")
    orchestrator_result = TypedKey(_K.ORCHESTRATOR_RESULT, OrchestratorResult,
                                   source="orchestrator", tags=["phase:analysis", "orchestrator"])
    dna_profile = TypedKey(_K.DNA_PROFILE, DNAProfile, source="dna-synthesizer",
                           tags=["phase:synthesis", "dna"])
    synthesis_result = TypedKey(_K.SYNTHESIS_RESULT, SynthesisResult, source="synthesis",
                                tags=["phase:synthesis", "result"])
    validation_results = TypedKey(_per_id(_K.VALIDATION_RESULTS, "task_id"), TaskResult,
                                  source="validation", tags=["phase:validation", "{task_id}"],
                                  id_field="task_id")
    validation_summary = TypedKey(_K.VALIDATION_SUMMARY, ValidationSummary, source="validation",
                                  tags=["phase:validation", "summary"])
    checkpoint_statuses = TypedKey(_per_id(_K.CHECKPOINT_STATUS, "checkpoint_id"),
                                   CheckpointStatus, source="checkpoint",
                                   tags=["phase:checkpoint", "{checkpoint_id}"],
                                   id_field="checkpoint_id")
    checkpoint_decisions = TypedKey(_per_id(_K.CHECKPOINT_DECISION, "checkpoint_id"),
                                    CheckpointDecision, source="checkpoint",
                                    tags=["phase:checkpoint", "{checkpoint_id}"],
                                    id_field="checkpoint_id")
    manifest_content = TypedKey(_K.MANIFEST_CONTENT, ManifestContent, source="generation",
                                tags=["phase:generation", "manifest"])
    session_info = TypedKey(_K.SESSION_INFO, SessionInfo, source="session", tags=["session"])
    pipeline_status = TypedKey(_K.PIPELINE_STATUS, PipelineStatus, source="pipeline")
    # fmt: on

    # -- extraction ----------------------------------------------------------------

    def set_extracted_data(self, value: list[ExtractedData]) -> ContextEntry:
        """Store the extracted sources; return the stored entry.

        Key ``extraction:data``, source ``extraction``, tags ``phase:extraction``,
        ``data``. Raises ``SchemaError`` if the value does not fit
        ``list[ExtractedData]`` (nothing is stored then).
        """
        return self.extracted_data.set(value)

    async def aset_extracted_data(self, value: list[ExtractedData]) -> ContextEntry:
        """Awaitable twin of :meth:`set_extracted_data`."""
        return await self.extracted_data.aset(value)

    def get_extracted_data(self) -> list[ExtractedData] | None:
        """The extracted sources; None if absent.

        Key ``extraction:data``. Raises ``SchemaError`` if what is stored does not fit
        ``list[ExtractedData]``.
        """
        return self.extracted_data.get()

    async def aget_extracted_data(self) -> list[ExtractedData] | None:
        """Awaitable twin of :meth:`get_extracted_data`."""
        return await self.extracted_data.aget()

    def set_source_metadata(self, value: SourceMetadata) -> ContextEntry:
        """Store the sources' metadata; return the stored entry.

        Key ``extraction:metadata``, source ``extraction``, tags ``phase:extraction``,
        ``metadata``. Raises ``SchemaError`` if the value does not fit
        ``SourceMetadata`` (nothing is stored then).
        """
        return self.source_metadata.set(value)

    async def aset_source_metadata(self, value: SourceMetadata) -> ContextEntry:
        """Awaitable twin of :meth:`set_source_metadata`."""
        return await self.source_metadata.aset(value)

    def get_source_metadata(self) -> SourceMetadata | None:
        """The sources' metadata; None if absent.

        Key ``extraction:metadata``. Raises ``SchemaError`` if what is stored does not
        fit ``SourceMetadata``.
        """
        return self.source_metadata.get()

    async def aget_source_metadata(self) -> SourceMetadata | None:
        """Awaitable twin of :meth:`get_source_metadata`."""
        return await self.source_metadata.aget()

    # -- analysis ------------------------------------------------------------------

    def set_mind_result(self, id_: str, value: MindResult) -> ContextEntry:
        """Store the result of mind ``id_``; return the stored entry.

        Key ``analysis:mind:*`` (``*`` is ``id_``), source ``mind:*``, tags
        ``phase:analysis``, ``mind``, ``*``. Raises ``SchemaError`` if the value does
        not fit ``MindResult`` or its ``mind_id`` is not ``id_`` (nothing is stored
        then), ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self.mind_results.set(id_, value)

    async def aset_mind_result(self, id_: str, value: MindResult) -> ContextEntry:
        """Awaitable twin of :meth:`set_mind_result`."""
        return await self.mind_results.aset(id_, value)

    def get_mind_result(self, id_: str) -> MindResult | None:
        """The result of mind ``id_``; None if absent.

        Key ``analysis:mind:*`` (``*`` is ``id_``). Raises ``SchemaError`` if what is
        stored does not fit ``MindResult``, ``InvalidKeyError`` if ``id_`` is not a
        valid key part.
        """
        return self.mind_results.get(id_)

    async def aget_mind_result(self, id_: str) -> MindResult | None:
        """Awaitable twin of :meth:`get_mind_result`."""
        return await self.mind_results.aget(id_)

    def set_orchestrator_result(self, value: OrchestratorResult) -> ContextEntry:
        """Store the orchestrator's result; return the stored entry.

        Key ``analysis:orchestrator``, source ``orchestrator``, tags ``phase:analysis``,
        ``orchestrator``. Raises ``SchemaError`` if the value does not fit
        ``OrchestratorResult`` (nothing is stored then).
        """
        return self.orchestrator_result.set(value)

    async def aset_orchestrator_result(self, value: OrchestratorResult) -> ContextEntry:
        """Awaitable twin of :meth:`set_orchestrator_result`."""
        return await self.orchestrator_result.aset(value)

    def get_orchestrator_result(self) -> OrchestratorResult | None:
        """The orchestrator's result; None if absent.

        Key ``analysis:orchestrator``. Raises ``SchemaError`` if what is stored does not
        fit ``OrchestratorResult``.
        """
        return self.orchestrator_result.get()

    async def aget_orchestrator_result(self) -> OrchestratorResult | None:
        """Awaitable twin of :meth:`get_orchestrator_result`."""
        return await self.orchestrator_result.aget()

    # -- synthesis -----------------------------------------------------------------

    def set_dna_profile(self, value: DNAProfile) -> ContextEntry:
        """Store the DNA profile; return the stored entry.

        Key ``synthesis:dna``, source ``dna-synthesizer``, tags ``phase:synthesis``,
        ``dna``. Raises ``SchemaError`` if the value does not fit ``DNAProfile``
        (nothing is stored then).
        """
        return self.dna_profile.set(value)

    async def aset_dna_profile(self, value: DNAProfile) -> ContextEntry:
        """Awaitable twin of :meth:`set_dna_profile`."""
        return await self.dna_profile.aset(value)

    def get_dna_profile(self) -> DNAProfile | None:
        """The DNA profile; None if absent.

        Key ``synthesis:dna``. Raises ``SchemaError`` if what is stored does not fit
        ``DNAProfile``.
        """
        return self.dna_profile.get()

    async def aget_dna_profile(self) -> DNAProfile | None:
        """Awaitable twin of :meth:`get_dna_profile`."""
        return await self.dna_profile.aget()

    def set_synthesis_result(self, value: SynthesisResult) -> ContextEntry:
        """Store the synthesis result; return the stored entry.

        Key ``synthesis:result``, source ``synthesis``, tags ``phase:synthesis``,
        ``result``. Raises ``SchemaError`` if the value does not fit ``SynthesisResult``
        (nothing is stored then).
        """
        return self.synthesis_result.set(value)

    async def aset_synthesis_result(self, value: SynthesisResult) -> ContextEntry:
        """Awaitable twin of :meth:`set_synthesis_result`."""
        return await self.synthesis_result.aset(value)

    def get_synthesis_result(self) -> SynthesisResult | None:
        """The synthesis result; None if absent.

        Key ``synthesis:result``. Raises ``SchemaError`` if what is stored does not fit
        ``SynthesisResult``.
        """
        return self.synthesis_result.get()

    async def aget_synthesis_result(self) -> SynthesisResult | None:
        """Awaitable twin of :meth:`get_synthesis_result`."""
        return await self.synthesis_result.aget()

    # -- validation ----------------------------------------------------------------

    def add_validation_result(self, id_: str, value: TaskResult) -> ContextEntry:
        """Store the result of validation task ``id_``; return the stored entry.

        Key ``validation:task:*`` (``*`` is ``id_``), source ``validation``, tags
        ``phase:validation``, ``*``. Raises ``SchemaError`` if the value does not fit
        ``TaskResult`` or its ``task_id`` is not ``id_`` (nothing is stored then),
        ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self.validation_results.set(id_, value)

    async def aadd_validation_result(self, id_: str, value: TaskResult) -> ContextEntry:
        """Awaitable twin of :meth:`add_validation_result`."""
        return await self.validation_results.aset(id_, value)

    def get_validation_result(self, id_: str) -> TaskResult | None:
        """The result of validation task ``id_``; None if absent.

        Key ``validation:task:*`` (``*`` is ``id_``). Raises ``SchemaError`` if what is
        stored does not fit ``TaskResult``, ``InvalidKeyError`` if ``id_`` is not a
        valid key part.
        """
        return self.validation_results.get(id_)

    async def aget_validation_result(self, id_: str) -> TaskResult | None:
        """Awaitable twin of :meth:`get_validation_result`."""
        return await self.validation_results.aget(id_)

    def set_validation_summary(self, value: ValidationSummary) -> ContextEntry:
        """Store the validation summary; return the stored entry.

        Key ``validation:summary``, source ``validation``, tags ``phase:validation``,
        ``summary``. Raises ``SchemaError`` if the value does not fit
        ``ValidationSummary`` (nothing is stored then).
        """
        return self.validation_summary.set(value)

    async def aset_validation_summary(self, value: ValidationSummary) -> ContextEntry:
        """Awaitable twin of :meth:`set_validation_summary`."""
        return await self.validation_summary.aset(value)

    def get_validation_summary(self) -> ValidationSummary | None:
        """The validation summary; None if absent.

        Key ``validation:summary``. Raises ``SchemaError`` if what is stored does not
        fit ``ValidationSummary``.
        """
        return self.validation_summary.get()

    async def aget_validation_summary(self) -> ValidationSummary | None:
        """Awaitable twin of :meth:`get_validation_summary`."""
        return await self.validation_summary.aget()

    # -- checkpoints ---------------------------------------------------------------

    def set_checkpoint_status(self, id_: str, value: CheckpointStatus) -> ContextEntry:
        """Store the status of checkpoint ``id_``; return the stored entry.

        Key ``checkpoint:*:status`` (``*`` is ``id_``), source ``checkpoint``, tags
        ``phase:checkpoint``, ``*``. Raises ``SchemaError`` if the value does not fit
        ``CheckpointStatus`` or its ``checkpoint_id`` is not ``id_`` (nothing is stored
        then), ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self.checkpoint_statuses.set(id_, value)

    async def aset_checkpoint_status(self, id_: str, value: CheckpointStatus) -> ContextEntry:
        """Awaitable twin of :meth:`set_checkpoint_status`."""
        return await self.checkpoint_statuses.aset(id_, value)

    def get_checkpoint_status(self, id_: str) -> CheckpointStatus | None:
        """The status of checkpoint ``id_``; None if absent.

        Key ``checkpoint:*:status`` (``*`` is ``id_``). Raises ``SchemaError`` if what
        is stored does not fit ``CheckpointStatus``, ``InvalidKeyError`` if ``id_`` is
        not a valid key part.
        """
        return self.checkpoint_statuses.get(id_)

    async def aget_checkpoint_status(self, id_: str) -> CheckpointStatus | None:
        """Awaitable twin of :meth:`get_checkpoint_status`."""
        return await self.checkpoint_statuses.aget(id_)

    def set_checkpoint_decision(self, id_: str, value: CheckpointDecision) -> ContextEntry:
        """Store the decision at checkpoint ``id_``; return the stored entry.

        Key ``checkpoint:*:decision`` (``*`` is ``id_``), source ``checkpoint``, tags
        ``phase:checkpoint``, ``*``. Raises ``SchemaError`` if the value does not fit
        ``CheckpointDecision`` or its ``checkpoint_id`` is not ``id_`` (nothing is
        stored then), ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self.checkpoint_decisions.set(id_, value)

    async def aset_checkpoint_decision(self, id_: str, value: CheckpointDecision) -> ContextEntry:
        """Awaitable twin of :meth:`set_checkpoint_decision`."""
        return await self.checkpoint_decisions.aset(id_, value)

    def get_checkpoint_decision(self, id_: str) -> CheckpointDecision | None:
        """The decision at checkpoint ``id_``; None if absent.

        Key ``checkpoint:*:decision`` (``*`` is ``id_``). Raises ``SchemaError`` if what
        is stored does not fit ``CheckpointDecision``, ``InvalidKeyError`` if ``id_`` is
        not a valid key part.
        """
        return self.checkpoint_decisions.get(id_)

    async def aget_checkpoint_decision(self, id_: str) -> CheckpointDecision | None:
        """Awaitable twin of :meth:`get_checkpoint_decision`."""
        return await self.checkpoint_decisions.aget(id_)

    # -- generation ----------------------------------------------------------------

    def set_manifest_content(self, value: ManifestContent) -> ContextEntry:
        """Store the manifest; return the stored entry.

        Key ``generation:manifest``, source ``generation``, tags ``phase:generation``,
        ``manifest``. Raises ``SchemaError`` if the value does not fit
        ``ManifestContent`` (nothing is stored then).
        """
        return self.manifest_content.set(value)

    async def aset_manifest_content(self, value: ManifestContent) -> ContextEntry:
        """Awaitable twin of :meth:`set_manifest_content`."""
        return await self.manifest_content.aset(value)

    def get_manifest_content(self) -> ManifestContent | None:
        """The manifest; None if absent.

        Key ``generation:manifest``. Raises ``SchemaError`` if what is stored does not
        fit ``ManifestContent``.
        """
        return self.manifest_content.get()

    async def aget_manifest_content(self) -> ManifestContent | None:
        """Awaitable twin of :meth:`get_manifest_content`."""
        return await self.manifest_content.aget()

    # -- the session's bookkeeping -------------------------------------------------

    def set_session_info(self, value: SessionInfo) -> ContextEntry:
        """Store the session's information; return the stored entry.

        Key ``session:info``, source ``session``, tag ``session``. Raises
        ``SchemaError`` if the value does not fit ``SessionInfo`` (nothing is stored
        then).
        """
        return self.session_info.set(value)

    async def aset_session_info(self, value: SessionInfo) -> ContextEntry:
        """Awaitable twin of :meth:`set_session_info`."""
        return await self.session_info.aset(value)

    def get_session_info(self) -> SessionInfo | None:
        """The session's information; None if absent.

        Key ``session:info``. Raises ``SchemaError`` if what is stored does not fit
        ``SessionInfo``.
        """
        return self.session_info.get()

    async def aget_session_info(self) -> SessionInfo | None:
        """Awaitable twin of :meth:`get_session_info`."""
        return await self.session_info.aget()

    def set_pipeline_status(self, value: PipelineStatus) -> ContextEntry:
        """Store the pipeline's status; return the stored entry.

        Key ``pipeline:status``, source ``pipeline``, no tags. Raises ``SchemaError`` if
        the value does not fit ``PipelineStatus`` (nothing is stored then).
        """
        return self.pipeline_status.set(value)

    async def aset_pipeline_status(self, value: PipelineStatus) -> ContextEntry:
        """Awaitable twin of :meth:`set_pipeline_status`."""
        return await self.pipeline_status.aset(value)

    def get_pipeline_status(self) -> PipelineStatus | None:
        """The pipeline's status; None if absent.

        Key ``pipeline:status``. Raises ``SchemaError`` if what is stored does not fit
        ``PipelineStatus``.
        """
        return self.pipeline_status.get()

    async def aget_pipeline_status(self) -> PipelineStatus | None:
        """Awaitable twin of :meth:`get_pipeline_status`."""
        return await self.pipeline_status.aget()

    # -- collections ---------------------------------------------------------------

    def get_all_mind_results(self) -> dict[str, MindResult]:
        """Every mind's result, by mind id (ids may contain ``:``); {} if none."""
        return self.mind_results.all()

    async def aget_all_mind_results(self) -> dict[str, MindResult]:
        """Awaitable twin of :meth:`get_all_mind_results`."""
        return await self.mind_results.aall()

    def get_validation_results(self) -> list[TaskResult]:
        """Every validation task's result, sorted by task id; [] if none."""
        return list(self.validation_results.all().values())

    async def aget_validation_results(self) -> list[TaskResult]:
        """Awaitable twin of :meth:`get_validation_results`."""
        return list((await self.validation_results.aall()).values())

    def wait_for_mind_results(
        self,
        mind_ids: Iterable[str],
        timeout: float | None = None,
        *,
        since: int | None = None,
    ) -> dict[str, MindResult]:
        """Block until every mind in ``mind_ids`` has a result (written after revision
        ``since``, if given); return them by id.

        Raises ``WaitTimeoutError`` naming the missing minds when ``timeout`` passes.
        """
        try:
            return self.mind_results.wait_for(mind_ids, timeout=timeout, since=since)
        except WaitTimeoutError as timed_out:
            raise _no_results(timed_out, timeout) from None

    async def await_for_mind_results(
        self,
        mind_ids: Iterable[str],
        timeout: float | None = None,
        *,
        since: int | None = None,
    ) -> dict[str, MindResult]:
        """Awaitable twin of :meth:`wait_for_mind_results`."""
        try:
            return await self.mind_results.await_for(mind_ids, timeout=timeout, since=since)
        except WaitTimeoutError as timed_out:
            raise _no_results(timed_out, timeout) from None


def _no_results(timed_out: WaitTimeoutError, timeout: float | None) -> WaitTimeoutError:
    missing = list(timed_out.missing)
    return WaitTimeoutError(f"no result after {timeout} s from the minds {missing}", missing)
