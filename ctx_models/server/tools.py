"""The tools ``ctx serve mcp`` offers (``search``, ``get``, ``sources``), as plain functions.

Each takes JSON-like parameters, checks them, asks the store and search API,
and returns the result in the shape the ``ctx`` tool documents, so an agent set
up for ``ctx`` works unchanged. Nothing here knows about MCP or HTTP: the
transports (:mod:`.mcp`, :mod:`.http`) call :func:`call`. Bad parameters raise
:class:`~ctx_models.errors.ValidationError`, an unknown document or tool
:class:`~ctx_models.errors.NotFoundError`, each with a message for the caller.
Call them where a database is bound (:func:`ctx_models.connect`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from peewee import fn

from .. import search as search_api
from .. import store
from ..backends import backend_for
from ..errors import NotFoundError, ValidationError
from ..fields import EpochField, iso_or_stored
from ..models import Chunk, Document, bound_database
from ..store import inputs

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_MODE",
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "DESCRIPTIONS",
    "TOOLS",
    "call",
    "search",
    "get",
    "sources",
]

#: ctx's defaults: keyword search, 12 results.
DEFAULT_MODE = "keyword"
DEFAULT_LIMIT = 12
#: The most results one search returns, and the longest question taken (in characters).
MAX_LIMIT = 100
MAX_QUERY_CHARS = 2_000
_FILTER_KEYS = ("source", "since")

#: What each tool does, for the tool lists of MCP and of ``GET /tools/list``.
DESCRIPTIONS = {
    "search": (
        "Search the indexed documents by keyword (BM25, the default), semantic (vector) or "
        "hybrid query. Returns {results: [{id, score, title, source, source_id, updated_at, "
        "snippet, source_url}]}, best first, score from 0 to 1; pass an id to `get` for the "
        "whole document."
    ),
    "get": (
        "Get one document by its id (from search results): its metadata, whole body and "
        "chunks in order."
    ),
    "sources": (
        "List the sources in the store, each with its document and chunk counts, its sync "
        "checkpoint and when it last changed."
    ),
}


# --------------------------------------------------------------------------- checks


def _query(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"query must be a string, got {_kind(value)}")
    if not value.strip():
        raise ValidationError("query must not be empty")
    if len(value) > MAX_QUERY_CHARS:
        raise ValidationError(
            f"query is {len(value):,} characters; this server takes at most {MAX_QUERY_CHARS:,}"
        )
    return value


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= MAX_LIMIT:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {value!r:.40}")
    return int(value)


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ValidationError(f"{what} must be one of {', '.join(choices)}, got {value!r:.40}")
    return str(value)


def _filters(value: Any) -> tuple[str | None, Any]:
    """``source`` and ``since`` from ``filters``; other keys ctx knows (tags, until) only when empty."""
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise ValidationError(f"filters must be an object with source and since, got {_kind(value)}")
    for key, item in value.items():
        if key not in _FILTER_KEYS and item not in (None, "", []):
            raise ValidationError(
                f"filters.{key} is not supported; this server filters by source and since"
            )
    source, since = value.get("source"), value.get("since")
    if source is not None and (not isinstance(source, str) or not source):
        raise ValidationError(f"filters.source must be a non-empty string, got {source!r:.40}")
    if since is not None:
        if isinstance(since, bool) or not isinstance(since, (str, numbers.Integral)):
            raise ValidationError(
                f"filters.since must be a date (YYYY-MM-DD), an ISO time with a zone, or epoch "
                f"seconds, got {_kind(since)}"
            )
        since = search_api.parse_since(since)  # its own message says what it takes
    return source, since


def _alpha(value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or math.isnan(value)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValidationError(
            f"alpha must be from 0 (keyword only) to 1 (semantic only), got {value!r:.40}"
        )
    return float(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", type(None): "null", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _score(value: float) -> float:
    """The fused score, kept inside [0, 1] against float rounding (RRF and min-max are already)."""
    return min(1.0, max(0.0, float(value)))


# --------------------------------------------------------------------------- tools


def search(
    query: Any,
    mode: Any = DEFAULT_MODE,
    limit: Any = DEFAULT_LIMIT,
    filters: Any = None,
    *,
    fusion: Any = None,
    alpha: Any = None,
    explain: Any = False,
) -> dict[str, Any]:
    """ctx's ``search``: ``{"results": [{id, score, title, source, source_id, updated_at, snippet, source_url}]}``.

    The score is :func:`ctx_models.search.hybrid_search`'s: reciprocal-rank
    fusion by default (1.0 for the first hit of each signal), min-max with
    ``fusion="minmax"``; either lies in [0, 1]. ``explain`` adds each hit's
    score parts and, beside ``results``, what each signal did.
    """
    query = _query(query)
    mode = _choice(mode, search_api.MODES, "mode")
    limit = _limit(limit)
    source, since = _filters(filters)
    fusion = search_api.DEFAULT_FUSION if fusion is None else _choice(fusion, search_api.FUSIONS, "fusion")
    if not isinstance(explain, bool):
        raise ValidationError(f"explain must be true or false, got {explain!r:.40}")
    found = search_api.hybrid_search(
        query,
        mode=mode,
        alpha=_alpha(alpha),
        limit=limit,
        source=source,
        since=since,
        explain=explain,
        fusion=fusion,
    )
    results = []
    for hit in found:
        item: dict[str, Any] = {
            "id": hit.id,
            "score": _score(hit.score),
            "title": hit.title,
            "source": hit.source,
            "source_id": hit.source_id,
            "updated_at": hit.updated_at,
            "snippet": hit.snippet,
            "source_url": hit.source_url,
        }
        if explain:
            item["explain"] = {**(hit.explain or {}), "chunk_id": hit.chunk_id}
        results.append(item)
    answer: dict[str, Any] = {"results": results}
    if explain:
        answer["explain"] = {
            "fusion": found.fusion,
            "alpha": found.alpha,
            "signals": {name: str(signal) for name, signal in found.signals.items()},
            "why_empty": found.why_empty,
        }
    return answer


def get(id: Any) -> dict[str, Any]:  # noqa: A002 - ctx's parameter name
    """ctx's ``get``: the document with its metadata, body and ``chunks: [{index, text}]``.

    Read as stored, like ``sources``: a timestamp another program stored that is not
    epoch seconds is shown as it is (``store.get_document`` refuses it, having no
    datetime for it), so one odd value does not hide a document from an agent.
    """
    if not isinstance(id, str):
        raise ValidationError(f"id must be a string, got {_kind(id)}")
    if not id.strip():
        raise ValidationError("id must not be empty")
    inputs.key_text(id, "document id")
    db = bound_database()
    fields = [f for f in Document._meta.sorted_fields if f.name in _GET_FIELDS]
    with backend_for(db).read_snapshot("read"):
        row = db.execute_sql(*Document.select(*fields).where(Document.id == id).sql()).fetchone()
        if row is None:
            raise NotFoundError(f"document not found: {id!r:.80}; ids come from search results")
        chunks = db.execute_sql(
            *Chunk.select(Chunk.chunk_index, Chunk.text)
            .where(Chunk.document == id)
            .order_by(Chunk.chunk_index)
            .sql()
        ).fetchall()
    stored = {
        f.name: iso_or_stored(value) if isinstance(f, EpochField) else f.python_value(value)
        for f, value in zip(fields, row)
    }
    return {
        **{name: stored[name] for name in _GET_FIELDS},
        "chunks": [
            {"index": Chunk.chunk_index.python_value(index), "text": Chunk.text.python_value(text)}
            for index, text in chunks
        ],
    }


#: The document's fields ``get`` returns, in ctx's order (then ``chunks``).
_GET_FIELDS = (
    "id", "source", "source_id", "source_url", "title", "author", "created_at", "updated_at",
    "content_type", "body", "metadata",
)


def sources() -> dict[str, Any]:
    """ctx's ``sources``: per source its counts, checkpoint and newest ``updated_at``.

    ``name`` and ``source`` are the same value: ctx's documentation uses one,
    its schema file the other.
    """
    db = bound_database()
    with backend_for(db).read_snapshot("read"):
        totals = store.stats()
        query = Document.select(Document.source, fn.MAX(Document.updated_at)).group_by(Document.source)
        newest = dict(db.execute_sql(*query.sql()).fetchall())
    return {
        "sources": [
            {
                "name": s.source,
                "source": s.source,
                "document_count": s.documents,
                "chunk_count": s.chunks,
                "embedded_count": s.embedded,
                "checkpoint": s.checkpoint,
                "checkpoint_updated_at": s.checkpoint_at,
                "last_updated_at": iso_or_stored(newest.get(s.source)),
            }
            for s in totals.sources
        ]
    }


#: The tools by name, each with its parameters (name -> required).
TOOLS: dict[str, tuple[Callable[..., dict[str, Any]], dict[str, bool]]] = {
    "search": (
        search,
        {"query": True, "mode": False, "limit": False, "filters": False,
         "fusion": False, "alpha": False, "explain": False},
    ),
    "get": (get, {"id": True}),
    "sources": (sources, {}),
}


def call(name: str, params: Any) -> dict[str, Any]:
    """Run the tool ``name`` with ``params`` (a JSON object); the tool's result."""
    if name not in TOOLS:
        raise NotFoundError(f"no tool registered with name: {name!r:.60}; tools: {', '.join(TOOLS)}")
    function, accepted = TOOLS[name]
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValidationError(f"{name}: the parameters must be a JSON object, got {_kind(params)}")
    unknown = [key for key in params if key not in accepted]
    if unknown:
        known = ", ".join(accepted) or "none"
        raise ValidationError(f"{name}: unknown parameter {unknown[0]!r:.40}; parameters: {known}")
    missing = [key for key, required in accepted.items() if required and key not in params]
    if missing:
        raise ValidationError(f"{name}: {missing[0]} is required")
    return function(**params)
