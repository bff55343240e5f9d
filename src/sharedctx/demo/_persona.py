"""The demo's persona analysis: plain text statistics, deterministic, no I/O.

``sharedctx demo`` runs a small simulation of the Clone Lab pipeline over sample
sources shipped in ``sharedctx/demo/data``: :func:`extract` the persona's own words,
run each of :data:`MINDS` over them, :func:`orchestrate` the minds' traits,
:func:`synthesize` a profile, run each of :data:`VALIDATION_TASKS` on it,
:func:`summarize_validation`, take an :func:`auto_decision` and :func:`build_manifest`.

Nothing here pretends to be AI: every trait is a documented statistic of the
text (word and sentence counts, small built-in word lists, n-grams, tf-idf). The seed
only chooses the order of the sources and, with ``limit``, which ones are used.
Equal input gives equal results, apart from the wall-clock fields (the ``*_at``
datetimes and ``duration_ms``). Sums use :func:`math.fsum`, so results do not depend
on the order of the sources either.
"""

from __future__ import annotations

import math
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from types import MappingProxyType
from typing import Literal, NamedTuple, get_args

from sharedctx.pipeline import (
    CheckpointDecision,
    DNAProfile,
    ExtractedData,
    ManifestContent,
    MindResult,
    OrchestratorResult,
    SourceKind,
    SourceMetadata,
    SynthesisResult,
    TaskResult,
    ValidationSummary,
)

__all__ = [
    "CONFLICT_SPREAD",
    "MINDS",
    "REVISE_MARGIN",
    "VALIDATION_TASKS",
    "Mind",
    "Source",
    "ValidationTask",
    "auto_decision",
    "build_manifest",
    "extract",
    "load_sources",
    "orchestrate",
    "run_minds",
    "run_validation",
    "source_metadata",
    "summarize_validation",
    "synthesize",
]

Mind = Callable[[Sequence[ExtractedData]], MindResult]
"""An analysis mind: measures the extracted sources, returns its traits."""
ValidationTask = Callable[[DNAProfile, Sequence[ExtractedData]], TaskResult]
"""A validation task: checks a profile against the sources it claims to describe."""

CONFLICT_SPREAD = 0.25
"""Minds whose scores for one trait differ by more than this are in conflict."""
REVISE_MARGIN = 0.1
"""An automatic decision asks for a revision, not a rejection, this close below the
threshold."""

_KINDS: dict[str, SourceKind] = {kind: kind for kind in get_args(SourceKind)}


# -- sources and extraction ----------------------------------------------------------


class Source(NamedTuple):
    """One raw sample source, as shipped: id (the file name), kind, title and text."""

    source_id: str
    kind: SourceKind
    title: str
    text: str


def load_sources() -> list[Source]:
    """The sample sources shipped in ``sharedctx/demo/data``, sorted by id.

    Each file holds ``key: value`` header lines (``kind``, ``title``), a blank line,
    then the raw text. Raises ``ValueError`` for a file with an unknown kind.
    """
    folder = resources.files("sharedctx.demo").joinpath("data")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".txt")), key=lambda f: f.name)
    return [_parse_source(f.name.removesuffix(".txt"), f.read_text("utf-8")) for f in files]


def _parse_source(source_id: str, raw: str) -> Source:
    head, _, body = raw.partition("\n\n")
    header = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    fields = {name.strip().lower(): value.strip() for name, value in header.items()}
    kind = _KINDS.get(fields.get("kind", ""))
    if kind is None:
        raise ValueError(
            f"source {source_id!r} has kind {fields.get('kind')!r}, not one of {list(_KINDS)}"
        )
    return Source(source_id, kind, fields.get("title", ""), body.strip())


def extract(
    sources: Iterable[Source], *, seed: int, limit: int | None = None
) -> list[ExtractedData]:
    """Extract the persona's own words from each source, in an order chosen by ``seed``.

    Interview questions (lines starting ``Q:``) and quoted email lines (``>``) are
    dropped and answer labels (``A:``) removed. With ``limit``, only the first
    ``limit`` sources of the seeded order are kept. Raises ``ValueError`` for a
    duplicate source id or a ``limit`` below 1.
    """
    chosen = sorted(sources, key=lambda source: source.source_id)
    repeated = sorted(id_ for id_, n in Counter(s.source_id for s in chosen).items() if n > 1)
    if repeated:
        raise ValueError(f"source ids must be unique; repeated: {repeated}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    random.Random(seed).shuffle(chosen)
    now = datetime.now(UTC)
    return [
        ExtractedData(
            source_id=source.source_id,
            kind=source.kind,
            title=source.title,
            text=(text := _own_words(source.text)),
            word_count=len(_words(text)),
            extracted_at=now,
        )
        for source in chosen[:limit]
    ]


def _own_words(text: str) -> str:
    """The lines the persona wrote or said: no questions, no quotes, no labels."""
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("Q:", ">")):
            continue
        kept.append(stripped.removeprefix("A:").strip())
    return "\n".join(kept).strip()


def source_metadata(
    extracted: Sequence[ExtractedData], *, extractor: str = "sharedctx-demo"
) -> SourceMetadata:
    """Counts over one extraction: sources, words and sources of each kind."""
    kinds = Counter(item.kind for item in extracted)
    return SourceMetadata(
        source_count=len(extracted),
        total_words=sum(item.word_count for item in extracted),
        kinds=dict(sorted(kinds.items())),
        extracted_at=max((item.extracted_at for item in extracted), default=datetime.now(UTC)),
        extractor=extractor,
    )


# -- text statistics -----------------------------------------------------------------

_WORD = re.compile(r"[a-z]+(?:['\u2019-][a-z]+)*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_CLOSERS = " )]\"'\u201d\u2019"


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS = _word_set(
    """a about above after again all also am an and any are around as at be because been
    before being both but by can could did do does doing down each either even ever every
    few for from further get got had has have having he her here hers him his how i if in
    into is it its just let like may me might more most much must my myself neither no nor
    not now of off on once one only or other our ours out over own really same say says see
    she should so some something still such than that the their theirs them then there these
    they thing things this those through to too two under until up us very was we were what
    when where which while who whom why will with would yes yet you your yours yourself"""
)
_FIRST_SINGULAR = _word_set("i me my mine myself i'm i've i'd i'll")
_SECOND_PERSON = _word_set("you your yours yourself yourselves you're you've you'd you'll")
_NEGATORS = _word_set("not no never nothing nobody")
_S_CONTRACTIONS = _word_set(
    "it's that's there's here's what's he's she's let's who's where's how's"
)
_POSITIVE = _word_set(
    """good great glad happy love loved enjoy enjoyed best better thank thanks grateful
    welcome delighted pleasure favourite favorite beautiful lovely wonderful nice kind gentle
    calm steady safe careful patient patience honest proud hope fun easy warm bright success
    laugh smile helpful useful fair excellent perfect brave"""
)
_NEGATIVE = _word_set(
    """bad worse worst hate hated afraid fear scared dangerous danger hurt pain sad angry
    lonely tired cold terrible awful horrible wrong fail failed failure mistake mistakes
    broken crack cracked dull lost miss missing worry worried problem problems difficult hard
    poor ugly accident accidents boring waste sorry"""
)


def _words(text: str) -> list[str]:
    """Lower-case words; an apostrophe or hyphen inside a word (``don't``, ``glue-up``)
    keeps it whole."""
    return [word.replace("\u2019", "'") for word in _WORD.findall(text.lower())]


def _sentences(text: str) -> list[str]:
    """Sentences, split at ``.``, ``!`` or ``?`` and at line ends; those without words go."""
    pieces = (piece for line in text.splitlines() for piece in _SENTENCE_BREAK.split(line))
    return [piece.strip() for piece in pieces if _WORD.search(piece.lower())]


def _is_content(word: str) -> bool:
    """A word that says what the text is about: not a stop word, not a contraction."""
    return len(word) > 2 and word not in _STOPWORDS and "'" not in word


def _is_contraction(word: str) -> bool:
    if word.endswith("'s"):
        return word in _S_CONTRACTIONS
    return word.endswith(("n't", "'m", "'re", "'ve", "'ll", "'d"))


def _saturate(value: float, half: float) -> float:
    """Map a value >= 0 into 0..1: 0 stays 0, ``half`` gives 0.5, large values near 1."""
    return value / (value + half)


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


class _Doc(NamedTuple):
    source_id: str
    sentences: list[str]
    sentence_words: list[list[str]]
    words: list[str]


def _docs(extracted: Sequence[ExtractedData]) -> list[_Doc]:
    """The sources' sentences and words, sorted by source id."""
    docs = []
    for item in sorted(extracted, key=lambda item: item.source_id):
        sentences = _sentences(item.text)
        sentence_words = [_words(sentence) for sentence in sentences]
        words = [word for words in sentence_words for word in words]
        docs.append(_Doc(item.source_id, sentences, sentence_words, words))
    return docs


def _ends_with(sentence: str, mark: str) -> bool:
    return sentence.rstrip(_CLOSERS).endswith(mark)


def _mattr(words: Sequence[str], window: int = 50) -> tuple[float, int]:
    """Moving-average type/token ratio over ``window`` words, and the number of windows.

    Unlike the plain type/token ratio it does not fall as a text grows longer.
    """
    if len(words) <= window:
        return (_share(len(set(words)), len(words)), 1 if words else 0)
    counts = Counter(words[:window])
    ratios = [len(counts) / window]
    for index in range(window, len(words)):
        counts[words[index]] += 1
        old = words[index - window]
        counts[old] -= 1
        if not counts[old]:
            del counts[old]
        ratios.append(len(counts) / window)
    return (math.fsum(ratios) / len(ratios), len(ratios))


def _style_markers(docs: Sequence[_Doc]) -> dict[str, float]:
    """Style statistics in their own units, measured over all of ``docs``."""
    words = [word for doc in docs for word in doc.words]
    sentences = [sentence for doc in docs for sentence in doc.sentences]
    lengths = [len(sentence) for doc in docs for sentence in doc.sentence_words]
    per_100 = 100 / len(words) if words else 0.0
    return {
        "mean_sentence_words": _share(sum(lengths), len(lengths)),
        "question_share": _share(sum(_ends_with(s, "?") for s in sentences), len(sentences)),
        "first_person_per_100": per_100 * sum(word in _FIRST_SINGULAR for word in words),
        "second_person_per_100": per_100 * sum(word in _SECOND_PERSON for word in words),
        "contractions_per_100": per_100 * sum(map(_is_contraction, words)),
        "mattr": _mattr_of_all(docs),
    }


def _mattr_of_all(docs: Sequence[_Doc]) -> float:
    """The docs' moving-average type/token ratios, weighted by their number of windows.

    Windows never span two sources, so the result does not depend on their order.
    """
    mattrs = [_mattr(doc.words) for doc in docs]
    return _share(math.fsum(ratio * n for ratio, n in mattrs), sum(n for _, n in mattrs))


class _Phrase(NamedTuple):
    text: str
    sources: int
    uses: int


def _recurring_phrases(docs: Sequence[_Doc], *, longest: int = 6) -> list[_Phrase]:
    """Word n-grams (2 to ``longest`` words, within a sentence) found in two sources or more.

    A phrase starts and ends with a content word. Longer phrases are found first, and
    a shorter one counts only where it is not inside one already found, so ``sharp
    tools and slow hands`` does not also yield ``slow hands``. Sorted by the number of
    sources, then of uses, then length, then alphabetically.
    """
    segments = [(number, words) for number, doc in enumerate(docs) for words in doc.sentence_words]
    covered = [[False] * len(words) for _, words in segments]
    found: list[_Phrase] = []
    for size in range(longest, 1, -1):
        places: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        for segment, (_, words) in enumerate(segments):
            for start in range(len(words) - size + 1):
                gram = tuple(words[start : start + size])
                if _is_content(gram[0]) and _is_content(gram[-1]):
                    places.setdefault(gram, []).append((segment, start))
        for gram, where in sorted(places.items(), key=lambda item: (-len(item[1]), item[0])):
            free = [(seg, at) for seg, at in where if not all(covered[seg][at : at + size])]
            sources = len({segments[seg][0] for seg, _ in free})
            if sources < 2:
                continue
            found.append(_Phrase(" ".join(gram), sources, len(free)))
            for seg, at in free:
                covered[seg][at : at + size] = [True] * size
    return sorted(found, key=lambda p: (-p.sources, -p.uses, -len(p.text.split()), p.text))


def _signature_phrases(docs: Sequence[_Doc], count: int = 8) -> list[str]:
    return [phrase.text for phrase in _recurring_phrases(docs)[:count]]


def _vocabulary(docs: Sequence[_Doc], count: int = 12) -> list[str]:
    """The most used content words among those found in at least half of the sources."""
    spread = Counter(word for doc in docs for word in set(doc.words) if _is_content(word))
    uses = Counter(word for doc in docs for word in doc.words if _is_content(word))
    common = [word for word in uses if 2 * spread[word] >= len(docs)]
    return sorted(common, key=lambda word: (-uses[word], word))[:count]


def _words_in_phrases(docs: Sequence[_Doc], phrases: Sequence[str]) -> int:
    """How many words of ``docs`` are part of an occurrence of one of ``phrases``."""
    wanted = [_words(phrase) for phrase in phrases]
    inside = 0
    for words in (sentence for doc in docs for sentence in doc.sentence_words):
        marked = [False] * len(words)
        for phrase in wanted:
            for start in range(len(words) - len(phrase) + 1):
                if words[start : start + len(phrase)] == phrase:
                    marked[start : start + len(phrase)] = [True] * len(phrase)
        inside += sum(marked)
    return inside


def _contains(doc: _Doc, phrase: str) -> bool:
    """Whether ``phrase`` occurs word for word within one of the doc's sentences."""
    wanted = _words(phrase)
    size = len(wanted)
    return bool(wanted) and any(
        words[start : start + size] == wanted
        for words in doc.sentence_words
        for start in range(len(words) - size + 1)
    )


# -- minds ---------------------------------------------------------------------------


class _Measure(NamedTuple):
    traits: dict[str, float]
    findings: list[str]
    confidence: float


def _timed_mind(mind_id: str, measure: Callable[[list[_Doc]], _Measure]) -> Mind:
    """Wrap a measurement as a mind that times itself and returns a ``MindResult``."""

    def mind(extracted: Sequence[ExtractedData]) -> MindResult:
        started_at = datetime.now(UTC)
        start = time.perf_counter()
        result = measure(_docs(extracted))
        elapsed = time.perf_counter() - start
        return MindResult(
            mind_id=mind_id,
            traits=result.traits,
            findings=result.findings,
            confidence=result.confidence,
            started_at=started_at,
            finished_at=started_at + timedelta(seconds=elapsed),
            duration_ms=elapsed * 1000,
        )

    mind.__name__ = mind.__qualname__ = f"{mind_id}_mind"
    mind.__doc__ = measure.__doc__
    return mind


def _lexicon(docs: list[_Doc]) -> _Measure:
    """Word choice.

    lexical_diversity: moving-average type/token ratio (50-word windows).
    rare_word_use: share of words used only once in all the sources.
    long_word_use: share of words of 7 letters or more.
    Confidence: words / (words + 300).
    """
    words = [word for doc in docs for word in doc.words]
    uses = Counter(words)
    diversity = _mattr_of_all(docs)
    rare = _share(sum(1 for word in words if uses[word] == 1), len(words))
    long = _share(sum(1 for word in words if len(re.sub("['-]", "", word)) >= 7), len(words))
    findings = [
        f"{len(words)} words, {len(uses)} distinct; moving type/token ratio {diversity:.2f}",
        f"{rare:.0%} of words are used once, {long:.0%} have 7 letters or more",
    ]
    traits = {"lexical_diversity": diversity, "rare_word_use": rare, "long_word_use": long}
    return _Measure(traits, findings, _saturate(len(words), 300))


def _rhythm(docs: list[_Doc]) -> _Measure:
    """Sentence length.

    sentence_length: mean words per sentence m, as m / (m + 15).
    rhythm_variation: coefficient of variation c of sentence lengths, as c / (c + 0.5).
    informality: share of sentences of 8 words or fewer.
    Confidence: sentences / (sentences + 30).
    """
    lengths = [len(sentence) for doc in docs for sentence in doc.sentence_words]
    mean = _share(sum(lengths), len(lengths))
    spread = statistics.pstdev(lengths) if lengths else 0.0
    variation = _share(spread, mean)
    short = _share(sum(1 for length in lengths if length <= 8), len(lengths))
    findings = [
        f"{len(lengths)} sentences of {mean:.1f} words on average (standard deviation "
        f"{spread:.1f}), {short:.0%} of 8 words or fewer",
        f"longest sentence {max(lengths, default=0)} words, shortest {min(lengths, default=0)}",
    ]
    traits = {
        "sentence_length": _saturate(mean, 15),
        "rhythm_variation": _saturate(variation, 0.5),
        "informality": short,
    }
    return _Measure(traits, findings, _saturate(len(lengths), 30))


def _sentiment(docs: list[_Doc]) -> _Measure:
    """Tone, from small built-in lists of positive and negative words.

    A word right after a negation (``not``, ``never``, ``don't``...) counts as the
    opposite. positivity: positive / (positive + negative), 0.5 with neither.
    emotionality: such words per word r, as r / (r + 0.05).
    Confidence: (positive + negative) / (positive + negative + 20).
    """
    tally: Counter[str] = Counter()
    words = 0
    for doc in docs:
        words += len(doc.words)
        for previous, word in zip(["", *doc.words], doc.words, strict=False):
            polarity = 1 if word in _POSITIVE else -1 if word in _NEGATIVE else 0
            if polarity and (previous in _NEGATORS or previous.endswith("n't")):
                polarity = -polarity
            if polarity:
                tally["positive" if polarity > 0 else "negative"] += 1
    hits = tally["positive"] + tally["negative"]
    positivity = tally["positive"] / hits if hits else 0.5
    findings = [f"{tally['positive']} positive and {tally['negative']} negative words in {words}"]
    traits = {"positivity": positivity, "emotionality": _saturate(_share(hits, words), 0.05)}
    return _Measure(traits, findings, _saturate(hits, 20))


def _voice(docs: list[_Doc]) -> _Measure:
    """Who speaks to whom, and how.

    self_reference: "I" words / ("I" words + "you" words), 0.5 with neither.
    audience_address: "you" words per word r, as r / (r + 0.03).
    questioning, exclamation: share of sentences ending in ``?``, ``!``.
    informality: contractions per word r, as r / (r + 0.02).
    Confidence: ("I" + "you" words) / ("I" + "you" words + 30).
    """
    words = [word for doc in docs for word in doc.words]
    sentences = [sentence for doc in docs for sentence in doc.sentences]
    first = sum(1 for word in words if word in _FIRST_SINGULAR)
    second = sum(1 for word in words if word in _SECOND_PERSON)
    contractions = sum(1 for word in words if _is_contraction(word))
    questions = sum(1 for sentence in sentences if _ends_with(sentence, "?"))
    exclamations = sum(1 for sentence in sentences if _ends_with(sentence, "!"))
    findings = [
        f'"I" {first} times, "you" {second} times, {contractions} contractions '
        f"in {len(words)} words",
        f"{questions} questions and {exclamations} exclamations in {len(sentences)} sentences",
    ]
    traits = {
        "self_reference": first / (first + second) if first + second else 0.5,
        "audience_address": _saturate(_share(second, len(words)), 0.03),
        "questioning": _share(questions, len(sentences)),
        "exclamation": _share(exclamations, len(sentences)),
        "informality": _saturate(_share(contractions, len(words)), 0.02),
    }
    return _Measure(traits, findings, _saturate(first + second, 30))


def _topics(docs: list[_Doc]) -> _Measure:
    """What the sources are about, from content words (no stop words).

    Findings: each source's top 3 words by tf-idf, idf = ln((1 + N) / (1 + df)) + 1.
    repetition: share s of content words that are one of the 10 most used, s / (s + 0.2).
    topic_consistency: mean cosine similarity of the sources' content-word counts.
    Confidence: content words / (content words + 200).
    """
    counts = [Counter(word for word in doc.words if _is_content(word)) for doc in docs]
    spread = Counter(word for count in counts for word in count)
    total = Counter[str]()
    for count in counts:
        total.update(count)
    content = sum(total.values())
    findings = [f"most used: {', '.join(word for word, _ in _top(total, 10))}"]
    for doc, count in zip(docs, counts, strict=True):
        size = sum(count.values())
        scores = {
            word: n / size * (math.log((1 + len(docs)) / (1 + spread[word])) + 1)
            for word, n in count.items()
        }
        findings.append(f"{doc.source_id}: {', '.join(w for w, _ in _top(scores, 3))}")
    top_share = _share(sum(n for _, n in _top(total, 10)), content)
    traits = {
        "repetition": _saturate(top_share, 0.2),
        "topic_consistency": _mean_cosine(counts),
    }
    return _Measure(traits, findings, _saturate(content, 200))


def _top(scores: Mapping[str, float], count: int) -> list[tuple[str, float]]:
    """The ``count`` highest-scoring items; ties go alphabetically."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:count]


def _mean_cosine(counts: Sequence[Counter[str]]) -> float:
    """Mean cosine similarity over all pairs of count vectors (0 with fewer than 2)."""
    norms = [math.sqrt(sum(n * n for n in count.values())) for count in counts]
    similarities = [
        _share(sum(n * counts[j][word] for word, n in counts[i].items()), norms[i] * norms[j])
        for i in range(len(counts))
        for j in range(i + 1, len(counts))
    ]
    return min(1.0, _share(math.fsum(similarities), len(similarities)))


def _phrases(docs: list[_Doc]) -> _Measure:
    """Recurring phrases: word n-grams found in at least two sources.

    repetition: share s of all words inside a recurring phrase, as s / (s + 0.1).
    catchphrase_spread: mean share of the sources in which each of the top 8 phrases
    occurs.
    Confidence: occurrences of recurring phrases / (occurrences + 10).
    """
    phrases = _recurring_phrases(docs)
    inside = _words_in_phrases(docs, [phrase.text for phrase in phrases])
    words = sum(len(doc.words) for doc in docs)
    top = phrases[:8]
    findings = [f'"{p.text}": {p.uses} times in {p.sources} of {len(docs)} sources' for p in top]
    occurrences = sum(phrase.uses for phrase in phrases)
    traits = {
        "repetition": _saturate(_share(inside, words), 0.1),
        "catchphrase_spread": _share(math.fsum(p.sources / len(docs) for p in top), len(top)),
    }
    return _Measure(traits, findings, _saturate(occurrences, 10))


MINDS: Mapping[str, Mind] = MappingProxyType(
    {
        mind_id: _timed_mind(mind_id, measure)
        for mind_id, measure in [
            ("lexicon", _lexicon),
            ("rhythm", _rhythm),
            ("sentiment", _sentiment),
            ("voice", _voice),
            ("topics", _topics),
            ("phrases", _phrases),
        ]
    }
)
"""The analysis minds by id, in the order to run them (each is independent)."""


def run_minds(extracted: Sequence[ExtractedData]) -> dict[str, MindResult]:
    """Run every mind of :data:`MINDS` in turn; their results by mind id."""
    return {mind_id: mind(extracted) for mind_id, mind in MINDS.items()}


# -- orchestration and synthesis -----------------------------------------------------


def orchestrate(results: Mapping[str, MindResult]) -> OrchestratorResult:
    """Merge the minds' traits into one set.

    A trait measured by several minds gets their mean weighted by confidence (plain
    mean if all confidences are 0). Its spread is the largest difference between
    them; above :data:`CONFLICT_SPREAD` it is a conflict. ``agreement`` is 1 minus
    the mean spread over such shared traits (1 when no trait is shared). Raises
    ``ValueError`` when ``results`` is empty.
    """
    if not results:
        raise ValueError("orchestrate needs at least one mind result")
    scores: dict[str, list[tuple[float, float]]] = {}
    for mind_id in sorted(results):
        result = results[mind_id]
        for trait, value in result.traits.items():
            scores.setdefault(trait, []).append((value, result.confidence))
    traits: dict[str, float] = {}
    spreads: list[float] = []
    conflicts: list[str] = []
    for trait in sorted(scores):
        values = [value for value, _ in scores[trait]]
        weight = math.fsum(confidence for _, confidence in scores[trait])
        if weight:
            merged = math.fsum(value * confidence for value, confidence in scores[trait]) / weight
        else:
            merged = math.fsum(values) / len(values)
        traits[trait] = min(1.0, max(0.0, merged))
        if len(values) > 1:
            spreads.append(max(values) - min(values))
            if spreads[-1] > CONFLICT_SPREAD:
                conflicts.append(trait)
    agreement = 1 - math.fsum(spreads) / len(spreads) if spreads else 1.0
    return OrchestratorResult(
        mind_ids=sorted(results), traits=traits, agreement=agreement, conflicts=conflicts
    )


def synthesize(
    persona: str, extracted: Sequence[ExtractedData], orchestrated: OrchestratorResult
) -> tuple[DNAProfile, SynthesisResult]:
    """Build the persona's profile from the merged traits and the sources' text.

    Signature phrases are the top 8 recurring phrases, vocabulary the 12 most used
    content words found in at least half of the sources, and style markers the raw
    statistics behind the traits. ``coverage`` is the share of sources containing at
    least one signature phrase. Raises ``ValueError`` when ``extracted`` is empty.
    """
    if not extracted:
        raise ValueError("synthesize needs at least one extracted source")
    docs = _docs(extracted)
    markers = _style_markers(docs)
    dna = DNAProfile(
        persona=persona,
        traits=orchestrated.traits,
        signature_phrases=_signature_phrases(docs),
        vocabulary=_vocabulary(docs),
        style_markers=markers,
    )
    covered = sum(1 for doc in docs if any(_contains(doc, p) for p in dna.signature_phrases))
    summary = (
        f"{persona} writes sentences of {markers['mean_sentence_words']:.1f} words on "
        f"average, asks a question in {markers['question_share']:.0%} of them and says "
        f'"I" {markers["first_person_per_100"]:.1f} and "you" '
        f"{markers['second_person_per_100']:.1f} times per 100 words. Most used words: "
        f"{', '.join(dna.vocabulary[:6])}. Signature phrases: "
        f"{'; '.join(dna.signature_phrases[:3])}. Merged from {len(orchestrated.mind_ids)} "
        f"minds over {len(docs)} sources, agreement {orchestrated.agreement:.2f}."
    )
    synthesis = SynthesisResult(
        summary=summary,
        coverage=covered / len(docs),
        sources_used=[doc.source_id for doc in docs],
        mind_ids=orchestrated.mind_ids,
    )
    return dna, synthesis


# -- validation ----------------------------------------------------------------------


class _Verdict(NamedTuple):
    passed: bool
    score: float
    details: str


_Check = Callable[[DNAProfile, Sequence[ExtractedData]], _Verdict]


def _timed_task(task_id: str, name: str, check: _Check) -> ValidationTask:
    """Wrap a check as a validation task that times itself and returns a ``TaskResult``."""

    def task(dna: DNAProfile, extracted: Sequence[ExtractedData]) -> TaskResult:
        start = time.perf_counter()
        verdict = check(dna, extracted)
        return TaskResult(
            task_id=task_id,
            name=name,
            passed=verdict.passed,
            score=verdict.score,
            details=verdict.details,
            duration_ms=(time.perf_counter() - start) * 1000,
        )

    task.__name__ = task.__qualname__ = f"task_{task_id.replace('-', '_').lower()}"
    task.__doc__ = check.__doc__
    return task


def _check_traits_come_from_minds(dna: DNAProfile, extracted: Sequence[ExtractedData]) -> _Verdict:
    """Every trait is a score in 0..1 that some mind measures, and every mind
    contributes at least one trait. Score: share of traits and minds that comply."""
    produced = {mind_id: set(result.traits) for mind_id, result in run_minds(extracted).items()}
    known = set().union(*produced.values())
    bad = sorted(
        name for name, value in dna.traits.items() if name not in known or not 0 <= value <= 1
    )
    silent = sorted(mind_id for mind_id, names in produced.items() if not names & set(dna.traits))
    checked = len(dna.traits) + len(produced)
    details = (
        f"{len(dna.traits)} traits from {len(produced)} minds; not a 0..1 score from a mind: "
        f"{bad or 'none'}; minds without a trait in the profile: {silent or 'none'}"
    )
    passed = bool(dna.traits) and not bad and not silent
    return _Verdict(passed, _share(checked - len(bad) - len(silent), checked), details)


def _check_traits_reproduce(
    dna: DNAProfile, extracted: Sequence[ExtractedData], tolerance: float = 0.02
) -> _Verdict:
    """The traits equal those of a fresh analysis of the sources, within 0.02 each.
    Score: share of trait names (profile's and fresh) that match."""
    expected = orchestrate(run_minds(extracted)).traits
    names = sorted(set(expected) | set(dna.traits))
    off = [
        name
        for name in names
        if not abs(dna.traits.get(name, math.inf) - expected.get(name, -math.inf)) <= tolerance
    ]
    details = f"{len(names)} traits compared, differing by more than {tolerance}: {off or 'none'}"
    return _Verdict(bool(names) and not off, _share(len(names) - len(off), len(names)), details)


def _check_phrases_recur(dna: DNAProfile, extracted: Sequence[ExtractedData]) -> _Verdict:
    """Each signature phrase occurs, word for word, in at least two sources.
    Score: share of the phrases that do."""
    docs = _docs(extracted)
    phrases = dna.signature_phrases
    rare = [p for p in phrases if sum(_contains(doc, p) for doc in docs) < 2]
    details = f"{len(phrases)} phrases; in fewer than 2 sources: {rare or 'none'}"
    return _Verdict(
        bool(phrases) and not rare, _share(len(phrases) - len(rare), len(phrases)), details
    )


def _check_vocabulary_covers(
    dna: DNAProfile, extracted: Sequence[ExtractedData], per_source: int = 3, required: float = 0.8
) -> _Verdict:
    """At least 80% of the sources use 3 or more of the profile's vocabulary words.
    Score: share of the sources that do."""
    docs = _docs(extracted)
    vocabulary = set(dna.vocabulary)
    thin = [doc.source_id for doc in docs if len(vocabulary & set(doc.words)) < per_source]
    score = _share(len(docs) - len(thin), len(docs))
    details = (
        f"{len(vocabulary)} words; sources using fewer than {per_source} of them: "
        f"{thin or 'none'} (at most {1 - required:.0%} allowed)"
    )
    return _Verdict(len(vocabulary) >= per_source and score >= required, score, details)


_LOO_TOLERANCE = {
    # marker: (relative, absolute); allowed difference = max(relative * |value|, absolute)
    "mean_sentence_words": (0.15, 1.0),
    "question_share": (0.3, 0.03),
    "first_person_per_100": (0.25, 0.5),
    "second_person_per_100": (0.25, 0.5),
    "contractions_per_100": (0.25, 0.5),
    "mattr": (0.05, 0.02),
}


def _check_style_leave_one_out(dna: DNAProfile, extracted: Sequence[ExtractedData]) -> _Verdict:
    """Each style marker stays within tolerance of the profile when any one source is
    left out and the markers are measured again (so no single source drives the
    profile, and the profile's markers are the sources'). Needs 3 sources or more.
    Score: share of (marker, left-out source) estimates within tolerance."""
    docs = _docs(extracted)
    if len(docs) < 3:
        return _Verdict(False, 0.0, f"needs at least 3 sources, has {len(docs)}")
    off: list[str] = []
    for index, doc in enumerate(docs):
        for name, value in _style_markers([*docs[:index], *docs[index + 1 :]]).items():
            relative, absolute = _LOO_TOLERANCE[name]
            profile = dna.style_markers.get(name, math.inf)
            if not abs(profile - value) <= max(relative * abs(value), absolute):
                off.append(f"{name} without {doc.source_id}")
    estimates = len(docs) * len(_LOO_TOLERANCE)
    details = f"{estimates} estimates, {len(off)} outside tolerance: {off[:3] or 'none'}"
    return _Verdict(not off, _share(estimates - len(off), estimates), details)


VALIDATION_TASKS: Mapping[str, ValidationTask] = MappingProxyType(
    {
        task_id: _timed_task(task_id, name, check)
        for task_id, name, check in [
            ("EX-001", "traits are 0..1 scores from the minds", _check_traits_come_from_minds),
            ("EX-002", "traits reproduce from the sources", _check_traits_reproduce),
            ("EX-003", "signature phrases recur in the sources", _check_phrases_recur),
            ("EX-004", "vocabulary covers the sources", _check_vocabulary_covers),
            ("EX-005", "style holds with any source left out", _check_style_leave_one_out),
        ]
    }
)
"""The validation tasks by task id, in order (each is independent)."""


def run_validation(dna: DNAProfile, extracted: Sequence[ExtractedData]) -> list[TaskResult]:
    """Run every task of :data:`VALIDATION_TASKS` in turn; their results in order."""
    return [task(dna, extracted) for task in VALIDATION_TASKS.values()]


def summarize_validation(
    results: Sequence[TaskResult], threshold: float = 0.8
) -> ValidationSummary:
    """Count the tasks that passed; the score is the mean of the tasks' scores."""
    passed = sum(1 for result in results if result.passed)
    return ValidationSummary(
        total=len(results),
        passed=passed,
        failed=len(results) - passed,
        score=_share(math.fsum(result.score for result in results), len(results)),
        threshold=threshold,
        all_passed=passed == len(results),
    )


def auto_decision(summary: ValidationSummary, checkpoint_id: str = "cp-1") -> CheckpointDecision:
    """Decide automatically: approve at or above the threshold with every task passed,
    revise at or above it with a task failed or less than :data:`REVISE_MARGIN` below
    it, reject further below or when no task ran."""
    decision: Literal["approve", "reject", "revise"]
    if summary.total and summary.score >= summary.threshold and summary.all_passed:
        decision = "approve"
    elif summary.total and summary.score >= summary.threshold - REVISE_MARGIN:
        decision = "revise"
    else:
        decision = "reject"
    notes = (
        f"score {summary.score:.3f} against threshold {summary.threshold:.3f}; "
        f"{summary.passed} of {summary.total} tasks passed"
    )
    return CheckpointDecision(
        checkpoint_id=checkpoint_id, decision=decision, decided_by="auto", notes=notes
    )


# -- generation ----------------------------------------------------------------------


def build_manifest(
    dna: DNAProfile,
    synthesis: SynthesisResult,
    summary: ValidationSummary,
    decision: CheckpointDecision,
) -> ManifestContent:
    """The manifest: markdown sections for the profile, its traits, its voice, the
    validation and the decision, with their SHA-256 checksum.

    The sections hold no timestamps, so equal input gives an equal checksum.
    """
    sections = {
        "profile": "\n".join(
            [
                f"# {dna.persona}",
                "",
                synthesis.summary,
                "",
                f"- Profile version: {dna.version}",
                f"- Sources: {', '.join(synthesis.sources_used)}",
                f"- Minds: {', '.join(synthesis.mind_ids)}",
                f"- Coverage: {synthesis.coverage:.0%}",
            ]
        ),
        "traits": _table(("Trait", "Score"), sorted(dna.traits.items())),
        "voice": "\n".join(
            [
                "## Signature phrases",
                "",
                *(f'- "{phrase}"' for phrase in dna.signature_phrases),
                "",
                "## Vocabulary",
                "",
                ", ".join(dna.vocabulary),
                "",
                "## Style markers",
                "",
                _table(("Marker", "Value"), sorted(dna.style_markers.items())),
            ]
        ),
        "validation": (
            f"{summary.passed} of {summary.total} tasks passed; score {summary.score:.3f} "
            f"(threshold {summary.threshold:.3f})."
        ),
        "decision": (
            f"**{decision.decision}** at checkpoint {decision.checkpoint_id} by "
            f"{decision.decided_by}: {decision.notes}"
        ),
    }
    return ManifestContent(persona=dna.persona, version=dna.version, sections=sections)


def _table(header: tuple[str, str], rows: Iterable[tuple[str, float]]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.3f} |" for name, value in rows]
    return "\n".join(lines)
