"""Hostile input, table-driven: every case raises one of our exceptions (or, for search text,
returns the correct result) and leaves the database exactly as it was.

API cases run against a small seeded database and compare every row of every
table (FTS shadow tables included) before and after. CLI cases run
``python -m ctx_models`` in a subprocess on a broken target and check: non-zero
exit, exactly one line on stderr, no traceback, and the target unchanged.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ctx_models
from ctx_models import CtxModelsError, search, store
from ctx_models.chunking import chunk_text
from ctx_models.embedders import HashingEmbedder
from ctx_models.errors import (
    DimensionMismatchError,
    QuerySyntaxError,
    ValidationError,
    VectorError,
)

ROOT = Path(__file__).resolve().parent.parent
DIMS = 384
NAN, INF = float("nan"), float("inf")

SEARCH_DOCS = {
    "s1": "alpha beta gamma near and or not",
    "s2": "alpha delta",
    "s3": "beta epsilon alphabet",
    "s4": "café zeta",
}


@dataclass
class Ctx:
    path: Path
    db: Any
    embedder: HashingEmbedder
    docs: dict[str, str]  # source_id -> document id
    chunks: dict[str, list[str]]  # source_id -> chunk ids
    model: str

    @property
    def doc(self) -> str:
        return self.docs["s1"]

    @property
    def chunk(self) -> str:
        return self.chunks["s1"][0]

    def good(self) -> np.ndarray:
        return self.embedder.embed(["alpha beta"])[0]

    def source_ids(self, document_ids: list[str]) -> list[str]:
        by_id = {v: k for k, v in self.docs.items()}
        return [by_id[d] for d in document_ids]


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def good_item(n: int = 0) -> dict:
    return {"source": "new", "source_id": f"fresh-{n}", "body": "fresh words"}


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Ctx], Any]
    raises: type[Exception] | tuple[type[Exception], ...] | None = None
    expect: Callable[[Ctx, Any], None] | None = None  # for cases that must return a correct result


def finds(*source_ids: str) -> Callable[[Ctx, Any], None]:
    """The result is exactly the chunks of these search documents (a keyword_search result)."""

    def check(ctx: Ctx, result: Any) -> None:
        assert isinstance(result, list)
        assert sorted(ctx.source_ids([c.document_id for c in result])) == sorted(source_ids)
        scores = [c.score for c in result]
        assert scores == sorted(scores, reverse=True)
        assert all(">>>" in c.snippet and "<<<" in c.snippet for c in result)

    return check


def finds_documents(*source_ids: str) -> Callable[[Ctx, Any], None]:
    """The result is exactly these documents (a hybrid_search result)."""

    def check(ctx: Ctx, result: Any) -> None:
        assert sorted(r.source_id for r in result) == sorted(source_ids)

    return check


def keyword(query: str, match: str = "all") -> Callable[[Ctx], Any]:
    """Strict matching (every word, as the ctx tool does), unless told otherwise."""
    return lambda ctx: search.keyword_search(query, match=match)


KEYWORD_TEXT = [
    ("and-operator", "alpha AND beta", ("s1",)),
    ("or-operator", "alpha OR delta", ()),
    ("not-operator", "NOT alpha", ("s1",)),
    ("near-operator", "NEAR(alpha beta)", ("s1",)),
    ("near-with-distance", "NEAR(alpha delta, 5)", ()),
    ("open-paren", "(alpha", ("s1", "s2")),
    ("close-paren", "alpha)", ("s1", "s2")),
    ("empty-parens", "()", ()),
    ("lone-quote", '"alpha', ("s1", "s2")),
    ("phrase-quotes", '"alpha beta"', ("s1",)),
    ("only-quote", '"', ()),
    ("star-prefix", "alpha*", ("s1", "s2")),  # not a prefix query: 'alphabet' (s3) must not match
    ("only-stars", "***", ()),
    ("caret", "^alpha", ("s1", "s2")),
    ("column-filter", "text:alpha", ()),  # 'text' is a term, not a column
    ("column-filter-unindexed", "chunk_id:alpha", ()),
    ("braces-column-set", "{chunk_id document_id}: beta", ()),
    ("colon-suffix", "alpha:", ("s1", "s2")),
    ("plus-minus", "+alpha -beta", ("s1",)),
    ("bare-and-is-a-word", "AND", ("s1",)),
    ("bare-or-is-a-word", "OR", ("s1",)),
    ("upper-case", "ALPHA", ("s1", "s2")),
    ("diacritics", "cafe", ("s4",)),
    ("accented", "café", ("s4",)),
    ("empty", "", ()),
    ("blank", "   \t\n", ()),
    ("nul-separates", "alpha\x00beta", ("s1",)),
    ("emoji-separates", "🔥alpha🔥", ("s1", "s2")),
    ("control-chars", "\x01alpha\x1f\x7f", ("s1", "s2")),
    ("many-terms", "alpha " * 2000, ("s1", "s2")),
]

# The default: every word optional. Operators are still words, never syntax.
KEYWORD_TEXT_ANY = [
    ("or-operator", "alpha OR delta", ("s1", "s2")),
    ("near-with-distance", "NEAR(alpha delta, 5)", ("s1", "s2")),
    ("column-filter", "text:epsilon", ("s3",)),
    ("braces-column-set", "{chunk_id document_id}: beta", ("s1", "s3")),
    ("plus-minus", "+delta -zeta", ("s2", "s4")),
    ("star-prefix", "alpha*", ("s1", "s2")),  # still not a prefix query: 'alphabet' stays out
]

CASES: list[Case] = [
    # -- vectors given to replace_chunks
    Case(
        "replace-vector-nan",
        lambda c: store.replace_chunks(c.doc, ["x"], [[NAN] * DIMS], c.model),
        VectorError,
    ),
    Case(
        "replace-vector-inf",
        lambda c: store.replace_chunks(c.doc, ["x"], [[INF] * DIMS], c.model),
        VectorError,
    ),
    Case(
        "replace-vector-too-big-for-float32",
        lambda c: store.replace_chunks(c.doc, ["x"], [[1e300] * DIMS], c.model),
        VectorError,
    ),
    Case(
        "replace-vector-empty",
        lambda c: store.replace_chunks(c.doc, ["x"], [[]], c.model),
        VectorError,
    ),
    Case(
        "replace-vector-2d",
        lambda c: store.replace_chunks(c.doc, ["x"], [[[1.0] * DIMS] * 2], c.model),
        VectorError,
    ),
    Case(
        "replace-vector-string",
        lambda c: store.replace_chunks(c.doc, ["x"], ["1.0 2.0"], c.model),
        VectorError,
    ),
    Case(
        "replace-vectors-a-string",
        lambda c: store.replace_chunks(c.doc, ["x"], "abc", c.model),
        VectorError,
    ),
    Case(
        "replace-vector-wrong-length",
        lambda c: store.replace_chunks(c.doc, ["x"], [[0.5] * 3], c.model),
        DimensionMismatchError,
    ),
    Case(
        "replace-vector-count",
        lambda c: store.replace_chunks(c.doc, ["x"], [c.good(), c.good()], c.model),
        VectorError,
    ),
    Case(
        "replace-vectors-without-model",
        lambda c: store.replace_chunks(c.doc, ["x"], [c.good()]),
        ValidationError,
    ),
    Case("replace-text-nul", lambda c: store.replace_chunks(c.doc, ["a\x00b"]), ValidationError),
    Case(
        "replace-text-surrogate",
        lambda c: store.replace_chunks(c.doc, ["a\ud800b"]),
        ValidationError,
    ),
    Case("replace-no-chunks", lambda c: store.replace_chunks(c.doc, []), ValidationError),
    Case(
        "replace-unknown-document",
        lambda c: store.replace_chunks("no-such-id", ["x"]),
        ValidationError,
    ),
    # -- vectors given to upsert_embeddings
    Case(
        "upsert-vector-nan",
        lambda c: store.upsert_embeddings([(c.chunk, c.model, [NAN] * DIMS)]),
        VectorError,
    ),
    Case(
        "upsert-vector-inf",
        lambda c: store.upsert_embeddings([(c.chunk, c.model, [-INF] * DIMS)]),
        VectorError,
    ),
    Case(
        "upsert-vector-empty",
        lambda c: store.upsert_embeddings([(c.chunk, c.model, [])]),
        VectorError,
    ),
    Case(
        "upsert-vector-2d",
        lambda c: store.upsert_embeddings([(c.chunk, c.model, [[1.0, 2.0], [3.0, 4.0]])]),
        VectorError,
    ),
    Case(
        "upsert-vector-string",
        lambda c: store.upsert_embeddings([(c.chunk, c.model, "0.1, 0.2")]),
        VectorError,
    ),
    Case(
        "upsert-vector-strings",
        lambda c: store.upsert_embeddings([(c.chunk, c.model, ["a", "b"])]),
        VectorError,
    ),
    Case(
        "upsert-vector-wrong-length",
        lambda c: store.upsert_embeddings([(c.chunk, c.model, [0.5] * 3)]),
        DimensionMismatchError,
    ),
    Case(
        "upsert-vector-mixed-lengths",
        lambda c: store.upsert_embeddings(
            [(c.chunk, "other", [0.5] * 3), (c.chunks["s2"][0], "other", [0.5] * 4)]
        ),
        DimensionMismatchError,
    ),
    Case(
        "upsert-good-then-nan",
        lambda c: store.upsert_embeddings(
            [(c.chunk, c.model, c.good()), (c.chunks["s2"][0], c.model, [NAN] * DIMS)]
        ),
        VectorError,
    ),
    Case(
        "upsert-unknown-chunk",
        lambda c: store.upsert_embeddings([("no-such-chunk", c.model, c.good())]),
        ValidationError,
    ),
    Case(
        "upsert-bad-row", lambda c: store.upsert_embeddings([(c.chunk, c.model)]), ValidationError
    ),
    # -- vectors given to vector_search
    Case("search-vector-nan", lambda c: search.vector_search([NAN] * DIMS), VectorError),
    Case(
        "search-vector-inf", lambda c: search.vector_search([INF] + [0.0] * (DIMS - 1)), VectorError
    ),
    Case("search-vector-empty", lambda c: search.vector_search([]), VectorError),
    Case("search-vector-2d", lambda c: search.vector_search([c.good(), c.good()]), VectorError),
    # Text is a question, embedded with the stored vectors' model.
    Case(
        "search-vector-string-is-a-question",
        lambda c: search.vector_search("alpha"),
        expect=lambda c, r: r and r == search.vector_search(c.embedder.embed(["alpha"])[0]),
    ),
    Case("search-vector-bools", lambda c: search.vector_search([True] * DIMS), VectorError),
    Case("search-vector-none", lambda c: search.vector_search(None), VectorError),
    # Another length compares with nothing stored: an empty result, never an error.
    Case(
        "search-vector-wrong-length",
        lambda c: search.vector_search([0.5] * 7),
        expect=lambda c, r: r == [],
    ),
    Case("search-vector-bytes-not-float32", lambda c: search.vector_search(b"abc"), VectorError),
    Case(
        "hybrid-without-vector",
        lambda c: search.hybrid_search("alpha", None),
        expect=finds_documents("s1", "s2"),
    ),
    Case("hybrid-vector-nan", lambda c: search.hybrid_search("alpha", [NAN] * DIMS), VectorError),
    # -- text that SQLite or the other program cannot store faithfully
    Case("body-nul", lambda c: store.ingest("new", "n1", "before\x00after"), ValidationError),
    Case("body-surrogate", lambda c: store.ingest("new", "n1", "bad \ud800 text"), ValidationError),
    Case("update-body-nul", lambda c: store.ingest("search", "s1", "alpha\x00"), ValidationError),
    Case("title-nul", lambda c: store.ingest("new", "n1", "ok", title="t\x00"), ValidationError),
    Case(
        "url-surrogate",
        lambda c: store.ingest("new", "n1", "ok", source_url="http://x/\udfff"),
        ValidationError,
    ),
    Case(
        "upsert-document-surrogate",
        lambda c: store.upsert_document("new", "n1", "\ud800"),
        ValidationError,
    ),
    Case("body-bytes", lambda c: store.ingest("new", "n1", b"bytes"), ValidationError),
    # -- metadata
    Case(
        "metadata-not-json",
        lambda c: store.ingest("new", "n1", "ok", metadata="{not json"),
        ValidationError,
    ),
    Case(
        "metadata-json-array",
        lambda c: store.ingest("new", "n1", "ok", metadata="[1, 2]"),
        ValidationError,
    ),
    Case(
        "metadata-list", lambda c: store.ingest("new", "n1", "ok", metadata=[1, 2]), ValidationError
    ),
    Case(
        "metadata-nested-10000",
        lambda c: store.ingest("new", "n1", "ok", metadata=nested(10_000)),
        ValidationError,
    ),
    Case(
        "metadata-text-nested-10000",
        lambda c: store.ingest("new", "n1", "ok", metadata='{"a":' * 10_000 + "1" + "}" * 10_000),
        ValidationError,
    ),
    Case(
        "metadata-nan",
        lambda c: store.ingest("new", "n1", "ok", metadata={"x": NAN}),
        ValidationError,
    ),
    Case(
        "metadata-object",
        lambda c: store.ingest("new", "n1", "ok", metadata={"x": object()}),
        ValidationError,
    ),
    Case(
        "raw-json-not-json",
        lambda c: store.ingest("new", "n1", "ok", raw_json="{oops"),
        ValidationError,
    ),
    # -- timestamps
    Case(
        "updated-negative",
        lambda c: store.ingest("new", "n1", "ok", updated_at=-1),
        ValidationError,
    ),
    Case(
        "updated-past-9999",
        lambda c: store.ingest("new", "n1", "ok", updated_at=253_402_300_800),
        ValidationError,
    ),
    Case(
        "updated-aware-past-9999",
        lambda c: store.ingest(
            "new",
            "n1",
            "ok",
            updated_at=dt.datetime(
                9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-1))
            ),
        ),
        ValidationError,
    ),
    Case(
        "updated-not-a-date",
        lambda c: store.ingest("new", "n1", "ok", updated_at="yesterday"),
        ValidationError,
    ),
    Case(
        "updated-naive",
        lambda c: store.ingest("new", "n1", "ok", updated_at=dt.datetime(2024, 1, 1)),
        ValidationError,
    ),
    Case(
        "updated-bool", lambda c: store.ingest("new", "n1", "ok", updated_at=True), ValidationError
    ),
    Case("updated-nan", lambda c: store.ingest("new", "n1", "ok", updated_at=NAN), ValidationError),
    Case(
        "created-negative",
        lambda c: store.ingest("new", "n1", "ok", created_at=-86_400),
        ValidationError,
    ),
    Case(
        "since-not-a-date",
        lambda c: search.keyword_search("alpha", since="2024-13-45"),
        ValidationError,
    ),
    Case(
        "since-naive",
        lambda c: search.hybrid_search("alpha", c.good(), since=dt.datetime(2024, 1, 1)),
        ValidationError,
    ),
    # -- source and source_id
    Case("source-empty", lambda c: store.ingest("", "n1", "ok"), ValidationError),
    Case("source-blank", lambda c: store.ingest("  ", "n1", "ok"), ValidationError),
    Case("source-none", lambda c: store.ingest(None, "n1", "ok"), ValidationError),
    Case("source-int", lambda c: store.ingest(5, "n1", "ok"), ValidationError),
    Case("source-id-empty", lambda c: store.ingest("new", "", "ok"), ValidationError),
    Case("source-id-none", lambda c: store.ingest("new", None, "ok"), ValidationError),
    Case(
        "content-type-empty",
        lambda c: store.ingest("new", "n1", "ok", content_type=""),
        ValidationError,
    ),
    Case(
        "ingest-many-good-then-bad",
        lambda c: store.ingest_many([good_item(0), {**good_item(1), "source_id": None}]),
        ValidationError,
    ),
    Case(
        "ingest-many-unknown-key",
        lambda c: store.ingest_many([good_item(), {**good_item(1), "colour": 1}]),
        ValidationError,
    ),
    Case(
        "ingest-many-not-mappings", lambda c: store.ingest_many(["just a string"]), ValidationError
    ),
    Case(
        "ingest-many-batch-0",
        lambda c: store.ingest_many([good_item()], batch_size=0),
        ValidationError,
    ),
    Case(
        "ingest-max-tokens-0",
        lambda c: store.ingest("new", "n1", "ok", max_tokens=0),
        ValidationError,
    ),
    Case(
        "checkpoint-cursor-text", lambda c: store.set_checkpoint("search", "abc"), ValidationError
    ),
    Case("checkpoint-cursor-float", lambda c: store.set_checkpoint("search", 1.5), ValidationError),
    Case("checkpoint-source-empty", lambda c: store.set_checkpoint("", 1), ValidationError),
    Case("delete-document-empty", lambda c: store.delete_document(""), ValidationError),
    Case("delete-source-none", lambda c: store.delete_source(None), ValidationError),
    Case("pending-model-empty", lambda c: store.pending_chunks(""), ValidationError),
    Case("embed-batch-0", lambda c: store.embed_pending(c.embedder, batch_size=0), ValidationError),
    Case(
        "embed-wrong-dims",
        lambda c: store.embed_pending(_SameNameEmbedder(c.model)),
        DimensionMismatchError,
    ),
    Case("chunk-text-surrogate", lambda c: chunk_text("\udc80"), ValidationError),
    # -- search arguments
    Case("keyword-limit-0", lambda c: search.keyword_search("alpha", limit=0), ValidationError),
    Case(
        "keyword-limit-negative",
        lambda c: search.keyword_search("alpha", limit=-1),
        ValidationError,
    ),
    Case(
        "keyword-limit-huge", lambda c: search.keyword_search("alpha", limit=10**9), ValidationError
    ),
    Case("vector-limit-0", lambda c: search.vector_search(c.good(), limit=0), ValidationError),
    Case(
        "vector-limit-negative", lambda c: search.vector_search(c.good(), limit=-1), ValidationError
    ),
    Case(
        "vector-limit-huge", lambda c: search.vector_search(c.good(), limit=10**9), ValidationError
    ),
    Case(
        "hybrid-limit-0",
        lambda c: search.hybrid_search("alpha", c.good(), limit=0),
        ValidationError,
    ),
    Case(
        "hybrid-limit-negative",
        lambda c: search.hybrid_search("alpha", c.good(), limit=-1),
        ValidationError,
    ),
    Case(
        "hybrid-limit-huge",
        lambda c: search.hybrid_search("alpha", c.good(), limit=10**9),
        ValidationError,
    ),
    Case(
        "hybrid-candidates-0",
        lambda c: search.hybrid_search("alpha", c.good(), candidates_keyword=0),
        ValidationError,
    ),
    Case(
        "hybrid-alpha-nan",
        lambda c: search.hybrid_search("alpha", c.good(), alpha=NAN),
        ValidationError,
    ),
    Case(
        "hybrid-alpha-text",
        lambda c: search.hybrid_search("alpha", c.good(), alpha="0.5"),
        ValidationError,
    ),
    Case(
        "hybrid-unknown-mode",
        lambda c: search.hybrid_search("alpha", c.good(), mode="fuzzy"),
        ValidationError,
    ),
    Case("keyword-query-none", lambda c: search.keyword_search(None), ValidationError),
    Case("keyword-query-bytes", lambda c: search.keyword_search(b"alpha"), ValidationError),
    Case(
        "keyword-source-empty", lambda c: search.keyword_search("alpha", source=""), ValidationError
    ),
    # -- raw FTS5 syntax errors
    Case(
        "raw-unterminated-string",
        lambda c: search.keyword_search('"alpha', raw=True),
        QuerySyntaxError,
    ),
    Case(
        "raw-dangling-and", lambda c: search.keyword_search("alpha AND", raw=True), QuerySyntaxError
    ),
    Case(
        "raw-dangling-or", lambda c: search.keyword_search("alpha OR", raw=True), QuerySyntaxError
    ),
    Case("raw-open-near", lambda c: search.keyword_search("NEAR(", raw=True), QuerySyntaxError),
    Case("raw-open-paren", lambda c: search.keyword_search("(alpha", raw=True), QuerySyntaxError),
    Case("raw-close-paren", lambda c: search.keyword_search(")", raw=True), QuerySyntaxError),
    Case(
        "raw-unknown-column",
        lambda c: search.keyword_search("nosuchcolumn:alpha", raw=True),
        QuerySyntaxError,
    ),
    Case("raw-minus-column", lambda c: search.keyword_search("-alpha", raw=True), QuerySyntaxError),
    Case("raw-lone-star", lambda c: search.keyword_search("*", raw=True), QuerySyntaxError),
    Case("raw-lone-caret", lambda c: search.keyword_search("^", raw=True), QuerySyntaxError),
    Case("raw-nul", lambda c: search.keyword_search("alpha\x00beta", raw=True), QuerySyntaxError),
    # -- search text: the correct result, whatever the operators
    *[
        Case(f"keyword-text-{name}", keyword(query), expect=finds(*ids))
        for name, query, ids in KEYWORD_TEXT
    ],
    *[
        Case(f"keyword-any-{name}", keyword(query, "any"), expect=finds(*ids))
        for name, query, ids in KEYWORD_TEXT_ANY
    ],
    Case(
        "hybrid-keyword-mode-operators",
        lambda c: search.hybrid_search("alpha AND beta", mode="keyword", match="all"),
        expect=finds_documents("s1"),
    ),
    Case(
        "hybrid-keyword-mode-operators-only",
        lambda c: search.hybrid_search('"()*^:+-{}', mode="keyword"),
        expect=finds_documents(),
    ),
    # No keyword terms, so only the vector signal counts: the semantic ranking, scaled by alpha.
    Case(
        "hybrid-operators-only",
        lambda c: search.hybrid_search('"()*^:+-{} NEAR', c.good(), alpha=0.6, fusion="minmax"),
        expect=lambda c, r: _same_as_semantic(c, r, '"()*^:+-{} NEAR', 0.6),
    ),
    Case(
        "raw-valid-column-filter",
        lambda c: search.keyword_search("text:epsilon", raw=True),
        expect=finds("s3"),
    ),
    # A lone surrogate cannot reach SQLite: either refused with ValidationError or dropped like
    # any other non-word character.
    Case(
        "keyword-text-lone-surrogate",
        lambda c: search.keyword_search("\ud800alpha"),
        ValidationError,
        expect=finds("s1", "s2"),
    ),
]


def _same_as_semantic(ctx: Ctx, result: Any, query: str, alpha: float) -> None:
    """hybrid_search on text whose only term is 'near' (in s1 only): keyword 0.4 for s1, the rest semantic."""
    semantic = {r.id: r.score for r in search.hybrid_search(query, ctx.good(), mode="semantic", fusion="minmax")}
    expected = {d: alpha * s + (1 - alpha) * (d == ctx.docs["s1"]) for d, s in semantic.items()}
    assert {r.id: round(r.score, 6) for r in result} == {
        d: round(s, 6) for d, s in expected.items()
    }


class _SameNameEmbedder:
    """An embedder claiming the stored model's name with another vector length."""

    def __init__(self, model: str) -> None:
        self.model, self.dims = model, 5

    def embed(self, texts):  # pragma: no cover - never reached
        return np.ones((len(texts), 5), dtype=np.float32)


# --------------------------------------------------------------------------- running them


@pytest.fixture
def ctx(db, db_path: Path, embedder: HashingEmbedder) -> Ctx:
    docs, chunks = {}, {}
    for source_id, body in SEARCH_DOCS.items():
        result = store.ingest(
            "search", source_id, body, embedder=embedder, updated_at=1_700_000_000
        )
        docs[source_id] = result.document_id
        chunks[source_id] = [c.id for c in store.get_document(result.document_id).chunks]
    store.ingest(
        "other",
        "many",
        "\n\n".join(f"paragraph {n} " + "filler " * 200 for n in range(4)),
        embedder=embedder,
        metadata={"kind": "long"},
    )
    store.set_checkpoint("search", 1_700_000_000)
    return Ctx(db_path, db, embedder, docs, chunks, embedder.model)


def snapshot(path: Path) -> dict[str, Any]:
    """Every row of every table, FTS5 shadow tables included, plus the schema and user_version."""
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        data: dict[str, Any] = {
            n: sorted(map(repr, conn.execute(f'SELECT * FROM "{n}"'))) for n in names
        }
        data["chunks_fts rowids"] = conn.execute(
            "SELECT rowid, chunk_id, document_id, text FROM chunks_fts ORDER BY rowid"
        ).fetchall()
        data["sqlite_master"] = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        ).fetchall()
        data["user_version"] = conn.execute("PRAGMA user_version").fetchone()[0]
        return data
    finally:
        conn.close()


def test_case_count() -> None:
    ids = [c.id for c in CASES] + [c.id for c in CLI_CASES]
    assert len(ids) == len(set(ids))
    print(f"\nhostile cases: {len(CASES)} API + {len(CLI_CASES)} CLI = {len(ids)}")
    assert len(ids) >= 50


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api_case(case: Case, ctx: Ctx) -> None:
    ctx_models.bind(ctx.db)
    before = snapshot(ctx.path)
    try:
        result = case.call(ctx)
    except CtxModelsError as exc:
        assert case.raises is not None, f"{case.id}: raised {exc!r} instead of returning a result"
        assert isinstance(exc, case.raises), f"{case.id}: raised {type(exc).__name__}: {exc}"
        assert str(exc), "an error needs a message"
    else:
        assert case.expect is not None, (
            f"{case.id}: returned {result!r:.200} instead of raising {case.raises}"
        )
        case.expect(ctx, result)
    # No transaction left open, nothing written.
    assert not ctx.db.in_transaction()
    assert not ctx.db.connection().in_transaction
    assert snapshot(ctx.path) == before


# --------------------------------------------------------------------------- the command line


@dataclass(frozen=True)
class CliCase:
    id: str
    prepare: Callable[
        [Path], tuple[list[str], list[Path]]
    ]  # tmp dir -> (argv, paths that must not change)
    stdin: str = ""


def _seeded(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    store.ingest("cli", "a", "alpha beta gamma\n\nsecond paragraph", embedder=HashingEmbedder(DIMS))
    db.close()
    return path


def _directory(tmp: Path) -> Path:
    target = tmp / "a-directory"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    return target


def _not_sqlite(tmp: Path) -> Path:
    target = tmp / "notes.sqlite"
    target.write_text("these are my notes, not a database\n" * 50)
    return target


def _truncated(tmp: Path) -> Path:
    target = _seeded(tmp / "truncated.sqlite")
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA journal_mode = delete")
    conn.close()
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _newer(tmp: Path) -> Path:
    target = _seeded(tmp / "newer.sqlite")
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    return target


def _config(tmp: Path, text: str) -> Path:
    target = tmp / "ctx.toml"
    target.write_text(text)
    return target


READ_ONLY: dict[str, Any] = {}


def _read_only(tmp: Path) -> Path:
    """A database that cannot be written to, even by root.

    The tests run as root, for whom chmod 0o444/0o555 changes nothing. So the file
    and its directory get the immutable attribute (chattr +i), which root must
    obey too: SQLite cannot write the file nor create its -wal/-shm files. Where
    chattr is unavailable, writes are made to fail another way: the -wal and -shm
    paths are taken by directories, so SQLite cannot open its WAL files.
    The cli_target fixture removes the attribute afterwards.
    """
    folder = tmp / "ro"
    target = _seeded(folder / "ctx.sqlite")
    target.chmod(0o444)
    folder.chmod(0o555)
    chattr = shutil.which("chattr")
    if (
        chattr
        and subprocess.run([chattr, "+i", str(target)], capture_output=True, check=False).returncode
        == 0
    ):
        if (
            subprocess.run([chattr, "+i", str(folder)], capture_output=True, check=False).returncode
            == 0
        ):
            READ_ONLY["paths"] = [folder, target]
            READ_ONLY["how"] = "chattr +i"
            return target
        subprocess.run([chattr, "-i", str(target)], capture_output=True, check=False)
    folder.chmod(0o755)
    (folder / "ctx.sqlite-wal").mkdir()
    (folder / "ctx.sqlite-shm").mkdir()
    READ_ONLY["how"] = "WAL paths taken by directories"
    return target


def _undo_read_only() -> None:
    chattr = shutil.which("chattr")
    for path in READ_ONLY.pop("paths", []):
        subprocess.run([chattr, "-i", str(path)], capture_output=True, check=False)
        path.chmod(0o755)


CLI_CASES: list[CliCase] = [
    CliCase("cli-directory-stats", lambda t: (["stats", "--db", str(p := _directory(t))], [p])),
    CliCase("cli-directory-init", lambda t: (["init", "--db", str(p := _directory(t))], [p])),
    CliCase(
        "cli-directory-search",
        lambda t: (["search", "alpha", "--db", str(p := _directory(t))], [p]),
    ),
    CliCase("cli-not-sqlite-stats", lambda t: (["stats", "--db", str(p := _not_sqlite(t))], [p])),
    CliCase("cli-not-sqlite-init", lambda t: (["init", "--db", str(p := _not_sqlite(t))], [p])),
    CliCase("cli-not-sqlite-check", lambda t: (["check", "--db", str(p := _not_sqlite(t))], [p])),
    CliCase("cli-truncated-stats", lambda t: (["stats", "--db", str(p := _truncated(t))], [p])),
    CliCase("cli-truncated-init", lambda t: (["init", "--db", str(p := _truncated(t))], [p])),
    CliCase("cli-truncated-check", lambda t: (["check", "--db", str(p := _truncated(t))], [p])),
    CliCase(
        "cli-read-only-init", lambda t: (["init", "--db", str(p := _read_only(t))], [p, p.parent])
    ),
    CliCase(
        "cli-read-only-embed",
        lambda t: (["embed", "-q", "--db", str(p := _read_only(t))], [p, p.parent]),
    ),
    CliCase(
        "cli-read-only-delete",
        lambda t: (
            ["delete", "--source", "cli", "--yes", "--db", str(p := _read_only(t))],
            [p, p.parent],
        ),
    ),
    CliCase("cli-newer-schema-stats", lambda t: (["stats", "--db", str(p := _newer(t))], [p])),
    CliCase("cli-newer-schema-init", lambda t: (["init", "--db", str(p := _newer(t))], [p])),
    CliCase(
        "cli-newer-schema-search", lambda t: (["search", "alpha", "--db", str(p := _newer(t))], [p])
    ),
    CliCase(
        "cli-missing-database",
        lambda t: (["stats", "--db", str(t / "none" / "ctx.sqlite")], [t / "none"]),
    ),
    CliCase(
        "cli-missing-config",
        lambda t: (["stats", "--config", str(t / "missing.toml")], [t / "missing.toml"]),
    ),
    CliCase(
        "cli-bad-toml",
        lambda t: (["stats", "--config", str(p := _config(t, "[db\npath = ="))], [p]),
    ),
    CliCase(
        "cli-config-without-db-path",
        lambda t: (["stats", "--config", str(p := _config(t, "[server]\nport = 1\n"))], [p]),
    ),
    CliCase(
        "cli-config-path-not-text",
        lambda t: (["init", "--config", str(p := _config(t, "[db]\npath = 5\n"))], [p]),
    ),
    CliCase(
        "cli-config-is-directory", lambda t: (["stats", "--config", str(p := _directory(t))], [p])
    ),
    CliCase(
        "cli-search-bad-since",
        lambda t: (
            ["search", "alpha", "--since", "yesterday", "--db", str(p := _seeded(t / "s.sqlite"))],
            [p],
        ),
    ),
    CliCase(
        "cli-search-limit-0",
        lambda t: (
            ["search", "alpha", "--limit", "0", "--db", str(p := _seeded(t / "s.sqlite"))],
            [p],
        ),
    ),
    CliCase(
        "cli-search-wrong-dims",
        lambda t: (
            ["search", "alpha", "--dims", "7", "--db", str(p := _seeded(t / "s.sqlite"))],
            [p],
        ),
    ),
    CliCase(
        "cli-delete-without-yes",
        lambda t: (["delete", "--source", "cli", "--db", str(p := _seeded(t / "s.sqlite"))], [p]),
    ),
    CliCase(
        "cli-unknown-command",
        lambda t: (["frobnicate", "--db", str(p := _seeded(t / "s.sqlite"))], [p]),
    ),
]


def state(path: Path) -> Any:
    """What must not change: a directory's listing and its files, a file's bytes (databases included)."""
    if path.is_dir():
        return ("dir", sorted((p.name, state(p)) for p in path.iterdir()))
    if not path.exists():
        return ("absent",)
    return ("bytes", path.read_bytes())


@pytest.fixture
def cli_target(tmp_path: Path):
    yield tmp_path
    _undo_read_only()


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_case(case: CliCase, cli_target: Path) -> None:
    argv, keep = case.prepare(cli_target)
    before = [state(p) for p in keep]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    env.pop("CTX_MODELS_DB", None)
    done = subprocess.run(
        [sys.executable, "-m", "ctx_models", *argv],
        input=case.stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(cli_target),
        timeout=120,
        check=False,
    )
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.splitlines()) == 1 and done.stderr.endswith("\n"), done.stderr
    assert "unexpected" not in done.stderr, done.stderr  # our own error, not the catch-all for bugs
    _undo_read_only()
    assert [state(p) for p in keep] == before
    # The default database path was not created behind our back.
    assert not (cli_target / ".ctx").exists()
