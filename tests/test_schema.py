"""The schema: equal to the contract's DDL, idempotent, safe under concurrency, and the models on top of it.

Schema comparisons use raw ``sqlite3`` PRAGMAs written here, not
``ctx_models.schema.describe_schema`` (which is code under test).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import ctx_tool
import numpy as np
import peewee
import pytest
from peewee import fn

import ctx_models
from ctx_models import (
    MODELS,
    Checkpoint,
    Chunk,
    ChunkFTS,
    ChunkVector,
    Document,
    Embedding,
    SchemaVersionError,
    integrity,
    store,
)
from ctx_models.chunking import chunk_text

ROOT = Path(__file__).resolve().parent.parent

TABLES = ("documents", "chunks", "checkpoints", "embeddings", "chunk_vectors")
INDEXES = {
    "idx_chunks_document_id": ("chunks", [("document_id", 0)]),
    "idx_documents_source": ("documents", [("source", 0)]),
    "idx_documents_updated_at": ("documents", [("updated_at", 1)]),
    "idx_chunk_vectors_document_id": ("chunk_vectors", [("document_id", 0)]),
}
# The contract's tables as its tables spell them: (name, type, NOT NULL, default, pk).
SPEC_COLUMNS = {
    "documents": [
        ("id", "TEXT", None, None, 1),
        ("source", "TEXT", 1, None, 0),
        ("source_id", "TEXT", 1, None, 0),
        ("source_url", "TEXT", 0, None, 0),
        ("title", "TEXT", 0, None, 0),
        ("author", "TEXT", 0, None, 0),
        ("created_at", "INTEGER", 1, None, 0),
        ("updated_at", "INTEGER", 1, None, 0),
        ("content_type", "TEXT", 1, "'text/plain'", 0),
        ("body", "TEXT", 1, None, 0),
        ("metadata_json", "TEXT", 1, "'{}'", 0),
        ("raw_json", "TEXT", 0, None, 0),
        ("dedup_hash", "TEXT", 1, None, 0),
    ],
    "chunks": [
        ("id", "TEXT", None, None, 1),
        ("document_id", "TEXT", 1, None, 0),
        ("chunk_index", "INTEGER", 1, None, 0),
        ("text", "TEXT", 1, None, 0),
        ("hash", "TEXT", 1, None, 0),
    ],
    "checkpoints": [
        ("source", "TEXT", None, None, 1),
        ("cursor", "TEXT", 1, None, 0),
        ("updated_at", "INTEGER", 1, None, 0),
    ],
    "embeddings": [
        ("chunk_id", "TEXT", None, None, 1),
        ("model", "TEXT", 1, None, 0),
        ("dims", "INTEGER", 1, None, 0),
        ("created_at", "INTEGER", 1, None, 0),
        ("hash", "TEXT", 1, None, 0),
    ],
    "chunk_vectors": [
        ("chunk_id", "TEXT", None, None, 1),
        ("document_id", "TEXT", 1, None, 0),
        ("embedding", "BLOB", 1, None, 0),
    ],
}
SPEC_FOREIGN_KEYS = {
    "documents": [],
    "checkpoints": [],
    "chunks": [("documents", "document_id", "id")],
    "embeddings": [("chunks", "chunk_id", "id")],
    "chunk_vectors": [("chunks", "chunk_id", "id"), ("documents", "document_id", "id")],
}
FTS_COLUMNS = ["chunk_id UNINDEXED", "document_id UNINDEXED", "text"]


# --------------------------------------------------------------------------- raw sqlite3 helpers


def _open(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


def _master(conn: sqlite3.Connection) -> list[tuple]:
    return sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(), key=repr)


def _master_names(conn: sqlite3.Connection) -> list[tuple]:
    return sorted(conn.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall())


def _user_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple]:
    """(cid, name, type, notnull, default, pk); NOT NULL of primary key columns set to None."""
    return [
        (cid, name, decl, None if pk else notnull, default, pk)
        for cid, name, decl, notnull, default, pk in conn.execute(f'PRAGMA table_info("{table}")')
    ]


def _indexes(conn: sqlite3.Connection, table: str) -> dict[str, tuple]:
    out = {}
    for _seq, name, unique, origin, partial in conn.execute(f'PRAGMA index_list("{table}")'):
        xinfo = conn.execute(f'PRAGMA index_xinfo("{name}")').fetchall()
        out[name] = (unique, origin, partial, xinfo)
    return out


def _foreign_keys(conn: sqlite3.Connection, table: str) -> list[tuple]:
    return sorted(
        (ref, src, dst, on_update, on_delete, match)
        for _id, _seq, ref, src, dst, on_update, on_delete, match in conn.execute(
            f'PRAGMA foreign_key_list("{table}")'
        )
    )


def _fts_declaration(conn: sqlite3.Connection) -> tuple[str, list[str], str]:
    """(module, column list without quotes, raw argument text) of chunks_fts."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()[0]
    match = re.fullmatch(r"\s*CREATE\s+VIRTUAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"'`\[]?chunks_fts[\"'`\]]?"
                         r"\s+USING\s+(\w+)\s*\((.*)\)\s*", sql, re.DOTALL | re.IGNORECASE)
    assert match, sql
    module, arguments = match.group(1), match.group(2)
    columns = [" ".join(re.sub(r"[\"'`\[\]]", "", item).split()) for item in arguments.split(",")]
    return module.lower(), columns, arguments


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_ours(path: Path) -> None:
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    db.close()


def _make_contract(path: Path) -> None:
    ctx_tool.create_contract_db(str(path)).close()


# --------------------------------------------------------------------------- (a) schema equality


@pytest.fixture
def both(tmp_path):
    """sqlite3 connections to a database made by run_migrations and one made from the hand-written DDL."""
    ours, theirs = tmp_path / "ours.sqlite", tmp_path / "theirs.sqlite"
    _make_ours(ours)
    _make_contract(theirs)
    a, b = _open(ours), _open(theirs)
    yield a, b
    a.close()
    b.close()


def test_same_objects_in_sqlite_master(both):
    ours, theirs = both
    assert _master_names(ours) == _master_names(theirs)
    names = {name for _, name, _ in _master_names(ours)}
    assert set(TABLES) | {"chunks_fts"} | set(INDEXES) <= names


@pytest.mark.parametrize("table", TABLES)
def test_table_columns_match_contract(both, table):
    ours, theirs = both
    assert _columns(ours, table) == _columns(theirs, table)
    spec = [(i, *column) for i, column in enumerate(SPEC_COLUMNS[table])]
    assert _columns(ours, table) == spec
    for _cid, _name, decl, *_ in _columns(ours, table):
        assert decl in ("TEXT", "INTEGER", "BLOB")


@pytest.mark.parametrize("table", TABLES)
def test_primary_keys_may_only_add_not_null(both, table):
    ours, theirs = both
    raw_ours = ours.execute(f'PRAGMA table_info("{table}")').fetchall()
    raw_theirs = theirs.execute(f'PRAGMA table_info("{table}")').fetchall()
    for a, b in zip(raw_ours, raw_theirs, strict=True):
        if a[5]:
            assert a[:3] + a[4:] == b[:3] + b[4:]
        else:
            assert a == b


@pytest.mark.parametrize("table", TABLES)
def test_indexes_match_contract(both, table):
    ours, theirs = both
    assert _indexes(ours, table) == _indexes(theirs, table)
    named = {name: spec for name, spec in INDEXES.items() if spec[0] == table}
    have = _indexes(ours, table)
    for name, (_table, key_columns) in named.items():
        unique, origin, partial, xinfo = have[name]
        assert (unique, origin, partial) == (0, "c", 0)
        keys = [(row[2], row[3]) for row in xinfo if row[5]]
        assert keys == key_columns
    # Everything else is a constraint index (primary key or UNIQUE), not a named index.
    for name, (unique, origin, _partial, _xinfo) in have.items():
        if name not in named:
            assert name.startswith("sqlite_autoindex_")
            assert unique == 1 and origin in ("pk", "u")


def test_unique_constraints_are_table_constraints(both):
    ours, _ = both
    for table, columns in (("documents", ["source", "source_id"]), ("chunks", ["document_id", "chunk_index"])):
        uniques = [
            [row[2] for row in xinfo if row[5]]
            for name, (unique, origin, _p, xinfo) in _indexes(ours, table).items()
            if origin == "u"
        ]
        assert uniques == [columns]


def test_updated_at_index_is_descending(both):
    for conn in both:
        xinfo = conn.execute('PRAGMA index_xinfo("idx_documents_updated_at")').fetchall()
        key = [row for row in xinfo if row[5]]
        assert [(row[2], row[3]) for row in key] == [("updated_at", 1)]


@pytest.mark.parametrize("table", TABLES)
def test_foreign_keys_match_contract(both, table):
    ours, theirs = both
    assert _foreign_keys(ours, table) == _foreign_keys(theirs, table)
    expected = sorted((ref, src, dst, "NO ACTION", "NO ACTION", "NONE") for ref, src, dst in SPEC_FOREIGN_KEYS[table])
    assert _foreign_keys(ours, table) == expected


def test_fts5_declaration_matches_contract(both):
    ours, theirs = both
    module, columns, arguments = _fts_declaration(ours)
    assert module == "fts5"
    assert columns == FTS_COLUMNS
    assert "content" not in arguments.lower()
    assert "tokenize" not in arguments.lower()
    assert _fts_declaration(theirs)[:2] == (module, columns)
    assert ours.execute('PRAGMA table_info("chunks_fts")').fetchall() == theirs.execute(
        'PRAGMA table_info("chunks_fts")'
    ).fetchall()
    assert ours.execute("SELECT * FROM chunks_fts_config").fetchall() == theirs.execute(
        "SELECT * FROM chunks_fts_config"
    ).fetchall()


def test_fts5_table_stores_its_own_text(both):
    ours, _ = both
    ours.execute("INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES ('c', 'd', 'hello fts')")
    assert ours.execute("SELECT chunk_id, document_id, text FROM chunks_fts WHERE chunks_fts MATCH 'hello'").fetchall() == [
        ("c", "d", "hello fts")
    ]


def test_no_triggers(both):
    ours, _ = both
    assert ours.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] == 0


def test_no_extra_tables(both):
    ours, _ = both
    tables = {
        name
        for (name,) in ours.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith("chunks_fts_")
    }
    assert tables == set(TABLES) | {"chunks_fts"}


def test_describe_schema_agrees_with_pragmas(both):
    ours, theirs = both
    from ctx_models.backends.sqlite.schema import describe_schema, schema_differences

    assert describe_schema(ours) == describe_schema(theirs)
    assert schema_differences(describe_schema(theirs)) == []


# --------------------------------------------------------------------------- (b) idempotency


def test_run_migrations_100_times_changes_nothing(tmp_path):
    path = tmp_path / "idem.sqlite"
    db = ctx_models.connect(path)
    first = ctx_models.run_migrations(db)
    assert first.version == 1 and first.changed
    conn = _open(path)
    before = _master(conn)
    for _ in range(99):
        result = ctx_models.run_migrations(db)
        assert result.version == 1
        assert result.created == []
        assert not result.changed
    assert _master(conn) == before
    assert _user_version(conn) == 1
    conn.close()
    db.close()


# --------------------------------------------------------------------------- (c) concurrent migrations

_CHILD = r"""
import json, os, sys, time
from pathlib import Path
import ctx_models

path, ready_dir, start, name = sys.argv[1:5]
Path(ready_dir, name).touch()
deadline = time.monotonic() + 120
while not os.path.exists(start):
    if time.monotonic() > deadline:
        sys.exit("never started")
    time.sleep(0.0005)
db = ctx_models.connect(path)
result = ctx_models.run_migrations(db)
version = db.execute_sql("PRAGMA user_version").fetchone()[0]
db.close()
print(json.dumps({"created": result.created, "version": result.version, "user_version": version}))
"""


def test_eight_processes_migrate_one_new_file_at_once(tmp_path):
    path = tmp_path / "sub" / "race.sqlite"
    ready, start = tmp_path / "ready", tmp_path / "start"
    ready.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(ready), str(start), f"p{i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(8)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(ready.iterdir())) < 8:
            assert time.monotonic() < deadline, "children did not get ready"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        start.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    assert all(r["version"] == 1 and r["user_version"] == 1 for r in results)
    created = [name for r in results for name in r["created"]]
    # Everything was created exactly once, by one of the processes.
    assert len(created) == len(set(created))
    assert sum(1 for r in results if r["created"]) == 1
    assert set(created) == set(TABLES) | {"chunks_fts"} | set(INDEXES)

    reference = tmp_path / "reference.sqlite"
    _make_contract(reference)
    conn, ref = _open(path), _open(reference)
    try:
        names = conn.execute("SELECT name FROM sqlite_master").fetchall()
        assert len(names) == len(set(names))
        assert _master_names(conn) == _master_names(ref)
        for table in TABLES:
            assert _columns(conn, table) == _columns(ref, table)
            assert _indexes(conn, table) == _indexes(ref, table)
        assert _user_version(conn) == 1
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
        ref.close()


# --------------------------------------------------------------------------- (d) a database the ctx tool made


def test_ctx_tool_database_left_exactly_as_is(tmp_path):
    path = tmp_path / "ctx.sqlite"
    conn = ctx_tool.create_contract_db(str(path))
    rng = np.random.default_rng(3)
    doc_a, chunks_a = ctx_tool.ctx_write_document(
        conn, "filesystem", "notes/a.md", ["alpha paragraph", "beta paragraph", "gamma"],
        title="A", vectors=rng.standard_normal((3, 8)).tolist(),
    )
    ctx_tool.ctx_write_document(conn, "git:platform", "README.md", ["readme text"], updated_at=1_767_300_000)
    ctx_tool.ctx_set_checkpoint(conn, "filesystem", 1_767_225_600)
    ctx_tool.ctx_set_checkpoint(conn, "git:platform", 1_767_300_000)
    rows_before, master_before = ctx_tool.table_rows(conn), _master(conn)
    assert _user_version(conn) == 0
    conn.close()

    db = ctx_models.connect(path)
    result = ctx_models.run_migrations(db)
    assert result.created == []
    assert not result.changed
    report = integrity.check(db)
    assert report.clean, report.to_dict()
    # The models read what ctx wrote.
    doc = Document.get_by_id(doc_a)
    assert doc.metadata == {"from": "ctx"}
    assert [c.id for c in doc.chunks.order_by(Chunk.chunk_index)] == chunks_a
    assert Checkpoint.get_by_id("git:platform").cursor == 1_767_300_000
    db.close()

    conn = _open(path)
    assert ctx_tool.table_rows(conn) == rows_before
    assert _master(conn) == master_before
    assert _user_version(conn) == 0
    conn.close()


# --------------------------------------------------------------------------- (e) a newer schema version


def _newer_database(path: Path, version: int = 99) -> None:
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.executescript(ctx_tool.CONTRACT_DDL)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_newer_user_version_refused_and_file_untouched(tmp_path):
    path = tmp_path / "newer.sqlite"
    _newer_database(path)
    before = _file_hash(path)
    listing = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SchemaVersionError) as info:
        ctx_models.connect(path)
    message = str(info.value).replace(str(path), "<path>")
    assert re.search(r"\b99\b", message), message
    assert re.search(rf"\b{ctx_models.SCHEMA_VERSION}\b", message), message
    assert _file_hash(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no -wal, -shm or -journal left
    conn = sqlite3.connect(str(path))
    assert _user_version(conn) == 99
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_run_migrations_refuses_newer_version_without_changes(tmp_path):
    path = tmp_path / "newer.sqlite"
    _newer_database(path)
    conn = sqlite3.connect(str(path))
    conn.execute("DROP TABLE embeddings")
    conn.commit()
    conn.close()
    db = ctx_models.connect(path, check_version=False)
    with pytest.raises(SchemaVersionError, match=r"\b99\b"):
        ctx_models.run_migrations(db)
    db.close()
    conn = _open(path)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'embeddings'").fetchone()[0] == 0
    assert _user_version(conn) == 99
    conn.close()


# --------------------------------------------------------------------------- (f) a partial schema


@pytest.mark.parametrize("origin", ["ctx_models", "ctx_tool"])
def test_missing_table_and_index_created(tmp_path, origin):
    path = tmp_path / "partial.sqlite"
    (_make_ours if origin == "ctx_models" else _make_contract)(path)
    conn = _open(path)
    conn.execute("DROP TABLE embeddings")
    conn.execute("DROP INDEX idx_documents_updated_at")
    conn.execute("PRAGMA user_version = 0")
    kept = _master(conn)
    conn.close()

    db = ctx_models.connect(path)
    result = ctx_models.run_migrations(db)
    db.close()
    assert result.created == ["embeddings", "idx_documents_updated_at"]
    assert result.version == 1

    reference = tmp_path / "reference.sqlite"
    _make_contract(reference)
    conn, ref = _open(path), _open(reference)
    assert _user_version(conn) == 1
    after = _master(conn)
    assert set(kept) <= set(after)  # nothing that was there changed
    assert _master_names(conn) == _master_names(ref)
    for table in ("embeddings", "documents"):
        assert _columns(conn, table) == _columns(ref, table)
        assert _indexes(conn, table) == _indexes(ref, table)
        assert _foreign_keys(conn, table) == _foreign_keys(ref, table)
    conn.close()
    ref.close()


# --------------------------------------------------------------------------- (g) the models


BODY = (
    "Kafka consumer lag grew during the night shift.\n\n"
    "The zebra zebra zebra dashboard shows stripes.\n\n"
    "Postgres failover took ninety seconds in total.\n\n"
    "Rotate the TLS certificates before they expire.\n\n"
    "Deploy freezes start on the first of December."
)


@pytest.fixture
def ingested(db, embedder):
    store.ingest("filesystem", "runbook.md", BODY, title="Runbook", embedder=embedder, max_tokens=12)
    store.ingest(
        "git:platform", "notes.md",
        "A long note that mentions a zebra only once among many other words about capacity, "
        "budgets, regions, replicas, queues and partitions.\n\nSecond paragraph about nothing.",
        title="Notes", embedder=embedder, max_tokens=40,
    )
    return Document.get(Document.source_id == "runbook.md")


def test_document_chunks_backref_in_chunk_index_order(ingested):
    expected = chunk_text(BODY, 12)
    assert len(expected) == 5
    chunks = list(ingested.chunks)
    assert [c.chunk_index for c in chunks] == [0, 1, 2, 3, 4]
    assert [c.text for c in chunks] == expected
    assert all(c.hash == ctx_tool.sha256(c.text) for c in chunks)
    assert all(c.document_id == ingested.id for c in chunks)
    assert [c.chunk_index for c in ingested.chunks.order_by(Chunk.chunk_index.desc())] == [4, 3, 2, 1, 0]


def test_join_document_to_chunk_with_where(ingested):
    rows = list(
        Document.select(Document.title, Chunk.chunk_index, Chunk.text)
        .join(Chunk)
        .where((Chunk.text.contains("zebra")) & (Document.source == "filesystem"))
        .tuples()
    )
    assert rows == [("Runbook", 1, "The zebra zebra zebra dashboard shows stripes.")]
    counts = dict(
        Document.select(Document.source_id, fn.COUNT(Chunk.id))
        .join(Chunk)
        .group_by(Document.source_id)
        .tuples()
    )
    assert counts == {"runbook.md": 5, "notes.md": 2}


def test_chunk_fts_search_ranks_by_bm25(ingested):
    zebra_chunk = Chunk.get((Chunk.document == ingested.id) & (Chunk.chunk_index == 1))
    hits = list(ChunkFTS.search("zebra", with_score=True))
    assert len(hits) == 2
    assert hits[0].chunk_id == zebra_chunk.id
    assert hits[0].document_id == ingested.id
    assert hits[0].score <= hits[1].score  # FTS5 rank: lower is better
    bm25 = list(ChunkFTS.search_bm25("zebra", with_score=True))
    assert [h.chunk_id for h in bm25] == [h.chunk_id for h in hits]


def test_chunk_fts_match(ingested):
    kafka = Chunk.get((Chunk.document == ingested.id) & (Chunk.chunk_index == 0))
    rows = list(ChunkFTS.select(ChunkFTS.chunk_id).where(ChunkFTS.match("kafka")).order_by(ChunkFTS.bm25()))
    assert [r.chunk_id for r in rows] == [kafka.id]
    assert ChunkFTS.select().where(ChunkFTS.match("nonexistentword")).count() == 0
    assert ChunkFTS.select().count() == Chunk.select().count() == 7


def test_embedding_and_chunk_vector_relations(ingested, embedder):
    chunks = list(ingested.chunks.order_by(Chunk.chunk_index))
    for chunk in chunks:
        (embedding,) = list(chunk.embeddings)
        assert embedding.model == embedder.model
        assert embedding.dims == 384
        assert embedding.hash == chunk.hash
        assert embedding.chunk.id == chunk.id
        (vector,) = list(chunk.vectors)
        assert vector.document.id == ingested.id
        assert vector.chunk.document.id == ingested.id
        assert vector.embedding.dtype == np.float32
        assert vector.embedding.shape == (384,)
        np.testing.assert_array_equal(vector.embedding, embedder.embed([chunk.text])[0].astype(np.float32))
    assert ingested.chunk_vectors.count() == 5
    joined = (
        Embedding.select(Embedding.chunk, ChunkVector.embedding)
        .join(Chunk)
        .join(ChunkVector, on=(ChunkVector.chunk == Chunk.id))
        .join(Document, on=(ChunkVector.document == Document.id))
        .where(Document.source_id == "runbook.md")
    )
    assert joined.count() == 5


# --------------------------------------------------------------------------- (h) connect()


def test_connect_pragmas(tmp_path):
    db = ctx_models.connect(tmp_path / "p.sqlite")
    try:
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        db.close()


def test_connect_pragmas_apply_to_every_connection(tmp_path):
    import threading

    db = ctx_models.connect(tmp_path / "p.sqlite")
    ctx_models.run_migrations(db)
    seen = {}

    def other_thread():
        seen["fk"] = db.execute_sql("PRAGMA foreign_keys").fetchone()[0]
        seen["timeout"] = db.execute_sql("PRAGMA busy_timeout").fetchone()[0]
        db.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    db.close()
    assert seen["fk"] == 1 and seen["timeout"] >= 5000


def test_connect_enforces_foreign_keys(db):
    with pytest.raises(peewee.IntegrityError, match="FOREIGN KEY"):
        db.execute_sql(
            "INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES ('c', 'missing', 0, 't', 'h')"
        )
    assert db.execute_sql("SELECT count(*) FROM chunks").fetchone()[0] == 0


def test_connect_creates_parent_directory(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "ctx.sqlite"
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    db.close()
    assert path.parent.is_dir()
    assert path.is_file()
    conn = _open(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_two_databases_in_one_process_via_bind_ctx(tmp_path):
    first, second = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    db1 = ctx_models.connect(first)
    ctx_models.run_migrations(db1)
    db2 = ctx_models.connect(second, bind_models=False)
    ctx_models.run_migrations(db2)
    try:
        store.ingest("fs", "only-in-one", "text of one")
        with db2.bind_ctx(MODELS):
            assert ctx_models.bound_database() is db2
            store.ingest("fs", "only-in-two", "text of two")
            store.set_checkpoint("fs", 2)
            assert [d.source_id for d in Document.select()] == ["only-in-two"]
            assert ChunkFTS.select().where(ChunkFTS.match("two")).count() == 1
        assert ctx_models.bound_database() is db1
        assert [d.source_id for d in Document.select()] == ["only-in-one"]
        assert Checkpoint.select().count() == 0
        assert ChunkFTS.select().where(ChunkFTS.match("two")).count() == 0
    finally:
        db1.close()
        db2.close()
    for path, expected in ((first, "only-in-one"), (second, "only-in-two")):
        conn = _open(path)
        assert conn.execute("SELECT source_id FROM documents").fetchall() == [(expected,)]
        assert conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == 1
        conn.close()
