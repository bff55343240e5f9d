"""``PipelineContext``: typed, validated accessors for each phase of the pipeline.

Every accessor is one *slot*: a standard key (or, for per-id data such as mind
results, a key pattern whose ``*`` is the id), a pydantic model, and the source and
tags written with it. :func:`_single` and :func:`_per_id` turn a slot into its four
methods (``set``/``get`` and their ``a``-prefixed twins), so the keys written are
the keys in :class:`StandardKeys` by construction, and every write is validated
(``SchemaError``, nothing stored) and every read returns a model instance
(``SchemaError`` if what is stored does not fit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar, get_args

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


class _Slot(NamedTuple):
    name: str  # of the accessors: set_<name>, get_<name>...
    noun: str  # what is stored, for their docstrings
    pattern: str
    model: Any
    source: str  # may hold "{id}"
    tags: tuple[str, ...]  # may hold "{id}"
    verb: str = "set"
    id_field: str | None = None  # the model's field that must hold the id written under

    def write(self, id_: str | None, value: Any) -> tuple[str, Any, str, tuple[str, ...]]:
        """Key, validated value, source and tags of a write (``SchemaError`` if bad)."""
        key = self.pattern if id_ is None else StandardKeys.for_id(self.pattern, id_)
        checked = convert(key, value, self.model)
        if id_ is None:
            return key, checked, self.source, self.tags
        if self.id_field is not None and getattr(checked, self.id_field) != id_:
            found = getattr(checked, self.id_field)
            raise SchemaError(
                key,
                self.model.__name__,
                [(self.id_field, f"is {found!r}, but the value is written under the id {id_!r}")],
            )
        tags = tuple(dict.fromkeys(tag.replace("{id}", id_) for tag in self.tags))
        return key, checked, self.source.replace("{id}", id_), tags

    def key(self, id_: str | None) -> str:
        return self.pattern if id_ is None else StandardKeys.for_id(self.pattern, id_)


class _Single(NamedTuple, Generic[M]):
    set: Callable[[PipelineContext, M], ContextEntry]
    aset: Callable[[PipelineContext, M], Awaitable[ContextEntry]]
    get: Callable[[PipelineContext], M | None]
    aget: Callable[[PipelineContext], Awaitable[M | None]]


class _PerId(NamedTuple, Generic[M]):
    set: Callable[[PipelineContext, str, M], ContextEntry]
    aset: Callable[[PipelineContext, str, M], Awaitable[ContextEntry]]
    get: Callable[[PipelineContext, str], M | None]
    aget: Callable[[PipelineContext, str], Awaitable[M | None]]


def _single(slot: _Slot, model: type[M]) -> _Single[M]:
    """The accessors of a slot with one fixed key."""

    def set_(self: PipelineContext, value: M) -> ContextEntry:
        key, checked, source, tags = slot.write(None, value)
        return self.context.set(key, checked, source=source, tags=tags)

    async def aset(self: PipelineContext, value: M) -> ContextEntry:
        key, checked, source, tags = slot.write(None, value)
        return await self.context.aset(key, checked, source=source, tags=tags)

    def get(self: PipelineContext) -> M | None:
        return self.context.get(slot.pattern, type=model)

    async def aget(self: PipelineContext) -> M | None:
        return await self.context.aget(slot.pattern, type=model)

    _document(slot, set_, aset, get, aget)
    return _Single(set_, aset, get, aget)


def _per_id(slot: _Slot, model: type[M]) -> _PerId[M]:
    """The accessors of a slot with one key per id (a mind, a task, a checkpoint)."""

    def set_(self: PipelineContext, id_: str, value: M) -> ContextEntry:
        key, checked, source, tags = slot.write(id_, value)
        return self.context.set(key, checked, source=source, tags=tags)

    async def aset(self: PipelineContext, id_: str, value: M) -> ContextEntry:
        key, checked, source, tags = slot.write(id_, value)
        return await self.context.aset(key, checked, source=source, tags=tags)

    def get(self: PipelineContext, id_: str) -> M | None:
        return self.context.get(slot.key(id_), type=model)

    async def aget(self: PipelineContext, id_: str) -> M | None:
        return await self.context.aget(slot.key(id_), type=model)

    _document(slot, set_, aset, get, aget)
    return _PerId(set_, aset, get, aget)


def _document(slot: _Slot, *accessors: Callable[..., Any]) -> None:
    """Give a slot's four accessors (write, its twin, read, its twin) names and docs."""
    model = repr(slot.model).replace("sharedctx.pipeline._models.", "")  # list[ExtractedData]
    if not get_args(slot.model):
        model = slot.model.__name__
    where = f"``{slot.pattern}``" + (" (``*`` is the id)" if "*" in slot.pattern else "")
    write, read = f"{slot.verb}_{slot.name}", f"get_{slot.name}"
    docs = {
        write: (
            f"Validate {slot.noun} as ``{model}`` and store it under {where}, with source "
            f"``{slot.source}`` and tags {slot.tags!r}; return the stored entry. Raises "
            "``SchemaError`` if it does not fit"
            + (f" or its ``{slot.id_field}`` is not the id" if slot.id_field else "")
            + ", and stores nothing then."
        ),
        read: (
            f"{slot.noun[0].upper()}{slot.noun[1:]}, stored under {where}, as ``{model}``; "
            "None if absent. Raises ``SchemaError`` if what is stored does not fit."
        ),
    }
    names = (write, "a" + write, read, "a" + read)
    for function, name in zip(accessors, names, strict=True):
        function.__name__ = name
        function.__qualname__ = f"PipelineContext.{name}"
        function.__doc__ = docs.get(name, f"Awaitable twin of :meth:`{name[1:]}`.")


_K = StandardKeys
# fmt: off
_EXTRACTED = _Slot("extracted_data", "the extracted sources", _K.EXTRACTED_DATA,
                   list[ExtractedData], "extraction", ("phase:extraction", "data"))
_METADATA = _Slot("source_metadata", "the sources' metadata", _K.SOURCE_METADATA,
                  SourceMetadata, "extraction", ("phase:extraction", "metadata"))
_MIND = _Slot("mind_result", "a mind's result", _K.MIND_RESULTS,
              MindResult, "mind:{id}", ("phase:analysis", "mind", "{id}"), id_field="mind_id")
_ORCHESTRATOR = _Slot("orchestrator_result", "the orchestrator's result", _K.ORCHESTRATOR_RESULT,
                      OrchestratorResult, "orchestrator", ("phase:analysis", "orchestrator"))
_DNA = _Slot("dna_profile", "the DNA profile", _K.DNA_PROFILE,
             DNAProfile, "dna-synthesizer", ("phase:synthesis", "dna"))
_SYNTHESIS = _Slot("synthesis_result", "the synthesis result", _K.SYNTHESIS_RESULT,
                   SynthesisResult, "synthesis", ("phase:synthesis", "result"))
_TASK = _Slot("validation_result", "a validation task's result", _K.VALIDATION_RESULTS,
              TaskResult, "validation", ("phase:validation", "{id}"), verb="add",
              id_field="task_id")
_SUMMARY = _Slot("validation_summary", "the validation summary", _K.VALIDATION_SUMMARY,
                 ValidationSummary, "validation", ("phase:validation", "summary"))
_STATUS = _Slot("checkpoint_status", "a checkpoint's status", _K.CHECKPOINT_STATUS,
                CheckpointStatus, "checkpoint", ("phase:checkpoint", "{id}"),
                id_field="checkpoint_id")
_DECISION = _Slot("checkpoint_decision", "a checkpoint's decision", _K.CHECKPOINT_DECISION,
                  CheckpointDecision, "checkpoint", ("phase:checkpoint", "{id}"),
                  id_field="checkpoint_id")
_MANIFEST = _Slot("manifest_content", "the manifest", _K.MANIFEST_CONTENT,
                  ManifestContent, "generation", ("phase:generation", "manifest"))
_SESSION = _Slot("session_info", "the session's information", _K.SESSION_INFO,
                 SessionInfo, "session", ("session",))
_PIPELINE = _Slot("pipeline_status", "the pipeline's status", _K.PIPELINE_STATUS,
                  PipelineStatus, "pipeline", ())
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

    set_extracted_data, aset_extracted_data, get_extracted_data, aget_extracted_data = _single(
        _EXTRACTED, list[ExtractedData]
    )
    set_source_metadata, aset_source_metadata, get_source_metadata, aget_source_metadata = _single(
        _METADATA, SourceMetadata
    )
    set_mind_result, aset_mind_result, get_mind_result, aget_mind_result = _per_id(
        _MIND, MindResult
    )
    (
        set_orchestrator_result,
        aset_orchestrator_result,
        get_orchestrator_result,
        aget_orchestrator_result,
    ) = _single(_ORCHESTRATOR, OrchestratorResult)
    set_dna_profile, aset_dna_profile, get_dna_profile, aget_dna_profile = _single(_DNA, DNAProfile)
    set_synthesis_result, aset_synthesis_result, get_synthesis_result, aget_synthesis_result = (
        _single(_SYNTHESIS, SynthesisResult)
    )
    add_validation_result, aadd_validation_result, get_validation_result, aget_validation_result = (
        _per_id(_TASK, TaskResult)
    )
    (
        set_validation_summary,
        aset_validation_summary,
        get_validation_summary,
        aget_validation_summary,
    ) = _single(_SUMMARY, ValidationSummary)
    (
        set_checkpoint_status,
        aset_checkpoint_status,
        get_checkpoint_status,
        aget_checkpoint_status,
    ) = _per_id(_STATUS, CheckpointStatus)
    (
        set_checkpoint_decision,
        aset_checkpoint_decision,
        get_checkpoint_decision,
        aget_checkpoint_decision,
    ) = _per_id(_DECISION, CheckpointDecision)
    set_manifest_content, aset_manifest_content, get_manifest_content, aget_manifest_content = (
        _single(_MANIFEST, ManifestContent)
    )
    set_session_info, aset_session_info, get_session_info, aget_session_info = _single(
        _SESSION, SessionInfo
    )
    set_pipeline_status, aset_pipeline_status, get_pipeline_status, aget_pipeline_status = _single(
        _PIPELINE, PipelineStatus
    )

    # -- collections ---------------------------------------------------------------

    def get_all_mind_results(self) -> dict[str, MindResult]:
        """Every mind's result, by mind id (ids may contain ``:``); {} if none."""
        return _by_id(_MIND, self.context.find_by_pattern(_MIND.pattern))

    async def aget_all_mind_results(self) -> dict[str, MindResult]:
        """Awaitable twin of :meth:`get_all_mind_results`."""
        return _by_id(_MIND, await self.context.afind_by_pattern(_MIND.pattern))

    def get_validation_results(self) -> list[TaskResult]:
        """Every validation task's result, sorted by task id; [] if none."""
        return list(_by_id(_TASK, self.context.find_by_pattern(_TASK.pattern)).values())

    async def aget_validation_results(self) -> list[TaskResult]:
        """Awaitable twin of :meth:`get_validation_results`."""
        found = await self.context.afind_by_pattern(_TASK.pattern)
        return list(_by_id(_TASK, found).values())

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


def _mind_keys(mind_ids: Iterable[str]) -> dict[str, str]:
    if isinstance(mind_ids, str):
        raise InvalidArgumentError(
            f"mind_ids must be a collection of ids, not the str {mind_ids!r}"
        )
    return {mind_id: _MIND.key(mind_id) for mind_id in mind_ids}


def _mind_results(keys: dict[str, str], found: Mapping[str, Any]) -> dict[str, MindResult]:
    return {
        mind_id: convert(key, _value(found[key]), MindResult)
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


def _by_id(slot: _Slot, entries: list[ContextEntry]) -> dict[str, Any]:
    return {
        StandardKeys.id_of(slot.pattern, entry.key): convert(entry.key, entry.value, slot.model)
        for entry in entries
    }
