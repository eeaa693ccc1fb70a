"""Integrity checks on PostgreSQL: the logical ones, in PostgreSQL's SQL.

The engine guards what SQLite leaves to the writer (column types, vector
values, a tsvector always generated from its text), so what is left to check
is how the tables agree with each other: keyword rows and chunks, orphans,
sizes, staleness and what the contract stores as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...fields import MAX_EPOCH
from ...identifiers import quote_identifier as q
from ..base import Check
from .schema import schema_problems

__all__ = ["PostgresIntegrity"]

_MISMATCH = (
    "SELECT f.chunk_id FROM chunks_fts AS f JOIN chunks AS c ON c.id = f.chunk_id "
    "WHERE f.text IS DISTINCT FROM c.text OR f.document_id IS DISTINCT FROM c.document_id"
)

_CHECKS = (
    Check(
        "fts_without_chunk",
        "FTS rows whose chunk does not exist",
        "SELECT coalesce(f.chunk_id, 'ctid ' || f.ctid::text) FROM chunks_fts AS f "
        "LEFT JOIN chunks AS c ON c.id = f.chunk_id WHERE c.id IS NULL",
        True,
    ),
    Check("fts_mismatch", "FTS rows whose text or document differs from their chunk's", _MISMATCH, True),
    Check(
        "vectors_wrong_document",
        "vectors whose document_id differs from their chunk's document",
        "SELECT v.chunk_id FROM chunk_vectors AS v JOIN chunks AS c ON c.id = v.chunk_id "
        "WHERE v.document_id IS DISTINCT FROM c.document_id",
        True,
        "repair sets document_id from the chunk",
    ),
    Check(
        "bad_timestamps",
        "rows whose timestamp is not epoch seconds (from 0 to 9999-12-31)",
        " UNION ALL ".join(
            f"SELECT {q(key)} FROM {q(table)} WHERE {q(column)} < 0 OR {q(column)} > {MAX_EPOCH}"
            for table, key, column in (
                ("documents", "id", "created_at"),
                ("documents", "id", "updated_at"),
                ("embeddings", "chunk_id", "created_at"),
                ("checkpoints", "source", "updated_at"),
            )
        ),
        False,
        "ingest these documents again (an odd created_at or updated_at is then written anew); "
        "set_checkpoint for a checkpoint; clear_embeddings(model), then embed, for an embedding",
    ),
    Check(
        "bad_dims",
        "embeddings whose dims is not a positive integer (the size the ctx tool was configured with)",
        "SELECT chunk_id FROM embeddings WHERE dims < 1",
        False,
        "clear_embeddings(model), then embed (vectors are read by their length meanwhile)",
    ),
)

class PostgresIntegrity:
    """The PostgreSQL side of :func:`ctx_models.integrity.check`."""

    checks: Sequence[Check] = _CHECKS

    def __init__(self, db: Any) -> None:
        self.db = db

    def quick_check(self) -> list[str]:
        """The server checks its pages itself (and ``pg_amcheck`` is the tool for more)."""
        self.db.execute_sql("SELECT 1").fetchone()
        return ["ok"]

    def schema_problems(self) -> list[str]:
        return schema_problems(self.db)

    def extra_findings(self) -> dict[str, tuple[Check, list[str]]]:
        """None here: metadata is judged by :func:`ctx_models.integrity.bad_metadata`, as on SQLite."""
        return {}

    def keyword_index_problems(self) -> list[str]:
        return []  # the tsvector is generated from the text: it cannot disagree with it

    def rebuild_keyword_index(self) -> None:
        self.db.execute_sql("REINDEX INDEX chunks_fts_tsv")

    def repair_keyword_rows(self, run: Callable[[str, Sequence[Any]], int]) -> int:
        """Leave chunks_fts with exactly one row per chunk, holding its text and document."""
        run("DELETE FROM chunks_fts WHERE chunk_id IS NULL OR chunk_id NOT IN (SELECT id FROM chunks)", ())
        run(f"DELETE FROM chunks_fts WHERE chunk_id IN ({_MISMATCH})", ())
        run(
            "DELETE FROM chunks_fts WHERE chunk_id IN (SELECT chunk_id FROM chunks_fts "
            "GROUP BY chunk_id HAVING count(*) > 1)",
            (),
        )
        return run(
            "INSERT INTO chunks_fts (chunk_id, document_id, text) SELECT id, document_id, text "
            "FROM chunks WHERE id NOT IN (SELECT chunk_id FROM chunks_fts WHERE chunk_id IS NOT NULL)",
            (),
        )
