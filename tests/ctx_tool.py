"""The other program, for tests: the contract's DDL written by hand, and rows written the way ``ctx`` writes them.

Nothing here imports ctx_models: it stands for a program that only knows the
storage contract (../shared/spec/storage-contract.md).
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import uuid
from collections.abc import Sequence

CONTRACT_DDL = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_url TEXT,
    title TEXT,
    author TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    content_type TEXT NOT NULL DEFAULT 'text/plain',
    body TEXT NOT NULL,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    raw_json TEXT,
    dedup_hash TEXT NOT NULL,
    UNIQUE(source, source_id)
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE(document_id, chunk_index),
    FOREIGN KEY (document_id) REFERENCES documents(id)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    chunk_id UNINDEXED,
    document_id UNINDEXED,
    text
);
CREATE TABLE IF NOT EXISTS embeddings (
    chunk_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    dims INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    hash TEXT NOT NULL,
    FOREIGN KEY (chunk_id) REFERENCES chunks(id)
);
CREATE TABLE IF NOT EXISTS chunk_vectors (
    chunk_id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    embedding BLOB NOT NULL,
    FOREIGN KEY (chunk_id) REFERENCES chunks(id),
    FOREIGN KEY (document_id) REFERENCES documents(id)
);
CREATE INDEX IF NOT EXISTS idx_chunks_document_id ON chunks(document_id);
CREATE INDEX IF NOT EXISTS idx_documents_source ON documents(source);
CREATE INDEX IF NOT EXISTS idx_documents_updated_at ON documents(updated_at DESC);
CREATE INDEX IF NOT EXISTS idx_chunk_vectors_document_id ON chunk_vectors(document_id);
"""


def create_contract_db(path: str) -> sqlite3.Connection:
    """A database made from the hand-written DDL, in WAL mode like the ctx tool's."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(CONTRACT_DDL)
    return conn


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dedup_hash(source: str, source_id: str, updated_at: int, body: str) -> str:
    """The contract's formula, computed independently of ctx_models."""
    h = hashlib.sha256()
    h.update(source.encode("utf-8"))
    h.update(source_id.encode("utf-8"))
    h.update(struct.pack("<q", updated_at))
    h.update(body.encode("utf-8"))
    return h.hexdigest()


def vector_blob(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def ctx_write_document(
    conn: sqlite3.Connection,
    source: str,
    source_id: str,
    chunks: Sequence[str],
    *,
    updated_at: int = 1_767_225_600,
    title: str | None = None,
    vectors: Sequence[Sequence[float]] | None = None,
    model: str = "ctx-test-model",
    metadata_json: str = '{"from": "ctx"}',
) -> tuple[str, list[str]]:
    """Write a document, its chunks, FTS rows and (optionally) vectors as the ctx tool does.

    Returns the document id and chunk ids (UUID v4 strings).
    """
    body = "\n\n".join(chunks)
    doc_id = str(uuid.uuid4())
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO documents (id, source, source_id, source_url, title, author, created_at, updated_at, "
        "content_type, body, metadata_json, raw_json, dedup_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (doc_id, source, source_id, None, title, "ctx", updated_at, updated_at, "text/plain", body,
         metadata_json, None, dedup_hash(source, source_id, updated_at, body)),
    )
    chunk_ids = []
    for index, text in enumerate(chunks):
        chunk_id = str(uuid.uuid4())
        chunk_ids.append(chunk_id)
        conn.execute(
            "INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES (?,?,?,?,?)",
            (chunk_id, doc_id, index, text, sha256(text)),
        )
        conn.execute("INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES (?,?,?)", (chunk_id, doc_id, text))
        if vectors is not None:
            conn.execute(
                "INSERT INTO embeddings (chunk_id, model, dims, created_at, hash) VALUES (?,?,?,?,?)",
                (chunk_id, model, len(vectors[index]), updated_at, sha256(text)),
            )
            conn.execute(
                "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES (?,?,?)",
                (chunk_id, doc_id, vector_blob(vectors[index])),
            )
    conn.execute("COMMIT")
    return doc_id, chunk_ids


def ctx_set_checkpoint(conn: sqlite3.Connection, source: str, cursor: int, now: int = 1_767_225_600) -> None:
    conn.execute(
        "INSERT INTO checkpoints (source, cursor, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        (source, str(cursor), now),
    )


def table_rows(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every row of every contract table (FTS by rowid), for byte-for-byte comparisons."""
    tables = ("documents", "chunks", "checkpoints", "embeddings", "chunk_vectors")
    rows = {t: sorted(conn.execute(f"SELECT rowid, * FROM {t}").fetchall()) for t in tables}
    rows["chunks_fts"] = sorted(conn.execute("SELECT rowid, chunk_id, document_id, text FROM chunks_fts").fetchall())
    return rows
