"""Bulk writes on PostgreSQL through COPY, inside the caller's transaction.

Chunks go in with COPY, and their keyword rows are copied from them inside
the server (the text is not sent twice; the tsvector is generated). Vectors
go in with binary COPY into a temporary table, then are upserted from it: in
pgvector's text form every vector would cost about half a millisecond of
Python to format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...fields import PackedVector
from ..base import ChunkRow

__all__ = ["insert_chunks", "write_vectors"]

_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS ctx_models_staged_vectors ("
    "chunk_id text, document_id text, hash text, model text, dims integer, "
    "created_at bigint, embedding vector) ON COMMIT DELETE ROWS"
)


def insert_chunks(db: Any, rows: Sequence[ChunkRow]) -> None:
    if not rows:
        return
    conn = db.connection()
    with conn.cursor() as cursor:
        with cursor.copy(
            "COPY chunks (id, document_id, chunk_index, text, hash) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            "INSERT INTO chunks_fts (chunk_id, document_id, text) "
            "SELECT id, document_id, text FROM chunks WHERE id = ANY(%s)",
            ([row.id for row in rows],),
        )


def write_vectors(db: Any, rows: Sequence[tuple[str, str, str, str, int, int, bytes]]) -> None:
    """Upsert ``(chunk_id, document_id, hash, model, dims, created_at, blob)`` rows."""
    if not rows:
        return
    conn = db.connection()
    with conn.cursor() as cursor:
        cursor.execute(_STAGING)
        cursor.execute("DELETE FROM ctx_models_staged_vectors")
        with cursor.copy(
            "COPY ctx_models_staged_vectors FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "text", "int4", "int8", "vector"])
            for chunk_id, document_id, digest, model, dims, created_at, blob in rows:
                copy.write_row(
                    (chunk_id, document_id, digest, model, dims, created_at, PackedVector(blob))
                )
        cursor.execute(
            "INSERT INTO embeddings (chunk_id, model, dims, created_at, hash) "
            "SELECT chunk_id, model, dims, created_at, hash FROM ctx_models_staged_vectors "
            "ON CONFLICT (chunk_id) DO UPDATE SET model = EXCLUDED.model, dims = EXCLUDED.dims, "
            "created_at = EXCLUDED.created_at, hash = EXCLUDED.hash"
        )
        cursor.execute(
            "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) "
            "SELECT chunk_id, document_id, embedding FROM ctx_models_staged_vectors "
            "ON CONFLICT (chunk_id) DO UPDATE SET document_id = EXCLUDED.document_id, "
            "embedding = EXCLUDED.embedding"
        )
        cursor.execute("DELETE FROM ctx_models_staged_vectors")
