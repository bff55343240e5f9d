"""Typed keys: which key holds which model, declared once, for validated, typed access.

A :class:`TypedKey` names one key (``TypedKey("synthesis:dna", DNAProfile)``) or a
family of keys with an id (``TypedKey("analysis:mind:{mind_id}", MindResult,
id_field="mind_id")``), the model its values must fit, and the source and tags its
writes record. It does no I/O: ``key.on(context)`` binds it to a context as a
:class:`BoundKey`, whose calls read and write; a :class:`Schema` subclass declares a
pipeline's typed keys as class attributes, and ``MySchema(context)`` binds them all.

**Models.** Any type that ``SharedContext.get(key, type=...)`` converts to: a pydantic
model, a dataclass, a msgspec Struct, a ``TypedDict``, or a type such as
``list[Model]``, validated as pydantic's ``TypeAdapter`` validates it (msgspec for
Structs). One rule says whether a value fits a typed key, on every write, read, query,
wait, watch and :meth:`Schema.check`: as it is stored, it converts to the model, and in
a family with an ``id_field``, that field holds the id the value is stored under. A
write checks the value in the form a read will find (encoded, then decoded), so a model
changed after it was made, or a Struct made with wrong types (neither pydantic nor
msgspec checks an instance again), is refused rather than stored: a value that a write
accepts, a read accepts. A value that does not fit raises ``SchemaError`` naming the
key and the path of the bad field.

**Families and ids.** A key template holds at most one placeholder, ``{name}`` (the
``str.format`` syntax: ``{{`` and ``}}`` are literal braces); ``source`` and ``tags``
may hold the same placeholder. An id is any non-empty text, ``:`` and the glob
metacharacters ``*?[]\\`` included: it goes into the key as it is, and is read back
by cutting the fixed text before and after it off the key. The family's
:attr:`~TypedKey.pattern` escapes that fixed text and puts ``?*`` (one character or
more) for the id, so waits and watches select exactly the keys of the family. Queries
read ``prefix*suffix`` instead, which a store answers fastest (one call on Redis when
the suffix is empty), and leave out the one other key that it matches, the one with an
empty id. Because an id may hold ``:``, the family ``doc:{id}`` also holds
``doc:a:chunks``: a :class:`Schema` refuses two typed keys that could name the same key.

**How a twin is written.** As in ``sharedctx._context``: a call of one step is two
methods of one or two lines (the sync one calls the context's method, its twin awaits
the context's twin) around shared helpers; a call of several steps is written once, as
a generator that yields the context calls it needs (:class:`_Call`), which
:func:`_run` makes and :func:`_arun` awaits (the twin of ``find_by_pattern`` being
``afind_by_pattern``, of ``wait_for`` ``await_for``).
"""

from __future__ import annotations

import dataclasses
import inspect
import string
import sys
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, NamedTuple, Self, TypeVar, overload

import msgspec

from sharedctx._checks import check_key, check_positive_int, check_source, check_tags
from sharedctx._closeable import Closeable
from sharedctx._codec import MsgpackCodec, convert, type_name
from sharedctx._context import SharedContext
from sharedctx._errors import (
    ContextClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    SchemaError,
    WaitTimeoutError,
)
from sharedctx._events import Watch
from sharedctx._glob import compile_glob, escape
from sharedctx._sessions import ContextManager, context_manager
from sharedctx._types import Action, ContextEntry, ContextEvent
from sharedctx.steps import Steps, Twin, arun, run

__all__ = ["BoundKey", "OnInvalid", "Schema", "TypedEvent", "TypedKey", "TypedWatch"]

M = TypeVar("M")
D = TypeVar("D")
R = TypeVar("R")

OnInvalid = Literal["raise", "skip"]
"""What a query or watch does with a stored value that does not fit its typed key."""


class _Template(NamedTuple):
    """A text with at most one placeholder: the text before it, its name, the text after."""

    head: str
    name: str | None
    tail: str

    def fill(self, id_: str | None) -> str:
        return self.head if self.name is None else f"{self.head}{id_}{self.tail}"


def _template(text: str, what: str) -> _Template:
    """Parse ``text`` (``str.format`` syntax, one ``{name}`` at most); errors name ``what``."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidKeyError(
            f"{what} {text!r} is not a template ({exc}): write a literal brace as {{{{ or }}}}"
        ) from None
    head, tail, names = "", "", list[str]()
    for literal, name, spec, conversion in parsed:
        if names:
            tail += literal
        else:
            head += literal
        if name is not None:
            if not name.isidentifier() or spec or conversion:
                raise InvalidKeyError(
                    f"{what} {text!r}: a placeholder is a name in braces, such as "
                    f"{{mind_id}}, not {{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}}"
                )
            names.append(name)
    if len(names) > 1:
        raise InvalidKeyError(
            f"{what} {text!r} has {len(names)} placeholders: a family of keys has one id"
        )
    return _Template(head, names[0] if names else None, tail)


class TypedKey(Generic[M]):
    """One key, or a family of keys with an id, whose values must fit ``model``.

    ``TypedKey("synthesis:dna", DNAProfile, source="dna-synthesizer",
    tags=["phase:synthesis"])`` is one key; ``TypedKey("analysis:mind:{mind_id}",
    MindResult, id_field="mind_id", source="mind:{mind_id}")`` a family, whose writes
    also check that the model's ``mind_id`` is the id written under. ``source``
    (default: the context's ``"unknown"``) and ``tags`` are recorded by every write,
    with the id filled in. A typed key does no I/O: bind it to a context with
    :meth:`on`, or declare it in a :class:`Schema`. Raises ``InvalidKeyError`` or
    ``InvalidArgumentError`` for a bad template, model, source, tag or id field.
    """

    def __init__(
        self,
        key: str,
        model: type[M],
        *,
        source: str | None = None,
        tags: Iterable[str] = (),
        id_field: str | None = None,
    ) -> None:
        self.template: str = check_key(key, "typed key")
        """The key, or the template of the family's keys (``analysis:mind:{mind_id}``)."""
        self._key = _template(self.template, "typed key")
        self.id_name: str | None = self._key.name
        """The placeholder's name (``mind_id``); None for one key."""
        self.prefix: str = self._key.head
        """The fixed text before the id (for one key: the whole key)."""
        self.suffix: str = self._key.tail
        """The fixed text after the id (for one key: ``""``)."""
        self.pattern: str = (
            escape(self.prefix)
            if self.id_name is None
            else f"{escape(self.prefix)}?*{escape(self.suffix)}"
        )
        """The glob pattern that matches exactly this key, or exactly the family's keys."""
        if not (isinstance(model, type) or typing.get_origin(model) is not None):
            raise InvalidArgumentError(
                f"the model of typed key {key!r} must be a type (a pydantic model, "
                f"dataclass, msgspec Struct, TypedDict, or such as list[Model]), not {model!r}"
            )
        self.model: type[M] = model
        """What every value must fit."""
        self.source: str | None = None if source is None else check_source(source, key)
        """The source that writes record (its placeholder, if any, filled with the id);
        None: the context's ``"unknown"``."""
        self.tags: tuple[str, ...] = check_tags(tags, key)
        """The tags that writes record (their placeholders filled with the id)."""
        self._source = None if source is None else self._labelled(source, "source")
        self._tags = tuple(self._labelled(tag, "tag") for tag in self.tags)
        self.id_field: str | None = self._checked_id_field(id_field)
        """The model's field that must hold the id (families only); None: not checked."""

    def _labelled(self, text: str, what: str) -> _Template:
        label = _template(text, f"{what} of typed key {self.template!r}:")
        if label.name is not None and label.name != self.id_name:
            has = "no placeholder" if self.id_name is None else f"{{{self.id_name}}}"
            raise InvalidKeyError(
                f"the {what} {text!r} of typed key {self.template!r} holds {{{label.name}}}, "
                f"but the key has {has}: a {what} may hold only the key's placeholder"
            )
        return label

    def _checked_id_field(self, id_field: str | None) -> str | None:
        if id_field is None:
            return None
        if self.id_name is None:
            raise InvalidArgumentError(
                f"typed key {self.template!r} is one key, with no id: it takes no id_field "
                "(give a family a placeholder, such as 'analysis:mind:{mind_id}')"
            )
        fields = _field_names(self.model)
        if not isinstance(id_field, str) or (fields is not None and id_field not in fields):
            raise InvalidArgumentError(
                f"the id_field of typed key {self.template!r} must name a field of "
                f"{type_name(self.model)} (one of {sorted(fields or [])}), not {id_field!r}"
            )
        return id_field

    def key(self, id_: str | None = None) -> str:
        """The key itself (one key), or the key of ``id_`` (a family).

        Raises ``InvalidKeyError`` for an id that is not a non-empty str, or a key
        over 1024 characters, and ``InvalidArgumentError`` for an id given to one key
        or missing for a family.
        """
        if self.id_name is None:
            if id_ is not None:
                raise InvalidArgumentError(
                    f"typed key {self.template!r} is one key, with no id: call it without "
                    f"one (not with {id_!r})"
                )
            return self.prefix
        if id_ is None:
            raise InvalidArgumentError(
                f"typed key {self.template!r} is a family of keys: give the {self.id_name} "
                "of the one you mean"
            )
        id_ = check_key(id_, f"{self.id_name} (the id in {self.template!r})")
        return check_key(self._key.fill(id_))

    def id_of(self, key: str) -> str | None:
        """The id in ``key``, a key of this family (None for one key: it has no id).

        Raises ``InvalidKeyError`` if ``key`` is not this typed key's (or one of its
        family's): that is, if :attr:`pattern` does not match it.
        """
        if self.id_name is None:
            if key != self.prefix:
                raise InvalidKeyError(f"key {key!r} is not the typed key {self.template!r}")
            return None
        end = len(key) - len(self.suffix)
        if not (
            end > len(self.prefix) and key.startswith(self.prefix) and key.endswith(self.suffix)
        ):
            raise InvalidKeyError(f"key {key!r} is not a key of typed key {self.template!r}")
        return key[len(self.prefix) : end]

    def validate(self, value: Any, id_: str | None = None) -> M:
        """``value`` converted to the model, if it fits this key (``id_``'s, in a family),
        checked in the form it will be stored in: what a write checks.

        Raises ``SchemaError`` naming the key and the path of each bad field (in a
        family with an ``id_field``, also if that field does not hold ``id_``), and
        ``SerializationError`` for a value that cannot be stored at all.
        """
        key = self.key(id_)
        try:
            stored = _decode(_encode_quietly(value))
        except (TypeError, ValueError, OverflowError, RecursionError):
            _UNBOUNDED.encode(key, value)  # the codec's SerializationError says why
            raise
        return self._fit(key, stored, id_)

    def model_of(self, entry: ContextEntry) -> M:
        """The model of an entry stored under this key (or a key of the family): what a
        read returns. Raises ``SchemaError`` as :meth:`validate` if it does not fit,
        ``InvalidKeyError`` if the entry is not this key's."""
        return self._fit(entry.key, entry.value, self.id_of(entry.key))

    def _fit(self, key: str, value: Any, id_: str | None) -> M:
        """The one rule: ``value`` converts to the model, and holds its id if checked."""
        checked: M = convert(key, value, self.model)
        if self.id_field is not None:
            found = (
                checked.get(self.id_field)
                if isinstance(checked, Mapping)
                else getattr(checked, self.id_field, None)
            )
            if found != id_:
                problem = f"is {found!r}, but the value is written under the id {id_!r}"
                raise SchemaError(key, type_name(self.model), [(self.id_field, problem)])
        return checked

    def source_for(self, id_: str | None = None) -> str | None:
        """The source that a write (of ``id_``) records; None: the context's default."""
        return None if self._source is None else self._source.fill(id_)

    def tags_for(self, id_: str | None = None) -> tuple[str, ...]:
        """The tags that a write (of ``id_``) records, deduplicated in order."""
        return tuple(dict.fromkeys(tag.fill(id_) for tag in self._tags))

    def on(self, context: SharedContext) -> BoundKey[M]:
        """This key bound to ``context``: its reads, writes, queries, waits and watches."""
        if not isinstance(context, SharedContext):
            raise InvalidArgumentError(
                f"typed key {self.template!r} binds to a SharedContext, not "
                f"{type(context).__name__} (declare it in a Schema to bind it by session id)"
            )
        return BoundKey(self, context)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, instance: Schema, owner: type[Any]) -> BoundKey[M]: ...

    def __get__(self, instance: Schema | None, owner: type[Any]) -> Self | BoundKey[M]:
        """On a bound :class:`Schema`, this key bound to its context; on the class, itself."""
        return self if instance is None else BoundKey(self, instance.context)

    def __repr__(self) -> str:
        return f"TypedKey({self.template!r}, {type_name(self.model)})"


def _dump_quietly(value: Any) -> Any:
    # A pydantic model is stored as its python-mode dump (sharedctx._codec); without
    # pydantic's warnings about fields that do not fit: the validation names them.
    if hasattr(type(value), "__pydantic_fields__"):
        return value.model_dump(warnings=False)
    raise TypeError(f"values of type {type(value).__qualname__} are not supported")


_encode_quietly = msgspec.msgpack.Encoder(enc_hook=_dump_quietly).encode
_decode = msgspec.msgpack.Decoder().decode
_UNBOUNDED = MsgpackCodec(sys.maxsize)


def _field_names(model: Any) -> Collection[str] | None:
    """The field names of a pydantic model, dataclass, msgspec Struct or TypedDict."""
    if isinstance(model, type) and issubclass(model, msgspec.Struct):
        return model.__struct_fields__
    if dataclasses.is_dataclass(model):
        return [field.name for field in dataclasses.fields(model)]
    if typing.is_typeddict(model):
        return model.__required_keys__ | model.__optional_keys__  # type: ignore[no-any-return]
    fields = getattr(model, "model_fields", None)  # pydantic
    return None if not isinstance(fields, Mapping) else list(fields)


def _no_operation(step: object) -> Any:
    raise TypeError(f"not a step of a typed key: {step!r}")


async def _ano_operation(step: object) -> Any:
    raise TypeError(f"not a step of a typed key: {step!r}")


def _run(calls: Steps[R]) -> R:
    """Make the context calls (``Twin`` steps) that ``calls`` yields."""
    return run(calls, _no_operation)


async def _arun(calls: Steps[R]) -> R:
    """Awaitable twin of :func:`_run`: awaits the twin of each call."""
    return await arun(calls, _ano_operation)


def _skips(on_invalid: OnInvalid) -> bool:
    if on_invalid not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_invalid must be 'raise' or 'skip', not {on_invalid!r}")
    return on_invalid == "skip"


_ABSENT: Any = object()  # what an update's function gets for an absent key


class BoundKey(Generic[M]):
    """A typed key bound to a context: validated writes, typed reads, queries, waits.

    Made by ``typed_key.on(context)``, or as an attribute of a bound :class:`Schema`.
    A call on one key takes no id (``set(value)``, ``get()``); a call on a family
    takes the id first (``set(id, value)``, ``get(id)``), and ``all``, ``wait_for``
    read the whole family. Each call has an awaitable ``a``-prefixed twin
    (``aset``, ``aget``, ``aall``, ``await_for``...); a watch is iterated with ``for``
    or ``async for``. Thread-safe as the context is. Values that do not fit raise
    ``SchemaError`` naming the key and field: a write then stores nothing.
    """

    __slots__ = ("context", "typed_key")

    def __init__(self, typed_key: TypedKey[M], context: SharedContext) -> None:
        self.typed_key = typed_key
        """The typed key."""
        self.context = context
        """The context it reads and writes."""

    def __repr__(self) -> str:
        return f"<BoundKey {self.typed_key.template!r} of {self.context.session_id!r}>"

    # -- writes ----------------------------------------------------------------------

    @overload
    def set(self, value: M, /, *, if_version: int | None = None) -> ContextEntry: ...
    @overload
    def set(self, id_: str, value: M, /, *, if_version: int | None = None) -> ContextEntry: ...

    def set(self, *args: Any, if_version: int | None = None) -> ContextEntry:
        """Validate ``value``, then store it (under ``id_``'s key, in a family) with the
        key's source and tags; return the stored entry.

        Raises ``SchemaError`` (nothing stored) if it does not fit, and what
        ``SharedContext.set`` raises (``if_version``: ``VersionConflictError``...).
        """
        key, value, source, tags = self._write(args, "set")
        return self.context.set(key, value, source=source, tags=tags, if_version=if_version)

    @overload
    async def aset(self, value: M, /, *, if_version: int | None = None) -> ContextEntry: ...
    @overload
    async def aset(
        self, id_: str, value: M, /, *, if_version: int | None = None
    ) -> ContextEntry: ...

    async def aset(self, *args: Any, if_version: int | None = None) -> ContextEntry:
        """Awaitable twin of :meth:`set`."""
        key, value, source, tags = self._write(args, "set")
        return await self.context.aset(key, value, source=source, tags=tags, if_version=if_version)

    def _write(
        self, args: tuple[Any, ...], call: str
    ) -> tuple[str, M, str | None, tuple[str, ...]]:
        """Key, validated value, source and tags of a write of ``(value,)`` or ``(id, value)``."""
        id_, value = self._split(args, call, "value")
        typed = self.typed_key
        return (
            typed.key(id_),
            typed.validate(value, id_),
            typed.source_for(id_),
            typed.tags_for(id_),
        )

    def _split(self, args: tuple[Any, ...], call: str, what: str) -> tuple[str | None, Any]:
        name = self.typed_key.id_name
        if len(args) == (1 if name is None else 2):
            return (None, args[0]) if name is None else (args[0], args[1])
        usage = f"{call}({what})" if name is None else f"{call}({name}, {what})"
        kind = "one key" if name is None else "a family of keys"
        raise InvalidArgumentError(
            f"typed key {self.typed_key.template!r} is {kind}: call {usage}, "
            f"not with {len(args)} argument(s)"
        )

    @overload
    def update(self, fn: Callable[[M], M], /, *, default: M | None = None) -> ContextEntry: ...
    @overload
    def update(
        self, id_: str, fn: Callable[[M], M], /, *, default: M | None = None
    ) -> ContextEntry: ...

    def update(self, *args: Any, default: M | None = None) -> ContextEntry:
        """Atomically replace the model with ``fn(model)``; return the new entry.

        ``fn`` gets the stored model (or ``default`` if absent; an absent key without
        a ``default`` raises ``InvalidArgumentError``) and returns the new one, which
        is validated like a ``set``. ``fn`` may run more than once if other writers get
        in between, so it should have no side effects; it is a plain function, also
        for :meth:`aupdate`. Raises ``SchemaError`` if the stored or the new value does
        not fit (nothing stored).
        """
        key, apply, source, tags = self._update(args, default)
        return self.context.update(key, apply, default=_ABSENT, source=source, tags=tags)

    @overload
    async def aupdate(
        self, fn: Callable[[M], M], /, *, default: M | None = None
    ) -> ContextEntry: ...
    @overload
    async def aupdate(
        self, id_: str, fn: Callable[[M], M], /, *, default: M | None = None
    ) -> ContextEntry: ...

    async def aupdate(self, *args: Any, default: M | None = None) -> ContextEntry:
        """Awaitable twin of :meth:`update`."""
        key, apply, source, tags = self._update(args, default)
        return await self.context.aupdate(key, apply, default=_ABSENT, source=source, tags=tags)

    def _update(
        self, args: tuple[Any, ...], default: M | None
    ) -> tuple[str, Callable[[Any], M], str | None, tuple[str, ...]]:
        id_, fn = self._split(args, "update", "fn")
        typed = self.typed_key
        key = typed.key(id_)
        if not callable(fn):
            raise InvalidArgumentError(f"the update function for key {key!r} is not callable")

        def apply(stored: Any) -> M:
            if stored is _ABSENT and default is None:
                raise InvalidArgumentError(
                    f"key {key!r} holds no value to update: give update(..., default=...) "
                    "for fn to start from"
                )
            result = fn(typed.validate(default if stored is _ABSENT else stored, id_))
            if inspect.isawaitable(result):
                getattr(result, "close", lambda: None)()  # never awaited: no warning
                raise InvalidArgumentError(
                    f"the update function for key {key!r} returned an awaitable: a typed "
                    "update takes a plain function from model to model"
                )
            return typed.validate(result, id_)

        return key, apply, typed.source_for(id_), typed.tags_for(id_)

    def delete(self, id_: str | None = None, /) -> bool:
        """Remove the key (``id_``'s, in a family); False if it was not there."""
        return self.context.delete(self.typed_key.key(id_))

    async def adelete(self, id_: str | None = None, /) -> bool:
        """Awaitable twin of :meth:`delete`."""
        return await self.context.adelete(self.typed_key.key(id_))

    # -- reads -----------------------------------------------------------------------

    @overload
    def get(self, id_: str | None = None, /) -> M | None: ...
    @overload
    def get(self, id_: str | None = None, /, *, default: D) -> M | D: ...

    def get(self, id_: str | None = None, /, *, default: Any = None) -> Any:
        """The stored model (``id_``'s, in a family), or ``default`` if absent.

        Raises ``SchemaError`` naming the key and field if what is stored does not fit.
        """
        return self._model(self.context.get_entry(self.typed_key.key(id_)), default)

    @overload
    async def aget(self, id_: str | None = None, /) -> M | None: ...
    @overload
    async def aget(self, id_: str | None = None, /, *, default: D) -> M | D: ...

    async def aget(self, id_: str | None = None, /, *, default: Any = None) -> Any:
        """Awaitable twin of :meth:`get`."""
        return self._model(await self.context.aget_entry(self.typed_key.key(id_)), default)

    def _model(self, entry: ContextEntry | None, default: Any) -> Any:
        return default if entry is None else self.typed_key.model_of(entry)

    def entry(self, id_: str | None = None, /) -> ContextEntry | None:
        """The stored entry (``id_``'s, in a family) as it is, unvalidated: its version,
        source, tags, TTL; None if absent."""
        return self.context.get_entry(self.typed_key.key(id_))

    async def aentry(self, id_: str | None = None, /) -> ContextEntry | None:
        """Awaitable twin of :meth:`entry`."""
        return await self.context.aget_entry(self.typed_key.key(id_))

    def all(
        self, *, limit: int | None = None, after: str | None = None, on_invalid: OnInvalid = "raise"
    ) -> dict[str, M]:
        """Every model of the family, by id, in the order of their keys; {} if none.

        For pages, ``limit`` bounds how many come back and ``after`` (an id: the last
        of the previous page) continues after it. A stored value that does not fit
        raises ``SchemaError``, or with ``on_invalid="skip"`` is left out (then a page
        reads on until it has ``limit`` models or the family ends).
        """
        return _run(self._all(limit, after, on_invalid))

    async def aall(
        self, *, limit: int | None = None, after: str | None = None, on_invalid: OnInvalid = "raise"
    ) -> dict[str, M]:
        """Awaitable twin of :meth:`all`."""
        return await _arun(self._all(limit, after, on_invalid))

    def _all(
        self, limit: int | None, after: str | None, on_invalid: OnInvalid
    ) -> Steps[dict[str, M]]:
        typed = self._family("all", "get()")
        skips = _skips(on_invalid)
        limit = check_positive_int(limit, "limit", allow_none=True)
        start = None if after is None else typed.key(after)
        found: dict[str, M] = {}
        while True:
            wanted = None if limit is None else limit - len(found)
            context = self.context
            entries = yield Twin(
                context.find_by_pattern,
                context.afind_by_pattern,
                _query(typed),
                limit=wanted,
                after=start,
            )
            found |= _models(typed, entries, skips)
            if wanted is None or len(entries) < wanted or len(found) == limit:
                return found
            start = entries[-1].key

    def _family(self, call: str, instead: str) -> TypedKey[M]:
        if self.typed_key.id_name is None:
            raise InvalidArgumentError(
                f"typed key {self.typed_key.template!r} is one key: {call}() is for a family "
                f"of keys (use {instead})"
            )
        return self.typed_key

    # -- waits and watches -------------------------------------------------------------

    def wait_for(
        self,
        ids: Iterable[str] | None = None,
        *,
        count: int | None = None,
        since: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, M]:
        """Block until every id of ``ids`` (or, without ``ids``, at least ``count`` ids,
        default 1) has a value in the family; return the models by id.

        With ``since`` (a revision), only values written after it count. Woken by
        events, never polls. Raises ``WaitTimeoutError`` when ``timeout`` seconds pass
        (naming the missing ids), ``SchemaError`` if a value does not fit, and
        ``ContextError`` on a thread that runs an event loop (use :meth:`await_for`).
        """
        return _run(self._wait_for(ids, count, since, timeout))

    async def await_for(
        self,
        ids: Iterable[str] | None = None,
        *,
        count: int | None = None,
        since: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, M]:
        """Awaitable twin of :meth:`wait_for`; never blocks the event loop."""
        return await _arun(self._wait_for(ids, count, since, timeout))

    def _wait_for(
        self, ids: Iterable[str] | None, count: int | None, since: int | None, timeout: float | None
    ) -> Steps[dict[str, M]]:
        typed = self._family("wait_for", "wait_for_value()")
        context = self.context
        if ids is None:
            at_least = 1 if count is None else count
            entries = yield Twin(
                context.wait_for,
                context.await_for,
                typed.pattern,
                count=at_least,
                timeout=timeout,
                since=since,
            )
            return _models(typed, entries)
        if count is not None:
            raise InvalidArgumentError(
                f"wait_for on {typed.template!r} takes ids or count, not both"
            )
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise InvalidArgumentError(
                f"the ids to wait for under {typed.template!r} must be a collection of ids, "
                f"not the {type(ids).__name__} {ids!r}"
            )
        keys = {id_: typed.key(id_) for id_ in ids}
        try:
            wanted = list(keys.values())
            found = yield Twin(
                context.wait_for_keys, context.await_for_keys, wanted, timeout=timeout, since=since
            )
        except WaitTimeoutError as timed_out:
            lacking = set(timed_out.missing)
            missing = sorted(id_ for id_, key in keys.items() if key in lacking)
            after = "" if since is None else f" written after revision {since}"
            raise WaitTimeoutError(
                f"no value{after} after {timeout} s under {typed.template!r} for "
                f"{typed.id_name} in {missing}",
                missing,
            ) from None
        return {id_: typed.model_of(found[key]) for id_, key in keys.items()}

    def wait_for_value(
        self, id_: str | None = None, /, *, since: int | None = None, timeout: float | None = None
    ) -> M:
        """Block until the key (``id_``'s, in a family) has a value (written after
        revision ``since``, if given); return its model.

        Raises ``WaitTimeoutError`` when ``timeout`` seconds pass, ``SchemaError`` if the
        value does not fit, and ``ContextError`` on a thread that runs an event loop
        (use :meth:`await_for_value`).
        """
        return _run(self._wait_for_value(id_, since, timeout))

    async def await_for_value(
        self, id_: str | None = None, /, *, since: int | None = None, timeout: float | None = None
    ) -> M:
        """Awaitable twin of :meth:`wait_for_value`; never blocks the event loop."""
        return await _arun(self._wait_for_value(id_, since, timeout))

    def _wait_for_value(
        self, id_: str | None, since: int | None, timeout: float | None
    ) -> Steps[M]:
        key, context = self.typed_key.key(id_), self.context
        found = yield Twin(
            context.wait_for_keys, context.await_for_keys, [key], timeout=timeout, since=since
        )
        return self.typed_key.model_of(found[key])

    def watch(
        self, *, since: int | None = None, max_pending: int = 1000, on_invalid: OnInvalid = "raise"
    ) -> TypedWatch[M]:
        """A stream of typed events: the changes to this key (or the family's keys).

        As ``SharedContext.watch``: from now on, or from just after revision
        ``since``; at most ``max_pending`` unread events. A set whose value does not
        fit raises ``SchemaError`` when it is read (the watch goes on), or with
        ``on_invalid="skip"`` is left out.
        """
        skips = _skips(on_invalid)
        watch = self.context.watch(self.typed_key.pattern, max_pending=max_pending, since=since)
        return TypedWatch(self.typed_key, watch, skips)


def _query(typed: TypedKey[Any]) -> str:
    """The pattern by which a typed key's entries are read (see the module docstring)."""
    if typed.id_name is None:
        return typed.pattern
    return f"{escape(typed.prefix)}*{escape(typed.suffix)}"


def _members(typed: TypedKey[Any], entries: Iterable[ContextEntry]) -> Iterator[ContextEntry]:
    """The entries read by :func:`_query` that are the typed key's: not the empty id."""
    empty = len(typed.prefix) + len(typed.suffix)
    return (entry for entry in entries if typed.id_name is None or len(entry.key) > empty)


def _models(
    typed: TypedKey[M], entries: Iterable[ContextEntry], skips: bool = False
) -> dict[str, M]:
    """The models of a family's entries (read by :func:`_query` or its pattern) by id;
    with ``skips``, those that do not fit are left out (else they raise ``SchemaError``)."""
    found: dict[str, M] = {}
    for entry in _members(typed, entries):
        id_ = typed.id_of(entry.key)
        assert id_ is not None  # a key of a family has an id
        try:
            found[id_] = typed.model_of(entry)
        except SchemaError:
            if not skips:
                raise
    return found


class TypedEvent(NamedTuple, Generic[M]):
    """A change to a typed key, as a :class:`TypedWatch` yields it."""

    id: str | None
    """The id of the key changed (None for one key)."""
    action: Action
    """``set``, ``delete``, ``expire`` or ``evict``."""
    value: M | None
    """The model that a ``set`` stored; None for a removal (its value is gone) and for
    a replayed set of a key removed since."""
    event: ContextEvent
    """The context's event: key, entry, revision."""


class TypedWatch(Closeable, Generic[M]):
    """The changes to a typed key, as :class:`TypedEvent`: iterate it (``for`` or
    ``async for``), or call ``get(timeout)``/``aget``; close it (or use it as a context
    manager) when done. Made by :meth:`BoundKey.watch`.
    """

    def __init__(self, typed_key: TypedKey[M], watch: Watch, skips: bool) -> None:
        self.typed_key = typed_key
        """The typed key watched."""
        self.watch = watch
        """The context's watch underneath (its pattern is the typed key's)."""
        self._skips = skips

    def get(self, timeout: float | None = None) -> TypedEvent[M]:
        """The next event; wait at most ``timeout`` seconds for each event read.

        Raises what ``Watch.get`` raises (``WaitTimeoutError``, ``ContextClosedError``
        once closed, ``WatchOverflowError``), and ``SchemaError`` for a set whose
        value does not fit (unless skipped): the watch goes on after it.
        """
        while True:
            typed = self._typed(self.watch.get(timeout))
            if typed is not None:
                return typed

    async def aget(self, timeout: float | None = None) -> TypedEvent[M]:
        """Awaitable twin of :meth:`get`; never blocks the event loop."""
        while True:
            typed = self._typed(await self.watch.aget(timeout))
            if typed is not None:
                return typed

    def _typed(self, event: ContextEvent) -> TypedEvent[M] | None:
        id_ = self.typed_key.id_of(event.key)
        value = None
        if event.action == "set" and event.entry.has_value:
            try:
                value = self.typed_key.model_of(event.entry)
            except SchemaError:
                if self._skips:
                    return None
                raise
        return TypedEvent(id_, event.action, value, event)

    def close(self) -> None:
        """Stop the watch; iteration ends. Idempotent."""
        self.watch.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> TypedEvent[M]:
        try:
            return self.get()
        except ContextClosedError:
            raise StopIteration from None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TypedEvent[M]:
        try:
            return await self.aget()
        except ContextClosedError:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<TypedWatch {self.typed_key.template!r} {self.watch!r}>"


class Schema:
    """A pipeline's typed keys, declared once as class attributes of a subclass.

    ::

        class Review(Schema):
            plan = TypedKey("review:plan", Plan, source="planner")
            findings = TypedKey("review:finding:{file}", Finding, id_field="file")

        review = Review(ctx)            # or Review("session-42")
        review.plan.set(plan)           # each attribute is a BoundKey on ctx

    Built from a ``SharedContext``, or from a session id, looked up or created in
    ``manager`` (the module-level ``context_manager`` by default). Declaring two
    typed keys that could name the same key raises ``InvalidArgumentError`` (an id may
    hold ``:``, so ``doc:{id}`` holds ``doc:a:chunks``). :meth:`check` reports the
    entries of a session that do not fit their typed key.
    """

    _typed_keys: ClassVar[Mapping[str, TypedKey[Any]]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        keys: dict[str, TypedKey[Any]] = {}
        for klass in reversed(cls.__mro__):
            keys.update(
                (name, value) for name, value in vars(klass).items() if isinstance(value, TypedKey)
            )
        _check_disjoint(cls.__name__, keys)
        cls._typed_keys = MappingProxyType(keys)

    def __init__(
        self,
        session_id_or_context: str | SharedContext,
        *,
        manager: ContextManager = context_manager,
    ) -> None:
        self.context: SharedContext = (
            session_id_or_context
            if isinstance(session_id_or_context, SharedContext)
            else manager.get_or_create(session_id_or_context)
        )
        """The context that this schema's typed keys read and write."""

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.context.session_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.session_id!r}>"

    @classmethod
    def typed_keys(cls) -> Mapping[str, TypedKey[Any]]:
        """This schema's typed keys, by attribute name, in the order declared."""
        return cls._typed_keys

    @classmethod
    def check(cls, context: SharedContext, pattern: str = "*") -> list[SchemaError]:
        """Every entry of ``context`` under one of this schema's typed keys whose value
        does not fit it (as a read would find): a list of ``SchemaError``, sorted by key.

        Only keys matching the glob ``pattern`` are checked. Reads each typed key's
        entries with one query; entries under no typed key are not looked at.
        """
        return _run(_problems(context, cls._typed_keys.values(), pattern))

    @classmethod
    async def acheck(cls, context: SharedContext, pattern: str = "*") -> list[SchemaError]:
        """Awaitable twin of :meth:`check`."""
        return await _arun(_problems(context, cls._typed_keys.values(), pattern))


def _problems(
    context: SharedContext, keys: Iterable[TypedKey[Any]], pattern: str
) -> Steps[list[SchemaError]]:
    selected = compile_glob(pattern)
    problems: list[SchemaError] = []
    for typed in keys:
        entries = yield Twin(context.find_by_pattern, context.afind_by_pattern, _query(typed))
        for entry in _members(typed, entries):
            if selected.match(entry.key):
                try:
                    typed.model_of(entry)
                except SchemaError as problem:
                    problems.append(problem)
    return sorted(problems, key=lambda problem: problem.key)


def _check_disjoint(schema: str, keys: Mapping[str, TypedKey[Any]]) -> None:
    named = list(keys.items())
    for index, (name, key) in enumerate(named):
        for other_name, other in named[:index]:
            if _overlap(key, other):
                raise InvalidArgumentError(
                    f"schema {schema}: typed keys {other_name} ({other.template!r}) and "
                    f"{name} ({key.template!r}) can name the same key (an id may hold ':'): "
                    "give each fixed text that the other's keys cannot have, as "
                    "'doc:{id}:text' beside 'doc:{id}:chunks'"
                )


def _overlap(a: TypedKey[Any], b: TypedKey[Any]) -> bool:
    """Whether some key belongs to both (each is one key, or prefix + id + suffix)."""
    if a.id_name is None:
        a, b = b, a
    if a.id_name is None:  # two single keys
        return a.prefix == b.prefix
    if b.id_name is None:  # a family and one key
        return compile_glob(a.pattern).match(b.prefix)
    heads = a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)
    tails = a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix)
    return heads and tails
