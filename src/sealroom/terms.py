"""Term extraction for engineering notes: each term and the distinct entities that use it.

Runs inside the enclave on plaintext (the text computations) and on the owner's
machine for the dataset card (:mod:`sealroom.connectors.profile`), so it sits
below both, and it is pure, deterministic and dependency-free (plain Python is
fast enough for tens of thousands of short records and avoids importing
scikit-learn into the enclave).

Pipeline for one record:

1. NFKC normalisation and lower-casing, so full-width ``TDX`` and ``TDX`` are one term.
2. Tokenisation that keeps technical tokens whole: ``tpm2``, ``x509``,
   ``scale-codec``, ``ra-tls``, ``docker-compose.yml``. A token starts and ends
   with a letter or digit; inner ``. _ - + /`` are kept.
3. The record is cut into segments at sentence and clause punctuation, so no
   n-gram spans a full stop or a comma.
4. Light plural normalisation (``quotes`` -> ``quote``, ``compose hashes`` ->
   ``compose hash``, ``policies`` -> ``policy``), skipping acronyms and words
   that only look plural (``kms``, ``tls``, ``status``); this is what merges
   near-duplicate forms of a term, record by record, so a merged count is still
   a true count.
5. Terms are 1- to 3-grams inside a segment that contain no stopword (English
   function words plus a log-noise list: "today", "tried", "finally", ...) and
   no noise token (numbers, hex ids, versions, paths, over-long tokens).
   4-grams are counted too, only as context (see subsumption below); they are
   never a topic.

:func:`term_entities` records, per term, the distinct *entities* that use it:
the values of the owner's entity column (a person, a module), or the records
themselves when the policy names none. A record that says "TDX" five times counts
once, and an entity with a hundred records that say "TDX" counts once too: the
privacy threshold ``k`` is stated in entities, so every count here is one.
:func:`record_frequencies` is the special case where every record is an entity.

:func:`select_topics` turns counts into ranked topics, in five explainable steps:

1. **Threshold.** Only terms of at least ``min_count`` entities (the privacy ``k``).
2. **Subsumption.** A term is dropped when a longer term above the threshold
   contains it and occurs almost as often: in at least :data:`SUBSUME_RATIO`
   (4/5) as many entities for a multi-word part ("docker compose" beside
   "docker compose file"), :data:`WORD_SUBSUME_RATIO` (1/2) for a single word
   ("quote" when "tdx quote" accounts for half of its entities). Counting
   4-grams as context removes fragments of a sentence that recurs verbatim
   ("vm option interfere" is always part of "shielded vm option interfere").
3. **Eligibility.** A word of :data:`GENERIC` (software and work-log vocabulary
   that names no subject area: "app", "key", "build", "log", "team"...) is never
   a topic on its own, though it may be part of one ("app key", "reproducible
   build"). A term does not end in a past-tense verb ("user reported"): logs
   narrate, and a narration is not a subject.
4. **Ranking** by ``score = entity count x specificity``, where specificity
   is the sum of the term's word weights: 1 for a specific word,
   :data:`GENERIC_WEIGHT` (1/4) for a generic one. A two-word term of specific
   words ("remote attestation") thus weighs twice a single word and a term of
   generic words only ("compose hash") half, so multi-word, domain-specific
   terms rank first while their counts still decide between equals.
   Ties break by count, then by the term, so the order is deterministic.
5. **Refinements.** Walking down the ranking, a term that contains a
   better-ranked multi-word topic is skipped: "phala cloud dashboard" adds
   little below "phala cloud", and the list names more subject areas instead.
   A single word does not hide its refinements ("remote attestation" stays
   below "attestation"): a word is broad, a phrase names a subject within it.
   Last, the caller's ``admit`` decides (the text computations and the card
   admit a term only when its entity set is separated from those already
   listed: :class:`sealroom.policy.separation.Separated`).

Nothing here changes a count: every count is the true number of distinct
entities that use the term.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice

from sealroom.errors import InvalidInput

__all__ = [
    "GENERIC",
    "GENERIC_WEIGHT",
    "LOG_NOISE",
    "MAX_NGRAM",
    "STOPWORDS",
    "SUBSUME_RATIO",
    "WORD_SUBSUME_RATIO",
    "TermEntities",
    "Topic",
    "is_generic",
    "iter_topics",
    "record_frequencies",
    "record_terms",
    "select_topics",
    "specificity",
    "term_entities",
    "term_words",
    "tokenize",
]

MAX_NGRAM = 3
"""The longest topic, in words."""
CONTEXT_NGRAM = MAX_NGRAM + 1
"""The longest term counted: one word more than a topic, to see which topics are fragments."""
MAX_TOKEN_CHARS = 32
SUBSUME_RATIO = Fraction(4, 5)
"""A multi-word term is dropped for a longer term containing it in >= 80 % as many entities."""
WORD_SUBSUME_RATIO = Fraction(1, 2)
"""A single word is dropped for a longer term containing it in >= 50 % as many entities."""
GENERIC_WEIGHT = Fraction(1, 4)
"""The specificity a generic word adds to a term; a specific word adds 1."""

_TOKEN = re.compile(r"[a-z0-9](?:[a-z0-9._+/-]*[a-z0-9+])?")
_SEGMENT_BREAK = re.compile(
    r"[.!?;:,()\[\]{}\"“”'`|]+(?:\s|$)|[()\[\]{}\"“”`|;]|\s[-\u2013\u2014]+\s|\n"
)
_NUMBERISH = re.compile(r"^[0-9][0-9._:/+-]*[a-z]{0,3}$|^v[0-9][0-9.]*$")
_HEXISH = re.compile(r"^(?:0x)?[0-9a-f]{8,}$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS: frozenset[str] = _words(
    """
    a about above after again against all almost along already also although always am among an
    and another any anyone anything anyway are aren't around as at away back be became because
    become been before being below between both but by can cannot could couldn did didn do does
    doesn doing don done down during each either else enough even ever every few for from further
    get gets getting got had hadn has hasn have haven having he her here hers herself him himself
    his how however i if in into is isn it its itself just least less let like made make makes
    many may me might more most much must my myself neither no nor not now of off often on once
    one only onto or other others our ours ourselves out over own per perhaps quite rather really
    s same she should shouldn since so some something still such t than that the their theirs them
    themselves then there these they this those though through thus to together too toward under
    until up upon us very via was wasn way we well were weren what whatever when where whether which
    while who whom whose why will with within without won would wouldn yet you your yours yourself
    yourselves ll ve re d m everywhere anywhere somewhere nowhere
    """
)
"""English function words; a term never contains one."""

LOG_NOISE: frozenset[str] = _words(
    """
    today yesterday tomorrow tonight morning afternoon evening night week weekend day days hour
    hours minute minutes min mins sec secs time times monday tuesday wednesday thursday friday
    saturday sunday jan feb mar apr jun jul aug sep sept oct nov dec am pm utc eod
    todo tbd wip fyi btw imo ok okay yes yeah nope hmm huh ugh lol oh note notes noted
    tried try trying tries retry retried finally eventually again still maybe probably actually
    basically just seems seem seemed looks look looked looking think thought guess need needs
    needed want wanted going gonna went go goes come came start started starting spent spend
    took take takes taking put keep kept thing things stuff bit lot lots kind sort part
    good bad nice great cool weird strange annoying fine better worse best worst big small
    new old first second third last next little long short quick quickly slow slowly
    work worked working works did doing done do use used using uses make made making
    fix fixed fixing fixes see saw seen know knew known find found finding
    figure figured wrote write writing read reading tell told said say says ask asked
    today's couple whole half pretty sure else also yet though able around worth help helped
    thanks thank added removed updated changed merged pushed pulled ran run running checked
    failed failing broke broken tested passed got getting inside outside two three four five
    check checks compare compared comparing derived reviewed set sets change changes changed
    give gives gave real learn learned learning understand understood sense follow followed
    following drew bookmarked later right wrong example difference differs differ asked ask
    asking explained moved issued requested generated answer helpful remember someone myself
    fun lost open opened close closed feel feeling means mean meaning match matches matched
    every each anyway only slower faster almost enough cleaner clean
    """
)
"""Words that fill work logs without naming a topic."""

_NOT_PLURAL: frozenset[str] = _words(
    """
    kms tls mtls aws gcs dns https ias pcs ens sss gas news lens canvas chaos perhaps always
    ios macos redis postgres kubernetes devops cors jwks
    """
)
_PLURAL_MAP: Mapping[str, str] = {
    "vms": "vm",
    "ids": "id",
    "cas": "ca",
    "ips": "ip",
    "prs": "pr",
    "apis": "api",
    "cpus": "cpu",
    "gpus": "gpu",
    "vcpus": "vcpu",
    "caches": "cache",
    "tees": "tee",
}

STOP: frozenset[str] = STOPWORDS | LOG_NOISE

GENERIC: frozenset[str] = _words(
    """
    app application code program software system platform tool library package module
    component feature function method class object interface api endpoint sdk cli
    file doc document page image data content record entry item field value type format
    name id hash key path root base public private local default main
    config configuration setting option parameter flag variable env version release build
    test ci pr patch commit branch repo project change update upgrade issue bug error problem
    log event message output input request response call command line step flow process
    job task run result report status state plan story note meeting team user people
    account role policy rule access permission group owner
    server client host machine node instance vm cvm cluster service network disk memory
    guest compose
    list index length number size count level mode side end part chain domain
    demo example metric limit cost model
    """
)
"""Generic software and work-log vocabulary: words that occur across subject areas in
engineering notes, so alone they do not say what the work is about (an "app", a "key",
a "build", a "log", a "team", a "vm"). Such a word is never a single-word topic and adds only
:data:`GENERIC_WEIGHT` to the specificity of a longer term; it may still be part of one
("app key", "reproducible build", "event log"). Singular forms, as terms are normalised."""


def _singular(word: str) -> str:
    """Light plural normalisation; stopwords, acronyms and short words are left alone."""
    mapped = _PLURAL_MAP.get(word)
    if mapped is not None:
        return mapped
    if len(word) <= 3 or word in STOP or word in _NOT_PLURAL or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("s"):
        return word[:-1]
    return word


def _is_noise(token: str) -> bool:
    return (
        len(token) < 2
        or len(token) > MAX_TOKEN_CHARS
        or bool(_NUMBERISH.match(token))
        or bool(_HEXISH.match(token))
        or "/" in token
        or token in STOP
    )


def tokenize(text: str) -> list[list[str]]:
    """Normalised tokens of ``text``, one list per segment (sentence or clause)."""
    norm = unicodedata.normalize("NFKC", text).lower()
    segments: list[list[str]] = []
    for piece in _SEGMENT_BREAK.split(norm):
        tokens = [_singular(t) for t in _TOKEN.findall(piece)]
        if tokens:
            segments.append(tokens)
    return segments


def record_terms(text: str, *, max_words: int = MAX_NGRAM) -> set[str]:
    """The distinct terms (1..``max_words``-grams without stopwords or noise) of one record."""
    terms: set[str] = set()
    for seg in tokenize(text):
        ok = [not _is_noise(t) for t in seg]
        n = len(seg)
        for i in range(n):
            if not ok[i]:
                continue
            terms.add(seg[i])
            for j in range(i + 1, min(i + max_words, n)):
                if not ok[j]:
                    break
                terms.add(" ".join(seg[i : j + 1]))
    return terms


@dataclass(frozen=True, slots=True)
class TermEntities:
    """Which entities use each term.

    ``members[term]`` holds entity numbers; ``entities[n]`` is entity ``n``'s value (its
    entity-column value, or its row number when records are the entities).
    """

    members: Mapping[str, Set[int]]
    entities: Sequence[Hashable]

    @property
    def total(self) -> int:
        """The number of distinct entities with at least one non-empty record."""
        return len(self.entities)

    def count(self, term: str) -> int:
        return len(self.members.get(term, ()))

    def counts(self) -> dict[str, int]:
        return {term: len(m) for term, m in self.members.items()}

    def values(self, term: str) -> frozenset[Hashable]:
        """The entity values behind ``term``'s count (a footprint for difference checks)."""
        return frozenset(self.entities[n] for n in self.members.get(term, ()))


def term_entities(
    texts: Sequence[str | None], entities: Sequence[Hashable | None] | None = None
) -> TermEntities:
    """The distinct entities that use each term; ``entities`` None: each record is one.

    A record with no text, or with a null entity (not an identified entity, so it
    cannot lift a term over k), counts for nothing. Terms of up to
    :data:`CONTEXT_NGRAM` words are counted; the longest only serve
    :func:`select_topics` as context and are never selected.
    """
    if entities is not None and len(entities) != len(texts):
        raise InvalidInput("term_entities needs one entity per record")
    members: dict[str, set[int]] = {}
    numbers: dict[Hashable, int] = {}
    values: list[Hashable] = []
    for i, text in enumerate(texts):
        entity = i if entities is None else entities[i]
        if not text or entity is None:
            continue
        n = numbers.get(entity)
        if n is None:
            n = numbers[entity] = len(values)
            values.append(entity)
        for term in record_terms(text, max_words=CONTEXT_NGRAM):
            found = members.get(term)
            if found is None:
                members[term] = {n}
            else:
                found.add(n)
    return TermEntities(members=members, entities=tuple(values))


def record_frequencies(texts: Iterable[str | None]) -> dict[str, int]:
    """Number of records each term occurs in (every record its own entity)."""
    return term_entities(list(texts)).counts()


def term_words(term: str) -> tuple[str, ...]:
    return tuple(term.split(" "))


def is_generic(word: str) -> bool:
    """Whether ``word`` is generic vocabulary (:data:`GENERIC`) that names no subject alone."""
    return word in GENERIC


def specificity(term: str) -> Fraction:
    """How much of a subject ``term`` names: 1 per specific word, :data:`GENERIC_WEIGHT` per generic one.

    0 for a lone generic word, which is never a topic.
    """
    words = term_words(term)
    if len(words) == 1 and words[0] in GENERIC:
        return Fraction(0)
    return sum((GENERIC_WEIGHT if w in GENERIC else Fraction(1) for w in words), start=Fraction(0))


_PAST_TENSE = re.compile(r"^[a-z]{3,}[^e]ed$")


def _eligible(term: str) -> bool:
    words = term_words(term)
    if len(words) > MAX_NGRAM or specificity(term) == 0:
        return False
    return not (len(words) > 1 and _PAST_TENSE.match(words[-1]))


@dataclass(frozen=True, slots=True)
class Topic:
    term: str
    count: int

    @property
    def score(self) -> Fraction:
        """The ranking score: entity count x :func:`specificity`."""
        return self.count * specificity(self.term)


def iter_topics(
    counts: Mapping[str, int],
    *,
    min_count: int,
    admit: Callable[[str], bool] | None = None,
) -> Iterator[Topic]:
    """Topics among terms of at least ``min_count`` entities, best first.

    Threshold, subsumption, eligibility, ranking and refinements as the module
    docstring describes; then ``admit`` (when given) decides each term in rank
    order, and a term it refuses is skipped. Every count is the term's count unchanged.
    """
    kept = {t: c for t, c in counts.items() if c >= min_count}
    subsumed: set[str] = set()
    for term, count in kept.items():
        words = term_words(term)
        n = len(words)
        for size in range(1, n):
            ratio = WORD_SUBSUME_RATIO if size == 1 else SUBSUME_RATIO
            for start in range(n - size + 1):
                part = " ".join(words[start : start + size])
                part_count = kept.get(part)
                if part_count is not None and count >= ratio * part_count:
                    subsumed.add(part)
    ranked = sorted(
        (Topic(term=t, count=c) for t, c in kept.items() if t not in subsumed and _eligible(t)),
        key=lambda topic: (-topic.score, -topic.count, topic.term),
    )
    listed_phrases: set[str] = set()
    for topic in ranked:
        words = term_words(topic.term)
        n = len(words)
        parts = (" ".join(words[i : i + size]) for size in range(2, n) for i in range(n - size + 1))
        if any(part in listed_phrases for part in parts):
            continue  # a refinement of a better-ranked topic: "phala cloud dashboard"
        if admit is not None and not admit(topic.term):
            continue
        yield topic
        if n > 1:
            listed_phrases.add(topic.term)


def select_topics(
    counts: Mapping[str, int],
    *,
    min_count: int,
    top: int | None,
    admit: Callable[[str], bool] | None = None,
) -> list[Topic]:
    """The first ``top`` (all when None) topics of :func:`iter_topics`."""
    return list(islice(iter_topics(counts, min_count=min_count, admit=admit), top))
