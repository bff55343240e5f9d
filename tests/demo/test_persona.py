"""The demo's persona analysis: real statistics over the shipped sources, equal
results for equal seeds, and validation tasks that pass on the real profile and fail
on a corrupted one."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from sharedctx.demo._persona import (
    CONFLICT_SPREAD,
    MINDS,
    VALIDATION_TASKS,
    Source,
    auto_decision,
    build_manifest,
    extract,
    load_sources,
    orchestrate,
    run_minds,
    run_validation,
    source_metadata,
    summarize_validation,
    synthesize,
)
from sharedctx.pipeline._models import (
    DNAProfile,
    ExtractedData,
    MindResult,
    OrchestratorResult,
    SynthesisResult,
    ValidationSummary,
)

PERSONA = "Maren Holt"
TIMING_FIELDS = frozenset(
    {
        "extracted_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "completed_at",
        "created_at",
        "decided_at",
        "generated_at",
        "updated_at",
    }
)
NOW = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)


def run_chain(seed: int, limit: int | None = None) -> dict[str, Any]:
    """Every phase of the demo pipeline, in order, on the shipped sources."""
    extracted = extract(load_sources(), seed=seed, limit=limit)
    minds = run_minds(extracted)
    orchestrated = orchestrate(minds)
    dna, synthesis = synthesize(PERSONA, extracted, orchestrated)
    tasks = run_validation(dna, extracted)
    summary = summarize_validation(tasks, threshold=0.8)
    decision = auto_decision(summary, "cp-1")
    return {
        "extracted": extracted,
        "metadata": source_metadata(extracted),
        "minds": minds,
        "orchestrated": orchestrated,
        "dna": dna,
        "synthesis": synthesis,
        "tasks": tasks,
        "summary": summary,
        "decision": decision,
        "manifest": build_manifest(dna, synthesis, summary, decision),
    }


def without_timing(value: Any) -> Any:
    """``value`` as plain data, with every wall-clock field left out."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def occurs(phrase: str, text: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` word for word, ignoring case and punctuation."""
    pattern = r"\b" + r"[\s,;:]+".join(map(re.escape, phrase.split())) + r"\b"
    return re.search(pattern, text.lower()) is not None


def extracted_text(text: str, source_id: str = "test", kind: str = "post") -> ExtractedData:
    return ExtractedData.model_validate(
        {"source_id": source_id, "kind": kind, "text": text, "word_count": len(text.split())}
    )


@pytest.fixture(scope="module")
def chain() -> dict[str, Any]:
    return run_chain(seed=7)


@pytest.fixture(scope="module")
def extracted(chain: dict[str, Any]) -> list[ExtractedData]:
    return list(chain["extracted"])


@pytest.fixture(scope="module")
def dna(chain: dict[str, Any]) -> DNAProfile:
    profile = chain["dna"]
    assert isinstance(profile, DNAProfile)
    return profile


# -- sources and extraction ----------------------------------------------------------


def test_the_sample_sources_ship_with_the_package() -> None:
    sources = load_sources()

    assert 6 <= len(sources) <= 8
    assert len({source.source_id for source in sources}) == len(sources)
    assert {source.kind for source in sources} >= {"interview", "post", "email", "talk"}
    for source in sources:
        assert 150 <= len(source.text.split()) <= 400, source.source_id
        assert source.title


def test_extraction_keeps_only_the_persona_own_words(extracted: list[ExtractedData]) -> None:
    by_id = {item.source_id: item for item in extracted}
    interview = by_id["interview-harbour-radio"].text
    email = by_id["email-spring-class"].text

    assert "What did that teach you?" not in interview
    assert not re.search(r"^[QA]:", interview, flags=re.MULTILINE)
    assert interview.startswith("Patience, mostly.")
    assert "Priya" not in email
    assert "See you Tuesday," in email


def test_extraction_counts_the_words_it_kept(extracted: list[ExtractedData]) -> None:
    for item in extracted:
        assert item.word_count == len(re.findall(r"[A-Za-z]+(?:['\u2019-][A-Za-z]+)*", item.text))
        assert item.word_count >= 150


def test_source_metadata_adds_up(chain: dict[str, Any], extracted: list[ExtractedData]) -> None:
    metadata = chain["metadata"]

    assert metadata.source_count == len(extracted) == 7
    assert metadata.total_words == sum(item.word_count for item in extracted)
    assert metadata.kinds == {"email": 2, "interview": 2, "post": 2, "talk": 1}


def test_the_seed_chooses_the_order_of_the_sources() -> None:
    sources = load_sources()
    first = [item.source_id for item in extract(sources, seed=1)]
    again = [item.source_id for item in extract(sources, seed=1)]
    other = [item.source_id for item in extract(sources, seed=2)]

    assert first == again
    assert first != other
    assert sorted(first) == sorted(other) == sorted(source.source_id for source in sources)


def test_a_limit_keeps_the_first_sources_of_the_seeded_order() -> None:
    sources = load_sources()
    everything = [item.source_id for item in extract(sources, seed=5)]

    limited = [item.source_id for item in extract(sources, seed=5, limit=3)]

    assert limited == everything[:3]


def test_extraction_rejects_duplicate_ids_and_a_limit_below_one() -> None:
    source = Source("same", "post", "Title", "Some words here.")

    with pytest.raises(ValueError, match="'same'"):
        extract([source, source], seed=0)
    with pytest.raises(ValueError, match="limit"):
        extract([source], seed=0, limit=0)


# -- determinism ---------------------------------------------------------------------


def test_equal_seeds_give_equal_results_apart_from_timing() -> None:
    first, second = run_chain(seed=11), run_chain(seed=11)

    assert without_timing(first) == without_timing(second)
    assert first["manifest"].checksum == second["manifest"].checksum


def test_equal_seeds_with_a_limit_give_equal_results() -> None:
    assert without_timing(run_chain(seed=3, limit=4)) == without_timing(run_chain(seed=3, limit=4))


def test_the_profile_does_not_depend_on_the_order_of_the_sources() -> None:
    one, two = run_chain(seed=1), run_chain(seed=2)

    assert [item.source_id for item in one["extracted"]] != [
        item.source_id for item in two["extracted"]
    ]
    assert without_timing(one["dna"]) == without_timing(two["dna"])
    assert one["manifest"].checksum == two["manifest"].checksum


# -- minds ---------------------------------------------------------------------------


def test_there_are_at_least_six_minds() -> None:
    assert len(MINDS) >= 6


@pytest.mark.parametrize("mind_id", list(MINDS))
def test_each_mind_reports_scores_in_0_1_with_findings(chain: dict[str, Any], mind_id: str) -> None:
    result: MindResult = chain["minds"][mind_id]

    assert result.mind_id == mind_id
    assert result.traits
    assert all(0.0 <= value <= 1.0 for value in result.traits.values())
    assert 0.0 < result.confidence < 1.0
    assert result.findings
    assert result.duration_ms >= 0
    assert result.finished_at >= result.started_at


def test_voice_counts_pronouns_questions_and_exclamations() -> None:
    result = MINDS["voice"]([extracted_text("I like it. Do you? You do!")])

    assert result.traits["self_reference"] == pytest.approx(1 / 3)
    assert result.traits["questioning"] == pytest.approx(1 / 3)
    assert result.traits["exclamation"] == pytest.approx(1 / 3)
    # 2 "you" words in 7 words: r / (r + 0.03)
    assert result.traits["audience_address"] == pytest.approx((2 / 7) / (2 / 7 + 0.03))


def test_rhythm_measures_sentence_lengths() -> None:
    text = "One two three. One two three four five six seven eight nine ten."

    result = MINDS["rhythm"]([extracted_text(text)])

    assert result.traits["sentence_length"] == pytest.approx(6.5 / (6.5 + 15))
    assert result.traits["informality"] == pytest.approx(0.5)
    assert "2 sentences of 6.5 words on average" in result.findings[0]


def test_sentiment_counts_a_negated_word_as_its_opposite() -> None:
    negated = MINDS["sentiment"]([extracted_text("This is not good. That was bad.")])
    plain = MINDS["sentiment"]([extracted_text("This is good. That was bad.")])

    assert negated.traits["positivity"] == 0.0
    assert plain.traits["positivity"] == 0.5


def test_lexicon_counts_words_used_once() -> None:
    result = MINDS["lexicon"]([extracted_text("grain grain spoon chisel")])

    assert result.traits["rare_word_use"] == pytest.approx(2 / 4)
    assert result.traits["lexical_diversity"] == pytest.approx(3 / 4)


def test_phrases_finds_a_phrase_only_when_two_sources_share_it() -> None:
    shared = [
        extracted_text("Always follow the grain here.", "a"),
        extracted_text("You follow the grain, then.", "b"),
        extracted_text("A paraffin lamp burned.", "c"),
    ]

    result = MINDS["phrases"](shared)

    assert result.findings == ['"follow the grain": 2 times in 2 of 3 sources']


def test_topics_names_each_source_most_distinctive_words(chain: dict[str, Any]) -> None:
    findings = chain["minds"]["topics"].findings

    assert findings[0].startswith("most used: ")
    assert any(line.startswith("post-first-spoon: spoon") for line in findings)


# -- orchestration and synthesis -----------------------------------------------------


def mind_result(mind_id: str, traits: dict[str, float], confidence: float) -> MindResult:
    return MindResult(
        mind_id=mind_id,
        traits=traits,
        confidence=confidence,
        started_at=NOW,
        finished_at=NOW + timedelta(milliseconds=1),
        duration_ms=1.0,
    )


def test_orchestrator_merges_a_shared_trait_by_confidence() -> None:
    merged = orchestrate(
        {
            "b": mind_result("b", {"shared": 0.8, "own_b": 0.3}, confidence=0.5),
            "a": mind_result("a", {"shared": 0.2}, confidence=1.0),
        }
    )

    assert merged.mind_ids == ["a", "b"]
    assert merged.traits == pytest.approx({"own_b": 0.3, "shared": (0.2 + 0.4) / 1.5})
    assert merged.agreement == pytest.approx(1 - 0.6)
    assert merged.conflicts == ["shared"]


def test_orchestrator_without_shared_traits_agrees_fully() -> None:
    merged = orchestrate({"a": mind_result("a", {"x": 0.1}, 0.5)})

    assert merged.agreement == 1.0
    assert merged.conflicts == []


def test_orchestrator_needs_a_result() -> None:
    with pytest.raises(ValueError, match="at least one"):
        orchestrate({})


def test_the_real_minds_share_traits_and_mostly_agree(chain: dict[str, Any]) -> None:
    orchestrated: OrchestratorResult = chain["orchestrated"]
    by_trait: dict[str, list[float]] = {}
    for result in chain["minds"].values():
        for trait, value in result.traits.items():
            by_trait.setdefault(trait, []).append(value)
    shared = {trait: values for trait, values in by_trait.items() if len(values) > 1}

    assert set(shared) == {"informality", "repetition"}
    assert orchestrated.conflicts == sorted(
        trait for trait, values in shared.items() if max(values) - min(values) > CONFLICT_SPREAD
    )
    assert 0.5 < orchestrated.agreement <= 1.0
    assert set(orchestrated.traits) == set(by_trait)


def test_signature_phrases_occur_in_the_source_text(
    dna: DNAProfile, extracted: list[ExtractedData]
) -> None:
    assert len(dna.signature_phrases) >= 5
    assert "sharp tools and slow hands" in dna.signature_phrases
    for phrase in dna.signature_phrases:
        sources = [item.source_id for item in extracted if occurs(phrase, item.text)]
        assert len(sources) >= 2, phrase


def test_vocabulary_words_occur_in_at_least_half_of_the_sources(
    dna: DNAProfile, extracted: list[ExtractedData]
) -> None:
    assert dna.vocabulary
    for word in dna.vocabulary:
        used = sum(1 for item in extracted if occurs(word, item.text))
        assert 2 * used >= len(extracted), word


def test_style_markers_are_measured(dna: DNAProfile, chain: dict[str, Any]) -> None:
    sentences = chain["minds"]["rhythm"].findings[0]

    assert f"{dna.style_markers['mean_sentence_words']:.1f} words on average" in sentences
    assert dna.style_markers["question_share"] == pytest.approx(
        chain["minds"]["voice"].traits["questioning"]
    )


def test_synthesis_names_what_it_used(chain: dict[str, Any], dna: DNAProfile) -> None:
    synthesis: SynthesisResult = chain["synthesis"]

    assert synthesis.sources_used == sorted(item.source_id for item in chain["extracted"])
    assert synthesis.mind_ids == sorted(MINDS)
    assert synthesis.coverage == 1.0
    assert dna.persona == PERSONA
    assert dna.traits == chain["orchestrated"].traits
    assert PERSONA in synthesis.summary


def test_synthesis_needs_a_source(chain: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least one"):
        synthesize(PERSONA, [], chain["orchestrated"])


# -- validation ----------------------------------------------------------------------


def test_validation_tasks_are_numbered() -> None:
    assert 4 <= len(VALIDATION_TASKS) <= 6
    assert all(re.fullmatch(r"EX-\d{3}", task_id) for task_id in VALIDATION_TASKS)


@pytest.mark.parametrize("task_id", list(VALIDATION_TASKS))
def test_each_task_passes_on_the_real_profile(
    task_id: str, dna: DNAProfile, extracted: list[ExtractedData]
) -> None:
    result = VALIDATION_TASKS[task_id](dna, extracted)

    assert result.task_id == task_id
    assert result.passed, result.details
    assert result.score == 1.0


def shifted(traits: dict[str, float]) -> dict[str, float]:
    return {name: value + 0.1 if value <= 0.9 else value - 0.1 for name, value in traits.items()}


CORRUPTIONS: dict[str, list[tuple[str, Callable[[DNAProfile], dict[str, Any]]]]] = {
    "EX-001": [
        ("invented trait", lambda dna: {"traits": {**dna.traits, "charisma": 0.9}}),
        ("score out of range", lambda dna: {"traits": {**dna.traits, "questioning": 1.5}}),
        (
            "the sentiment mind left out",
            lambda dna: {
                "traits": {
                    k: v for k, v in dna.traits.items() if k not in {"positivity", "emotionality"}
                }
            },
        ),
    ],
    "EX-002": [("every trait shifted by 0.1", lambda dna: {"traits": shifted(dna.traits)})],
    "EX-003": [
        ("invented phrase", lambda dna: {"signature_phrases": ["synergy driven paradigm"]}),
        ("phrase from one source only", lambda dna: {"signature_phrases": ["paraffin lamp"]}),
        ("no phrases", lambda dna: {"signature_phrases": []}),
    ],
    "EX-004": [
        ("foreign words", lambda dna: {"vocabulary": ["blockchain", "synergy", "quantum"]}),
        ("one source's words", lambda dna: {"vocabulary": ["paraffin", "generator", "library"]}),
    ],
    "EX-005": [
        (
            "sentence length doubled",
            lambda dna: {
                "style_markers": {
                    **dna.style_markers,
                    "mean_sentence_words": 2 * dna.style_markers["mean_sentence_words"],
                }
            },
        ),
        (
            "a marker missing",
            lambda dna: {
                "style_markers": {k: v for k, v in dna.style_markers.items() if k != "mattr"}
            },
        ),
    ],
}
CORRUPTION_CASES = [
    (task_id, label, corrupt)
    for task_id, corruptions in CORRUPTIONS.items()
    for label, corrupt in corruptions
]


def test_every_task_has_corruptions_to_catch() -> None:
    assert set(CORRUPTIONS) == set(VALIDATION_TASKS)


@pytest.mark.parametrize(
    ("task_id", "label", "corrupt"),
    CORRUPTION_CASES,
    ids=[f"{task_id}-{label}" for task_id, label, _ in CORRUPTION_CASES],
)
def test_each_task_fails_on_a_corrupted_profile(
    task_id: str,
    label: str,
    corrupt: Callable[[DNAProfile], dict[str, Any]],
    dna: DNAProfile,
    extracted: list[ExtractedData],
) -> None:
    corrupted = dna.model_copy(update=corrupt(dna))

    result = VALIDATION_TASKS[task_id](corrupted, extracted)

    assert not result.passed, label
    assert result.score < 1.0


def test_leave_one_out_needs_three_sources(dna: DNAProfile, extracted: list[ExtractedData]) -> None:
    result = VALIDATION_TASKS["EX-005"](dna, extracted[:2])

    assert not result.passed
    assert "at least 3 sources" in result.details


def test_the_real_profile_is_approved(chain: dict[str, Any]) -> None:
    summary: ValidationSummary = chain["summary"]

    assert (summary.total, summary.passed, summary.failed) == (len(VALIDATION_TASKS), 5, 0)
    assert summary.all_passed
    assert summary.score == 1.0
    assert chain["decision"].decision == "approve"
    assert chain["decision"].decided_by == "auto"
    assert chain["decision"].checkpoint_id == "cp-1"


def summary_of(score: float, failed: int = 0, total: int = 5) -> ValidationSummary:
    return ValidationSummary(
        total=total,
        passed=total - failed,
        failed=failed,
        score=score,
        threshold=0.8,
        all_passed=failed == 0,
    )


@pytest.mark.parametrize(
    ("summary", "decision"),
    [
        (summary_of(0.8), "approve"),
        (summary_of(0.95, failed=1), "revise"),
        (summary_of(0.75, failed=1), "revise"),
        (summary_of(0.65, failed=2), "reject"),
        (summary_of(0.0, total=0), "reject"),
    ],
    ids=["at-threshold", "above-with-failure", "close-below", "far-below", "no-tasks"],
)
def test_auto_decision_follows_the_threshold(summary: ValidationSummary, decision: str) -> None:
    assert auto_decision(summary, "cp-2").decision == decision


def test_summary_score_is_the_mean_task_score(chain: dict[str, Any]) -> None:
    tasks = [
        task.model_copy(update={"passed": False, "score": 0.5}) if i == 0 else task
        for i, task in enumerate(chain["tasks"])
    ]

    summary = summarize_validation(tasks, threshold=0.9)

    assert summary.score == pytest.approx((0.5 + 4) / 5)
    assert (summary.passed, summary.failed, summary.all_passed) == (4, 1, False)


# -- generation ----------------------------------------------------------------------


def test_manifest_records_the_profile_and_its_checksum(chain: dict[str, Any]) -> None:
    manifest = chain["manifest"]

    assert manifest.persona == PERSONA
    assert set(manifest.sections) == {"profile", "traits", "voice", "validation", "decision"}
    assert manifest.sections["profile"].startswith(f"# {PERSONA}")
    assert '- "sharp tools and slow hands"' in manifest.sections["voice"]
    assert "**approve**" in manifest.sections["decision"]
    assert manifest.checksum == hashlib.sha256(manifest.canonical()).hexdigest()
    assert type(manifest).model_validate(manifest.model_dump()) == manifest
