"""Typed keys: validated writes, typed reads, queries, waits and watches, for any model."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypedDict

import msgspec
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharedctx import (
    BoundKey,
    ContextError,
    ContextManager,
    InvalidArgumentError,
    InvalidKeyError,
    MemoryBackend,
    MindResult,
    PipelineContext,
    Schema,
    SchemaError,
    SerializationError,
    SharedContext,
    StandardKeys,
    TypedEvent,
    TypedKey,
)

# -- one model of each kind: a review of a file, with nested lines -------------------


class PydanticLine(pydantic.BaseModel):
    number: int


class PydanticReview(pydantic.BaseModel):
    file: str
    score: float = pydantic.Field(ge=0, le=1)
    lines: list[PydanticLine]


@dataclasses.dataclass
class DataclassLine:
    number: int


@dataclasses.dataclass
class DataclassReview:
    file: str
    score: float
    lines: list[DataclassLine]


class StructLine(msgspec.Struct):
    number: int


class StructReview(msgspec.Struct):
    file: str
    score: float
    lines: list[StructLine]


class TypedDictLine(TypedDict):
    number: int


class TypedDictReview(TypedDict):
    file: str
    score: float
    lines: list[TypedDictLine]


class Kind(NamedTuple):
    name: str
    model: Any
    make: Callable[[str, float, list[int]], Any]


KINDS = [
    Kind(
        "pydantic",
        PydanticReview,
        lambda file, score, numbers: PydanticReview(
            file=file, score=score, lines=[PydanticLine(number=n) for n in numbers]
        ),
    ),
    Kind(
        "dataclass",
        DataclassReview,
        lambda file, score, numbers: DataclassReview(
            file, score, [DataclassLine(n) for n in numbers]
        ),
    ),
    Kind(
        "struct",
        StructReview,
        lambda file, score, numbers: StructReview(file, score, [StructLine(n) for n in numbers]),
    ),
    Kind(
        "typeddict",
        TypedDictReview,
        lambda file, score, numbers: TypedDictReview(
            file=file, score=score, lines=[TypedDictLine(number=n) for n in numbers]
        ),
    ),
]
each_kind = pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])


def plan_key(kind: Kind) -> TypedKey[Any]:
    return TypedKey("review:plan", kind.model, source="planner", tags=["phase:plan"])


def review_key(kind: Kind) -> TypedKey[Any]:
    return TypedKey(
        "review:file:{file}",
        kind.model,
        id_field="file",
        source="reviewer:{file}",
        tags=["phase:review", "{file}"],
    )


def fits(found: Any, expected: Any) -> bool:
    return type(found) is type(expected) and found == expected


# -- round trips ---------------------------------------------------------------------


@each_kind
def test_each_kind_of_model_round_trips_on_each_backend(ctx: SharedContext, kind: Kind) -> None:
    plan, reviews = plan_key(kind).on(ctx), review_key(kind).on(ctx)
    assert plan.get() is None
    assert reviews.get("a.py", default="none") == "none"
    entry = plan.set(kind.make("*", 0.5, [1, 2]))
    assert (entry.key, entry.source, entry.tags) == ("review:plan", "planner", ("phase:plan",))
    assert fits(plan.get(), kind.make("*", 0.5, [1, 2]))
    entry = reviews.set("src/a.py", kind.make("src/a.py", 0.9, [3]))
    assert entry.key == "review:file:src/a.py"
    assert (entry.source, entry.tags) == ("reviewer:src/a.py", ("phase:review", "src/a.py"))
    assert fits(reviews.get("src/a.py"), kind.make("src/a.py", 0.9, [3]))
    reviews.set("b.py", kind.make("b.py", 0.1, []))
    found = reviews.all()
    assert list(found) == ["b.py", "src/a.py"]
    assert fits(found["b.py"], kind.make("b.py", 0.1, []))
    entry_found = reviews.entry("b.py")
    assert entry_found is not None
    assert entry_found.version == 1
    assert reviews.delete("b.py")
    assert not reviews.delete("b.py")
    assert list(reviews.all()) == ["src/a.py"]


@each_kind
async def test_each_kind_of_model_round_trips_with_the_awaitable_twins(
    ctx: SharedContext, kind: Kind
) -> None:
    plan, reviews = plan_key(kind).on(ctx), review_key(kind).on(ctx)
    await plan.aset(kind.make("*", 0.5, [1]))
    assert fits(await plan.aget(), kind.make("*", 0.5, [1]))
    await reviews.aset("a.py", kind.make("a.py", 0.7, [2]))
    assert fits(await reviews.aget("a.py"), kind.make("a.py", 0.7, [2]))
    assert list(await reviews.aall()) == ["a.py"]
    assert (await reviews.aentry("a.py")) is not None
    assert await reviews.adelete("a.py")
    assert await reviews.aget("a.py") is None


@each_kind
def test_what_a_write_checks_is_what_a_read_returns(ctx: SharedContext, kind: Kind) -> None:
    plan = plan_key(kind)
    value = kind.make("*", 0.25, [1, 2])
    checked = plan.validate(value)
    assert fits(checked, value)
    plan.on(ctx).set(value)
    assert fits(plan.on(ctx).get(), checked)
    with pytest.raises(SerializationError, match="cannot store the value for key 'review:plan'"):
        plan.validate(object())


def test_a_value_as_plain_data_is_converted_into_the_model(ctx: SharedContext) -> None:
    reviews = review_key(KINDS[0]).on(ctx)
    reviews.set("a.py", {"file": "a.py", "score": "0.5", "lines": [{"number": "4"}]})
    assert reviews.get("a.py") == PydanticReview(
        file="a.py", score=0.5, lines=[PydanticLine(number=4)]
    )


# -- what does not fit ---------------------------------------------------------------

# A bad value at each level of nesting, and the path of the field its error names
# (pydantic writes list items as ``.0``, msgspec as ``[0]``).
BAD_LEVELS = [
    ("the value", lambda good: "not a review", r""),
    ("a field", lambda good: {**good, "score": "high"}, r"score"),
    (
        "a nested field",
        lambda good: {**good, "lines": [{"number": "one"}]},
        r"lines(\.0|\[0\])\.number",
    ),
]


@each_kind
@pytest.mark.parametrize(("level", "spoil", "path"), BAD_LEVELS, ids=[row[0] for row in BAD_LEVELS])
def test_a_bad_value_at_each_level_names_its_path_and_stores_nothing(
    ctx: SharedContext, kind: Kind, level: str, spoil: Callable[[Any], Any], path: str
) -> None:
    reviews = review_key(kind).on(ctx)
    good = {"file": "a.py", "score": 0.5, "lines": [{"number": 1}]}
    with pytest.raises(SchemaError) as caught:
        reviews.set("a.py", spoil(good))
    assert caught.value.key == "review:file:a.py"
    assert caught.value.expected == kind.model.__name__
    [(found_path, message)] = caught.value.errors
    assert re.fullmatch(path, found_path), found_path
    assert message
    assert "'review:file:a.py'" in str(caught.value)
    assert ctx.keys() == []


@each_kind
async def test_a_per_id_value_written_under_another_id_stores_nothing(
    ctx: SharedContext, kind: Kind
) -> None:
    reviews = review_key(kind).on(ctx)
    with pytest.raises(SchemaError):
        await reviews.aset("a.py", kind.make("b.py", 0.5, []))
    for value in (kind.make("b.py", 0.5, []), {"file": "b.py", "score": 0.5, "lines": []}):
        with pytest.raises(SchemaError) as caught:
            reviews.set("a.py", value)
        assert caught.value.key == "review:file:a.py"
        assert caught.value.errors == [
            ("file", "is 'b.py', but the value is written under the id 'a.py'")
        ]
    assert ctx.keys() == []


@each_kind
def test_an_instance_changed_after_it_was_made_is_checked_as_it_would_be_stored(
    ctx: SharedContext, kind: Kind
) -> None:
    # Neither pydantic (by default) nor msgspec checks an instance again, and a Struct
    # or dataclass is not checked when made: the write checks what a read would find.
    reviews = review_key(kind).on(ctx)
    review = kind.make("a.py", 0.5, [1])
    if isinstance(review, dict):
        review["score"] = "high"
    else:
        review.score = "high"
    with pytest.raises(SchemaError) as caught:
        reviews.set("a.py", review)
    assert [path for path, _ in caught.value.errors] == ["score"]
    with pytest.raises(SchemaError, match="score"):
        reviews.update("a.py", lambda _: review, default=kind.make("a.py", 0.5, []))
    assert ctx.keys() == []


def test_a_stored_value_that_no_longer_fits_raises_on_read_or_is_skipped(
    ctx: SharedContext,
) -> None:
    reviews = review_key(KINDS[0]).on(ctx)
    reviews.set("a.py", PydanticReview(file="a.py", score=0.5, lines=[]))
    ctx.set("review:file:old.py", {"file": "old.py", "grade": "B"})  # an older schema
    ctx.set("review:file:moved.py", {"file": "elsewhere.py", "score": 1, "lines": []})
    with pytest.raises(SchemaError) as caught:
        reviews.get("old.py")
    assert caught.value.key == "review:file:old.py"
    assert {path for path, _ in caught.value.errors} == {"score", "lines"}
    with pytest.raises(SchemaError, match=r"'review:file:moved\.py'.*file: is 'elsewhere\.py'"):
        reviews.get("moved.py")
    with pytest.raises(SchemaError):
        reviews.all()
    assert list(reviews.all(on_invalid="skip")) == ["a.py"]


async def test_pages_of_a_family_continue_after_the_last_id_and_skip_what_does_not_fit(
    ctx: SharedContext,
) -> None:
    reviews = review_key(KINDS[0]).on(ctx)
    for name in ["a", "b", "d", "f", "g"]:
        reviews.set(name, PydanticReview(file=name, score=0.5, lines=[]))
    ctx.set_multiple({"review:file:c": 1, "review:file:e": 2})  # do not fit
    first = reviews.all(limit=2)
    assert list(first) == ["a", "b"]
    with pytest.raises(SchemaError, match="review:file:c"):
        reviews.all(limit=2, after="b")
    second = await reviews.aall(limit=2, after="b", on_invalid="skip")
    assert list(second) == ["d", "f"]  # the page read on past c and e
    assert list(reviews.all(limit=2, after="f", on_invalid="skip")) == ["g"]


# -- ids -----------------------------------------------------------------------------

ODD_IDS = ["a:b", "ns:deep:id", "*", "b*", "[x]", "?", "\\", "a\\*b", "{id}", "x:status"]


def test_ids_with_colons_and_glob_characters_round_trip_on_each_backend(ctx: SharedContext) -> None:
    statuses = TypedKey("run:{run_id}:status", str, source="runner:{run_id}").on(ctx)
    for run_id in ODD_IDS:
        assert statuses.set(run_id, f"done {run_id}").key == f"run:{run_id}:status"
    ctx.set("run:other", "not a status")
    ctx.set("run::status", "an empty id: not of the family")
    assert statuses.all() == {
        run_id: f"done {run_id}" for run_id in sorted(ODD_IDS, key=statuses.typed_key.key)
    }
    assert statuses.get("*") == "done *"
    assert statuses.entry("[x]") is not None
    assert statuses.wait_for(ODD_IDS, timeout=5) == {run_id: f"done {run_id}" for run_id in ODD_IDS}


def test_a_family_whose_fixed_text_holds_glob_characters_selects_only_itself(
    ctx: SharedContext,
) -> None:
    scores = TypedKey("scores[v1]*:{name}", float).on(ctx)
    assert scores.typed_key.pattern == r"scores\[v1\]\*:?*"
    scores.set("tim", 0.5)
    ctx.set_multiple({"scoresv*:ana": 0.1, "scores1x:bo": 0.2, "scores[v1]*:": 0.3})
    assert scores.all() == {"tim": 0.5}
    assert scores.wait_for(count=1, timeout=5) == {"tim": 0.5}


ID_TEXT = st.text(st.sampled_from("ab:*?[]^-\\{}é "), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(ID_TEXT, max_size=6, unique=True), other=ID_TEXT)
def test_a_family_holds_exactly_the_ids_written_to_it(ids: list[str], other: str) -> None:
    """Against a dict: every id comes back as it was written, and keys of a family
    with glob characters in its fixed text, or of another family, never get in."""
    family = TypedKey("s[1]:{id}:v", int)
    neighbour = TypedKey("s[1]:{id}:w", int)
    with SharedContext("hypothesis", backend=MemoryBackend()) as ctx:  # a store per example
        written = {id_: number for number, id_ in enumerate(ids)}
        for id_, number in written.items():
            family.on(ctx).set(id_, number)
            assert family.id_of(family.key(id_)) == id_
        neighbour.on(ctx).set(other, -1)
        ctx.set(f"s1:{other}:v", -2)  # what an unescaped pattern would also match
        assert family.on(ctx).all() == {
            id_: written[id_] for id_ in sorted(written, key=family.key)
        }
        assert neighbour.on(ctx).all() == {other: -1}


def test_ids_must_be_non_empty_text() -> None:
    reviews = review_key(KINDS[0])
    with pytest.raises(
        InvalidKeyError, match=r"file \(the id in 'review:file:\{file\}'\) must not be empty"
    ):
        reviews.key("")
    with pytest.raises(InvalidKeyError, match="must be a str, not int"):
        reviews.key(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError, match="at most 1024"):
        reviews.key("x" * 1024)
    with pytest.raises(InvalidKeyError, match="is not a key of typed key"):
        reviews.id_of("review:plan")


# -- update --------------------------------------------------------------------------


async def test_update_passes_the_model_in_and_validates_what_comes_out(ctx: SharedContext) -> None:
    reviews = review_key(KINDS[0]).on(ctx)
    start = PydanticReview(file="a.py", score=0.0, lines=[])

    def bump(review: PydanticReview) -> PydanticReview:
        return review.model_copy(update={"score": review.score + 0.25})

    entry = reviews.update("a.py", bump, default=start)
    assert (entry.version, entry.source) == (1, "reviewer:a.py")
    await reviews.aupdate("a.py", bump)
    assert reviews.get("a.py") == start.model_copy(update={"score": 0.5})
    with pytest.raises(SchemaError, match="score"):
        reviews.update("a.py", lambda review: review.model_copy(update={"score": 9}))
    with pytest.raises(SchemaError, match=r"file: is 'b\.py'"):
        reviews.update("a.py", lambda review: review.model_copy(update={"file": "b.py"}))
    with pytest.raises(
        InvalidArgumentError, match=r"holds no value to update: give update\(\.\.\., default"
    ):
        reviews.update("new.py", bump)
    assert reviews.get("a.py") == start.model_copy(update={"score": 0.5})
    assert reviews.get("new.py") is None


def test_many_threads_updating_one_typed_key_lose_nothing(ctx: SharedContext) -> None:
    counter = TypedKey("count", int).on(ctx)
    threads = [
        threading.Thread(
            target=lambda: [counter.update(lambda n: n + 1, default=0) for _ in range(20)]
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.get() == 80


async def test_a_typed_update_refuses_a_coroutine_function(ctx: SharedContext) -> None:
    counter = TypedKey("count", int).on(ctx)

    async def later(n: int) -> int:
        return n + 1

    with pytest.raises(InvalidArgumentError, match="returned an awaitable"):
        await counter.aupdate(later, default=0)  # type: ignore[arg-type]
    assert counter.get() is None


# -- waits ---------------------------------------------------------------------------


def test_wait_for_ids_returns_the_models_when_every_id_is_there(ctx: SharedContext) -> None:
    reviews = review_key(KINDS[0]).on(ctx)
    reviews.set("a", PydanticReview(file="a", score=0.1, lines=[]))

    def deliver() -> None:
        for name in ["other", "b*", "c:1"]:
            reviews.set(name, PydanticReview(file=name, score=0.2, lines=[]))

    threading.Thread(target=deliver).start()
    found = reviews.wait_for(["a", "b*", "c:1"], timeout=10)
    assert list(found) == ["a", "b*", "c:1"]
    assert found["b*"] == PydanticReview(file="b*", score=0.2, lines=[])


def test_wait_for_names_the_missing_ids_when_time_is_up(ctx: SharedContext) -> None:
    reviews = review_key(KINDS[0]).on(ctx)
    reviews.set("a", PydanticReview(file="a", score=0.1, lines=[]))
    start = ctx.revision
    with pytest.raises(
        TimeoutError, match=r"under 'review:file:\{file\}' for file in \['b', 'c'\]"
    ):
        reviews.wait_for(["a", "b", "c"], timeout=0)
    with pytest.raises(TimeoutError, match=rf"after revision {start} .* for file in \['a'\]"):
        reviews.wait_for(["a"], timeout=0, since=start)


async def test_await_for_a_count_counts_only_what_was_written_since(ctx: SharedContext) -> None:
    scores = TypedKey("score:{name}", float).on(ctx)
    await scores.aset("old", 0.1)
    start = await ctx.arevision()
    waiting = asyncio.ensure_future(scores.await_for(count=2, since=start, timeout=10))
    await scores.aset("tim", 0.5)
    await scores.aset("ana", 0.7)
    assert await waiting == {"ana": 0.7, "tim": 0.5}
    assert await scores.await_for(["old"], timeout=1) == {"old": 0.1}


async def test_wait_for_value_waits_for_one_key_or_one_id(ctx: SharedContext) -> None:
    plan = plan_key(KINDS[2]).on(ctx)
    reviews = review_key(KINDS[2]).on(ctx)
    waiting = asyncio.ensure_future(plan.await_for_value(timeout=10))
    await plan.aset(StructReview("*", 1.0, []))
    assert await waiting == StructReview("*", 1.0, [])
    threading.Thread(target=lambda: reviews.set("x", StructReview("x", 0.5, []))).start()
    found = await asyncio.to_thread(reviews.wait_for_value, "x", timeout=10)
    assert found == StructReview("x", 0.5, [])
    with pytest.raises(TimeoutError, match="review:file:y"):
        await reviews.await_for_value("y", timeout=0)


async def test_a_blocking_typed_wait_on_an_event_loop_is_refused(ctx: SharedContext) -> None:
    with pytest.raises(ContextError, match="await"):
        review_key(KINDS[0]).on(ctx).wait_for(["a"], timeout=1)


# -- watches -------------------------------------------------------------------------


def test_a_typed_watch_yields_the_id_action_and_model_of_each_change(ctx: SharedContext) -> None:
    reviews = review_key(KINDS[1]).on(ctx)
    review = DataclassReview("a:1", 0.5, [DataclassLine(3)])
    with reviews.watch() as events:
        reviews.set("a:1", review)
        ctx.set("review:plan", "not of the family")
        reviews.delete("a:1")
        first, second = events.get(timeout=5), events.get(timeout=5)
    assert isinstance(first, TypedEvent)
    assert (first.id, first.action, first.value) == ("a:1", "set", review)
    assert first.event.key == "review:file:a:1"
    assert (second.id, second.action, second.value) == ("a:1", "delete", None)
    assert list(events) == []  # closed: iteration ends


def test_a_typed_watch_raises_on_a_value_that_does_not_fit_and_goes_on(
    ctx: SharedContext,
) -> None:
    counts = TypedKey("count:{name}", int).on(ctx)
    with counts.watch() as strict, counts.watch(on_invalid="skip") as lenient:
        ctx.set("count:a", "many")
        counts.set("b", 2)
        with pytest.raises(SchemaError, match="count:a"):
            strict.get(timeout=5)
        assert strict.get(timeout=5).value == 2
        assert lenient.get(timeout=5).id == "b"


async def test_a_typed_watch_is_iterated_with_async_for_and_resumes_since(
    ctx: SharedContext,
) -> None:
    plan = TypedKey("plan", int).on(ctx)
    await plan.aset(1)
    start = await ctx.arevision()
    await plan.aset(2)
    seen = []
    async with plan.watch(since=start - 1) as events:
        await plan.aset(3)
        async for event in events:
            assert event.id is None
            seen.append(event.value)
            if len(seen) == 3:
                break
    assert seen == [1, 2, 3]


# -- schemas -------------------------------------------------------------------------


class Review(Schema):
    plan = TypedKey("review:plan", PydanticReview, source="planner")
    reviews = TypedKey("review:file:{file}", PydanticReview, id_field="file")


class ReviewWithSummary(Review):
    summary = TypedKey("review:summary", str)


def test_a_schema_binds_its_typed_keys_to_a_context_or_a_session(ctx: SharedContext) -> None:
    review = Review(ctx)
    assert isinstance(review.reviews, BoundKey)
    assert review.reviews.context is ctx
    assert Review.reviews.template == "review:file:{file}"
    review.reviews.set("a", PydanticReview(file="a", score=1, lines=[]))
    assert list(Review(ctx).reviews.all()) == ["a"]
    assert list(ReviewWithSummary.typed_keys()) == ["plan", "reviews", "summary"]
    with ContextManager() as manager:
        first = Review("session-7", manager=manager)
        assert first.context is Review("session-7", manager=manager).context
        assert repr(first) == "<Review 'session-7'>"


def test_a_schema_refuses_two_typed_keys_that_could_name_the_same_key() -> None:
    clashes = [
        ("doc:{id}", "doc:{id}:chunks"),  # the id 'a:chunks'
        ("doc:{id}", "doc:intro"),
        ("a:{x}:b", "a:c:{y}"),
        ("plan", "plan"),
    ]
    for first, second in clashes:
        with pytest.raises(InvalidArgumentError, match="can name the same key"):
            type("Clash", (Schema,), {"one": TypedKey(first, int), "two": TypedKey(second, int)})
    apart = [("doc:{id}:meta", "doc:{id}:chunks"), ("doc:{id}", "doc:"), ("a:{x}", "b:{x}")]
    for first, second in apart:
        type("Apart", (Schema,), {"one": TypedKey(first, int), "two": TypedKey(second, int)})


FIXED = st.text(st.sampled_from("a:"), max_size=2)
TEMPLATES = st.one_of(
    FIXED.filter(bool),  # one key
    st.builds(lambda head, tail: f"{head}{{id}}{tail}", FIXED, FIXED),  # a family
)


def keys_of(template: str) -> set[str]:
    """Every key of a template whose ids are at most 5 characters of "a:x": enough to
    find a key two templates of FIXED parts share, if there is one."""
    head, brace, tail = template.partition("{id}")
    if not brace:
        return {template}
    ids = [""]
    for _ in range(5):
        ids = [id_ + char for id_ in ids for char in "a:x"] + ids
    return {f"{head}{id_}{tail}" for id_ in ids if id_}


@settings(max_examples=150, deadline=None)
@given(first=TEMPLATES, second=TEMPLATES)
def test_a_schema_refuses_exactly_the_typed_keys_that_share_a_key(first: str, second: str) -> None:
    attributes = {"one": TypedKey(first, int), "two": TypedKey(second, int)}
    if keys_of(first) & keys_of(second):
        with pytest.raises(InvalidArgumentError, match="can name the same key"):
            type("Clash", (Schema,), attributes)
    else:
        assert list(type("Apart", (Schema,), attributes).typed_keys()) == ["one", "two"]


def test_check_reports_every_entry_that_does_not_fit_its_typed_key(ctx: SharedContext) -> None:
    review = ReviewWithSummary(ctx)
    review.plan.set(PydanticReview(file="*", score=0.5, lines=[]))
    review.reviews.set("ok", PydanticReview(file="ok", score=0.5, lines=[]))
    ctx.set_multiple(
        {
            "review:file:bad": {"file": "bad", "score": 2, "lines": []},
            "review:file:moved": {"file": "there", "score": 0, "lines": []},
            "review:summary": 42,
            "untyped": "not looked at",
        }
    )
    problems = ReviewWithSummary.check(ctx)
    assert [(p.key, p.errors[0][0]) for p in problems] == [
        ("review:file:bad", "score"),
        ("review:file:moved", "file"),
        ("review:summary", ""),
    ]
    assert [p.key for p in ReviewWithSummary.check(ctx, "review:file:*")] == [
        "review:file:bad",
        "review:file:moved",
    ]
    assert Review.check(ctx, "review:plan") == []


async def test_acheck_is_the_twin_of_check(ctx: SharedContext) -> None:
    ctx.set("review:file:x", {"file": "x"})
    assert [p.key for p in await Review.acheck(ctx)] == ["review:file:x"]


def test_the_pipeline_context_is_a_schema_of_the_standard_keys(ctx: SharedContext) -> None:
    keys = PipelineContext.typed_keys()
    assert len(keys) == 13
    patterns = {value for name, value in vars(StandardKeys).items() if name.isupper()}
    assert {key.template.replace("{", "*").split("*")[0] for key in keys.values()} <= {
        pattern.split("*")[0] for pattern in patterns
    }
    pipeline = PipelineContext(ctx)
    ctx.set(StandardKeys.for_id(StandardKeys.MIND_RESULTS, "tim"), {"mind_id": "tim"})
    [problem] = PipelineContext.check(ctx)
    assert problem.key == "analysis:mind:tim"
    assert problem.expected == MindResult.__name__
    assert pipeline.mind_results.all(on_invalid="skip") == {}


# -- bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TypedKey("a:{x}:{y}", int), "has 2 placeholders: a family of keys has one id"),
        (lambda: TypedKey("a:{0}", int), r"a placeholder is a name in braces, such as \{mind_id\}"),
        (lambda: TypedKey("a:{x:>3}", int), r"not \{x:>3\}"),
        (lambda: TypedKey("a:{x", int), "is not a template"),
        (lambda: TypedKey("", int), "must not be empty"),
        (lambda: TypedKey("a", "MindResult"), "must be a type"),  # type: ignore[call-overload]
        (lambda: TypedKey("a", int, id_field="x"), "is one key, with no id: it takes no id_field"),
        (lambda: TypedKey("a:{x}", MindResult, id_field="x"), "must name a field of MindResult"),
        (lambda: TypedKey("a:{x}", int, source="by:{y}"), r"holds \{y\}, but the key has \{x\}"),
        (lambda: TypedKey("a", int, tags=["{x}"]), "the key has no placeholder"),
        (lambda: TypedKey("a", int, tags="phase"), "must be a collection of str"),
        (lambda: TypedKey("a", int, source=""), "must be a non-empty str"),
    ],
)
def test_a_bad_typed_key_is_refused_saying_what_to_write(
    make: Callable[[], Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        make()


def test_bad_calls_say_what_to_call_instead(ctx: SharedContext) -> None:
    plan, reviews = plan_key(KINDS[0]).on(ctx), review_key(KINDS[0]).on(ctx)
    value = PydanticReview(file="a", score=1, lines=[])
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: reviews.set(value), r"is a family of keys: call set\(file, value\)"),
        (lambda: plan.set("a", value), r"is one key: call set\(value\)"),
        (lambda: reviews.get(), "is a family of keys: give the file"),
        (lambda: plan.get("a"), "is one key, with no id"),
        (lambda: plan.all(), r"all\(\) is for a family of keys \(use get\(\)\)"),
        (lambda: plan.wait_for(timeout=0), r"use wait_for_value\(\)"),
        (lambda: reviews.wait_for(["a"], count=1), "takes ids or count, not both"),
        (lambda: reviews.wait_for("a"), "must be a collection of ids, not the str 'a'"),
        (lambda: reviews.all(on_invalid="ignore"), "on_invalid must be 'raise' or 'skip'"),  # type: ignore[arg-type]
        (lambda: reviews.all(limit=0), "limit must be an int >= 1"),
        (lambda: reviews.watch(on_invalid="drop"), "on_invalid must be"),  # type: ignore[arg-type]
        (lambda: plan.update(3), "is not callable"),  # type: ignore[call-overload]
        (lambda: plan_key(KINDS[0]).on("session-1"), "binds to a SharedContext, not str"),  # type: ignore[arg-type]
    ]
    for call, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            call()
    assert ctx.keys() == []
    assert ctx.stats().subscriptions == 0
