"""The read path: keyword (BM25), exact vector, and hybrid search.

Keyword search makes every word of a question optional, so BM25 ranks first the
chunks that hold more of its words, and rarer ones. Vector search compares the
question's vector with every stored vector of the same length. Hybrid search
fuses the two lists (reciprocal-rank fusion by default; the contract's min-max
fusion on request) and ranks documents by their best chunk. Filters
(``source``, ``since``) run inside the candidate queries, so a filtered search
returns ``limit`` results whenever that many match. Each call reads one
snapshot of the database.

A question is embedded with the model that made the stored vectors (its name
is in ``embeddings.model``), unless you pass an embedder or a vector.

>>> import ctx_models
>>> from ctx_models import store, search
>>> from ctx_models.embedders import HashingEmbedder
>>> db = ctx_models.connect(":memory:"); _ = ctx_models.run_migrations(db)
>>> embedder = HashingEmbedder()
>>> _ = store.ingest("docs", "a", "Postgres failover runbook", embedder=embedder)
>>> _ = store.ingest("docs", "b", "Kafka consumer lag", embedder=embedder)
>>> [hit.source_id for hit in search.hybrid_search("how do I fail over postgres?")]
['a']
>>> search.hybrid_search("xyzzyplugh")
[]
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from peewee import Database

from .backends import Backend, Candidate, backend_for
from .embedders import Embedder, embed_texts, embedder_for_model
from .errors import EmbedderUnavailableError, ValidationError, VectorError
from .fields import as_text, encodable, encode_vector, iso_or_stored, to_epoch
from .models import Document, bound_database
from .words import unique_words

__all__ = [
    "Candidate",
    "Signal",
    "SearchResult",
    "SearchResults",
    "keyword_search",
    "vector_search",
    "hybrid_search",
    "hnsw_recall",
    "parse_since",
    "MODES",
    "MATCH_MODES",
    "FUSIONS",
    "DEFAULT_FUSION",
    "DEFAULT_ALPHA",
    "MODEL_ALPHA",
    "RRF_K",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_WORDS",
]

log = logging.getLogger(__name__)

MODES = ("keyword", "semantic", "hybrid")
#: ``any``: every word optional, BM25 ranks; ``all``: every word required, as the ctx tool does.
MATCH_MODES = ("any", "all")
#: ``rrf``: reciprocal-rank fusion; ``minmax``: the contract's (and the ctx tool's) score fusion.
FUSIONS = ("rrf", "minmax")
DEFAULT_FUSION = "rrf"
#: The weight of the semantic signal when none is given, per fusion. 0.6 is the contract's;
#: the RRF weight was chosen on NFCorpus (see README, "Search quality").
DEFAULT_ALPHA = {"rrf": 1 / 3, "minmax": 0.6}
#: Per-model weights that replace DEFAULT_ALPHA when the question is embedded with that model
#: (chosen on NFCorpus so that hybrid beats keyword and semantic alone: README, "Choosing a model").
#: all-MiniLM-L6-v2's list is stronger than WordLlama's: rrf at 0.5 scored 0.3485 nDCG@10 against
#: 0.3461 at 1/3 (0.4: 0.3475, 0.6: 0.3407). min-max keeps the contract's 0.6 (ctx's fusion).
MODEL_ALPHA: dict[str, dict[str, float]] = {"all-minilm-l6-v2": {"rrf": 0.5}}
#: RRF's rank offset: a chunk at rank r in a list scores (RRF_K + 1) / (RRF_K + r), 1.0 first.
RRF_K = 10
MAX_LIMIT = 10_000
#: The longest question searched, in characters (about 30 pages of text); a longer one is
#: refused with a ValidationError rather than left to run for seconds per word form.
MAX_QUERY_CHARS = 100_000
#: The most distinct words a keyword (or hybrid) question may hold (any 10,000 characters of
#: words of four letters or more fit): each is looked up in
#: the index and becomes one term of the query.
MAX_QUERY_WORDS = 2_000
_EPSILON64 = float(np.finfo(np.float64).eps)
_EPSILON32 = float(np.finfo(np.float32).eps)


@dataclass
class Signal:
    """What one signal (``keyword`` or ``semantic``) contributed to a search, or why it did not."""

    name: str
    used: bool
    candidates: int = 0
    note: str = ""

    def __str__(self) -> str:
        if self.used:
            count = f"{self.candidates} candidate{'s' if self.candidates != 1 else ''}"
            return f"{self.name}: {count}" + (f" ({self.note})" if self.note else "")
        return f"{self.name}: left out, {self.note}"


@dataclass
class SearchResult:
    """A document found by :func:`hybrid_search`, with its best chunk's snippet."""

    id: str
    title: str | None
    source: str
    source_id: str
    source_url: str | None
    updated_at: str | None  # ISO 8601, or as stored when another program stored no epoch seconds
    score: float
    snippet: str
    chunk_id: str
    explain: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["explain"] is None:
            del data["explain"]
        return data


class SearchResults(list[SearchResult]):
    """The results of :func:`hybrid_search`, best first, and what each signal did.

    A list, so it is used as one; ``signals`` says which signals counted and,
    when one was left out, why (``str(signal)`` reads well in a log).
    """

    def __init__(
        self,
        results: Sequence[SearchResult] = (),
        *,
        signals: dict[str, Signal] | None = None,
        fusion: str = DEFAULT_FUSION,
        alpha: float = 0.0,
    ) -> None:
        super().__init__(results)
        self.signals = signals or {}
        self.fusion = fusion
        self.alpha = alpha

    @property
    def why_empty(self) -> str:
        """For an empty result, the reasons the signals give (empty when there are results)."""
        if self:
            return ""
        notes = [s.note for s in self.signals.values() if s.note and not s.candidates]
        return "; ".join(dict.fromkeys(notes)) or "nothing matched"


# --------------------------------------------------------------------------- arguments


def parse_since(value: Any) -> int | None:
    """Epoch seconds from a date, aware datetime, epoch seconds or ``YYYY-MM-DD`` / ISO text."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                return _since_epoch(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                f"since: {value!r:.40} is not a date; use YYYY-MM-DD, "
                "or an ISO time with a zone such as 2026-01-31T09:00Z"
            ) from None
        if parsed.tzinfo is None:
            raise ValidationError(
                f"since: {value!r:.40} has no time zone; add one (2026-01-31T09:00Z, "
                "2026-01-31T09:00+02:00) or give a date, YYYY-MM-DD"
            )
        return _since_epoch(parsed)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return _since_epoch(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC))
    return _since_epoch(value)


def _since_epoch(value: Any) -> int:
    """A filter's lower bound in epoch seconds: a moment before 1970 is 0, which every
    stored timestamp (epoch seconds from 0) is on or after, so it filters out nothing."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None and value.utcoffset() is not None:
        if value < dt.datetime(1970, 1, 1, tzinfo=dt.UTC):
            return 0
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) < 0:
        return 0
    return to_epoch(value, "since")


def _limit(value: Any, what: str = "limit") -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 1 <= int(value) <= MAX_LIMIT
    ):
        raise ValidationError(f"{what} must be an integer from 1 to {MAX_LIMIT}, got {value!r}")
    return int(value)


def _source(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError(f"source must be a non-empty str or None, got {value!r}")
    return None if value is None else encodable(value, "source")


def _text(value: Any, what: str = "query", *, keyword: bool = True) -> str:
    """A question within the bounds: MAX_QUERY_CHARS characters, and (for keyword
    search, which looks up each word) MAX_QUERY_WORDS distinct words."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, got {type(value).__name__}")
    if len(value) > MAX_QUERY_CHARS:
        raise ValidationError(
            f"{what} is {len(value):,} characters long; at most {MAX_QUERY_CHARS:,} are searched "
            "(search.MAX_QUERY_CHARS): ask with fewer words"
        )
    encodable(value, what)
    if keyword:
        count = len(unique_words(value))
        if count > MAX_QUERY_WORDS:
            raise ValidationError(
                f"{what} has {count:,} different words; keyword search takes at most "
                f"{MAX_QUERY_WORDS:,} (search.MAX_QUERY_WORDS): ask with fewer words, "
                "or use mode='semantic'"
            )
    return value


def _model(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError(f"model must be a non-empty str or None, got {value!r}")
    return None if value is None else encodable(value, "model")


def _choice(value: Any, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ValidationError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _query_vector(value: Any) -> np.ndarray:
    return np.frombuffer(encode_vector(value, "query vector"), dtype="<f4").astype(np.float32)


def _alpha(mode: str, alpha: Any, fusion: str) -> float:
    if mode == "keyword":
        return 0.0
    if mode == "semantic":
        return 1.0
    if alpha is None:
        return DEFAULT_ALPHA[fusion]
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or math.isnan(alpha):
        raise ValidationError(f"alpha must be a number from 0 to 1, got {alpha!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValidationError(
            f"alpha must be from 0 (keyword only) to 1 (semantic only), got {alpha!r}"
        )
    return float(alpha)


# --------------------------------------------------------------------------- keyword


def _keyword_candidates(
    backend: Backend,
    text: str,
    limit: int,
    source: str | None,
    since: int | None,
    *,
    raw: bool,
    match: str,
    outer_transaction: bool,
) -> tuple[list[Candidate], Signal]:
    answer = backend.keyword_search(
        text, limit, source, since, raw=raw, match=match, outer_transaction=outer_transaction
    )
    if not answer.expression.strip():
        if answer.absent:
            return [], Signal("keyword", False, 0, "no chunk holds any word of the question")
        return [], Signal("keyword", False, 0, "the question has no words")
    if not answer.candidates:
        note = "no chunk holds any word of the question" + _filtered(source, since)
        return [], Signal("keyword", False, 0, note)
    if raw:
        note = "raw FTS5 query"
    elif match == "all":
        note = "every word required"
    else:
        note = f"words: {' '.join(answer.used)}"
        if answer.dropped:
            note += f"; too common to count: {' '.join(answer.dropped)}"
        if answer.absent:
            note += f"; in no chunk: {' '.join(answer.absent)}"
    return answer.candidates, Signal("keyword", True, len(answer.candidates), note)


def _filtered(source: str | None, since: int | None) -> str:
    parts = []
    if source is not None:
        parts.append(f"source {source!r}")
    if since is not None:
        parts.append(f"updated since {iso_or_stored(since)}")
    return f" (searched only {' and '.join(parts)})" if parts else ""


def keyword_search(
    query: str,
    limit: int = 80,
    source: str | None = None,
    since: Any = None,
    *,
    raw: bool = False,
    match: str = "any",
) -> list[Candidate]:
    """BM25 search over chunk text; best first, raw score = −bm25.

    The text is reduced to its words (see :mod:`ctx_models.words`), each quoted
    whole, so no input can make FTS5 raise. With ``match="any"`` (the default)
    every word is optional and matches its English forms ("scanners" finds
    "scanner"); ``match="all"`` requires every word as written, as the ``ctx``
    tool does. With ``raw=True`` the text is passed to FTS5 as written
    (phrases, NEAR, OR, prefix*, column filters) and a syntax error raises
    :class:`QuerySyntaxError`.
    """
    query = _text(query, keyword=not raw)
    limit, source, since = _limit(limit), _source(source), parse_since(since)
    match = _choice(match, MATCH_MODES, "match")
    backend = backend_for(bound_database())
    with backend.read_snapshot("search") as outer:
        found, _ = _keyword_candidates(
            backend, query, limit, source, since, raw=raw, match=match, outer_transaction=outer
        )
        return found


# --------------------------------------------------------------------------- vector


def _semantic_query(
    backend: Backend,
    text: str,
    vector: Any,
    embedder: Embedder | None,
    model: str | None,
    *,
    required: bool,
    outer_transaction: bool,
) -> tuple[np.ndarray | None, str | None, str, str | None]:
    """The question's vector, the model to filter the vectors by, a note, and the model used.

    The vector is ``None`` when the semantic signal cannot run; the note says why.
    With ``required`` (semantic mode) a missing embedder raises instead.
    """
    if vector is not None:
        used = model if model is not None else getattr(embedder, "model", None)
        return _query_vector(vector), model, "the vector given", used
    stored = backend.stored_models(outer_transaction=outer_transaction)
    if embedder is None:
        if model is None and not stored:
            return None, None, "no chunk has an embedding yet; run `ctx-models embed`", None
        try:
            embedder = _stored_models_embedder([model] if model is not None else list(stored))
        except EmbedderUnavailableError as exc:
            if required:
                raise
            # The result's signals say it (the CLI prints it once); a warning would repeat it.
            log.info("semantic search skipped: %s", exc)
            return None, None, f"the stored vectors' model is not available: {exc}", None
    name = model if model is not None else embedder.model
    if name not in stored:
        known = ", ".join(stored) or "none"
        return None, None, f"no vectors of model {name!r} are stored (stored: {known})", None
    query = embed_texts(embedder, [text])[0]
    # Filtering by model costs a pass over every row; one model needs none.
    return query, (name if model is not None or len(stored) > 1 else None), f"model {name}", name


def _stored_models_embedder(names: list[str]) -> Embedder:
    """The embedder of the first of ``names`` (stored models, most embeddings first) that loads.

    With vectors of two models in the store, the one that covers more chunks is
    searched; the other only when the first's embedder is not available here.
    """
    first: EmbedderUnavailableError | None = None
    for name in names:
        try:
            return embedder_for_model(name)
        except EmbedderUnavailableError as exc:
            first = first or exc
            log.info("model %s not available: %s", name, exc)
    assert first is not None
    raise first


def _vector_candidates(
    backend: Backend,
    query: np.ndarray | None,
    note: str,
    limit: int,
    source: str | None,
    since: int | None,
    model: str | None,
    *,
    outer_transaction: bool,
    exact: bool = True,
) -> tuple[list[Candidate], Signal]:
    """The semantic list for fusion: left out (empty) when it carries no information."""
    if query is None:
        return [], Signal("semantic", False, 0, note)
    if float(np.linalg.norm(query.astype(np.float64))) < _EPSILON32:
        return [], Signal("semantic", False, 0, "the question's vector is zero (no known words)")
    lengths = backend.vector_lengths(outer_transaction=outer_transaction)
    if len(query) not in lengths:
        stored = ", ".join(map(str, lengths)) or "none"
        reason = f"no stored vector has the question's length {len(query)} (stored lengths: {stored})"
        return [], Signal("semantic", False, 0, reason)
    answer = backend.vector_search(
        query, limit, source, since, model, outer_transaction=outer_transaction, exact=exact
    )
    if not answer.candidates:
        return [], Signal("semantic", False, 0, "no vector matches the filters" + _filtered(source, since))
    if answer.searched > 1 and answer.spread < _EPSILON64:
        # Every vector equally close: the question's vector says nothing about any of them.
        return [], Signal("semantic", False, 0, "every vector is equally close to the question")
    # A chunk no closer than orthogonal to the question is no evidence for it.
    found = [c for c in answer.candidates if c.score > 0.0]
    return found, Signal("semantic", True, len(found), note)


def vector_search(
    query: Any,
    limit: int = 80,
    source: str | None = None,
    since: Any = None,
    *,
    embedder: Embedder | None = None,
    model: str | None = None,
    exact: bool = True,
) -> list[Candidate]:
    """Cosine-similarity search over the stored vectors of the question's length; best first.

    ``query`` is the question's text or its vector. Text is embedded with
    ``embedder``, else with the embedder of ``model``, else with the model of
    the stored vectors. ``model`` also restricts the search to that model's
    vectors. Vectors of other lengths are left out, never an error. Exact by
    default; ``exact=False`` lets PostgreSQL use an HNSW index (``ctx-models index
    --hnsw``) where one exists. SQLite serves every search, exactly, from an
    in-memory index rebuilt only when the database changed.
    """
    if query is None:
        raise VectorError("a query is required: the question's text, or its vector")
    limit, source, since = _limit(limit), _source(source), parse_since(since)
    model = _model(model)
    backend = backend_for(bound_database())
    with backend.read_snapshot("search") as outer:
        text, vector = (_text(query, keyword=False), None) if isinstance(query, str) else ("", query)
        vector, model, note, _ = _semantic_query(
            backend, text, vector, embedder, model, required=True, outer_transaction=outer
        )
        if vector is None:
            log.info("vector search found nothing: %s", note)
            return []
        answer = backend.vector_search(
            vector, limit, source, since, model, outer_transaction=outer, exact=exact
        )
        if not answer.candidates:
            lengths = backend.vector_lengths(outer_transaction=outer)
            if len(vector) not in lengths:
                log.info(
                    "vector search: no stored vector has the query's length %d (stored: %s)",
                    len(vector), lengths,
                )
        return answer.candidates


def hnsw_recall(dims: int, *, k: int = 80, queries: int = 50) -> tuple[float, int]:
    """Recall@k of the approximate (HNSW) index of size ``dims`` against exact search.

    What ``ctx-models index --hnsw`` reports: an approximate index's recall is
    measured, never assumed. Stored vectors, chosen at random, are the
    queries. Returns (mean recall, queries used).
    """
    recalls = []
    for query in backend_for(bound_database()).sample_vectors(dims, queries):
        exact = {c.chunk_id for c in vector_search(query, limit=k)}
        approximate = {c.chunk_id for c in vector_search(query, limit=k, exact=False)}
        recalls.append(len(exact & approximate) / max(1, len(exact)))
    return (sum(recalls) / len(recalls) if recalls else 0.0), len(recalls)


# --------------------------------------------------------------------------- hybrid


def _minmax(candidates: Sequence[Candidate]) -> dict[str, float]:
    """Min-max normalise raw scores to [0, 1]; 1.0 for all when they are equal within float64 epsilon."""
    if not candidates:
        return {}
    scores = [c.score for c in candidates]
    low, high = min(scores), max(scores)
    if high - low < _EPSILON64:
        return {c.chunk_id: 1.0 for c in candidates}
    return {c.chunk_id: (c.score - low) / (high - low) for c in candidates}


def _ranks(candidates: Sequence[Candidate]) -> dict[str, int]:
    """Rank per chunk in a best-first list, equal scores sharing the better rank (1, 2, 2, 4)."""
    ranks: dict[str, int] = {}
    previous: float | None = None
    rank = 0
    for position, candidate in enumerate(candidates, 1):
        if candidate.score != previous:
            rank, previous = position, candidate.score
        ranks[candidate.chunk_id] = rank
    return ranks


def _reciprocal_ranks(candidates: Sequence[Candidate]) -> dict[str, float]:
    """(RRF_K + 1) / (RRF_K + rank) per chunk: 1.0 for the first, falling off with rank."""
    return {chunk_id: (RRF_K + 1) / (RRF_K + rank) for chunk_id, rank in _ranks(candidates).items()}


def _epoch_or_zero(row: tuple[Any, ...]) -> int:
    """updated_at for tie-breaks; a value another program stored badly sorts as oldest."""
    value = row[5]
    if isinstance(value, int):
        return value
    log.warning(
        "document %s has updated_at %r, not epoch seconds; run `ctx-models check`", row[0], value
    )
    return 0


def hybrid_search(
    query: str,
    query_vector: Any = None,
    mode: str = "hybrid",
    alpha: float | None = None,
    candidates_keyword: int = 80,
    candidates_vector: int = 80,
    limit: int = 12,
    source: str | None = None,
    since: Any = None,
    explain: bool = False,
    *,
    model: str | None = None,
    embedder: Embedder | None = None,
    fusion: str = DEFAULT_FUSION,
    match: str = "any",
    exact: bool = True,
) -> SearchResults:
    """Documents ranked by their best chunk's fused keyword and semantic score.

    ``fusion="rrf"`` (the default) scores a chunk (1 − α)·k + α·v where k and v
    are (RRF_K + 1) / (RRF_K + rank) in each list; ``"minmax"`` is the
    contract's fusion, with each list's raw scores min-max normalised. α is the
    semantic weight, from 0 to 1 (default: the model's in :data:`MODEL_ALPHA`, else
    :data:`DEFAULT_ALPHA`); ``mode``
    ``keyword`` is α = 0 and needs no vector, ``semantic`` is α = 1. A document
    scores its best chunk; ties go to the newer ``updated_at``, then the smaller id.

    A signal that carries no information is left out: a zero question vector,
    or vectors all equally close. In hybrid mode the semantic list extends and
    re-ranks what keyword search found, so a question none of whose words occur
    in the corpus gets no results (semantic mode still answers it). A hit is
    returned when a signal of non-zero weight found it, even where min-max fusion
    normalises its score to 0 (the last of its list); a hit no weighted signal
    found is never returned. ``results.signals`` says what counted.
    """
    mode = _choice(mode, MODES, "mode")
    query = _text(query, keyword=mode != "semantic")
    fusion = _choice(fusion, FUSIONS, "fusion")
    match = _choice(match, MATCH_MODES, "match")
    weight = _alpha(mode, alpha, fusion)
    limit, source, since = _limit(limit), _source(source), parse_since(since)
    model = _model(model)
    k_keyword, k_vector = (
        _limit(candidates_keyword, "candidates_keyword"),
        _limit(candidates_vector, "candidates_vector"),
    )
    signals: dict[str, Signal] = {}
    if not query.strip():
        return SearchResults(signals={"keyword": Signal("keyword", False, 0, "the question is empty")}, fusion=fusion, alpha=weight)
    db = bound_database()
    backend = backend_for(db)
    with backend.read_snapshot("search") as outer:
        keyword: list[Candidate] = []
        if mode != "semantic":
            keyword, signals["keyword"] = _keyword_candidates(
                backend, query, k_keyword, source, since,
                raw=False, match=match, outer_transaction=outer,
            )
        semantic: list[Candidate] = []
        if mode != "keyword":
            vector, vector_model, note, used = _semantic_query(
                backend, query, query_vector, embedder, model,
                required=mode == "semantic", outer_transaction=outer,
            )
            if alpha is None and mode == "hybrid" and used in MODEL_ALPHA:
                weight = MODEL_ALPHA[used].get(fusion, weight)
            semantic, signals["semantic"] = _vector_candidates(
                backend, vector, note, k_vector, source, since, vector_model,
                outer_transaction=outer, exact=exact,
            )
            if mode == "hybrid" and not keyword:
                # Said only when semantic mode would answer: otherwise why it would not.
                alone = (
                    "semantic mode answers without one"
                    if semantic
                    else f"semantic mode finds nothing either ({signals['semantic'].note})"
                )
                semantic, signals["semantic"] = [], Signal(
                    "semantic", False, 0,
                    f"hybrid search needs a word of the question in the corpus; {alone}",
                )
        for signal in signals.values():
            if not signal.used:
                log.info("search %r: %s", query[:80], signal)
        results = _rank(db, keyword, semantic, weight, fusion, limit) if keyword or semantic else []
    found = SearchResults(results, signals=signals, fusion=fusion, alpha=weight)
    for result in found:
        if explain:
            result.explain.update(  # type: ignore[union-attr]
                fusion=fusion,
                alpha=weight,
                keyword_candidates=len(keyword),
                vector_candidates=len(semantic),
                signals={name: str(signal) for name, signal in signals.items()},
            )
        else:
            result.explain = None
    return found


def _rank(
    db: Database,
    keyword: list[Candidate],
    semantic: list[Candidate],
    alpha: float,
    fusion: str,
    limit: int,
) -> list[SearchResult]:
    normalise = _reciprocal_ranks if fusion == "rrf" else _minmax
    k_part, v_part = normalise(keyword), normalise(semantic)
    chunks: dict[str, Candidate] = {}
    for candidate in keyword + semantic:  # a keyword snippet (with highlights) wins
        chunks.setdefault(candidate.chunk_id, candidate)
    best: dict[str, tuple[float, str]] = {}  # document id -> (score, chunk id)
    for chunk_id in sorted(chunks):
        # Being in a list is the evidence, not the normalised score: min-max maps each
        # list's last entry to 0, and that chunk still holds the words (or is closer than
        # orthogonal). Only a signal of weight 0 vouches for nothing.
        vouched = (alpha < 1.0 and chunk_id in k_part) or (alpha > 0.0 and chunk_id in v_part)
        if not vouched:
            continue
        score = (1.0 - alpha) * k_part.get(chunk_id, 0.0) + alpha * v_part.get(chunk_id, 0.0)
        document_id = chunks[chunk_id].document_id
        if document_id not in best or score > best[document_id][0]:
            best[document_id] = (score, chunk_id)
    columns = (
        Document.id,
        Document.title,
        Document.source,
        Document.source_id,
        Document.source_url,
        Document.updated_at,
    )
    documents = {}
    ids = list(best)
    for start in range(0, len(ids), 500):
        query = Document.select(*columns).where(Document.id.in_(ids[start : start + 500]))
        for row in db.execute_sql(*query.sql()):
            # A BLOB another program stored in a TEXT column reads as text (check reports it).
            documents[as_text(row[0])] = tuple(map(as_text, row[:5])) + row[5:]
    ranked = sorted(
        (doc_id for doc_id in best if doc_id in documents),
        key=lambda d: (-best[d][0], -_epoch_or_zero(documents[d]), d),
    )
    keyword_rank, semantic_rank = _ranks(keyword), _ranks(semantic)
    results = []
    for doc_id in ranked[:limit]:
        score, chunk_id = best[doc_id]
        _, title, source, source_id, url, updated_at = documents[doc_id]
        results.append(
            SearchResult(
                id=doc_id,
                title=title,
                source=source,
                source_id=source_id,
                source_url=url,
                updated_at=iso_or_stored(updated_at),
                score=score,
                snippet=chunks[chunk_id].snippet,
                chunk_id=chunk_id,
                explain={
                    "keyword": k_part.get(chunk_id, 0.0),
                    "semantic": v_part.get(chunk_id, 0.0),
                    "keyword_rank": keyword_rank.get(chunk_id),
                    "semantic_rank": semantic_rank.get(chunk_id),
                },
            )
        )
    return results
