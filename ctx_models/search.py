"""The read path: keyword (BM25), exact vector, and hybrid search, per the storage contract.

Filters (``source``, ``since``) are applied inside the candidate queries, so a
filtered search returns ``limit`` results whenever that many match. Each call
reads one snapshot of the database.

>>> import ctx_models
>>> from ctx_models import store, search
>>> from ctx_models.embedders import HashingEmbedder
>>> db = ctx_models.connect(":memory:"); _ = ctx_models.run_migrations(db)
>>> embedder = HashingEmbedder()
>>> _ = store.ingest("docs", "a", "Postgres failover runbook", embedder=embedder)
>>> _ = store.ingest("docs", "b", "Kafka consumer lag", embedder=embedder)
>>> [hit.source_id for hit in search.hybrid_search("failover", embedder.embed(["failover"])[0])]
['a', 'b']
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import numbers
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import peewee
from peewee import SQL, Database

from . import fts
from .errors import QuerySyntaxError, ValidationError, VectorError
from .fields import MAX_EPOCH, encode_vector, to_epoch
from .models import ChunkFTS, Document, bound_database
from .vector_index import index_for

__all__ = [
    "Candidate",
    "keyword_query",
    "SearchResult",
    "keyword_search",
    "vector_search",
    "hybrid_search",
    "parse_since",
    "MODES",
]

log = logging.getLogger(__name__)

MODES = ("keyword", "semantic", "hybrid")
MAX_LIMIT = 10_000
VECTOR_SNIPPET_CHARS = 240
# Chunk id, document and the contract's plain snippet for the vector winners only.
_WINNERS_SQL = (
    f"SELECT cv.rowid, c.id, c.document_id, substr(c.text, 1, {VECTOR_SNIPPET_CHARS}) "
    "FROM chunk_vectors AS cv JOIN chunks AS c ON c.id = cv.chunk_id WHERE cv.rowid IN ({params})"
)


class Candidate(NamedTuple):
    """A chunk found by one signal; ``score`` is raw (−rank for BM25, cosine for vectors).

    A named tuple: results are built in bulk on every search, and a tuple is cheap.
    """

    chunk_id: str
    document_id: str
    score: float
    snippet: str


@dataclass
class SearchResult:
    """A document found by :func:`hybrid_search`, with its best chunk's snippet."""

    id: str
    title: str | None
    source: str
    source_id: str
    source_url: str | None
    updated_at: str
    score: float
    snippet: str
    chunk_id: str
    explain: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["explain"] is None:
            del data["explain"]
        return data


# --------------------------------------------------------------------------- arguments


def parse_since(value: Any) -> int | None:
    """Epoch seconds from a date, aware datetime, epoch seconds or ``YYYY-MM-DD`` text."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                return to_epoch(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), "since")
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                f"since: {value!r:.40} is not a date; use YYYY-MM-DD or an ISO 8601 datetime with a zone"
            ) from None
        return to_epoch(parsed, "since")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return to_epoch(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC), "since")
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
    return value


def _query_vector(value: Any) -> np.ndarray:
    if value is None:
        raise VectorError("a query vector is required; embed the query text with your embedder")
    return np.frombuffer(encode_vector(value, "query vector"), dtype="<f4").astype(np.float32)


@contextmanager
def _snapshot(db: Database) -> Iterator[bool]:
    """One read transaction; yields True when the caller already had a transaction open."""
    if db.connection().in_transaction and not db.in_transaction():
        # Opened with db.begin(), which peewee does not track: read inside it.
        yield True
        return
    outer = db.in_transaction()
    with db.atomic():
        yield outer


# --------------------------------------------------------------------------- keyword


class _Slot(str):
    """A parameter of a compiled query that is filled in per call."""


@lru_cache(maxsize=4)
def _keyword_template(filtered_source: bool, filtered_since: bool) -> tuple[str, tuple[Any, ...]]:
    """The keyword query for these filters, compiled once by peewee (building it per call costs
    more than running it on a small corpus). Parameters that vary per call are :class:`_Slot` objects.
    """
    snippet = ChunkFTS.text.snippet(
        fts.SNIPPET_START, fts.SNIPPET_END, fts.SNIPPET_ELLIPSIS, fts.SNIPPET_TOKENS
    )
    query = ChunkFTS.select(ChunkFTS.chunk_id, ChunkFTS.document_id, SQL("rank"), snippet).where(
        ChunkFTS.match(_Slot("match"))
    )
    if filtered_source or filtered_since:
        query = query.join(Document, on=(Document.id == ChunkFTS.document_id))
        if filtered_source:
            query = query.where(Document.source == _Slot("source"))
        if filtered_since:
            query = query.where(Document.updated_at >= _SINCE_SLOT)
    query = query.order_by(SQL("rank")).limit(_LIMIT_SLOT)
    sql, params = query.sql()
    slots = {_SINCE_SLOT: _Slot("since"), _LIMIT_SLOT: _Slot("limit")}
    return sql, tuple(p if isinstance(p, _Slot) else slots.get(p, p) for p in params)


# Integer stand-ins for the integer slots (peewee converts values through their fields).
_SINCE_SLOT, _LIMIT_SLOT = 253_402_300_799, -987_654


def keyword_query(
    match: str, limit: int, source: str | None = None, since: int | None = None
) -> tuple[str, list[Any]]:
    """The SQL and parameters :func:`keyword_search` runs for an FTS5 ``match`` expression.

    Exposed so the same statement can run through another driver (the benchmark
    compares it with bare ``sqlite3``). Rows: chunk_id, document_id, rank, snippet.
    """
    sql, template = _keyword_template(source is not None, since is not None)
    values = {"match": match, "source": source, "since": since, "limit": limit}
    return sql, [values[p] if isinstance(p, _Slot) else p for p in template]


def _keyword_rows(
    db: Database, match: str, limit: int, source: str | None, since: int | None
) -> list[Candidate]:
    sql, params = keyword_query(match, limit, source, since)
    try:
        rows = db.execute_sql(sql, params).fetchall()
    except (sqlite3.OperationalError, peewee.OperationalError) as exc:
        raise QuerySyntaxError(
            f"FTS5 rejected the query {match!r:.80}: {exc}. Check quotes and operators, "
            "or search without raw=True to treat the text as plain words"
        ) from exc
    return [
        Candidate(chunk_id, document_id, -rank, snippet)
        for chunk_id, document_id, rank, snippet in rows
    ]


def keyword_search(
    query: str,
    limit: int = 80,
    source: str | None = None,
    since: Any = None,
    *,
    raw: bool = False,
) -> list[Candidate]:
    """BM25 search over chunk text; best first, raw score = −rank.

    The text is reduced to its words (runs of letters, digits and underscores),
    quoted and ANDed, so no input can make FTS5 raise. With ``raw=True`` the text
    is passed to FTS5 as written (phrases, NEAR, OR, prefix*, column filters) and
    a syntax error raises :class:`QuerySyntaxError`.
    """
    if not isinstance(query, str):
        raise ValidationError(f"query must be a str, got {type(query).__name__}")
    limit, source, since = _limit(limit), _source(source), parse_since(since)
    match = query if raw else fts.user_query(query)
    if not match.strip():
        return []
    if raw and "\x00" in match:
        raise QuerySyntaxError("the raw FTS5 query contains a NUL character")
    db = bound_database()
    with _snapshot(db):
        return _keyword_rows(db, match, limit, source, since)


# --------------------------------------------------------------------------- vector


def _vector_rows(
    db: Database,
    query: np.ndarray,
    limit: int,
    source: str | None,
    since: int | None,
    model: str | None,
    outer_transaction: bool,
) -> list[Candidate]:
    conn = db.connection()
    index = index_for(db, conn)
    index.ensure_fresh(conn, may_hold_uncommitted=outer_transaction)
    hits = index.search(query, limit, source=source, since=since, model=model)
    if not hits:
        return []
    details = _WINNERS_SQL.format(params=", ".join("?" * len(hits)))
    found = {row[0]: row for row in conn.execute(details, [rowid for rowid, _ in hits]).fetchall()}
    # A winner missing here was deleted since the index was built: never return it.
    return [
        Candidate(row[1], row[2], score, row[3])
        for rowid, score in hits
        if (row := found.get(rowid)) is not None
    ]


def vector_search(
    query_vector: Any,
    limit: int = 80,
    source: str | None = None,
    since: Any = None,
    *,
    model: str | None = None,
) -> list[Candidate]:
    """Exact cosine-similarity search over every stored vector; best first.

    Vectors are served from an in-memory index that is rebuilt only when the
    database changed. ``model`` restricts the search to one embedding model.
    """
    query = _query_vector(query_vector)
    limit, source, since = _limit(limit), _source(source), parse_since(since)
    db = bound_database()
    with _snapshot(db) as outer:
        return _vector_rows(db, query, limit, source, since, model, outer)


# --------------------------------------------------------------------------- hybrid


def _normalise(candidates: Sequence[Candidate]) -> dict[str, float]:
    """Min-max normalise raw scores to [0, 1]; 1.0 for all when they are equal."""
    if not candidates:
        return {}
    scores = [c.score for c in candidates]
    low, high = min(scores), max(scores)
    if high == low:
        return {c.chunk_id: 1.0 for c in candidates}
    return {c.chunk_id: (c.score - low) / (high - low) for c in candidates}


def _alpha(mode: str, alpha: Any) -> float:
    if mode not in MODES:
        raise ValidationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "keyword":
        return 0.0
    if mode == "semantic":
        return 1.0
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or math.isnan(alpha):
        raise ValidationError(f"alpha must be a number, got {alpha!r}")
    return min(1.0, max(0.0, float(alpha)))


def _iso(epoch: Any) -> str:
    """ISO 8601 for epoch seconds; a value that is not epoch seconds is shown as stored."""
    if isinstance(epoch, int) and 0 <= epoch <= MAX_EPOCH:
        return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(epoch)


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
    alpha: float = 0.6,
    candidates_keyword: int = 80,
    candidates_vector: int = 80,
    limit: int = 12,
    source: str | None = None,
    since: Any = None,
    explain: bool = False,
    *,
    model: str | None = None,
) -> list[SearchResult]:
    """Documents ranked by the contract's hybrid score: (1 − α)·keyword + α·semantic.

    Each list is min-max normalised on its own, a missing signal counts 0, a
    document scores its best chunk, and ties go to the newer ``updated_at``,
    then the smaller id. ``mode='keyword'`` is α = 0 and needs no vector;
    ``semantic`` is α = 1. An empty query gives no results.
    """
    if not isinstance(query, str):
        raise ValidationError(f"query must be a str, got {type(query).__name__}")
    weight = _alpha(mode, alpha)
    limit, source, since = _limit(limit), _source(source), parse_since(since)
    k_keyword, k_vector = (
        _limit(candidates_keyword, "candidates_keyword"),
        _limit(candidates_vector, "candidates_vector"),
    )
    if not query.strip():
        return []
    vector = _query_vector(query_vector) if mode != "keyword" else None
    db = bound_database()
    with _snapshot(db) as outer:
        keyword = []
        match = fts.user_query(query)
        if mode != "semantic" and match:
            keyword = _keyword_rows(db, match, k_keyword, source, since)
        semantic = []
        if vector is not None:
            semantic = _vector_rows(db, vector, k_vector, source, since, model, outer)
        if not keyword and not semantic:
            return []
        results = _rank(db, keyword, semantic, weight, limit)
    if explain:
        for result in results:
            result.explain.update(  # type: ignore[union-attr]
                alpha=weight, keyword_candidates=len(keyword), vector_candidates=len(semantic)
            )
    else:
        for result in results:
            result.explain = None
    return results


def _rank(
    db: Database,
    keyword: list[Candidate],
    semantic: list[Candidate],
    alpha: float,
    limit: int,
) -> list[SearchResult]:
    k_norm, v_norm = _normalise(keyword), _normalise(semantic)
    chunks: dict[str, Candidate] = {}
    for candidate in keyword + semantic:  # a keyword snippet (with highlights) wins
        chunks.setdefault(candidate.chunk_id, candidate)
    best: dict[str, tuple[float, str]] = {}  # document id -> (score, chunk id)
    for chunk_id in sorted(chunks):
        score = (1.0 - alpha) * k_norm.get(chunk_id, 0.0) + alpha * v_norm.get(chunk_id, 0.0)
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
            documents[row[0]] = row
    ranked = sorted(
        (doc_id for doc_id in best if doc_id in documents),
        key=lambda d: (-best[d][0], -_epoch_or_zero(documents[d]), d),
    )
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
                updated_at=_iso(updated_at),
                score=score,
                snippet=chunks[chunk_id].snippet,
                chunk_id=chunk_id,
                explain={
                    "keyword": k_norm.get(chunk_id, 0.0),
                    "semantic": v_norm.get(chunk_id, 0.0),
                },
            )
        )
    return results
