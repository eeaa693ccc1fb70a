"""ctx_models.store, the write path: documents, chunks, FTS rows, embeddings, checkpoints, deletes, stats, export.

Every check of what is stored goes through a separate sqlite3 connection (raw SQL),
so it sees what another program would see.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import ctx_tool
import numpy as np
import pytest
from ctx_tool import (
    create_contract_db,
    ctx_set_checkpoint,
    ctx_write_document,
    table_rows,
    vector_blob,
)

import ctx_models
from ctx_models import (
    Chunk,
    CorruptValueError,
    DimensionMismatchError,
    ValidationError,
    VectorError,
    search,
    store,
)
from ctx_models.backends import backend_for
from ctx_models.chunking import chunk_text
from ctx_models.embedders import HashingEmbedder
from ctx_models.hashing import chunk_hash
from ctx_models.hashing import dedup_hash as our_dedup_hash
from ctx_models.store import writes

# The store's behaviour is the same on both backends.
pytestmark = pytest.mark.backends("sqlite", "postgres")

MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z
CONTRACT_TABLES = ("documents", "chunks", "chunks_fts", "embeddings", "chunk_vectors", "checkpoints")


# --------------------------------------------------------------------------- helpers and fixtures


@pytest.fixture
def ctx_db(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, Path]]:
    """A database made by the other program (hand-written DDL), then opened by ctx_models."""
    path = tmp_path / "ctx-made.sqlite"
    conn = create_contract_db(str(path))
    database = ctx_models.connect(path)
    ctx_models.run_migrations(database)
    yield conn, path
    conn.close()
    database.close()


def count(conn: sqlite3.Connection, sql: str, *params: object) -> int:
    return conn.execute(sql, params).fetchone()[0]


def total(conn: sqlite3.Connection, table: str) -> int:
    return count(conn, f"SELECT count(*) FROM {table}")


def assert_fts_matches_chunks(conn: sqlite3.Connection) -> None:
    """One FTS row per chunk, with the chunk's id, document id and text."""
    chunks = sorted(conn.execute("SELECT id, document_id, text FROM chunks").fetchall())
    rows = sorted(conn.execute("SELECT chunk_id, document_id, text FROM chunks_fts").fetchall())
    assert rows == chunks


def chunk_ids(conn: sqlite3.Connection, document_id: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM chunks WHERE document_id = ? ORDER BY chunk_index", (document_id,)
        )
    ]


def assert_chunk_ids_gone(conn: sqlite3.Connection, ids: list[str]) -> None:
    marks = ",".join("?" * len(ids))
    assert count(conn, f"SELECT count(*) FROM chunks WHERE id IN ({marks})", *ids) == 0
    assert count(conn, f"SELECT count(*) FROM chunks_fts WHERE chunk_id IN ({marks})", *ids) == 0
    assert count(conn, f"SELECT count(*) FROM embeddings WHERE chunk_id IN ({marks})", *ids) == 0
    assert count(conn, f"SELECT count(*) FROM chunk_vectors WHERE chunk_id IN ({marks})", *ids) == 0


def rowids(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    return {
        "documents": conn.execute("SELECT rowid, id FROM documents ORDER BY rowid").fetchall(),
        "chunks": conn.execute("SELECT rowid, id FROM chunks ORDER BY rowid").fetchall(),
        "chunks_fts": conn.execute("SELECT rowid, chunk_id FROM chunks_fts ORDER BY rowid").fetchall(),
        "embeddings": conn.execute("SELECT rowid, chunk_id FROM embeddings ORDER BY rowid").fetchall(),
        "chunk_vectors": conn.execute("SELECT rowid, chunk_id FROM chunk_vectors ORDER BY rowid").fetchall(),
    }


def is_uuid4(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 4 and str(parsed) == value


def doc_row(conn: sqlite3.Connection, source: str, source_id: str) -> dict[str, object]:
    cur = conn.execute("SELECT * FROM documents WHERE source = ? AND source_id = ?", (source, source_id))
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row))


LONG = " ".join(f"word{i}" for i in range(60))  # several chunks at max_tokens=5


# --------------------------------------------------------------------------- hashes


@pytest.mark.parametrize(
    "updated_at", [0, 1, 2**31, 2**32 + 5, 2**40 + 123, 2**56 + 7, 2**63 - 1, -1, -(2**63)]
)
def test_dedup_hash_function_matches_independent_formula(updated_at: int) -> None:
    args = ("git:platform", "docs/ü.md", updated_at, "body ─ 😀")
    assert our_dedup_hash(*args) == ctx_tool.dedup_hash(*args)


def test_chunk_hash_is_sha256_of_utf8() -> None:
    assert chunk_hash("héllo ─") == ctx_tool.sha256("héllo ─")
    assert chunk_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --------------------------------------------------------------------------- upsert_document

DEDUP_CASES = [
    ("filesystem", "notes/a.txt", "plain ascii", 0),
    ("git:platform", "docs/日本語.md", "Grüße ─ 😀 naïve", 1_767_225_600),
    ("s3:docs", "ключ/файл", "", 2**32 + 1),
    ("filesystem", "x", "tail\n\nbody", MAX_EPOCH),
]


@pytest.mark.parametrize(("source", "source_id", "body", "updated_at"), DEDUP_CASES)
def test_upsert_document_dedup_hash_matches_contract(raw, source, source_id, body, updated_at) -> None:
    doc, changed = store.upsert_document(source, source_id, body, updated_at=updated_at)
    assert changed is True
    expected = ctx_tool.dedup_hash(source, source_id, updated_at, body)
    assert doc.dedup_hash == expected
    row = doc_row(raw, source, source_id)
    assert row["dedup_hash"] == expected
    assert row["updated_at"] == updated_at
    assert row["body"] == body


def test_upsert_document_accepts_aware_datetime(raw) -> None:
    when = dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    _doc, _ = store.upsert_document("fs", "dt", "body", updated_at=when, created_at=when)
    epoch = int(when.timestamp())
    row = doc_row(raw, "fs", "dt")
    assert row["updated_at"] == row["created_at"] == epoch
    assert row["dedup_hash"] == ctx_tool.dedup_hash("fs", "dt", epoch, "body")


def test_upsert_document_new_gets_uuid4_and_returns_document(raw) -> None:
    before = int(time.time())
    doc, changed = store.upsert_document(
        "fs", "a", "hello", title="T", author="me", source_url="https://x/a", metadata={"k": "v"}
    )
    after = int(time.time())
    assert changed is True
    assert isinstance(doc, ctx_models.Document)
    assert is_uuid4(doc.id)
    row = doc_row(raw, "fs", "a")
    assert row["id"] == doc.id
    assert (row["title"], row["author"], row["source_url"]) == ("T", "me", "https://x/a")
    assert row["content_type"] == "text/plain"
    assert before - 5 <= row["created_at"] <= after + 5
    assert before - 5 <= row["updated_at"] <= after + 5
    # two documents never share an id
    other, _ = store.upsert_document("fs", "b", "hello")
    assert is_uuid4(other.id) and other.id != doc.id


def test_upsert_existing_keeps_id_and_created_at_and_replaces_everything_else(raw) -> None:
    first, _ = store.upsert_document(
        "fs", "a", "v1", title="old", author="ann", source_url="https://old", created_at=1000,
        updated_at=2000, content_type="text/markdown", metadata={"v": 1}, raw_json={"r": 1},
    )
    second, changed = store.upsert_document(
        "fs", "a", "v2", title="new", author=None, source_url=None, created_at=5000,
        updated_at=6000, content_type="text/plain", metadata={"v": 2}, raw_json=None,
    )
    assert changed is True
    assert second.id == first.id
    row = doc_row(raw, "fs", "a")
    assert row == {
        "id": first.id,
        "source": "fs",
        "source_id": "a",
        "source_url": None,
        "title": "new",
        "author": None,
        "created_at": 1000,
        "updated_at": 6000,
        "content_type": "text/plain",
        "body": "v2",
        "metadata_json": json.dumps({"v": 2}, separators=(",", ":")),
        "raw_json": None,
        "dedup_hash": ctx_tool.dedup_hash("fs", "a", 6000, "v2"),
    }
    assert second.created_at == dt.datetime.fromtimestamp(1000, tz=dt.UTC)
    assert total(raw, "documents") == 1


def test_upsert_without_updated_at_keeps_stored_time_for_same_body(raw) -> None:
    store.upsert_document("fs", "a", "same body", updated_at=1_000_000)
    doc, changed = store.upsert_document("fs", "a", "same body")
    assert changed is False
    row = doc_row(raw, "fs", "a")
    assert row["updated_at"] == 1_000_000
    assert row["dedup_hash"] == ctx_tool.dedup_hash("fs", "a", 1_000_000, "same body")
    assert doc.updated_at == dt.datetime.fromtimestamp(1_000_000, tz=dt.UTC)

    before = int(time.time())
    _, changed = store.upsert_document("fs", "a", "a new body")
    assert changed is True
    row = doc_row(raw, "fs", "a")
    assert row["updated_at"] >= before - 5
    assert row["dedup_hash"] == ctx_tool.dedup_hash("fs", "a", row["updated_at"], "a new body")


def test_upsert_metadata_only_is_not_a_content_change(raw) -> None:
    store.upsert_document("fs", "a", "body", updated_at=10, title="one")
    _, changed = store.upsert_document("fs", "a", "body", updated_at=10, title="two")
    assert changed is False
    assert doc_row(raw, "fs", "a")["title"] == "two"


def test_metadata_stored_as_json_object_text(raw) -> None:
    meta = {"tags": ["a", "ü"], "n": 1, "nested": {"ok": True, "none": None}, "f": 1.5}
    doc, _ = store.upsert_document("fs", "a", "b", metadata=meta)
    text = doc_row(raw, "fs", "a")["metadata_json"]
    assert isinstance(text, str)
    assert json.loads(text) == meta
    assert doc.metadata == meta
    # no metadata -> '{}'
    store.upsert_document("fs", "b", "b")
    assert json.loads(doc_row(raw, "fs", "b")["metadata_json"]) == {}
    # JSON object text is accepted as is
    store.upsert_document("fs", "c", "b", metadata='{"x": [1, 2]}')
    assert json.loads(doc_row(raw, "fs", "c")["metadata_json"]) == {"x": [1, 2]}


class _Opaque:
    pass


BAD_METADATA = [
    pytest.param({1, 2}, id="set"),
    pytest.param(_Opaque(), id="object"),
    pytest.param(float("nan"), id="nan"),
    pytest.param({"x": float("nan")}, id="nan-inside"),
    pytest.param({"x": {1, 2}}, id="set-inside"),
    pytest.param({"x": _Opaque()}, id="object-inside"),
    pytest.param([1, 2], id="list"),
    pytest.param("[1, 2]", id="json-array-text"),
    pytest.param('"text"', id="json-string-text"),
    pytest.param("{not json", id="invalid-json-text"),
]


@pytest.mark.parametrize("metadata", BAD_METADATA)
def test_bad_metadata_refused_and_nothing_changes(raw, metadata) -> None:
    store.ingest("fs", "a", "existing body", metadata={"keep": 1})
    before = table_rows(raw)
    with pytest.raises(ValidationError):
        store.upsert_document("fs", "a", "changed body", metadata=metadata)
    with pytest.raises(ValidationError):
        store.upsert_document("fs", "new", "new body", metadata=metadata)
    with pytest.raises(ValidationError):
        store.ingest("fs", "a", "changed body", metadata=metadata)
    assert table_rows(raw) == before


def test_raw_json_str_must_be_json_other_values_dumped(raw) -> None:
    store.upsert_document("fs", "a", "b", raw_json='{"a": 1,  "spaced": true}')
    assert doc_row(raw, "fs", "a")["raw_json"] == '{"a": 1,  "spaced": true}'  # kept verbatim
    store.upsert_document("fs", "b", "b", raw_json={"list": [1, "é"], "n": None})
    assert json.loads(doc_row(raw, "fs", "b")["raw_json"]) == {"list": [1, "é"], "n": None}
    store.upsert_document("fs", "c", "b", raw_json=[1, 2])
    assert json.loads(doc_row(raw, "fs", "c")["raw_json"]) == [1, 2]
    store.upsert_document("fs", "d", "b", raw_json="[1, 2]")  # any JSON, not only objects
    assert doc_row(raw, "fs", "d")["raw_json"] == "[1, 2]"
    store.upsert_document("fs", "e", "b")
    assert doc_row(raw, "fs", "e")["raw_json"] is None
    before = table_rows(raw)
    for bad in ("{oops", "", {1, 2}, float("nan"), {"x": float("inf")}):
        with pytest.raises(ValidationError):
            store.upsert_document("fs", "a", "changed", raw_json=bad)
    assert table_rows(raw) == before


def test_get_document_and_by_source(raw) -> None:
    assert store.get_document(str(uuid.uuid4())) is None
    assert store.get_document_by_source("fs", "missing") is None
    result = store.ingest("fs", "a", LONG, max_tokens=5, title="T")
    doc = store.get_document(result.document_id)
    assert doc is not None and doc.id == result.document_id and doc.title == "T"
    assert isinstance(doc.chunks, list)
    assert [c.chunk_index for c in doc.chunks] == list(range(len(chunk_text(LONG, 5))))
    assert [c.text for c in doc.chunks] == chunk_text(LONG, 5)
    same = store.get_document_by_source("fs", "a")
    assert same is not None and same.id == doc.id
    assert [c.id for c in same.chunks] == [c.id for c in doc.chunks]
    assert store.get_document_by_source("other", "a") is None
    # a document without chunks gets an empty list
    bare, _ = store.upsert_document("fs", "bare", "x")
    got = store.get_document(bare.id)
    assert got is not None and got.chunks == []


def test_get_document_orders_chunks_written_out_of_order(raw) -> None:
    """Another program may insert chunk rows in any order; .chunks is still by chunk_index."""
    doc, _ = store.upsert_document("fs", "a", "three\n\ntwo\n\none", updated_at=5)
    texts = {2: "one", 0: "three", 1: "two"}
    for index in (2, 0, 1):
        cid = str(uuid.uuid4())
        raw.execute(
            "INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES (?,?,?,?,?)",
            (cid, doc.id, index, texts[index], ctx_tool.sha256(texts[index])),
        )
        raw.execute(
            "INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES (?,?,?)", (cid, doc.id, texts[index])
        )
    got = store.get_document(doc.id)
    assert got is not None
    assert [c.chunk_index for c in got.chunks] == [0, 1, 2]
    assert [c.text for c in got.chunks] == ["three", "two", "one"]


# --------------------------------------------------------------------------- replace_chunks


def _seed_embedded(embedder) -> str:
    result = store.ingest("fs", "a", LONG, max_tokens=5, embedder=embedder)
    store.ingest("fs", "other", "other document text", embedder=embedder)
    return result.document_id


def test_replace_chunks_replaces_everything_of_the_document(raw, embedder) -> None:
    doc_id = _seed_embedded(embedder)
    old = chunk_ids(raw, doc_id)
    assert len(old) > 2 and total(raw, "chunk_vectors") == len(old) + 1
    other_rows = raw.execute(
        "SELECT c.id, e.hash, v.embedding FROM chunks c JOIN embeddings e ON e.chunk_id = c.id "
        "JOIN chunk_vectors v ON v.chunk_id = c.id WHERE c.document_id != ?",
        (doc_id,),
    ).fetchall()

    new = store.replace_chunks(doc_id, ["first new", "second new"])
    assert [(c.chunk_index, c.text, c.hash) for c in new] == [
        (0, "first new", chunk_hash("first new")),
        (1, "second new", chunk_hash("second new")),
    ]
    assert_chunk_ids_gone(raw, old)
    assert raw.execute(
        "SELECT id, chunk_index, text, hash FROM chunks WHERE document_id = ? ORDER BY chunk_index", (doc_id,)
    ).fetchall() == [(c.id, c.chunk_index, c.text, c.hash) for c in new]
    assert count(raw, "SELECT count(*) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id WHERE c.document_id = ?", doc_id) == 0
    assert count(raw, "SELECT count(*) FROM chunk_vectors WHERE document_id = ?", doc_id) == 0
    assert_fts_matches_chunks(raw)
    # the other document is untouched
    assert raw.execute(
        "SELECT c.id, e.hash, v.embedding FROM chunks c JOIN embeddings e ON e.chunk_id = c.id "
        "JOIN chunk_vectors v ON v.chunk_id = c.id WHERE c.document_id != ?",
        (doc_id,),
    ).fetchall() == other_rows
    # the keyword index finds the new text and not the old
    assert len(search.keyword_search("second")) == 1
    assert search.keyword_search("word30") == []


def test_replace_chunks_keeps_ids_of_chunk_objects(raw) -> None:
    doc = store.ingest("fs", "a", "one\n\ntwo", max_tokens=1)
    current = store.get_document(doc.document_id).chunks
    current[0].text = "one edited"
    fresh_id = str(uuid.uuid4())
    result = store.replace_chunks(doc.document_id, [current[0], Chunk(id=fresh_id, text="brand new"), "plain"])
    assert [c.id for c in result[:2]] == [current[0].id, fresh_id]
    assert is_uuid4(result[2].id)
    rows = raw.execute(
        "SELECT id, chunk_index, text, hash FROM chunks WHERE document_id = ? ORDER BY chunk_index",
        (doc.document_id,),
    ).fetchall()
    assert rows == [
        (current[0].id, 0, "one edited", chunk_hash("one edited")),
        (fresh_id, 1, "brand new", chunk_hash("brand new")),
        (result[2].id, 2, "plain", chunk_hash("plain")),
    ]
    assert current[1].id not in [r[0] for r in rows]
    assert_fts_matches_chunks(raw)
    # also by Document object
    by_object = store.replace_chunks(store.get_document(doc.document_id), ["x"])
    assert chunk_ids(raw, doc.document_id) == [by_object[0].id]


@pytest.mark.parametrize("as_array", [False, True])
def test_replace_chunks_with_vectors_writes_embeddings(raw, as_array) -> None:
    doc, _ = store.upsert_document("fs", "a", "x")
    vectors = [[1.0, 0.0, 0.5], [0.25, -2.0, 3.0]]
    before = int(time.time())
    chunks = store.replace_chunks(doc.id, ["a", "b"], np.array(vectors) if as_array else vectors, "m3")
    emb = raw.execute(
        "SELECT e.chunk_id, e.model, e.dims, e.hash, e.created_at, v.document_id, v.embedding "
        "FROM embeddings e JOIN chunk_vectors v ON v.chunk_id = e.chunk_id"
    ).fetchall()
    expected = {c.id: (c.hash, vector_blob(vec)) for c, vec in zip(chunks, vectors)}
    assert len(emb) == 2
    for chunk_id, model, dims, digest, created_at, document_id, blob in emb:
        assert (model, dims, document_id) == ("m3", 3, doc.id)
        assert (digest, blob) == expected[chunk_id]
        assert before - 5 <= created_at <= time.time() + 5
    assert_fts_matches_chunks(raw)


def test_replace_chunks_refusals_change_nothing(raw, embedder) -> None:
    doc_id = _seed_embedded(embedder)
    store.replace_chunks(
        store.ingest("fs", "vec", "v").document_id, ["v"], [[1.0, 2.0]], "two-dims"
    )
    before = table_rows(raw)
    cases = [
        (VectorError, {"vectors": [[1.0, 2.0]], "model": "two-dims"}),  # 1 vector for 2 chunks
        (VectorError, {"vectors": [[1.0, 2.0]] * 3, "model": "two-dims"}),  # 3 for 2
        (DimensionMismatchError, {"vectors": [[1.0, 2.0], [1.0, 2.0, 3.0]], "model": "new-model"}),
        (VectorError, {"vectors": [[1.0, float("nan")], [1.0, 2.0]], "model": "two-dims"}),
        (VectorError, {"vectors": [[1.0, float("inf")], [1.0, 2.0]], "model": "two-dims"}),
        (VectorError, {"vectors": [[], []], "model": "two-dims"}),
        (DimensionMismatchError, {"vectors": [[1.0, 2.0, 3.0]] * 2, "model": "two-dims"}),  # stored: 2 dims
        (DimensionMismatchError, {"vectors": [[1.0] * 5] * 2, "model": embedder.model}),  # stored: 384
        (ValidationError, {"vectors": [[1.0, 2.0]] * 2, "model": None}),
    ]
    for error, kwargs in cases:
        with pytest.raises(error):
            store.replace_chunks(doc_id, ["x", "y"], **kwargs)
        assert table_rows(raw) == before, (error, kwargs)
    with pytest.raises(ValidationError):
        store.replace_chunks(str(uuid.uuid4()), ["x"])
    with pytest.raises(ValidationError):
        store.replace_chunks(doc_id, [])
    with pytest.raises(ValidationError):
        store.replace_chunks(doc_id, "not a list")
    with pytest.raises(ValidationError):
        store.replace_chunks(doc_id, ["ok", "nul\x00inside"])
    assert table_rows(raw) == before


def test_dimension_mismatch_is_a_ctx_models_error() -> None:
    assert issubclass(DimensionMismatchError, ValidationError)
    assert issubclass(DimensionMismatchError, ctx_models.CtxModelsError)


class Boom(RuntimeError):
    pass


def _raise(*args, **kwargs):
    raise Boom("injected failure")


def _inject(monkeypatch, db, target: str) -> None:
    """Make one step of the write path fail: a backend method, or a store function."""
    owner, name = target.split(".")
    if owner == "backend":
        monkeypatch.setattr(type(backend_for(db)), name, _raise)
    else:
        monkeypatch.setattr(writes, name, _raise)


@pytest.mark.parametrize(
    "target", ["backend.insert_chunks", "writes.write_vectors", "backend.delete_keyword_rows", "backend.write_vectors"]
)
def test_replace_chunks_failure_midway_rolls_back(db, raw, embedder, monkeypatch, target) -> None:
    doc_id = _seed_embedded(embedder)
    before = table_rows(raw)
    _inject(monkeypatch, db, target)
    vectors = embedder.embed(["x", "y"])
    with pytest.raises(Boom):
        store.replace_chunks(doc_id, ["x", "y"], vectors, embedder.model)
    assert table_rows(raw) == before
    monkeypatch.undo()
    # and the store still works afterwards
    store.replace_chunks(doc_id, ["x", "y"], vectors, embedder.model)
    assert_fts_matches_chunks(raw)


@pytest.mark.parametrize("target", ["backend.insert_chunks", "writes.write_vectors", "backend.write_vectors"])
def test_ingest_failure_midway_rolls_back(db, raw, embedder, monkeypatch, target) -> None:
    _seed_embedded(embedder)
    before = table_rows(raw)
    _inject(monkeypatch, db, target)
    with pytest.raises(Boom):
        store.ingest("fs", "a", "completely different text", embedder=embedder)
    with pytest.raises(Boom):
        store.ingest("fs", "brand-new", "text", embedder=embedder)
    assert table_rows(raw) == before


# --------------------------------------------------------------------------- ingest


def test_reingest_unchanged_rewrites_nothing(db, raw, embedder) -> None:
    first = store.ingest("fs", "a", LONG, max_tokens=5, embedder=embedder, metadata={"m": 1}, title="t")
    store.ingest("fs", "b", "another", embedder=embedder)
    assert first.status == "created" and first.chunks > 1 and first.embedded == first.chunks
    ids_before, rows_before = rowids(raw), table_rows(raw)
    again = store.ingest("fs", "a", LONG, max_tokens=5, embedder=embedder, metadata={"m": 1}, title="t")
    assert again.status == "unchanged" and again.changed is False
    assert again.document_id == first.document_id
    assert rowids(raw) == ids_before  # not one row rewritten (on PostgreSQL: no row moved)
    assert table_rows(raw) == rows_before


def test_changed_text_replaces_chunks_and_drops_stale_vectors(raw, embedder) -> None:
    first = store.ingest("fs", "a", LONG, max_tokens=5, embedder=embedder)
    old = chunk_ids(raw, first.document_id)
    created_at = doc_row(raw, "fs", "a")["created_at"]
    second = store.ingest("fs", "a", "short new text", max_tokens=5)  # no embedder this time
    assert second.status == "updated" and second.changed and second.chunks == 1 and second.embedded == 0
    assert second.document_id == first.document_id
    assert doc_row(raw, "fs", "a")["created_at"] == created_at
    assert_chunk_ids_gone(raw, old)
    assert total(raw, "embeddings") == total(raw, "chunk_vectors") == 0
    assert [r[0] for r in raw.execute("SELECT text FROM chunks")] == ["short new text"]
    assert_fts_matches_chunks(raw)


def test_ingest_with_embedder_embeds_every_chunk(raw, embedder) -> None:
    result = store.ingest("fs", "a", LONG + "\n\nmore ─ text 😀", max_tokens=5, embedder=embedder)
    rows = raw.execute(
        "SELECT c.id, c.text, c.hash, e.model, e.dims, e.hash, v.document_id, v.embedding "
        "FROM chunks c JOIN embeddings e ON e.chunk_id = c.id JOIN chunk_vectors v ON v.chunk_id = c.id "
        "ORDER BY c.chunk_index"
    ).fetchall()
    assert len(rows) == total(raw, "chunks") == result.chunks == result.embedded
    for _, text, chash, model, dims, ehash, document_id, blob in rows:
        assert (model, dims) == (embedder.model, embedder.dims)
        assert ehash == chash == chunk_hash(text)
        assert document_id == result.document_id
        assert len(blob) == 4 * dims
        np.testing.assert_array_equal(np.frombuffer(blob, "<f4"), embedder.embed([text])[0])


def test_ingest_metadata_only_change_keeps_chunks(raw, embedder) -> None:
    first = store.ingest("fs", "a", LONG, max_tokens=5, embedder=embedder, title="one", metadata={"v": 1})
    before = rowids(raw)
    chunk_rows = raw.execute("SELECT rowid, * FROM chunks").fetchall()
    result = store.ingest("fs", "a", LONG, max_tokens=5, embedder=embedder, title="two", metadata={"v": 2})
    assert result.status == "metadata" and result.changed is False
    assert result.document_id == first.document_id
    row = doc_row(raw, "fs", "a")
    assert row["title"] == "two" and json.loads(row["metadata_json"]) == {"v": 2}
    after = rowids(raw)
    for table in ("chunks", "chunks_fts", "embeddings", "chunk_vectors"):
        assert after[table] == before[table]
    assert raw.execute("SELECT rowid, * FROM chunks").fetchall() == chunk_rows


def test_fts_count_equals_chunk_count_through_a_sequence(raw, embedder) -> None:
    steps = [
        lambda: store.ingest("a", "1", LONG, max_tokens=5),
        lambda: store.ingest("a", "2", "two paragraphs\n\nhere", max_tokens=5, embedder=embedder),
        lambda: store.ingest("b", "1", "b one"),
        lambda: store.ingest("a", "1", "now short"),
        lambda: store.ingest("a", "2", LONG + "\n\ntail", max_tokens=5, embedder=embedder),
        lambda: store.ingest("a", "1", "now short"),
        lambda: store.delete_document(store.get_document_by_source("a", "2").id),
        lambda: store.ingest_many(
            [{"source": "c", "source_id": str(i), "body": f"c {i}\n\n" + LONG} for i in range(5)], max_tokens=5
        ),
        lambda: store.replace_chunks(store.get_document_by_source("c", "3").id, ["x", "y", "z"]),
        lambda: store.delete_source("c"),
        lambda: store.ingest("a", "2", "back again", embedder=embedder),
        lambda: store.upsert_document("a", "1", "body only, chunks not touched"),
        lambda: store.delete_source("a"),
    ]
    for step in steps:
        step()
        assert total(raw, "chunks_fts") == total(raw, "chunks")
        assert_fts_matches_chunks(raw)
    assert total(raw, "chunks") == 1  # b:1


def test_ingest_refuses_bad_values_and_changes_nothing(raw) -> None:
    store.ingest("fs", "a", "body")
    before = table_rows(raw)
    bad_calls = [
        {"source": "", "source_id": "x", "body": "b"},
        {"source": "fs", "source_id": "  ", "body": "b"},
        {"source": "fs", "source_id": "x", "body": None},
        {"source": "fs", "source_id": "x", "body": b"bytes"},
        {"source": "fs", "source_id": "x", "body": "nul\x00"},
        {"source": "fs", "source_id": "x", "body": "lone \ud800"},
        {"source": "fs", "source_id": "x", "body": "b", "updated_at": -1},
        {"source": "fs", "source_id": "x", "body": "b", "updated_at": dt.datetime(2026, 1, 1)},  # naive
        {"source": "fs", "source_id": "x", "body": "b", "title": 5},
    ]
    for kwargs in bad_calls:
        with pytest.raises(ValidationError):
            store.ingest(**kwargs)
    assert table_rows(raw) == before


# --------------------------------------------------------------------------- ingest_many


def _items(n: int, start: int = 0, **extra) -> list[dict]:
    return [
        {"source": "bulk", "source_id": f"doc-{i:02d}", "body": f"body of {i}\n\nsecond part {i}", **extra}
        for i in range(start, start + n)
    ]


def test_ingest_many_commits_in_batches_and_reports_each(raw) -> None:
    calls: list[tuple[list[str], int]] = []

    def on_commit(results):
        # a separate connection sees the batch: it is committed
        calls.append(([r.source_id for r in results], count(raw, "SELECT count(*) FROM documents")))

    summary = store.ingest_many(_items(10), batch_size=3, on_commit=on_commit)
    assert [c[0] for c in calls] == [
        ["doc-00", "doc-01", "doc-02"],
        ["doc-03", "doc-04", "doc-05"],
        ["doc-06", "doc-07", "doc-08"],
        ["doc-09"],
    ]
    assert [c[1] for c in calls] == [3, 6, 9, 10]
    assert (summary.created, summary.updated, summary.unchanged, summary.documents) == (10, 0, 0, 10)
    assert summary.chunks == total(raw, "chunks") == 10
    assert_fts_matches_chunks(raw)

    # again, from a generator, with one body changed
    items = _items(10)
    items[4]["body"] = "changed"
    statuses: list[str] = []
    summary = store.ingest_many(iter(items), batch_size=3, on_commit=lambda rs: statuses.extend(r.status for r in rs))
    assert statuses == ["unchanged"] * 4 + ["updated"] + ["unchanged"] * 5
    assert (summary.updated, summary.unchanged) == (1, 9)


def test_ingest_many_with_embedder(raw, embedder) -> None:
    summary = store.ingest_many(_items(7), batch_size=3, embedder=embedder, max_tokens=3)
    n = total(raw, "chunks")
    assert summary.embedded == summary.chunks == n > 7
    assert count(
        raw,
        "SELECT count(*) FROM chunks c JOIN embeddings e ON e.chunk_id = c.id AND e.hash = c.hash "
        "JOIN chunk_vectors v ON v.chunk_id = c.id WHERE e.model = ?",
        embedder.model,
    ) == n


def test_ingest_many_duplicate_key_in_one_batch_later_wins(raw) -> None:
    items = [
        {"source": "s", "source_id": "x", "body": "first version"},
        {"source": "s", "source_id": "y", "body": "other"},
        {"source": "s", "source_id": "x", "body": "second version", "title": "later"},
    ]
    summary = store.ingest_many(items)
    assert summary.documents == 2
    doc = store.get_document_by_source("s", "x")
    assert doc is not None and doc.body == "second version" and doc.title == "later"
    assert [c.text for c in doc.chunks] == ["second version"]
    assert total(raw, "documents") == 2
    assert_fts_matches_chunks(raw)


def test_ingest_many_invalid_item_in_third_batch_keeps_earlier_batches(raw) -> None:
    items = _items(10)
    items[7]["metadata"] = ["not", "an", "object"]
    committed: list[list[str]] = []
    with pytest.raises(ValidationError):
        store.ingest_many(items, batch_size=3, on_commit=lambda rs: committed.append([r.source_id for r in rs]))
    assert committed == [["doc-00", "doc-01", "doc-02"], ["doc-03", "doc-04", "doc-05"]]
    assert sorted(r[0] for r in raw.execute("SELECT source_id FROM documents")) == [f"doc-{i:02d}" for i in range(6)]
    assert_fts_matches_chunks(raw)


def test_ingest_many_on_commit_called_once_even_when_it_raises(raw) -> None:
    calls: list[list[tuple[str, str]]] = []

    def on_commit(results):
        calls.append([(r.source_id, r.status) for r in results])
        raise Boom("callback failed")

    with pytest.raises(Boom):
        store.ingest_many(_items(10), batch_size=3, on_commit=on_commit)
    # the first batch committed, then its callback raised: nothing more happens
    assert calls == [[("doc-00", "created"), ("doc-01", "created"), ("doc-02", "created")]]
    assert total(raw, "documents") == 3
    assert_fts_matches_chunks(raw)


@pytest.mark.parametrize(
    "bad_item",
    [
        pytest.param("not a mapping", id="str"),
        pytest.param({"source": "s", "source_id": "x"}, id="missing-body"),
        pytest.param({"source": "s", "source_id": "x", "body": "b", "colour": "red"}, id="unknown-key"),
    ],
)
def test_ingest_many_refuses_bad_items(raw, bad_item) -> None:
    with pytest.raises(ValidationError):
        store.ingest_many([bad_item])
    assert total(raw, "documents") == 0


def test_ingest_many_progress_bar_on_stderr(raw, capsys) -> None:
    summary = store.ingest_many(_items(10), batch_size=4, progress=True)
    assert summary.created == 10
    out, err = capsys.readouterr()
    assert out == ""
    assert "documents" in err and "/10" in err


# --------------------------------------------------------------------------- upsert_embeddings, pending, embed


@pytest.fixture
def three_docs(raw) -> list[str]:
    """Chunk ids of three documents (several chunks each), ordered by document_id, chunk_index."""
    for sid, body in (("x", LONG), ("y", "one\n\ntwo\n\nthree"), ("z", "single")):
        store.ingest("fs", sid, body, max_tokens=2)
    return [r[0] for r in raw.execute("SELECT id FROM chunks ORDER BY document_id, chunk_index")]


def test_upsert_embeddings_tuples_and_mappings(raw, three_docs) -> None:
    a, b, c = three_docs[:3]
    written = store.upsert_embeddings(
        [
            (a, "m2", [1.0, 2.0]),
            {"chunk_id": b, "model": "m2", "vector": np.array([3.0, 4.0], dtype=np.float64)},
            (c, "m3", (0.5, 0.25, -1.0)),
        ]
    )
    assert written == 3
    rows = {
        r[0]: r[1:]
        for r in raw.execute(
            "SELECT e.chunk_id, e.model, e.dims, e.hash = c.hash, v.embedding, v.document_id = c.document_id "
            "FROM embeddings e JOIN chunks c ON c.id = e.chunk_id JOIN chunk_vectors v ON v.chunk_id = e.chunk_id"
        )
    }
    assert rows == {
        a: ("m2", 2, 1, vector_blob([1.0, 2.0]), 1),
        b: ("m2", 2, 1, vector_blob([3.0, 4.0]), 1),
        c: ("m3", 3, 1, vector_blob([0.5, 0.25, -1.0]), 1),
    }
    # upserting again replaces the vector, keeps one row
    store.upsert_embeddings([(a, "m2", [9.0, 9.0])])
    assert raw.execute("SELECT embedding FROM chunk_vectors WHERE chunk_id = ?", (a,)).fetchone()[0] == vector_blob([9.0, 9.0])
    assert total(raw, "embeddings") == total(raw, "chunk_vectors") == 3


def test_upsert_embeddings_is_all_or_nothing(raw, three_docs) -> None:
    a, b, c, d = three_docs[:4]
    store.upsert_embeddings([(d, "m2", [1.0, 1.0])])
    before = table_rows(raw)
    cases = [
        (ValidationError, [(a, "m2", [1.0, 2.0]), (str(uuid.uuid4()), "m2", [1.0, 2.0])]),
        (DimensionMismatchError, [(a, "m4", [1.0, 2.0, 3.0, 4.0]), (b, "m4", [1.0, 2.0, 3.0])]),
        (DimensionMismatchError, [(a, "m2", [1.0, 2.0, 3.0])]),  # m2 is stored with 2 dims
        (VectorError, [(a, "m2", [1.0, 2.0]), (b, "m2", [float("nan"), 1.0])]),
        # the first model's rows are valid, the second model's are not: nothing at all
        (ValidationError, [(a, "m5", [1.0]), (b, "m5", [2.0]), (c, "m6", [1.0]), ("missing", "m6", [1.0])]),
        (DimensionMismatchError, [(a, "m5", [1.0]), (b, "m2", [1.0, 2.0, 3.0])]),
        (ValidationError, [(a, "m2")]),
        (ValidationError, [{"chunk_id": a, "vector": [1.0, 2.0]}]),
    ]
    for error, rows in cases:
        with pytest.raises(error):
            store.upsert_embeddings(rows)
        assert table_rows(raw) == before, rows


def test_pending_chunks(raw, three_docs) -> None:
    ids = three_docs
    assert [c.id for c in store.pending_chunks("m")] == ids
    # embed all but two with m, one of them with another model
    store.upsert_embeddings([(cid, "m", [1.0, 0.0]) for cid in ids[2:]])
    store.upsert_embeddings([(ids[0], "other", [1.0])])
    # make one stale
    raw.execute("UPDATE embeddings SET hash = 'stale' WHERE chunk_id = ?", (ids[5],))
    expected = [
        r[0]
        for r in raw.execute(
            "SELECT c.id FROM chunks c LEFT JOIN embeddings e ON e.chunk_id = c.id AND e.model = 'm' "
            "WHERE e.chunk_id IS NULL OR e.hash != c.hash ORDER BY c.document_id, c.chunk_index"
        )
    ]
    assert expected == [ids[0], ids[1], ids[5]]
    pending = store.pending_chunks("m")
    assert [c.id for c in pending] == expected
    assert [(c.text, c.hash) for c in pending] == [
        raw.execute("SELECT text, hash FROM chunks WHERE id = ?", (cid,)).fetchone() for cid in expected
    ]
    assert [c.id for c in store.pending_chunks("m", limit=2)] == expected[:2]
    assert [c.id for c in store.pending_chunks("other")] == [i for i in ids if i != ids[0]]
    with pytest.raises(ValidationError):
        store.pending_chunks("")


def test_embed_pending_embeds_all_then_nothing(raw, three_docs, embedder, monkeypatch) -> None:
    raw_before = total(raw, "chunks")
    store.upsert_embeddings([(three_docs[0], embedder.model, embedder.embed(["whatever"])[0])])
    raw.execute("UPDATE embeddings SET hash = 'stale' WHERE chunk_id = ?", (three_docs[0],))
    store.upsert_embeddings([(three_docs[1], embedder.model, embedder.embed(["x"])[0])])  # fresh
    pending = len(store.pending_chunks(embedder.model))
    assert pending == raw_before - 1

    calls: list[int] = []
    original = writes.write_vectors

    def spy(db, model, chunks, matrix, now):
        calls.append(len(chunks))
        return original(db, model, chunks, matrix, now)

    monkeypatch.setattr(writes, "write_vectors", spy)
    done = store.embed_pending(embedder, batch_size=2)
    assert done == pending
    assert calls == [2] * (pending // 2) + ([pending % 2] if pending % 2 else [])
    assert store.pending_chunks(embedder.model) == []
    rows = raw.execute(
        "SELECT c.text, e.model, e.dims, e.hash = c.hash, v.embedding FROM chunks c "
        "JOIN embeddings e ON e.chunk_id = c.id JOIN chunk_vectors v ON v.chunk_id = c.id "
        "WHERE c.id != ?",
        (three_docs[1],),
    ).fetchall()
    assert len(rows) == pending
    for text, model, dims, fresh, blob in rows:
        assert (model, dims, fresh) == (embedder.model, embedder.dims, 1)
        np.testing.assert_array_equal(np.frombuffer(blob, "<f4"), embedder.embed([text])[0])
    assert store.embed_pending(embedder, batch_size=2) == 0
    with pytest.raises(DimensionMismatchError):
        store.embed_pending(_SameNameOtherDims(embedder.model))
    with pytest.raises(ValidationError):
        store.embed_pending(embedder, batch_size=0)


class _SameNameOtherDims(HashingEmbedder):
    def __init__(self, model: str) -> None:
        super().__init__(8)
        self.model = model


def test_clear_embeddings(raw, three_docs) -> None:
    store.upsert_embeddings([(cid, "m1", [1.0]) for cid in three_docs[:4]])
    store.upsert_embeddings([(cid, "m2", [1.0, 2.0]) for cid in three_docs[4:7]])
    assert store.clear_embeddings("m1") == 4
    assert raw.execute("SELECT DISTINCT model FROM embeddings").fetchall() == [("m2",)]
    assert sorted(r[0] for r in raw.execute("SELECT chunk_id FROM chunk_vectors")) == sorted(three_docs[4:7])
    assert store.clear_embeddings("nope") == 0
    store.upsert_embeddings([(three_docs[0], "m1", [1.0])])
    assert store.clear_embeddings() == 4
    assert total(raw, "embeddings") == total(raw, "chunk_vectors") == 0
    assert total(raw, "chunks") == len(three_docs)  # chunks stay


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints(raw) -> None:
    assert store.get_checkpoint("fs") is None
    for value in (0, 1_767_225_600, 2**62 + 3, 2**63 - 1, -5, -(2**63)):
        started = time.time()
        store.set_checkpoint("fs", value)
        assert store.get_checkpoint("fs") == value
        cursor, kind, updated_at = raw.execute(
            "SELECT cursor, typeof(cursor), updated_at FROM checkpoints WHERE source = 'fs'"
        ).fetchone()
        assert (cursor, kind) == (str(value), "text")
        assert started - 60 <= updated_at <= time.time() + 60
    assert total(raw, "checkpoints") == 1
    store.set_checkpoint("git", 7)
    assert (store.get_checkpoint("fs"), store.get_checkpoint("git")) == (-(2**63), 7)
    store.set_checkpoint("np", np.int64(12))
    assert store.get_checkpoint("np") == 12


def test_checkpoint_written_by_other_program(raw) -> None:
    ctx_set_checkpoint(raw, "ctx", 1_767_225_600)
    assert store.get_checkpoint("ctx") == 1_767_225_600
    raw.execute("INSERT INTO checkpoints (source, cursor, updated_at) VALUES ('bad', 'abc', 0)")
    with pytest.raises(CorruptValueError):
        store.get_checkpoint("bad")
    store.set_checkpoint("bad", 3)  # setting it again repairs it
    assert store.get_checkpoint("bad") == 3


@pytest.mark.parametrize("cursor", ["12", 1.5, True, None, 12.0])
def test_set_checkpoint_refuses_non_int(raw, cursor) -> None:
    store.set_checkpoint("fs", 1)
    before = table_rows(raw)
    with pytest.raises(ValidationError):
        store.set_checkpoint("fs", cursor)
    with pytest.raises(ValidationError):
        store.set_checkpoint("new", cursor)
    assert table_rows(raw) == before


@pytest.mark.parametrize("cursor", [2**63, -(2**63) - 1, 2**64])
def test_set_checkpoint_refuses_ints_get_checkpoint_cannot_read(raw, cursor) -> None:
    """The cursor is read back as a 64-bit integer (by ctx and by get_checkpoint)."""
    before = table_rows(raw)
    with pytest.raises(ValidationError):
        store.set_checkpoint("fs", cursor)
    assert table_rows(raw) == before


# --------------------------------------------------------------------------- deletes


@pytest.fixture
def two_sources(raw, embedder) -> dict[str, str]:
    ids = {}
    for sid in ("1", "2", "3"):
        ids[f"a{sid}"] = store.ingest("a", sid, f"alpha {sid}\n\n" + LONG, max_tokens=5, embedder=embedder).document_id
    for sid in ("1", "2"):
        ids[f"b{sid}"] = store.ingest("b", sid, f"beta {sid}\n\n" + LONG, max_tokens=5, embedder=embedder).document_id
    store.set_checkpoint("a", 100)
    store.set_checkpoint("b", 200)
    return ids


def _rows_not_of(conn: sqlite3.Connection, doc_ids: list[str]) -> dict[str, list[tuple]]:
    marks = ",".join("?" * len(doc_ids))
    def q(sql):
        return sorted(conn.execute(sql.format(marks=marks), doc_ids).fetchall())

    return {
        "documents": q("SELECT rowid, * FROM documents WHERE id NOT IN ({marks})"),
        "chunks": q("SELECT rowid, * FROM chunks WHERE document_id NOT IN ({marks})"),
        "chunks_fts": q("SELECT rowid, chunk_id, document_id, text FROM chunks_fts WHERE document_id NOT IN ({marks})"),
        "embeddings": q(
            "SELECT rowid, * FROM embeddings WHERE chunk_id IN (SELECT id FROM chunks WHERE document_id NOT IN ({marks}))"
        ),
        "chunk_vectors": q("SELECT rowid, * FROM chunk_vectors WHERE document_id NOT IN ({marks})"),
    }


def _assert_nothing_of(conn: sqlite3.Connection, doc_ids: list[str], chunk_id_list: list[str]) -> None:
    marks = ",".join("?" * len(doc_ids))
    assert count(conn, f"SELECT count(*) FROM documents WHERE id IN ({marks})", *doc_ids) == 0
    assert count(conn, f"SELECT count(*) FROM chunks WHERE document_id IN ({marks})", *doc_ids) == 0
    assert count(conn, f"SELECT count(*) FROM chunks_fts WHERE document_id IN ({marks})", *doc_ids) == 0
    assert count(conn, f"SELECT count(*) FROM chunk_vectors WHERE document_id IN ({marks})", *doc_ids) == 0
    assert_chunk_ids_gone(conn, chunk_id_list)


def test_delete_document(raw, two_sources) -> None:
    target = two_sources["a2"]
    its_chunks = chunk_ids(raw, target)
    others = _rows_not_of(raw, [target])
    checkpoints = raw.execute("SELECT * FROM checkpoints ORDER BY source").fetchall()
    assert store.delete_document(target) is True
    _assert_nothing_of(raw, [target], its_chunks)
    assert _rows_not_of(raw, [target]) == others
    assert raw.execute("SELECT * FROM checkpoints ORDER BY source").fetchall() == checkpoints
    assert_fts_matches_chunks(raw)
    before = table_rows(raw)
    assert store.delete_document(target) is False
    assert store.delete_document(str(uuid.uuid4())) is False
    assert table_rows(raw) == before


def test_delete_source(raw, two_sources) -> None:
    a_ids = [two_sources[k] for k in ("a1", "a2", "a3")]
    a_chunks = [cid for d in a_ids for cid in chunk_ids(raw, d)]
    others = _rows_not_of(raw, a_ids)
    assert store.delete_source("a") == 3
    _assert_nothing_of(raw, a_ids, a_chunks)
    assert _rows_not_of(raw, a_ids) == others
    assert raw.execute("SELECT source, cursor FROM checkpoints").fetchall() == [("b", "200")]
    assert store.get_checkpoint("a") is None
    assert_fts_matches_chunks(raw)
    assert store.delete_source("a") == 0
    assert store.delete_source("never") == 0
    # a source with only a checkpoint loses it too
    store.set_checkpoint("only-cp", 1)
    assert store.delete_source("only-cp") == 0
    assert store.get_checkpoint("only-cp") is None


# --------------------------------------------------------------------------- stats


def test_stats(db, raw, two_sources, embedder) -> None:
    store.ingest("c", "1", "no vectors here")
    stale_chunk = chunk_ids(raw, two_sources["b1"])[0]
    raw.execute("UPDATE embeddings SET hash = 'stale' WHERE chunk_id = ?", (stale_chunk,))
    report = store.stats()
    n_chunks = total(raw, "chunks")
    assert report.documents == 6
    assert report.chunks == n_chunks
    assert report.embedded == n_chunks - 1 - 1  # c:1 has no vector, one is stale
    assert report.stale == 1
    assert report.models == {embedder.model: total(raw, "embeddings")}
    assert report.size_bytes >= _file_size(db)
    per = {s.source: s for s in report.sources}
    assert list(per) == ["a", "b", "c"]
    for source in ("a", "b", "c"):
        docs = count(raw, "SELECT count(*) FROM documents WHERE source = ?", source)
        chunks = count(raw, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source = ?", source)
        assert (per[source].documents, per[source].chunks) == (docs, chunks)
    assert per["a"].embedded == per["a"].chunks
    assert per["b"].embedded == per["b"].chunks - 1
    assert per["c"].embedded == 0
    assert (per["a"].checkpoint, per["b"].checkpoint, per["c"].checkpoint) == (100, 200, None)
    assert per["a"].checkpoint_at is not None and per["c"].checkpoint_at is None
    as_dict = report.to_dict()
    json.dumps(as_dict)
    assert as_dict["stale"] == 1 and len(as_dict["sources"]) == 3


def _file_size(db) -> int:
    """The SQLite file's size; a PostgreSQL database has no file of its own, so 1."""
    return os.path.getsize(db.database) if isinstance(db, ctx_models.backends.sqlite.connection.ContextDatabase) else 1


def test_stats_of_empty_database(db, raw) -> None:
    report = store.stats()
    assert (report.documents, report.chunks, report.embedded, report.stale, report.models) == (0, 0, 0, 0, {})
    assert report.sources == []
    assert report.size_bytes >= _file_size(db) > 0


# --------------------------------------------------------------------------- export


def test_export_json_lines_round_trip(raw) -> None:
    store.ingest("s1", "b", LONG, max_tokens=5, metadata={"k": ["ü", 1]}, title="B")
    store.ingest("s1", "a", "body ─ 😀", metadata={}, raw_json={"r": 1})
    store.ingest("s2", "z", "other\n\nsource", max_tokens=1)
    store.upsert_document("s2", "bare", "no chunks yet")
    fp = io.StringIO()
    assert store.export(fp) == 4
    lines = fp.getvalue().splitlines()
    assert len(lines) == 4 and fp.getvalue().endswith("\n")
    exported = [json.loads(line) for line in lines]
    assert [(d["source"], d["source_id"]) for d in exported] == [("s1", "a"), ("s1", "b"), ("s2", "bare"), ("s2", "z")]
    for d in exported:
        row = doc_row(raw, d["source"], d["source_id"])
        assert d["id"] == row["id"] and d["body"] == row["body"] and d["title"] == row["title"]
        assert d["metadata"] == json.loads(row["metadata_json"])
        assert d["dedup_hash"] == row["dedup_hash"]
        chunks = raw.execute(
            "SELECT id, chunk_index, text, hash FROM chunks WHERE document_id = ? ORDER BY chunk_index", (d["id"],)
        ).fetchall()
        assert [(c["id"], c["chunk_index"], c["text"], c["hash"]) for c in d["chunks"]] == chunks
    assert exported[1]["metadata"] == {"k": ["ü", 1]}
    assert len(exported[1]["chunks"]) > 1
    assert exported[2]["chunks"] == []
    fp = io.StringIO()
    assert store.export(fp, source="s2") == 2
    assert [json.loads(line)["source_id"] for line in fp.getvalue().splitlines()] == ["bare", "z"]
    fp = io.StringIO()
    assert store.export(fp, source="none") == 0
    assert fp.getvalue() == ""


def test_export_few_hundred_documents(raw) -> None:
    n = 300
    store.ingest_many(
        ({"source": f"src{i % 3}", "source_id": f"{i:04d}", "body": f"doc {i}\n\n" + "x " * (i % 40), "metadata": {"i": i}}
         for i in range(n)),
        max_tokens=5,
        batch_size=100,
    )
    fp = io.StringIO()
    assert store.export(fp) == n
    exported = [json.loads(line) for line in fp.getvalue().splitlines()]
    assert len(exported) == n
    assert sorted(d["metadata"]["i"] for d in exported) == list(range(n))
    assert sum(len(d["chunks"]) for d in exported) == total(raw, "chunks")
    for d in exported:
        assert [c["chunk_index"] for c in d["chunks"]] == list(range(len(d["chunks"])))
        assert [c["text"] for c in d["chunks"]] == chunk_text(d["body"], 5)
    fp = io.StringIO()
    assert store.export(fp, source="src1") == n // 3


# --------------------------------------------------------------------------- rows written by the ctx tool


def _renumber_fts(conn: sqlite3.Connection, layout: str) -> None:
    """Give ctx's FTS rows rowids that do not match their chunks' rowids."""
    rows = conn.execute("SELECT rowid, chunk_id, document_id, text FROM chunks_fts ORDER BY rowid").fetchall()
    conn.execute("BEGIN")
    conn.execute("DELETE FROM chunks_fts")
    if layout == "shifted":
        new = [(rowid + 1000, *rest) for rowid, *rest in rows]
    else:  # rotated: each rowid now holds another chunk, across documents
        new = [(rows[(i + 1) % len(rows)][0], *rows[i][1:]) for i in range(len(rows))]
    conn.executemany("INSERT INTO chunks_fts (rowid, chunk_id, document_id, text) VALUES (?,?,?,?)", new)
    conn.execute("COMMIT")


@pytest.mark.parametrize("layout", ["as-written", "shifted", "rotated"])
def test_ingest_over_ctx_written_document(ctx_db, layout) -> None:
    conn, _ = ctx_db
    doc_id, old_chunks = ctx_write_document(
        conn, "ctx", "c1", ["alpha one", "alpha two", "alpha three"], vectors=[[1.0, 0.0]] * 3, title="ctx title"
    )
    other_id, other_chunks = ctx_write_document(conn, "ctx", "c2", ["beta one", "beta two"])
    if layout != "as-written":
        _renumber_fts(conn, layout)
        aligned = conn.execute(
            "SELECT count(*) FROM chunks c JOIN chunks_fts f ON f.rowid = c.rowid AND f.chunk_id = c.id"
        ).fetchone()[0]
        assert aligned == 0
    other_fts = sorted(conn.execute("SELECT chunk_id, document_id, text FROM chunks_fts WHERE document_id = ?", (other_id,)))
    created_at = conn.execute("SELECT created_at FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]

    result = store.ingest("ctx", "c1", "gamma new body\n\nwith two paragraphs", max_tokens=5)
    assert result.status == "updated" and result.document_id == doc_id
    assert conn.execute("SELECT created_at FROM documents WHERE id = ?", (doc_id,)).fetchone()[0] == created_at
    assert_chunk_ids_gone(conn, old_chunks)
    assert count(conn, "SELECT count(*) FROM chunks_fts WHERE text LIKE 'alpha%'") == 0
    assert count(conn, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'alpha'") == 0
    assert count(conn, "SELECT count(*) FROM chunk_vectors WHERE document_id = ?", doc_id) == 0
    assert total(conn, "chunks_fts") == total(conn, "chunks")
    assert_fts_matches_chunks(conn)
    assert sorted(conn.execute("SELECT chunk_id, document_id, text FROM chunks_fts WHERE document_id = ?", (other_id,))) == other_fts
    assert chunk_ids(conn, other_id) == other_chunks

    # a second update, and deleting the other ctx document, keep the invariant
    store.ingest("ctx", "c1", "delta", max_tokens=5)
    assert_fts_matches_chunks(conn)
    assert store.delete_document(other_id) is True
    assert_fts_matches_chunks(conn)
    assert count(conn, "SELECT count(*) FROM chunks_fts WHERE document_id = ?", other_id) == 0


def test_delete_source_of_ctx_written_rows(ctx_db) -> None:
    conn, _ = ctx_db
    ctx_write_document(conn, "ctx", "c1", ["a", "b"], vectors=[[1.0], [2.0]])
    ctx_write_document(conn, "ctx", "c2", ["c"], vectors=[[3.0]])
    ctx_set_checkpoint(conn, "ctx", 42)
    _renumber_fts(conn, "shifted")
    keep = store.ingest("mine", "x", "my text").document_id
    assert store.get_checkpoint("ctx") == 42
    assert store.delete_source("ctx") == 2
    for table in ("chunks", "chunks_fts", "embeddings", "chunk_vectors"):
        assert total(conn, table) == (1 if table in ("chunks", "chunks_fts") else 0), table
    assert conn.execute("SELECT id FROM documents").fetchall() == [(keep,)]
    assert total(conn, "checkpoints") == 0


def test_ctx_written_document_unchanged_is_left_alone(ctx_db) -> None:
    conn, _ = ctx_db
    doc_id, _ = ctx_write_document(conn, "ctx", "c1", ["same text"], updated_at=1_767_225_600)
    before = table_rows(conn)
    result = store.ingest("ctx", "c1", "same text", updated_at=1_767_225_600, title=None, metadata={"from": "ctx"})
    # author differs ("ctx" vs None) so the row is rewritten, but chunks are not touched
    assert result.document_id == doc_id and result.status in ("unchanged", "metadata")
    after = table_rows(conn)
    for table in ("chunks", "chunks_fts", "embeddings", "chunk_vectors", "checkpoints"):
        assert after[table] == before[table]


# --------------------------------------------------------------------------- chunks follow the body


def test_ingest_rechunks_when_upsert_document_changed_the_body_alone(raw, embedder) -> None:
    first = store.ingest("s", "x", "old text", embedder=embedder)
    store.upsert_document("s", "x", "new text")  # the body changes, the chunks do not
    again = store.ingest("s", "x", "new text", embedder=embedder)
    assert again.status == "updated" and again.chunks == 1
    texts = [row[0] for row in raw.execute("SELECT text FROM chunks WHERE document_id = ?", (first.document_id,))]
    assert texts == ["new text"]
    assert count(raw, "SELECT count(*) FROM chunk_vectors WHERE document_id = ?", first.document_id) == 1
    assert_fts_matches_chunks(raw)
    assert store.ingest("s", "x", "new text", embedder=embedder).status == "unchanged"


def test_ingest_gives_chunks_to_a_document_created_without_them(raw) -> None:
    document, _ = store.upsert_document("s", "bare", "a body with no chunks yet")
    assert count(raw, "SELECT count(*) FROM chunks WHERE document_id = ?", document.id) == 0
    result = store.ingest("s", "bare", "a body with no chunks yet")
    assert result.status == "updated" and result.document_id == document.id
    assert count(raw, "SELECT count(*) FROM chunks WHERE document_id = ?", document.id) == 1


def test_ingest_keeps_chunks_the_other_program_wrote_for_the_same_body(ctx_db) -> None:
    conn, path = ctx_db
    # Chunks as the contract's rule makes them: the ctx tool chunks as we do.
    long_paragraph = "word " * 700
    texts = chunk_text("alpha\n\nbeta\n\n" + long_paragraph)
    assert len(texts) == 3
    doc_id, chunk_ids_before = ctx_tool.ctx_write_document(conn, "git:p", "a.md", texts)
    body = "\n\n".join(texts)
    ctx_models.connect(path)
    result = store.ingest("git:p", "a.md", body, updated_at=1_767_225_600, metadata={"from": "ctx"}, author="ctx")
    assert result.status == "unchanged"
    assert [r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY chunk_index")] == chunk_ids_before


def test_ingest_many_gives_every_document_and_chunk_a_distinct_uuid4(raw) -> None:
    items = [{"source": "bulk", "source_id": f"d{i}", "body": f"alpha {i}\n\n" + "\n\n".join(["beta " * 300] * 3)} for i in range(30)]
    store.ingest_many(items)
    doc_ids = [r[0] for r in raw.execute("SELECT id FROM documents").fetchall()]
    chunk_ids = [r[0] for r in raw.execute("SELECT id FROM chunks").fetchall()]
    assert len(doc_ids) == 30 and len(chunk_ids) > 30
    assert all(is_uuid4(i) for i in doc_ids + chunk_ids)
    assert len(set(doc_ids + chunk_ids)) == len(doc_ids) + len(chunk_ids)
    uuid_variant = {uuid.UUID(i).variant for i in doc_ids + chunk_ids}
    assert uuid_variant == {uuid.RFC_4122}
