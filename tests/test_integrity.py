"""integrity.check and `ctx-models check`: every kind of damage is found, counted and (when certain) repaired.

Each damage is made through a second, plain connection on a small database
written by store.ingest with the hashing embedder: sqlite3 with foreign keys
off, or psycopg with ``session_replication_role = replica`` (PostgreSQL's way
of loading rows without firing the foreign-key triggers, as a replica or
``pg_restore --disable-triggers`` does), so orphans can be made on both.

The logical damages (keyword rows, orphans, sizes, staleness, edited text,
gaps, cursors, metadata, timestamps, missing tables and indexes) run on both
backends, with the same findings and counts. What only a SQLite file can hold
(vectors that are not whole float32 values or hold NaN or infinity: pgvector's
type refuses them) and the file itself (not a database, truncated) are SQLite
only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RawPostgres

import ctx_models
from ctx_models import integrity, search, store
from ctx_models.embedders import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 16  # 64 bytes: each paragraph below is one chunk
DOCS = 8
PARAGRAPHS = 3
BAD_EPOCH = 10**15  # an integer, but no datetime holds it (beyond 9999-12-31)

BOTH = pytest.mark.backends("sqlite", "postgres")


def paragraph(doc: int, number: int) -> str:
    return f"document {doc} paragraph {number} word{doc}x{number} text"


@dataclass
class Store:
    location: Path | str  # a SQLite file, or a PostgreSQL URL (the test's schema)
    backend: str
    db: Any
    embedder: HashingEmbedder
    docs: list[str]  # document ids, by document number
    chunks: list[list[str]]  # chunk ids, by document number and chunk index


@pytest.fixture
def built(db, location, backend: str, embedder: HashingEmbedder) -> Store:
    docs, chunks = [], []
    for n in range(DOCS):
        body = "\n\n".join(paragraph(n, p) for p in range(PARAGRAPHS))
        result = store.ingest(
            "files",
            f"doc{n}.txt",
            body,
            embedder=embedder,
            max_tokens=MAX_TOKENS,
            metadata={"n": n},
        )
        assert result.chunks == PARAGRAPHS
        docs.append(result.document_id)
        chunks.append([c.id for c in store.get_document(result.document_id).chunks])
    store.set_checkpoint("files", 1_700_000_000)
    assert integrity.check(db).clean
    return Store(location, backend, db, embedder, docs, chunks)


@pytest.fixture
def close_cli_connection(location) -> Iterator[None]:
    """The CLI opens (and binds) its own connection; close it before the test's database
    (a PostgreSQL schema) is dropped."""
    yield
    try:
        bound = ctx_models.bound_database()
    except ctx_models.CtxModelsError:
        return
    bound.close()


def plain(location: Path | str) -> Any:
    """A plain autocommit connection (sqlite3, or psycopg speaking the tests' dialect)."""
    if isinstance(location, Path):
        return sqlite3.connect(location, isolation_level=None)
    return RawPostgres(location)


def raw(location: Path | str) -> Any:
    """A plain connection that does not enforce foreign keys: how the damage is done."""
    conn = plain(location)
    if isinstance(location, Path):
        conn.execute("PRAGMA foreign_keys = OFF")
    else:
        conn.execute("SET session_replication_role = replica")
    return conn


def damage(s: Store, fn: Callable[[Any, Store], list[str]]) -> list[str]:
    conn = raw(s.location)
    try:
        return fn(conn, s)
    finally:
        conn.close()


def _column(location: Path | str, sql: str) -> set[str]:
    conn = plain(location)
    try:
        return {r[0] for r in conn.execute(sql).fetchall()}
    finally:
        conn.close()


def document_ids(location: Path | str) -> set[str]:
    return _column(location, "SELECT id FROM documents")


def parented_chunk_ids(location: Path | str) -> set[str]:
    return _column(
        location, "SELECT id FROM chunks WHERE document_id IN (SELECT id FROM documents)"
    )


def all_rows(location: Path | str) -> dict[str, list[tuple]]:
    """Every row with its physical place (SQLite's rowid, PostgreSQL's ctid, which moves when a
    row is rewritten), and the schema's objects."""
    if isinstance(location, Path):
        conn = sqlite3.connect(location)
        try:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'chunks_fts_%' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            rows = {
                t: sorted(conn.execute(f'SELECT rowid, * FROM "{t}"').fetchall(), key=repr)
                for t in tables
            }
            rows["sqlite_master"] = sorted(
                conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=repr
            )
            return rows
        finally:
            conn.close()
    pg = RawPostgres(location)
    try:
        conn = pg.conn  # plain psycopg: the SQL below is PostgreSQL's own
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
            )
        ]
        rows = {
            t: sorted(conn.execute(f'SELECT ctid::text, * FROM "{t}"').fetchall(), key=repr)
            for t in tables
        }
        rows["pg_indexes"] = sorted(
            conn.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema()"
            ).fetchall()
        )
        rows["columns"] = sorted(
            conn.execute(
                "SELECT table_name, column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = current_schema()"
            ).fetchall(),
            key=repr,
        )
        return rows
    finally:
        pg.close()


def object_names(s: Store) -> set[str]:
    """Tables and indexes the database has."""
    if s.backend == "sqlite":
        sql = "SELECT name FROM sqlite_master"
    else:
        sql = "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
    return {r[0] for r in s.db.execute_sql(sql)}


def vector_of(s: Store, values: list[float]) -> Any:
    """A stored vector as the backend's column takes it: a float32 BLOB, or pgvector's text."""
    if s.backend == "sqlite":
        return struct.pack(f"<{len(values)}f", *values)
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


# --------------------------------------------------------------------------- the damages


def chunk_without_fts(c: Any, s: Store) -> list[str]:
    c.execute("DELETE FROM chunks_fts WHERE chunk_id = ?", (s.chunks[0][1],))
    return [s.chunks[0][1]]


def fts_without_chunk(c: Any, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES ('ghost-chunk', ?, 'ghost words')",
        (s.docs[0],),
    )
    return ["ghost-chunk"]


def fts_text_differs(c: Any, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunks_fts SET text = 'something else entirely' WHERE chunk_id = ?",
        (s.chunks[1][0],),
    )
    return [s.chunks[1][0]]


def fts_duplicate(c: Any, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO chunks_fts (chunk_id, document_id, text) "
        "SELECT chunk_id, document_id, text FROM chunks_fts WHERE chunk_id = ?",
        (s.chunks[2][2],),
    )
    return [s.chunks[2][2]]


def chunk_without_document(c: Any, s: Store) -> list[str]:
    c.execute("DELETE FROM documents WHERE id = ?", (s.docs[3],))
    return list(s.chunks[3])


def embedding_without_chunk(c: Any, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO embeddings (chunk_id, model, dims, created_at, hash) VALUES ('ghost-emb', ?, 384, 1, 'x')",
        (s.embedder.model,),
    )
    return ["ghost-emb"]


def vector_without_chunk(c: Any, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES ('ghost-vec', ?, ?)",
        (s.docs[0], vector_of(s, [1.0] * 384)),
    )
    return ["ghost-vec"]


def vector_without_embedding(c: Any, s: Store) -> list[str]:
    c.execute("DELETE FROM embeddings WHERE chunk_id = ?", (s.chunks[2][0],))
    return [s.chunks[2][0]]


def embedding_without_vector(c: Any, s: Store) -> list[str]:
    c.execute("DELETE FROM chunk_vectors WHERE chunk_id = ?", (s.chunks[1][2],))
    return [s.chunks[1][2]]


def vector_wrong_document(c: Any, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET document_id = ? WHERE chunk_id = ?", (s.docs[5], s.chunks[4][0])
    )
    return [s.chunks[4][0]]


def vector_not_multiple_of_4(c: Any, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id = ?", (b"\x01" * 7, s.chunks[4][2])
    )
    return [s.chunks[4][2]]


def vector_nan(c: Any, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id = ?",
        (vector_of(s, [float("nan")] + [0.1] * 383), s.chunks[5][0]),
    )
    return [s.chunks[5][0]]


def vector_infinite(c: Any, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id = ?",
        (vector_of(s, [0.1] * 383 + [float("-inf")]), s.chunks[5][1]),
    )
    return [s.chunks[5][1]]


def stale_embedding(c: Any, s: Store) -> list[str]:
    c.execute("UPDATE embeddings SET hash = ? WHERE chunk_id = ?", ("0" * 64, s.chunks[5][2]))
    return [s.chunks[5][2]]


EDITED_TEXT = "edited by another program wordedited"


def chunk_text_edited(c: Any, s: Store) -> list[str]:
    """Another program rewrites a chunk's text (and its keyword row) but not its hash."""
    chunk_id = s.chunks[1][1]
    c.execute("UPDATE chunks SET text = ? WHERE id = ?", (EDITED_TEXT, chunk_id))
    c.execute("UPDATE chunks_fts SET text = ? WHERE chunk_id = ?", (EDITED_TEXT, chunk_id))
    return [chunk_id]


def chunk_index_gap(c: Any, s: Store) -> list[str]:
    c.execute("UPDATE chunks SET chunk_index = 7 WHERE id = ?", (s.chunks[6][1],))
    return [s.docs[6]]


def document_without_chunks(c: Any, s: Store) -> list[str]:
    ids = s.chunks[7]
    marks = ", ".join("?" * len(ids))
    for table, column in (
        ("chunk_vectors", "chunk_id"),
        ("embeddings", "chunk_id"),
        ("chunks_fts", "chunk_id"),
        ("chunks", "id"),
    ):
        c.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
    return [s.docs[7]]


def bad_cursor(c: Any, s: Store) -> list[str]:
    c.execute("INSERT INTO checkpoints (source, cursor, updated_at) VALUES ('broken', 'abc', 1)")
    return ["broken"]


def metadata_not_object(c: Any, s: Store) -> list[str]:
    c.execute("UPDATE documents SET metadata_json = '[1, 2]' WHERE id = ?", (s.docs[2],))
    return [s.docs[2]]


def metadata_not_json(c: Any, s: Store) -> list[str]:
    c.execute("UPDATE documents SET metadata_json = '{not json' WHERE id = ?", (s.docs[1],))
    return [s.docs[1]]


def timestamp_out_of_range(c: Any, s: Store) -> list[str]:
    c.execute("UPDATE documents SET updated_at = ? WHERE id = ?", (BAD_EPOCH, s.docs[4]))
    return [s.docs[4]]


def missing_index(c: Any, s: Store) -> list[str]:
    c.execute("DROP INDEX idx_chunks_document_id")
    return ["chunks: index idx_chunks_document_id is missing"]


def missing_table(c: Any, s: Store) -> list[str]:
    c.execute("DROP TABLE checkpoints")
    return ["table checkpoints is missing"]


def missing_keyword_index(c: Any, s: Store) -> list[str]:
    c.execute("DROP INDEX chunks_fts_tsv")  # PostgreSQL's GIN index over the tsvector
    return ["chunks_fts: index chunks_fts_tsv is missing"]


@dataclass(frozen=True)
class Damage:
    apply: Callable[[Any, Store], list[str]]
    code: str
    count: int
    repairable: bool
    also: frozenset[str] = field(
        default_factory=frozenset
    )  # other findings the same damage implies (with the same examples)


# Damage either backend can hold, found and repaired the same way on both.
PORTABLE = {
    "chunk-without-fts": Damage(chunk_without_fts, "chunks_without_fts", 1, True),
    "fts-without-chunk": Damage(fts_without_chunk, "fts_without_chunk", 1, True),
    "fts-text-differs": Damage(fts_text_differs, "fts_mismatch", 1, True),
    "fts-duplicate": Damage(fts_duplicate, "fts_duplicates", 1, True),
    "chunk-without-document": Damage(
        chunk_without_document, "chunks_without_document", PARAGRAPHS, True
    ),
    "embedding-without-chunk": Damage(embedding_without_chunk, "embeddings_without_chunk", 1, True),
    "vector-without-chunk": Damage(
        vector_without_chunk,
        "vectors_without_chunk",
        1,
        True,
        frozenset({"vectors_without_embedding"}),
    ),
    "vector-without-embedding": Damage(
        vector_without_embedding, "vectors_without_embedding", 1, True
    ),
    "embedding-without-vector": Damage(
        embedding_without_vector, "embeddings_without_vector", 1, True
    ),
    "vector-wrong-document": Damage(vector_wrong_document, "vectors_wrong_document", 1, True),
    "stale-embedding": Damage(stale_embedding, "stale_embeddings", 1, True),
    "chunk-text-edited": Damage(
        chunk_text_edited, "chunk_text_edited", 1, True, frozenset({"stale_embeddings"})
    ),
    "chunk-index-gap": Damage(chunk_index_gap, "chunk_index_gaps", 1, False),
    "document-without-chunks": Damage(
        document_without_chunks, "documents_without_chunks", 1, False
    ),
    "cursor-abc": Damage(bad_cursor, "bad_checkpoints", 1, False),
    "metadata-not-object": Damage(metadata_not_object, "bad_metadata", 1, False),
    "metadata-not-json": Damage(metadata_not_json, "bad_metadata", 1, False),
    "timestamp-out-of-range": Damage(timestamp_out_of_range, "bad_timestamps", 1, False),
    "missing-index": Damage(missing_index, "schema", 1, True),
    "missing-table": Damage(missing_table, "schema", 1, True),
}
# Vectors pgvector's type refuses to hold: only a SQLite BLOB can be this wrong.
SQLITE_ONLY = {
    "vector-length-not-multiple-of-4": Damage(
        vector_not_multiple_of_4, "vectors_bad_length", 1, True
    ),
    "vector-nan": Damage(vector_nan, "vectors_not_finite", 1, True),
    "vector-infinite": Damage(vector_infinite, "vectors_not_finite", 1, True),
}
# Objects only the PostgreSQL schema has.
POSTGRES_ONLY = {
    "missing-keyword-index": Damage(missing_keyword_index, "schema", 1, True),
}
DAMAGES = {**PORTABLE, **SQLITE_ONLY, **POSTGRES_ONLY}


def findings(report: integrity.CheckReport) -> dict[str, integrity.Finding]:
    codes = [f.code for f in report.findings]
    assert len(codes) == len(set(codes)), f"a code is reported twice: {codes}"
    return {f.code: f for f in report.findings}


def assert_reported_and_repaired(name: str, built: Store) -> None:
    spec = DAMAGES[name]
    examples = damage(built, spec.apply)
    docs_before = document_ids(built.location)
    chunks_before = parented_chunk_ids(built.location)

    report = integrity.check(built.db)
    assert report.quick_check == ["ok"]
    assert not report.clean
    found = findings(report)
    assert set(found) == {spec.code} | spec.also, found
    finding = found[spec.code]
    assert finding.count == spec.count
    assert sorted(finding.examples) == sorted(examples)[: integrity.EXAMPLES]
    assert finding.repairable is spec.repairable
    assert finding.description
    for code in spec.also:
        assert (
            found[code].count == len(examples)
            and sorted(found[code].examples) == sorted(examples)[: integrity.EXAMPLES]
        ), code
    assert report.repaired == {}

    rows_before = all_rows(built.location)
    repaired = integrity.check(built.db, repair=True)
    after = integrity.check(built.db)
    assert findings(after).keys() == findings(repaired).keys()
    if spec.repairable:
        assert repaired.repaired, "repair reported no changes"
        # What check counted is what repair says it fixed.
        assert {code: repaired.repaired[code] for code in found} == {
            code: f.count for code, f in found.items()
        }
        assert repaired.clean, repaired.findings
        assert after.clean, after.findings
    else:
        still = findings(after)
        assert set(still) == {spec.code}
        assert still[spec.code].count == spec.count
        assert sorted(still[spec.code].examples) == sorted(examples)
        assert all_rows(built.location) == rows_before, (
            "repair changed rows although nothing was repairable"
        )
    # A repair never deletes a document, nor a chunk whose document exists.
    assert document_ids(built.location) == docs_before
    assert parented_chunk_ids(built.location) == chunks_before


@BOTH
@pytest.mark.parametrize("name", list(PORTABLE))
def test_damage_is_reported_and_repaired(name: str, built: Store) -> None:
    assert_reported_and_repaired(name, built)


@pytest.mark.parametrize("name", list(SQLITE_ONLY))
def test_damage_only_a_sqlite_blob_can_hold_is_reported_and_repaired(
    name: str, built: Store
) -> None:
    assert_reported_and_repaired(name, built)


@pytest.mark.backends("postgres")
@pytest.mark.parametrize("name", list(POSTGRES_ONLY))
def test_damage_to_postgres_only_objects_is_reported_and_repaired(name: str, built: Store) -> None:
    assert_reported_and_repaired(name, built)
    assert {"chunks_fts_tsv"} <= object_names(built)


@BOTH
def test_vectors_whose_length_differs_from_dims_are_valid_data(built: Store) -> None:
    """embeddings.dims is what the ctx tool was configured with; the vector's length is the truth.

    Such vectors are neither reported nor deleted, and the store keeps writing that model.
    """
    conn = raw(built.location)
    conn.execute("UPDATE embeddings SET dims = 1536 WHERE model = ?", (built.embedder.model,))
    conn.close()
    rows_before = all_rows(built.location)
    assert integrity.check(built.db).clean
    assert integrity.check(built.db, repair=True).clean
    assert all_rows(built.location) == rows_before
    chunk_id = built.chunks[0][0]
    assert store.upsert_embeddings([(chunk_id, built.embedder.model, np.ones(384))]) == 1
    with pytest.raises(ctx_models.DimensionMismatchError, match="384"):
        store.upsert_embeddings([(chunk_id, built.embedder.model, np.ones(16))])


@BOTH
@pytest.mark.parametrize("name", ["chunk-without-fts", "fts-text-differs", "fts-duplicate"])
def test_repaired_fts_rows_serve_keyword_search(name: str, built: Store) -> None:
    (chunk_id,) = damage(built, DAMAGES[name].apply)
    assert integrity.check(built.db, repair=True).clean
    mark = built.db.param
    text = built.db.execute_sql(
        f"SELECT text FROM chunks WHERE id = {mark}", (chunk_id,)
    ).fetchone()[0]
    rows = built.db.execute_sql(
        f"SELECT text FROM chunks_fts WHERE chunk_id = {mark}", (chunk_id,)
    ).fetchall()
    assert rows == [(text,)]
    unique_word = text.split()[4]  # wordNxP
    assert [c.chunk_id for c in search.keyword_search(unique_word)] == [chunk_id]


def assert_repaired_vector_becomes_pending(name: str, built: Store) -> None:
    (chunk_id,) = damage(built, DAMAGES[name].apply)
    assert integrity.check(built.db, repair=True).clean
    assert [c.id for c in store.pending_chunks(built.embedder.model)] == [chunk_id]
    assert store.embed_pending(built.embedder) == 1
    assert integrity.check(built.db).clean
    text = built.db.execute_sql(
        f"SELECT text FROM chunks WHERE id = {built.db.param}", (chunk_id,)
    ).fetchone()[0]
    hits = search.vector_search(built.embedder.embed([text])[0], limit=3)
    assert hits and all(h.score == h.score for h in hits)  # no NaN scores
    assert hits[0].chunk_id == chunk_id and hits[0].score == pytest.approx(1.0)


@BOTH
@pytest.mark.parametrize(
    "name",
    [
        "stale-embedding",
        "chunk-text-edited",
        "vector-without-embedding",
        "embedding-without-vector",
    ],
)
def test_repaired_vectors_become_pending(name: str, built: Store) -> None:
    assert_repaired_vector_becomes_pending(name, built)


@pytest.mark.parametrize("name", ["vector-nan", "vector-length-not-multiple-of-4"])
def test_repaired_bad_blobs_become_pending(name: str, built: Store) -> None:
    assert_repaired_vector_becomes_pending(name, built)


@BOTH
def test_missing_index_and_table_are_recreated(built: Store) -> None:
    damage(built, missing_index)
    damage(built, missing_table)
    assert not {"checkpoints", "idx_chunks_document_id"} & object_names(built)
    report = integrity.check(built.db)
    assert [f.code for f in report.findings] == ["schema"]
    assert sorted(report.findings[0].examples) == [
        "chunks: index idx_chunks_document_id is missing",
        "table checkpoints is missing",
    ]
    assert integrity.check(built.db, repair=True).clean
    assert {"checkpoints", "idx_chunks_document_id"} <= object_names(built)


class Writes:
    """The write statements a repair sends, and which transaction each ran in."""

    WORDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP")

    def __init__(self) -> None:
        self.statements: list[str] = []  # every statement, as the engine saw it (SQLite)
        self.xids: list[tuple[str, Any]] = []  # (write, its transaction id) (PostgreSQL)

    @classmethod
    def is_write(cls, sql: str) -> bool:
        return sql.split(None, 1)[0].upper() in cls.WORDS and "'integrity-check'" not in sql


def trace_writes(built: Store, monkeypatch: pytest.MonkeyPatch) -> Writes:
    """SQLite: every statement through the trace callback. PostgreSQL: after each write, the
    id of the server's transaction that holds it (``pg_current_xact_id_if_assigned``)."""
    writes = Writes()
    if built.backend == "sqlite":
        built.db.connection().set_trace_callback(writes.statements.append)
        return writes
    original = built.db.execute_sql

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        cursor = original(sql, params, *args, **kwargs)
        if Writes.is_write(sql.strip()):
            # Gives the transaction an id if the write did not (one that changed no row);
            # a write outside the repair's transaction would get an id of its own.
            xid = original("SELECT pg_current_xact_id()::text").fetchone()[0]
            writes.xids.append((sql.strip(), xid))
        return cursor

    monkeypatch.setattr(built.db, "execute_sql", execute_sql)
    return writes


@BOTH
def test_everything_at_once_repairs_in_one_transaction(
    built: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = {**PORTABLE, **(SQLITE_ONLY if built.backend == "sqlite" else {})}
    everything = [
        d
        for name, d in held.items()
        if name not in ("missing-table", "metadata-not-json", "vector-infinite")
    ]
    expected: dict[str, list[str]] = {}
    for spec in everything:
        ids = damage(built, spec.apply)
        for code in (spec.code, *spec.also):
            expected.setdefault(code, []).extend(ids)
    docs_before = document_ids(built.location)
    chunks_before = parented_chunk_ids(built.location)

    report = integrity.check(built.db)
    found = findings(report)
    assert set(found) == set(expected)
    for code, ids in expected.items():
        assert found[code].count == len(ids), code
        assert set(found[code].examples) <= set(ids) and len(found[code].examples) == min(
            len(ids), 5
        ), code

    writes = trace_writes(built, monkeypatch)
    try:
        repaired = integrity.check(built.db, repair=True)
    finally:
        if built.backend == "sqlite":
            built.db.connection().set_trace_callback(None)
        else:
            monkeypatch.undo()

    unrepairable = {
        "chunk_index_gaps",
        "documents_without_chunks",
        "bad_checkpoints",
        "bad_metadata",
        "bad_timestamps",
    }
    assert {code: repaired.repaired[code] for code in set(found) - unrepairable} == {
        code: found[code].count for code in set(found) - unrepairable
    }
    left = findings(repaired)
    assert set(left) == unrepairable
    for code in unrepairable:
        assert left[code].count == found[code].count and left[code].examples == found[code].examples
    assert set(findings(integrity.check(built.db))) == unrepairable
    assert document_ids(built.location) == docs_before
    assert parented_chunk_ids(built.location) == chunks_before

    if built.backend == "sqlite":
        # One transaction: every write of the repair sits between its single BEGIN IMMEDIATE
        # and COMMIT.
        top = [s.strip() for s in writes.statements if not s.startswith("--")]
        begins = [i for i, s in enumerate(top) if s.upper().startswith("BEGIN IMMEDIATE")]
        assert len(begins) == 1, [s for s in top if s.upper().startswith("BEGIN")]
        start = begins[0]
        end = next(i for i in range(start, len(top)) if top[i].upper() in ("COMMIT", "END"))
        written = [i for i, s in enumerate(top) if Writes.is_write(s)]
        assert written, "the repair wrote nothing"
        assert all(start < i < end for i in written), [
            top[i][:80] for i in written if not start < i < end
        ]
    else:
        # One transaction: the server gives every write of the repair the same transaction id.
        assert writes.xids, "the repair wrote nothing"
        assert len({xid for _, xid in writes.xids}) == 1, [
            (sql[:60], xid) for sql, xid in writes.xids
        ]


# --------------------------------------------------------------------------- the command line


@BOTH
def test_cli_check_exit_codes_and_json(built: Store, run_cli, close_cli_connection) -> None:
    where = str(built.location)
    code, out, err = run_cli("check", "--db", where)
    assert (code, err) == (0, "") and "clean" in out

    code, out, _ = run_cli("check", "--db", where, "--json")
    assert code == 0 and json.loads(out)["clean"] is True

    damage(built, chunk_without_fts)
    damage(built, chunk_index_gap)
    code, out, err = run_cli("check", "--db", where)
    assert code == 1 and err == ""
    assert "chunks with no FTS row" in out and built.chunks[0][1] in out and built.docs[6] in out

    code, out, _ = run_cli("check", "--db", where, "--json")
    data = json.loads(out)
    assert code == 1 and data["clean"] is False
    assert {f["code"]: f["count"] for f in data["findings"]} == {
        "chunks_without_fts": 1,
        "chunk_index_gaps": 1,
    }

    code, out, _ = run_cli("check", "--db", where, "--repair", "--json")
    data = json.loads(out)
    assert code == 1 and data["clean"] is False  # the gap needs a person
    assert data["repaired"] == {"chunks_without_fts": 1}
    assert [f["code"] for f in data["findings"]] == ["chunk_index_gaps"]

    conn = raw(built.location)
    conn.execute("UPDATE chunks SET chunk_index = 1 WHERE id = ?", (built.chunks[6][1],))
    conn.close()
    code, out, _ = run_cli("check", "--db", where, "--repair")
    assert code == 0 and "clean" in out


def test_cli_check_unreadable_exits_2(tmp_path: Path, run_cli) -> None:
    missing = tmp_path / "nowhere" / "ctx.sqlite"
    code, out, err = run_cli("check", "--db", str(missing))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error:")
    assert not missing.exists() and not missing.parent.exists()

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, just some text\n" * 20)
    code, out, err = run_cli("check", "--db", str(garbage))
    assert code == 2 and err.count("\n") == 1 and "not a SQLite database" in err
    assert garbage.read_bytes() == b"this is not a database, just some text\n" * 20

    code, out, err = run_cli("check", "--db", str(tmp_path))
    assert code == 2 and err.count("\n") == 1

    code, out, err = run_cli("check", "--db", str(garbage), "--json")
    assert code == 2 and out == ""


def test_cli_check_server_that_is_down_exits_2(run_cli) -> None:
    """PostgreSQL's unreadable database: no server where the URL points."""
    url = "postgresql://nobody@127.0.0.1:9/db?connect_timeout=2"
    for extra in ((), ("--json",), ("--repair",)):
        code, out, err = run_cli("check", "--db", url, *extra)
        assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith("error:")
        assert "no connection to the server" in err and "Traceback" not in err


def test_cli_check_truncated_database_exits_2(built: Store, run_cli) -> None:
    built.db.close()
    conn = sqlite3.connect(built.location)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = delete")
    conn.close()
    path = Path(built.location)
    data = path.read_bytes()
    assert len(data) > 8192
    path.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli("check", "--db", str(path))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err + out


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CTX_MODELS_DB", None)
    return env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ctx_models", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=str(ROOT),
        timeout=120,
        check=False,
    )


@BOTH
def test_issue_scenario_on_the_demo_database(location, backend: str) -> None:
    where = str(location)
    seeded = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed.py"), "--db", where, "-q"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    target = Path(where) if backend == "sqlite" else where

    clean = _cli("check", "--db", where)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "clean" in clean.stdout

    conn = raw(target)
    docs = [
        r[0] for r in conn.execute("SELECT id FROM documents ORDER BY source, source_id").fetchall()
    ]
    victim_chunk = conn.execute(
        "SELECT id FROM chunks WHERE document_id = ? ORDER BY chunk_index", (docs[0],)
    ).fetchone()[0]
    orphans = sorted(
        r[0]
        for r in conn.execute("SELECT id FROM chunks WHERE document_id = ?", (docs[1],)).fetchall()
    )
    conn.execute("DELETE FROM chunks_fts WHERE chunk_id = ?", (victim_chunk,))
    conn.execute("DELETE FROM documents WHERE id = ?", (docs[1],))
    conn.close()
    docs_left = document_ids(target)
    chunks_left = parented_chunk_ids(target)

    broken = _cli("check", "--db", where)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert (
        "chunks with no FTS row" in broken.stdout
        and "chunks whose document does not exist" in broken.stdout
    )
    assert victim_chunk in broken.stdout

    report = _cli("check", "--db", where, "--json")
    assert report.returncode == 1
    data = json.loads(report.stdout)
    assert data["clean"] is False
    found = {f["code"]: f for f in data["findings"]}
    assert set(found) == {"chunks_without_fts", "chunks_without_document"}
    assert found["chunks_without_fts"]["count"] == 1 and found["chunks_without_fts"][
        "examples"
    ] == [victim_chunk]
    assert found["chunks_without_document"]["count"] == len(orphans)
    assert sorted(found["chunks_without_document"]["examples"]) == orphans[:5]

    fixed = _cli("check", "--db", where, "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired" in fixed.stdout

    again = _cli("check", "--db", where, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["clean"] is True
    assert document_ids(target) == docs_left
    assert parented_chunk_ids(target) == chunks_left


# --------------------------------------------------------------------------- values another program stored badly


def assert_bad_timestamp_is_reported(built: Store, value: object) -> None:
    """Reading such a row raises CorruptValueError telling the user to run `ctx-models check`,
    so check must find it (and a repair must not delete the document)."""
    conn = raw(built.location)
    conn.execute("UPDATE documents SET updated_at = ? WHERE id = ?", (value, built.docs[2]))
    conn.close()
    with pytest.raises(ctx_models.CorruptValueError, match="ctx-models check"):
        store.get_document(built.docs[2]).updated_at  # noqa: B018
    report = integrity.check(built.db)
    assert not report.clean, "check reports nothing, yet reading the row says to run check"
    assert any(built.docs[2] in f.examples for f in report.findings), report.findings
    integrity.check(built.db, repair=True)
    assert built.docs[2] in document_ids(built.location)


@BOTH
@pytest.mark.parametrize("value", [BAD_EPOCH, -(10**15)], ids=["too-late", "too-early"])
def test_timestamp_out_of_range_is_reported(value: int, built: Store) -> None:
    assert_bad_timestamp_is_reported(built, value)


@pytest.mark.parametrize("value", ["2024-01-01", 1e30], ids=["text", "real"])
def test_timestamp_that_is_not_an_integer_is_reported(value: object, built: Store) -> None:
    """Only SQLite's dynamic types hold these (a PostgreSQL BIGINT refuses them)."""
    assert_bad_timestamp_is_reported(built, value)


@BOTH
def test_search_over_a_bad_timestamp_raises_our_error(built: Store) -> None:
    """hybrid_search ranks by updated_at; a value that is not epoch seconds must give CorruptValueError,
    not a bare ValueError from int() or datetime."""
    value = "2024-01-01" if built.backend == "sqlite" else BAD_EPOCH
    conn = raw(built.location)
    conn.execute("UPDATE documents SET updated_at = ? WHERE id = ?", (value, built.docs[2]))
    conn.close()
    query = paragraph(2, 0)
    try:
        results = search.hybrid_search(query, built.embedder.embed([query])[0])
    except ctx_models.CtxModelsError as exc:
        assert isinstance(exc, ctx_models.CorruptValueError), exc
    else:
        assert built.docs[2] in [r.id for r in results]
