"""Integrity checks that need SQLite's own view: quick_check, FTS5, types, BLOBs, JSON, the schema."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import peewee
from peewee import Database

from ...fields import MAX_EPOCH
from ...identifiers import quote_identifier as q
from ...models import ChunkFTS
from ..base import RE_EMBED, Check
from .schema import describe_schema, schema_differences

__all__ = ["SQLiteIntegrity"]

_CHECKS = (
    Check(
        "fts_without_chunk",
        "FTS rows whose chunk does not exist",
        "SELECT coalesce(f.chunk_id, 'rowid ' || f.rowid) FROM chunks_fts AS f "
        "LEFT JOIN chunks AS c ON c.id = f.chunk_id WHERE c.id IS NULL",
        True,
    ),
    Check(
        "fts_mismatch",
        "FTS rows whose text or document differs from their chunk's",
        "SELECT f.chunk_id FROM chunks_fts AS f JOIN chunks AS c ON c.id = f.chunk_id "
        "WHERE f.text IS NOT c.text OR f.document_id IS NOT c.document_id",
        True,
    ),
    Check(
        "vectors_wrong_document",
        "vectors whose document_id differs from their chunk's document",
        "SELECT v.chunk_id FROM chunk_vectors AS v JOIN chunks AS c ON c.id = v.chunk_id "
        "WHERE v.document_id IS NOT c.document_id",
        True,
        "repair sets document_id from the chunk",
    ),
    # The BLOB's length is the vector's size: embeddings.dims records what the ctx tool
    # was configured with and may differ, so it is not compared.
    Check(
        "vectors_bad_length",
        "vectors whose BLOB is empty or not whole float32 values (a multiple of 4 bytes)",
        "SELECT chunk_id FROM chunk_vectors WHERE typeof(embedding) != 'blob' "
        "OR length(embedding) = 0 OR length(embedding) % 4 != 0",
        True,
        RE_EMBED,
    ),
    Check(
        "bad_timestamps",
        "rows whose timestamp is not epoch seconds (an integer from 0 to 9999-12-31)",
        " UNION ALL ".join(
            f"SELECT {q(key)} FROM {q(table)} WHERE typeof({q(column)}) != 'integer' "
            f"OR {q(column)} < 0 OR {q(column)} > {MAX_EPOCH}"
            for table, key, column in (
                ("documents", "id", "created_at"),
                ("documents", "id", "updated_at"),
                ("embeddings", "chunk_id", "created_at"),
                ("checkpoints", "source", "updated_at"),
            )
        ),
        False,
        "ingest these documents again (or set_checkpoint) with epoch seconds",
    ),
    Check(
        "bad_metadata",
        "documents whose metadata_json is not a JSON object (read as {}, kept as stored)",
        "SELECT id FROM documents WHERE NOT json_valid(metadata_json) "
        "OR json_type(metadata_json) != 'object'",
        False,
        "ingest these documents again with metadata to replace the text",
    ),
)


_NOT_FINITE = Check("vectors_not_finite", "vectors holding NaN or infinite values", "", True, RE_EMBED)


class SQLiteIntegrity:
    """The SQLite side of :func:`ctx_models.integrity.check`."""

    checks: Sequence[Check] = _CHECKS

    def __init__(self, db: Database) -> None:
        self.db = db

    def quick_check(self) -> list[str]:
        """SQLite's own check of the file's structure: ``["ok"]`` when sound."""
        return [row[0] for row in self.db.execute_sql("PRAGMA quick_check")]

    def schema_problems(self) -> list[str]:
        return schema_differences(describe_schema(self.db))

    def extra_findings(self) -> dict[str, tuple[Check, list[str]]]:
        """Vectors holding NaN or infinity (among BLOBs whose length is otherwise valid)."""
        cursor = self.db.execute_sql(
            "SELECT chunk_id, embedding FROM chunk_vectors "
            "WHERE typeof(embedding) = 'blob' AND length(embedding) > 0 AND length(embedding) % 4 = 0"
        )
        bad = [
            chunk_id
            for chunk_id, blob in cursor
            if not np.isfinite(np.frombuffer(blob, "<f4")).all()
        ]
        return {"vectors_not_finite": (_NOT_FINITE, bad)} if bad else {}

    def keyword_index_problems(self) -> list[str]:
        """FTS5's own check of its index against the text it stores.

        Only a report of damage is a finding; any other error (the database is
        locked, say) is the database's and is raised as such.
        """
        try:
            ChunkFTS.integrity_check()
        except peewee.DatabaseError as exc:
            cause = getattr(exc, "orig", None) or exc.__cause__ or exc
            if getattr(cause, "sqlite_errorname", "").startswith("SQLITE_CORRUPT"):
                return [str(exc)]
            raise
        return []

    def rebuild_keyword_index(self) -> None:
        """Rebuild the FTS5 index from the text the table stores."""
        ChunkFTS.rebuild()

    def repair_keyword_rows(self, run: Callable[[str, Sequence[Any]], int]) -> int:
        """Leave chunks_fts with exactly one row per chunk, holding its text and document.

        Returns how many chunks' rows were rewritten.
        """
        mismatch = _CHECKS[1].sql
        missing = (
            "SELECT id FROM chunks WHERE id NOT IN "
            "(SELECT chunk_id FROM chunks_fts WHERE chunk_id IS NOT NULL)"
        )
        duplicates = (
            "SELECT chunk_id FROM chunks_fts WHERE chunk_id IN (SELECT id FROM chunks) "
            "GROUP BY chunk_id HAVING count(*) > 1"
        )
        run(
            "DELETE FROM chunks_fts WHERE chunk_id IS NULL OR chunk_id NOT IN (SELECT id FROM chunks)",
            (),
        )
        run(f"DELETE FROM chunks_fts WHERE chunk_id IN ({mismatch})", ())
        run(f"DELETE FROM chunks_fts WHERE chunk_id IN ({duplicates})", ())
        # Use the chunk's rowid where it is free, so later deletes are rowid lookups.
        aligned = run(
            "INSERT INTO chunks_fts(rowid, chunk_id, document_id, text) "
            f"SELECT rowid, id, document_id, text FROM chunks WHERE id IN ({missing}) "
            "AND rowid NOT IN (SELECT rowid FROM chunks_fts)",
            (),
        )
        others = run(
            "INSERT INTO chunks_fts(chunk_id, document_id, text) "
            f"SELECT id, document_id, text FROM chunks WHERE id IN ({missing})",
            (),
        )
        return aligned + others
