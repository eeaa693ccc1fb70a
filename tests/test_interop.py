"""Interoperability with the ctx tool: its databases read and written by us, ours read by it.

tests/ctx_tool.py stands for the other program: the contract's DDL written by
hand and rows written as ctx writes them (UUID ids, integer timestamps,
little-endian float32 BLOBs). The checks "as ctx reads it" below use plain
sqlite3 and struct, nothing from ctx_models.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import struct
import uuid
from pathlib import Path

import ctx_tool  # tests/ctx_tool.py (conftest puts tests/ on sys.path)
import numpy as np
import pytest

import ctx_models
from ctx_models import Checkpoint, Chunk, ChunkVector, Document, Embedding, integrity, search, store
from ctx_models.chunking import chunk_text
from ctx_models.embedders import HashingEmbedder

UTC = dt.UTC
DIMS = 8
CTX_MODEL = "ctx-test-model"


def unit(index: int, scale: float = 1.0) -> list[float]:
    """An exactly representable float32 vector."""
    values = [0.0] * DIMS
    values[index % DIMS] = scale
    values[(index + 3) % DIMS] = -0.25 * scale
    return values


def ctx_write_crossed(
    conn: sqlite3.Connection,
    source: str,
    docs: list[tuple[str, list[str]]],
    updated_at: int = 1_767_225_600,
) -> list[tuple[str, list[str]]]:
    """Write documents as ctx does, but all chunks first and then the FTS rows in reverse document
    order, so FTS rowids are not the rowids of their chunks (a program may write them in any order)."""
    written = []
    conn.execute("BEGIN")
    for source_id, chunks in docs:
        body = "\n\n".join(chunks)
        doc_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO documents (id, source, source_id, source_url, title, author, created_at, updated_at, "
            "content_type, body, metadata_json, raw_json, dedup_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                doc_id,
                source,
                source_id,
                f"https://example.com/{source_id}",
                source_id.upper(),
                "ctx",
                updated_at - 100,
                updated_at,
                "text/markdown",
                body,
                '{"from": "ctx", "n": 1}',
                '{"raw": true}',
                ctx_tool.dedup_hash(source, source_id, updated_at, body),
            ),
        )
        ids = []
        for index, text in enumerate(chunks):
            chunk_id = str(uuid.uuid4())
            ids.append(chunk_id)
            conn.execute(
                "INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES (?,?,?,?,?)",
                (chunk_id, doc_id, index, text, ctx_tool.sha256(text)),
            )
        written.append((doc_id, ids))
    for (doc_id, ids), (_, chunks) in reversed(list(zip(written, docs))):
        for chunk_id, text in zip(ids, chunks):
            conn.execute(
                "INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES (?,?,?)",
                (chunk_id, doc_id, text),
            )
    conn.execute("COMMIT")
    return written


@pytest.fixture
def ctx_db(tmp_path: Path):
    """A database made entirely by the 'ctx tool'; returns (path, what was written)."""
    path = tmp_path / "ctx.sqlite"
    conn = ctx_tool.create_contract_db(str(path))
    written = {}
    written["runbook"] = ctx_tool.ctx_write_document(
        conn,
        "filesystem",
        "docs/runbook.md",
        [
            "Postgres failover runbook: promote the replica",
            "Check replication lag before the switch",
        ],
        title="Runbook",
        vectors=[unit(0), unit(1)],
        model=CTX_MODEL,
        updated_at=1_767_225_600,
    )
    written["kafka"] = ctx_tool.ctx_write_document(
        conn,
        "filesystem",
        "docs/kafka.md",
        ["Kafka consumer lag dashboard", "Rebalance storms and timeouts"],
        title="Kafka",
        vectors=[unit(2), unit(3, 2.0)],
        model=CTX_MODEL,
        updated_at=1_767_312_000,
    )
    written["ticket"] = ctx_tool.ctx_write_document(
        conn,
        "jira",
        "OPS-142",
        ["Ticket OPS-142: failover drill follow-ups"],
        updated_at=1_767_398_400,
        metadata_json="{}",
    )
    crossed = ctx_write_crossed(
        conn,
        "git:platform",
        [
            (
                "README.md",
                ["Platform overview zebra", "Deploy pipeline giraffe", "Rollback steps okapi"],
            ),
            ("CHANGELOG.md", ["Release notes walrus"]),
        ],
    )
    written["readme"], written["changelog"] = crossed
    ctx_tool.ctx_set_checkpoint(conn, "filesystem", 1_767_312_000)
    ctx_tool.ctx_set_checkpoint(conn, "jira", 1_767_398_400)
    misaligned = conn.execute(
        "SELECT count(*) FROM chunks AS c JOIN chunks_fts AS f ON f.rowid = c.rowid WHERE f.chunk_id != c.id"
    ).fetchone()[0]
    assert misaligned > 0, "the fixture should hold FTS rows whose rowids are not their chunks'"
    conn.close()
    return path, written


def consistent_for_ctx(path: Path) -> None:
    """The checks a program that only knows the contract would make, with plain sqlite3."""
    conn = sqlite3.connect(path)
    try:
        def q(sql):
            return conn.execute(sql).fetchall()

        assert q("SELECT id FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)") == []
        assert (
            q("SELECT chunk_id FROM chunks_fts WHERE chunk_id NOT IN (SELECT id FROM chunks)") == []
        )
        assert (
            q("SELECT chunk_id FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)") == []
        )
        assert (
            q("SELECT chunk_id FROM chunk_vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)")
            == []
        )
        assert (
            q(
                "SELECT chunk_id FROM chunk_vectors WHERE document_id NOT IN (SELECT id FROM documents)"
            )
            == []
        )
        assert q("SELECT count(*) FROM chunks_fts") == q("SELECT count(*) FROM chunks")
        assert (
            q(
                "SELECT c.id FROM chunks AS c WHERE (SELECT count(*) FROM chunks_fts AS f "
                "WHERE f.chunk_id = c.id AND f.text = c.text AND f.document_id = c.document_id) != 1"
            )
            == []
        )
        assert (
            q(
                "SELECT v.chunk_id FROM chunk_vectors AS v JOIN embeddings AS e ON e.chunk_id = v.chunk_id "
                "WHERE length(v.embedding) != 4 * e.dims"
            )
            == []
        )
        assert (
            q(
                "SELECT v.chunk_id FROM chunk_vectors AS v JOIN chunks AS c ON c.id = v.chunk_id "
                "WHERE v.document_id != c.document_id"
            )
            == []
        )
        assert (
            q(
                "SELECT document_id FROM chunks GROUP BY document_id "
                "HAVING min(chunk_index) != 0 OR max(chunk_index) != count(*) - 1"
            )
            == []
        )
        assert q("SELECT id FROM chunks WHERE hash != lower(hash)") == []
        for text, digest in q("SELECT text, hash FROM chunks"):
            assert digest == ctx_tool.sha256(text)
        for source, source_id, updated_at, body, digest in q(
            "SELECT source, source_id, updated_at, body, dedup_hash FROM documents"
        ):
            assert digest == ctx_tool.dedup_hash(source, source_id, updated_at, body)
        for (cursor,) in q("SELECT cursor FROM checkpoints"):
            int(cursor)
        assert q("PRAGMA foreign_key_check") == []
        assert q("PRAGMA integrity_check") == [("ok",)]
    finally:
        conn.close()


# --------------------------------------------------------------------------- ctx -> ctx_models


def test_run_migrations_changes_nothing(ctx_db) -> None:
    path, _ = ctx_db
    conn = sqlite3.connect(path)
    before = ctx_tool.table_rows(conn)
    schema_before = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
    ).fetchall()
    conn.close()

    db = ctx_models.connect(path)
    result = ctx_models.run_migrations(db)
    again = ctx_models.run_migrations(db)
    db.close()
    assert not result.changed and result.created == [] and not again.changed

    conn = sqlite3.connect(path)
    try:
        assert ctx_tool.table_rows(conn) == before
        assert (
            conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
            ).fetchall()
            == schema_before
        )
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        conn.close()


def test_models_read_every_row(ctx_db) -> None:
    path, written = ctx_db
    db = ctx_models.connect(path)
    try:
        conn = sqlite3.connect(path)
        raw_docs = {r[0]: r for r in conn.execute("SELECT * FROM documents")}
        raw_chunks = {r[0]: r for r in conn.execute("SELECT * FROM chunks")}
        raw_embeddings = {r[0]: r for r in conn.execute("SELECT * FROM embeddings")}
        raw_vectors = {r[0]: r for r in conn.execute("SELECT * FROM chunk_vectors")}
        conn.close()

        docs = list(Document.select())
        assert {d.id for d in docs} == set(raw_docs)
        for doc in docs:
            raw = raw_docs[doc.id]
            assert str(uuid.UUID(doc.id)) == doc.id
            assert (doc.source, doc.source_id, doc.source_url, doc.title, doc.author) == raw[1:6]
            assert (
                doc.created_at == dt.datetime.fromtimestamp(raw[6], UTC)
                and doc.created_at.tzinfo is not None
            )
            assert doc.updated_at == dt.datetime.fromtimestamp(raw[7], UTC)
            assert doc.updated_at.utcoffset() == dt.timedelta(0)
            assert (doc.content_type, doc.body) == raw[8:10]
            assert doc.metadata == json.loads(raw[10]) and isinstance(doc.metadata, dict)
            assert (doc.raw_json, doc.dedup_hash) == raw[11:13]

        chunks = list(Chunk.select())
        assert {c.id for c in chunks} == set(raw_chunks)
        for chunk in chunks:
            assert (
                chunk.id,
                chunk.document_id,
                chunk.chunk_index,
                chunk.text,
                chunk.hash,
            ) == raw_chunks[chunk.id]

        embeddings = list(Embedding.select())
        assert {e.chunk_id for e in embeddings} == set(raw_embeddings)
        for e in embeddings:
            raw = raw_embeddings[e.chunk_id]
            assert (e.model, e.dims, e.hash) == (raw[1], raw[2], raw[4])
            assert e.created_at == dt.datetime.fromtimestamp(raw[3], UTC)

        vectors = list(ChunkVector.select())
        expected = {}
        for key, scale_of in (("runbook", {0: 1.0, 1: 1.0}), ("kafka", {0: 1.0, 1: 2.0})):
            doc_id, chunk_ids = written[key]
            base = 0 if key == "runbook" else 2
            for i, chunk_id in enumerate(chunk_ids):
                expected[chunk_id] = (doc_id, unit(base + i, scale_of[i]))
        assert {v.chunk_id for v in vectors} == set(expected) == set(raw_vectors)
        for v in vectors:
            assert isinstance(v.embedding, np.ndarray) and v.embedding.dtype == np.float32
            assert v.embedding.tolist() == expected[v.chunk_id][1]
            assert v.document_id == expected[v.chunk_id][0]
            assert v.embedding.astype("<f4").tobytes() == raw_vectors[v.chunk_id][2]

        cursors = {c.source: c.cursor for c in Checkpoint.select()}
        assert cursors == {"filesystem": 1_767_312_000, "jira": 1_767_398_400}
        assert all(type(v) is int for v in cursors.values())
        assert store.get_checkpoint("filesystem") == 1_767_312_000

        doc = store.get_document_by_source("git:platform", "README.md")
        assert [c.text for c in doc.chunks] == [
            "Platform overview zebra",
            "Deploy pipeline giraffe",
            "Rollback steps okapi",
        ]
        assert integrity.check(db).clean
    finally:
        db.close()


def test_search_finds_ctx_rows(ctx_db) -> None:
    path, written = ctx_db
    db = ctx_models.connect(path)
    try:
        hits = search.keyword_search("replication lag")
        assert hits[0].chunk_id == written["runbook"][1][1]  # both words
        assert [h.chunk_id for h in hits[1:]] == [written["kafka"][1][0]]  # "lag" only
        strict = search.keyword_search("replication lag", match="all")
        assert [h.chunk_id for h in strict] == [written["runbook"][1][1]]
        assert ">>>replication<<<" in hits[0].snippet
        okapi = search.keyword_search("okapi")
        assert [h.chunk_id for h in okapi] == [written["readme"][1][2]]

        vector = np.array(unit(3, 2.0), dtype=np.float32)
        found = search.vector_search(vector, limit=2)
        assert found[0].chunk_id == written["kafka"][1][1] and found[0].score == pytest.approx(
            1.0, abs=1e-6
        )
        assert (
            search.vector_search(vector, model=CTX_MODEL, limit=1)[0].chunk_id
            == written["kafka"][1][1]
        )

        results = search.hybrid_search("failover", np.array(unit(0), dtype=np.float32))
        assert results[0].id == written["runbook"][0]
        assert {r.id for r in results} >= {written["runbook"][0], written["ticket"][0]}
        assert results[0].updated_at == "2026-01-01T00:00:00Z"
        keyword_only = search.hybrid_search("walrus", mode="keyword")
        assert [r.id for r in keyword_only] == [written["changelog"][0]]
    finally:
        db.close()


def test_our_updates_and_deletes_keep_a_ctx_database_consistent(ctx_db) -> None:
    path, written = ctx_db
    db = ctx_models.connect(path)
    embedder = HashingEmbedder(16)
    try:
        doc_id, old_chunks = written["runbook"]
        created = Document.get_by_id(doc_id).created_at
        new_body = "Postgres failover runbook v2\n\nPromote the replica with pg_ctl\n\nThen repoint the DNS record"
        result = store.ingest(
            "filesystem", "docs/runbook.md", new_body, embedder=embedder, max_tokens=8
        )
        assert result.status == "updated" and result.document_id == doc_id
        doc = store.get_document(doc_id)
        assert doc.created_at == created
        assert [c.text for c in doc.chunks] == chunk_text(new_body, 8)
        consistent_for_ctx(path)
        conn = sqlite3.connect(path)
        leftovers = conn.execute(
            f"SELECT count(*) FROM chunks_fts WHERE chunk_id IN ({','.join('?' * len(old_chunks))})",
            old_chunks,
        ).fetchone()[0]
        conn.close()
        assert leftovers == 0
        assert [h.document_id for h in search.keyword_search("repoint DNS")] == [doc_id]

        # A crossed (misaligned) document: its FTS rows sit at other chunks' rowids.
        readme_id, _ = written["readme"]
        store.ingest(
            "git:platform", "README.md", "Platform overview rewritten: capybara", embedder=embedder
        )
        consistent_for_ctx(path)
        assert search.keyword_search("zebra") == []
        assert [h.document_id for h in search.keyword_search("capybara")] == [readme_id]
        assert [h.chunk_id for h in search.keyword_search("walrus")] == written["changelog"][1]

        assert store.delete_document(written["kafka"][0]) is True
        consistent_for_ctx(path)
        assert search.keyword_search("kafka") == []

        assert store.delete_source("git:platform") == 2
        consistent_for_ctx(path)
        assert search.keyword_search("walrus") == [] and search.keyword_search("capybara") == []

        assert store.delete_source("filesystem") == 1
        consistent_for_ctx(path)
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("SELECT source FROM documents").fetchall() == [("jira",)]
            assert conn.execute("SELECT source, cursor FROM checkpoints").fetchall() == [
                ("jira", "1767398400")
            ]
            assert conn.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0] == 0
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        finally:
            conn.close()
        assert integrity.check(db).clean
    finally:
        db.close()


# --------------------------------------------------------------------------- ctx_models -> ctx


def test_ctx_reads_our_database(db, db_path: Path, embedder: HashingEmbedder) -> None:
    body = "First paragraph about failover.\n\nSecond paragraph, über-long words: ☃ snowman."
    result = store.ingest(
        "filesystem",
        "notes/a.md",
        body,
        embedder=embedder,
        title="A",
        updated_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        metadata={"tags": ["x"]},
        max_tokens=8,
    )
    store.ingest("jira", "OPS-1", "Ticket text", created_at=1_700_000_000, updated_at=1_700_000_100)
    store.set_checkpoint("filesystem", 1_767_323_045)
    db.close()

    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        for (
            doc_id,
            created,
            updated,
            metadata,
            source,
            source_id,
            body_text,
            digest,
            kinds,
        ) in conn.execute(
            "SELECT id, created_at, updated_at, metadata_json, source, source_id, body, dedup_hash, "
            "typeof(created_at) || typeof(updated_at) FROM documents"
        ):
            assert str(uuid.UUID(doc_id, version=4)) == doc_id
            assert kinds == "integerinteger"
            assert isinstance(json.loads(metadata), dict)
            assert digest == ctx_tool.dedup_hash(source, source_id, updated, body_text)
        row = conn.execute(
            "SELECT id, updated_at FROM documents WHERE source_id = 'notes/a.md'"
        ).fetchone()
        assert row == (result.document_id, 1_767_323_045)

        chunks = conn.execute(
            "SELECT id, chunk_index, text, hash FROM chunks WHERE document_id = ? ORDER BY chunk_index",
            (result.document_id,),
        ).fetchall()
        assert [c[2] for c in chunks] == chunk_text(body, 8) and len(chunks) >= 2
        for chunk_id, _, text, digest in chunks:
            assert str(uuid.UUID(chunk_id, version=4)) == chunk_id
            assert digest == ctx_tool.sha256(text)
            assert conn.execute(
                "SELECT document_id, text FROM chunks_fts WHERE chunk_id = ?", (chunk_id,)
            ).fetchall() == [(result.document_id, text)]
            model, dims, e_hash = conn.execute(
                "SELECT model, dims, hash FROM embeddings WHERE chunk_id = ?", (chunk_id,)
            ).fetchone()
            assert (model, dims, e_hash) == (embedder.model, 384, digest)
            (blob,) = conn.execute(
                "SELECT embedding FROM chunk_vectors WHERE chunk_id = ?", (chunk_id,)
            ).fetchone()
            assert isinstance(blob, bytes) and len(blob) == 4 * dims
            values = struct.unpack(f"<{dims}f", blob)
            assert list(values) == embedder.embed([text])[0].tolist()
        # ctx matches with the FTS5 table directly, ranked by bm25.
        matched = conn.execute(
            "SELECT chunk_id FROM chunks_fts WHERE chunks_fts MATCH '\"snowman\"' ORDER BY rank"
        ).fetchall()
        assert matched == [(chunks[-1][0],)]

        (cursor,) = conn.execute(
            "SELECT cursor FROM checkpoints WHERE source = 'filesystem'"
        ).fetchone()
        assert isinstance(cursor, str) and int(cursor) == 1_767_323_045

        # Declared types are exactly the contract's.
        types = {
            (t, c[1]): c[2]
            for t in ("documents", "chunks", "checkpoints", "embeddings", "chunk_vectors")
            for c in conn.execute(f"PRAGMA table_info({t})")
        }
        assert set(types.values()) == {"TEXT", "INTEGER", "BLOB"}
        assert (
            types[("chunk_vectors", "embedding")] == "BLOB"
            and types[("documents", "created_at")] == "INTEGER"
        )

        # The ctx tool's own schema creation, run on our database, changes nothing.
        before = ctx_tool.table_rows(conn)
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        conn.executescript(ctx_tool.CONTRACT_DDL)
        assert ctx_tool.table_rows(conn) == before
        assert (
            conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
            == schema
        )
    finally:
        conn.close()
    consistent_for_ctx(db_path)
