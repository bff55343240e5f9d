"""``PipelineContext``: typed, validated accessors for each phase of the pipeline.

Every phase's data is one *slot* of the table below: a standard key (or, for per-id
data such as mind results, a key pattern whose ``*`` is the id), the model it must
fit, and the source and tags written with it. The table is the one place that says
which key, source and tags a phase writes, and :class:`_Slot` is the one place that
validates a value, checks a per-id model's own id, and fills the id into a key.

Each accessor is an explicit method, written the one way of ``sharedctx._context``:
``set_dna_profile`` is ``return self._write(_DNA, None, value)`` and its twin
``aset_dna_profile`` is ``return await self._awrite(_DNA, None, value)``; the readers
call ``_read``/``_aread`` likewise. Those helpers (the sync one calls the context's
``set`` or ``get``, its twin awaits ``aset`` or ``aget``) and the slot do the work:
every write is validated (``SchemaError``, nothing stored) and every read returns a
model instance (``SchemaError`` if what is stored does not fit). So mypy checks each
accessor's signature against its slot's model, and a test checks that its docstring
names the key, source and tags that it writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sharedctx._checks import check_key
from sharedctx._codec import convert
from sharedctx._context import SharedContext
from sharedctx._errors import InvalidArgumentError, SchemaError
from sharedctx._sessions import ContextManager, context_manager
from sharedctx._types import ContextEntry
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

M = TypeVar("M")


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
        head, star, tail = pattern.partition("*")
        if not star:
            raise InvalidArgumentError(f"{pattern!r} is not a per-id key pattern")
        return f"{head}{check_key(id_, 'id')}{tail}"

    @staticmethod
    def id_of(pattern: str, key: str) -> str:
        """The id in a key written under a per-id pattern (ids may contain ``:``)."""
        head, _, tail = pattern.partition("*")
        return key[len(head) : len(key) - len(tail)]


@dataclass(frozen=True)
class _Slot(Generic[M]):
    """Where one phase's data is stored, what it must fit, and how it is written.

    ``id_`` is None for a slot with one fixed key, and the id for a per-id slot.
    """

    pattern: str  # the key, or a per-id key pattern whose "*" is the id
    model: type[M]
    source: str  # may hold "{id}"
    tags: tuple[str, ...]  # may hold "{id}"
    id_field: str | None = None  # the model's field that must hold the id written under

    def key(self, id_: str | None) -> str:
        """The key of this slot (of ``id_``'s value for a per-id slot)."""
        return self.pattern if id_ is None else StandardKeys.for_id(self.pattern, id_)

    def write(self, id_: str | None, value: M) -> tuple[str, M, str, tuple[str, ...]]:
        """Key, validated value, source and tags of a write (``SchemaError`` if bad)."""
        key = self.key(id_)
        checked: M = convert(key, value, self.model)
        if id_ is None:
            return key, checked, self.source, self.tags
        if self.id_field is not None and (found := getattr(checked, self.id_field)) != id_:
            problem = f"is {found!r}, but the value is written under the id {id_!r}"
            raise SchemaError(key, self.model.__name__, [(self.id_field, problem)])
        tags = tuple(dict.fromkeys(tag.replace("{id}", id_) for tag in self.tags))
        return key, checked, self.source.replace("{id}", id_), tags

    def by_id(self, entries: Iterable[ContextEntry]) -> dict[str, M]:
        """The values of ``entries`` found under this per-id slot, converted, by id."""
        return {
            StandardKeys.id_of(self.pattern, entry.key): convert(entry.key, entry.value, self.model)
            for entry in entries
        }


# The slots: key or pattern, model, source, tags (and a per-id model's id field).
_K = StandardKeys
# fmt: off
_EXTRACTED = _Slot(_K.EXTRACTED_DATA, list[ExtractedData], "extraction",
                   ("phase:extraction", "data"))
_METADATA = _Slot(_K.SOURCE_METADATA, SourceMetadata, "extraction",
                  ("phase:extraction", "metadata"))
_MIND = _Slot(_K.MIND_RESULTS, MindResult, "mind:{id}",
              ("phase:analysis", "mind", "{id}"), id_field="mind_id")
_ORCHESTRATOR = _Slot(_K.ORCHESTRATOR_RESULT, OrchestratorResult, "orchestrator",
                      ("phase:analysis", "orchestrator"))
_DNA = _Slot(_K.DNA_PROFILE, DNAProfile, "dna-synthesizer",
             ("phase:synthesis", "dna"))
_SYNTHESIS = _Slot(_K.SYNTHESIS_RESULT, SynthesisResult, "synthesis",
                   ("phase:synthesis", "result"))
_TASK = _Slot(_K.VALIDATION_RESULTS, TaskResult, "validation",
              ("phase:validation", "{id}"), id_field="task_id")
_SUMMARY = _Slot(_K.VALIDATION_SUMMARY, ValidationSummary, "validation",
                 ("phase:validation", "summary"))
_STATUS = _Slot(_K.CHECKPOINT_STATUS, CheckpointStatus, "checkpoint",
                ("phase:checkpoint", "{id}"), id_field="checkpoint_id")
_DECISION = _Slot(_K.CHECKPOINT_DECISION, CheckpointDecision, "checkpoint",
                  ("phase:checkpoint", "{id}"), id_field="checkpoint_id")
_MANIFEST = _Slot(_K.MANIFEST_CONTENT, ManifestContent, "generation",
                  ("phase:generation", "manifest"))
_SESSION = _Slot(_K.SESSION_INFO, SessionInfo, "session",
                 ("session",))
_PIPELINE = _Slot(_K.PIPELINE_STATUS, PipelineStatus, "pipeline",
                  ())
# fmt: on


class PipelineContext:
    """Typed access to one pipeline session's shared context.

    Built from a ``SharedContext`` to wrap, or from a session id, looked up or created
    in ``manager``: then the context has the manager's settings. The default manager
    is the module-level ``context_manager``, whose contexts live in memory with
    ``default_ttl=3600`` seconds, ``max_entries=10000`` (least recently used evicted
    first) and ``max_entry_bytes=102400``. For other settings, pass your own
    ``ContextManager(...)`` as ``manager``, or a ``SharedContext``.

    Each phase has ``set_...``/``get_...`` accessors (and ``aset_...``/``aget_...``
    twins): a write validates the value against the phase's pydantic model and raises
    ``SchemaError`` without storing anything if it does not fit; a read returns a
    model instance, None if absent, and raises ``SchemaError`` if what is stored does
    not fit. Writes record the phase's source and tags. A per-id write
    (``set_mind_result(mind_id, result)``...) also checks that the model's own id
    (``result.mind_id``...) is the id it is written under.
    """

    def __init__(
        self,
        session_id_or_context: str | SharedContext,
        *,
        manager: ContextManager = context_manager,
    ) -> None:
        if isinstance(session_id_or_context, SharedContext):
            self.context = session_id_or_context
        else:
            self.context = manager.get_or_create(session_id_or_context)

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.context.session_id

    def __repr__(self) -> str:
        return f"<PipelineContext {self.session_id!r}>"

    # -- extraction ----------------------------------------------------------------

    def set_extracted_data(self, value: list[ExtractedData]) -> ContextEntry:
        """Store the extracted sources; return the stored entry.

        Key ``extraction:data``, source ``extraction``, tags ``phase:extraction``,
        ``data``. Raises ``SchemaError`` if the value does not fit
        ``list[ExtractedData]`` (nothing is stored then).
        """
        return self._write(_EXTRACTED, None, value)

    async def aset_extracted_data(self, value: list[ExtractedData]) -> ContextEntry:
        """Awaitable twin of :meth:`set_extracted_data`."""
        return await self._awrite(_EXTRACTED, None, value)

    def get_extracted_data(self) -> list[ExtractedData] | None:
        """The extracted sources; None if absent.

        Key ``extraction:data``. Raises ``SchemaError`` if what is stored does not fit
        ``list[ExtractedData]``.
        """
        return self._read(_EXTRACTED, None)

    async def aget_extracted_data(self) -> list[ExtractedData] | None:
        """Awaitable twin of :meth:`get_extracted_data`."""
        return await self._aread(_EXTRACTED, None)

    def set_source_metadata(self, value: SourceMetadata) -> ContextEntry:
        """Store the sources' metadata; return the stored entry.

        Key ``extraction:metadata``, source ``extraction``, tags ``phase:extraction``,
        ``metadata``. Raises ``SchemaError`` if the value does not fit
        ``SourceMetadata`` (nothing is stored then).
        """
        return self._write(_METADATA, None, value)

    async def aset_source_metadata(self, value: SourceMetadata) -> ContextEntry:
        """Awaitable twin of :meth:`set_source_metadata`."""
        return await self._awrite(_METADATA, None, value)

    def get_source_metadata(self) -> SourceMetadata | None:
        """The sources' metadata; None if absent.

        Key ``extraction:metadata``. Raises ``SchemaError`` if what is stored does not
        fit ``SourceMetadata``.
        """
        return self._read(_METADATA, None)

    async def aget_source_metadata(self) -> SourceMetadata | None:
        """Awaitable twin of :meth:`get_source_metadata`."""
        return await self._aread(_METADATA, None)

    # -- analysis ------------------------------------------------------------------

    def set_mind_result(self, id_: str, value: MindResult) -> ContextEntry:
        """Store the result of mind ``id_``; return the stored entry.

        Key ``analysis:mind:*`` (``*`` is ``id_``), source ``mind:*``, tags
        ``phase:analysis``, ``mind``, ``*``. Raises ``SchemaError`` if the value does
        not fit ``MindResult`` or its ``mind_id`` is not ``id_`` (nothing is stored
        then), ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self._write(_MIND, id_, value)

    async def aset_mind_result(self, id_: str, value: MindResult) -> ContextEntry:
        """Awaitable twin of :meth:`set_mind_result`."""
        return await self._awrite(_MIND, id_, value)

    def get_mind_result(self, id_: str) -> MindResult | None:
        """The result of mind ``id_``; None if absent.

        Key ``analysis:mind:*`` (``*`` is ``id_``). Raises ``SchemaError`` if what is
        stored does not fit ``MindResult``, ``InvalidKeyError`` if ``id_`` is not a
        valid key part.
        """
        return self._read(_MIND, id_)

    async def aget_mind_result(self, id_: str) -> MindResult | None:
        """Awaitable twin of :meth:`get_mind_result`."""
        return await self._aread(_MIND, id_)

    def set_orchestrator_result(self, value: OrchestratorResult) -> ContextEntry:
        """Store the orchestrator's result; return the stored entry.

        Key ``analysis:orchestrator``, source ``orchestrator``, tags ``phase:analysis``,
        ``orchestrator``. Raises ``SchemaError`` if the value does not fit
        ``OrchestratorResult`` (nothing is stored then).
        """
        return self._write(_ORCHESTRATOR, None, value)

    async def aset_orchestrator_result(self, value: OrchestratorResult) -> ContextEntry:
        """Awaitable twin of :meth:`set_orchestrator_result`."""
        return await self._awrite(_ORCHESTRATOR, None, value)

    def get_orchestrator_result(self) -> OrchestratorResult | None:
        """The orchestrator's result; None if absent.

        Key ``analysis:orchestrator``. Raises ``SchemaError`` if what is stored does not
        fit ``OrchestratorResult``.
        """
        return self._read(_ORCHESTRATOR, None)

    async def aget_orchestrator_result(self) -> OrchestratorResult | None:
        """Awaitable twin of :meth:`get_orchestrator_result`."""
        return await self._aread(_ORCHESTRATOR, None)

    # -- synthesis -----------------------------------------------------------------

    def set_dna_profile(self, value: DNAProfile) -> ContextEntry:
        """Store the DNA profile; return the stored entry.

        Key ``synthesis:dna``, source ``dna-synthesizer``, tags ``phase:synthesis``,
        ``dna``. Raises ``SchemaError`` if the value does not fit ``DNAProfile``
        (nothing is stored then).
        """
        return self._write(_DNA, None, value)

    async def aset_dna_profile(self, value: DNAProfile) -> ContextEntry:
        """Awaitable twin of :meth:`set_dna_profile`."""
        return await self._awrite(_DNA, None, value)

    def get_dna_profile(self) -> DNAProfile | None:
        """The DNA profile; None if absent.

        Key ``synthesis:dna``. Raises ``SchemaError`` if what is stored does not fit
        ``DNAProfile``.
        """
        return self._read(_DNA, None)

    async def aget_dna_profile(self) -> DNAProfile | None:
        """Awaitable twin of :meth:`get_dna_profile`."""
        return await self._aread(_DNA, None)

    def set_synthesis_result(self, value: SynthesisResult) -> ContextEntry:
        """Store the synthesis result; return the stored entry.

        Key ``synthesis:result``, source ``synthesis``, tags ``phase:synthesis``,
        ``result``. Raises ``SchemaError`` if the value does not fit ``SynthesisResult``
        (nothing is stored then).
        """
        return self._write(_SYNTHESIS, None, value)

    async def aset_synthesis_result(self, value: SynthesisResult) -> ContextEntry:
        """Awaitable twin of :meth:`set_synthesis_result`."""
        return await self._awrite(_SYNTHESIS, None, value)

    def get_synthesis_result(self) -> SynthesisResult | None:
        """The synthesis result; None if absent.

        Key ``synthesis:result``. Raises ``SchemaError`` if what is stored does not fit
        ``SynthesisResult``.
        """
        return self._read(_SYNTHESIS, None)

    async def aget_synthesis_result(self) -> SynthesisResult | None:
        """Awaitable twin of :meth:`get_synthesis_result`."""
        return await self._aread(_SYNTHESIS, None)

    # -- validation ----------------------------------------------------------------

    def add_validation_result(self, id_: str, value: TaskResult) -> ContextEntry:
        """Store the result of validation task ``id_``; return the stored entry.

        Key ``validation:task:*`` (``*`` is ``id_``), source ``validation``, tags
        ``phase:validation``, ``*``. Raises ``SchemaError`` if the value does not fit
        ``TaskResult`` or its ``task_id`` is not ``id_`` (nothing is stored then),
        ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self._write(_TASK, id_, value)

    async def aadd_validation_result(self, id_: str, value: TaskResult) -> ContextEntry:
        """Awaitable twin of :meth:`add_validation_result`."""
        return await self._awrite(_TASK, id_, value)

    def get_validation_result(self, id_: str) -> TaskResult | None:
        """The result of validation task ``id_``; None if absent.

        Key ``validation:task:*`` (``*`` is ``id_``). Raises ``SchemaError`` if what is
        stored does not fit ``TaskResult``, ``InvalidKeyError`` if ``id_`` is not a
        valid key part.
        """
        return self._read(_TASK, id_)

    async def aget_validation_result(self, id_: str) -> TaskResult | None:
        """Awaitable twin of :meth:`get_validation_result`."""
        return await self._aread(_TASK, id_)

    def set_validation_summary(self, value: ValidationSummary) -> ContextEntry:
        """Store the validation summary; return the stored entry.

        Key ``validation:summary``, source ``validation``, tags ``phase:validation``,
        ``summary``. Raises ``SchemaError`` if the value does not fit
        ``ValidationSummary`` (nothing is stored then).
        """
        return self._write(_SUMMARY, None, value)

    async def aset_validation_summary(self, value: ValidationSummary) -> ContextEntry:
        """Awaitable twin of :meth:`set_validation_summary`."""
        return await self._awrite(_SUMMARY, None, value)

    def get_validation_summary(self) -> ValidationSummary | None:
        """The validation summary; None if absent.

        Key ``validation:summary``. Raises ``SchemaError`` if what is stored does not
        fit ``ValidationSummary``.
        """
        return self._read(_SUMMARY, None)

    async def aget_validation_summary(self) -> ValidationSummary | None:
        """Awaitable twin of :meth:`get_validation_summary`."""
        return await self._aread(_SUMMARY, None)

    # -- checkpoints ---------------------------------------------------------------

    def set_checkpoint_status(self, id_: str, value: CheckpointStatus) -> ContextEntry:
        """Store the status of checkpoint ``id_``; return the stored entry.

        Key ``checkpoint:*:status`` (``*`` is ``id_``), source ``checkpoint``, tags
        ``phase:checkpoint``, ``*``. Raises ``SchemaError`` if the value does not fit
        ``CheckpointStatus`` or its ``checkpoint_id`` is not ``id_`` (nothing is stored
        then), ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self._write(_STATUS, id_, value)

    async def aset_checkpoint_status(self, id_: str, value: CheckpointStatus) -> ContextEntry:
        """Awaitable twin of :meth:`set_checkpoint_status`."""
        return await self._awrite(_STATUS, id_, value)

    def get_checkpoint_status(self, id_: str) -> CheckpointStatus | None:
        """The status of checkpoint ``id_``; None if absent.

        Key ``checkpoint:*:status`` (``*`` is ``id_``). Raises ``SchemaError`` if what
        is stored does not fit ``CheckpointStatus``, ``InvalidKeyError`` if ``id_`` is
        not a valid key part.
        """
        return self._read(_STATUS, id_)

    async def aget_checkpoint_status(self, id_: str) -> CheckpointStatus | None:
        """Awaitable twin of :meth:`get_checkpoint_status`."""
        return await self._aread(_STATUS, id_)

    def set_checkpoint_decision(self, id_: str, value: CheckpointDecision) -> ContextEntry:
        """Store the decision at checkpoint ``id_``; return the stored entry.

        Key ``checkpoint:*:decision`` (``*`` is ``id_``), source ``checkpoint``, tags
        ``phase:checkpoint``, ``*``. Raises ``SchemaError`` if the value does not fit
        ``CheckpointDecision`` or its ``checkpoint_id`` is not ``id_`` (nothing is
        stored then), ``InvalidKeyError`` if ``id_`` is not a valid key part.
        """
        return self._write(_DECISION, id_, value)

    async def aset_checkpoint_decision(self, id_: str, value: CheckpointDecision) -> ContextEntry:
        """Awaitable twin of :meth:`set_checkpoint_decision`."""
        return await self._awrite(_DECISION, id_, value)

    def get_checkpoint_decision(self, id_: str) -> CheckpointDecision | None:
        """The decision at checkpoint ``id_``; None if absent.

        Key ``checkpoint:*:decision`` (``*`` is ``id_``). Raises ``SchemaError`` if what
        is stored does not fit ``CheckpointDecision``, ``InvalidKeyError`` if ``id_`` is
        not a valid key part.
        """
        return self._read(_DECISION, id_)

    async def aget_checkpoint_decision(self, id_: str) -> CheckpointDecision | None:
        """Awaitable twin of :meth:`get_checkpoint_decision`."""
        return await self._aread(_DECISION, id_)

    # -- generation ----------------------------------------------------------------

    def set_manifest_content(self, value: ManifestContent) -> ContextEntry:
        """Store the manifest; return the stored entry.

        Key ``generation:manifest``, source ``generation``, tags ``phase:generation``,
        ``manifest``. Raises ``SchemaError`` if the value does not fit
        ``ManifestContent`` (nothing is stored then).
        """
        return self._write(_MANIFEST, None, value)

    async def aset_manifest_content(self, value: ManifestContent) -> ContextEntry:
        """Awaitable twin of :meth:`set_manifest_content`."""
        return await self._awrite(_MANIFEST, None, value)

    def get_manifest_content(self) -> ManifestContent | None:
        """The manifest; None if absent.

        Key ``generation:manifest``. Raises ``SchemaError`` if what is stored does not
        fit ``ManifestContent``.
        """
        return self._read(_MANIFEST, None)

    async def aget_manifest_content(self) -> ManifestContent | None:
        """Awaitable twin of :meth:`get_manifest_content`."""
        return await self._aread(_MANIFEST, None)

    # -- the session's bookkeeping -------------------------------------------------

    def set_session_info(self, value: SessionInfo) -> ContextEntry:
        """Store the session's information; return the stored entry.

        Key ``session:info``, source ``session``, tag ``session``. Raises
        ``SchemaError`` if the value does not fit ``SessionInfo`` (nothing is stored
        then).
        """
        return self._write(_SESSION, None, value)

    async def aset_session_info(self, value: SessionInfo) -> ContextEntry:
        """Awaitable twin of :meth:`set_session_info`."""
        return await self._awrite(_SESSION, None, value)

    def get_session_info(self) -> SessionInfo | None:
        """The session's information; None if absent.

        Key ``session:info``. Raises ``SchemaError`` if what is stored does not fit
        ``SessionInfo``.
        """
        return self._read(_SESSION, None)

    async def aget_session_info(self) -> SessionInfo | None:
        """Awaitable twin of :meth:`get_session_info`."""
        return await self._aread(_SESSION, None)

    def set_pipeline_status(self, value: PipelineStatus) -> ContextEntry:
        """Store the pipeline's status; return the stored entry.

        Key ``pipeline:status``, source ``pipeline``, no tags. Raises ``SchemaError`` if
        the value does not fit ``PipelineStatus`` (nothing is stored then).
        """
        return self._write(_PIPELINE, None, value)

    async def aset_pipeline_status(self, value: PipelineStatus) -> ContextEntry:
        """Awaitable twin of :meth:`set_pipeline_status`."""
        return await self._awrite(_PIPELINE, None, value)

    def get_pipeline_status(self) -> PipelineStatus | None:
        """The pipeline's status; None if absent.

        Key ``pipeline:status``. Raises ``SchemaError`` if what is stored does not fit
        ``PipelineStatus``.
        """
        return self._read(_PIPELINE, None)

    async def aget_pipeline_status(self) -> PipelineStatus | None:
        """Awaitable twin of :meth:`get_pipeline_status`."""
        return await self._aread(_PIPELINE, None)

    # -- collections ---------------------------------------------------------------

    def get_all_mind_results(self) -> dict[str, MindResult]:
        """Every mind's result, by mind id (ids may contain ``:``); {} if none."""
        return _MIND.by_id(self.context.find_by_pattern(_MIND.pattern))

    async def aget_all_mind_results(self) -> dict[str, MindResult]:
        """Awaitable twin of :meth:`get_all_mind_results`."""
        return _MIND.by_id(await self.context.afind_by_pattern(_MIND.pattern))

    def get_validation_results(self) -> list[TaskResult]:
        """Every validation task's result, sorted by task id; [] if none."""
        return list(_TASK.by_id(self.context.find_by_pattern(_TASK.pattern)).values())

    async def aget_validation_results(self) -> list[TaskResult]:
        """Awaitable twin of :meth:`get_validation_results`."""
        return list(_TASK.by_id(await self.context.afind_by_pattern(_TASK.pattern)).values())

    def wait_for_mind_results(
        self,
        mind_ids: Iterable[str],
        timeout: float | None = None,
        *,
        since: int | None = None,
    ) -> dict[str, MindResult]:
        """Block until every mind in ``mind_ids`` has a result (written after revision
        ``since``, if given); return them by id.

        Raises ``TimeoutError`` naming the missing minds when ``timeout`` passes.
        """
        keys = _mind_keys(mind_ids)
        try:
            found = self.context.wait_for_keys(keys.values(), timeout=timeout, since=since)
        except TimeoutError:
            found = self.context.get_multiple(keys.values())
            raise _missing_minds(keys, found, timeout) from None
        return _mind_results(keys, found)

    async def await_for_mind_results(
        self,
        mind_ids: Iterable[str],
        timeout: float | None = None,
        *,
        since: int | None = None,
    ) -> dict[str, MindResult]:
        """Awaitable twin of :meth:`wait_for_mind_results`."""
        keys = _mind_keys(mind_ids)
        try:
            found = await self.context.await_for_keys(keys.values(), timeout=timeout, since=since)
        except TimeoutError:
            found = await self.context.aget_multiple(keys.values())
            raise _missing_minds(keys, found, timeout) from None
        return _mind_results(keys, found)

    # -- what every accessor does --------------------------------------------------

    def _write(self, slot: _Slot[M], id_: str | None, value: M) -> ContextEntry:
        key, checked, source, tags = slot.write(id_, value)
        return self.context.set(key, checked, source=source, tags=tags)

    async def _awrite(self, slot: _Slot[M], id_: str | None, value: M) -> ContextEntry:
        key, checked, source, tags = slot.write(id_, value)
        return await self.context.aset(key, checked, source=source, tags=tags)

    def _read(self, slot: _Slot[M], id_: str | None) -> M | None:
        return self.context.get(slot.key(id_), type=slot.model)

    async def _aread(self, slot: _Slot[M], id_: str | None) -> M | None:
        return await self.context.aget(slot.key(id_), type=slot.model)


def _mind_keys(mind_ids: Iterable[str]) -> dict[str, str]:
    if isinstance(mind_ids, str):
        raise InvalidArgumentError(
            f"mind_ids must be a collection of ids, not the str {mind_ids!r}"
        )
    return {mind_id: _MIND.key(mind_id) for mind_id in mind_ids}


def _mind_results(keys: dict[str, str], found: Mapping[str, Any]) -> dict[str, MindResult]:
    return {
        mind_id: convert(key, _value(found[key]), _MIND.model)
        for mind_id, key in keys.items()
        if key in found
    }


def _value(found: Any) -> Any:
    return found.value if isinstance(found, ContextEntry) else found


def _missing_minds(
    keys: dict[str, str], found: Mapping[str, Any], timeout: float | None
) -> TimeoutError:
    missing = sorted(mind for mind, key in keys.items() if key not in found)
    return TimeoutError(f"no result after {timeout} s from the minds {missing}")
