"""Integrity checks that need SQLite's own view: quick_check, FTS5, types, BLOBs, JSON, the schema."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import peewee
from peewee import Database

from ...fields import MAX_EPOCH
from ...identifiers import quote_identifier as q
from ...models import ChunkFTS
from ..base import RE_EMBED, Check
from .schema import describe_schema, schema_differences

__all__ = ["SQLiteIntegrity", "damage_report", "file_damage"]

log = logging.getLogger(__name__)

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
        "ingest these documents again (an odd created_at or updated_at is then written anew); "
        "set_checkpoint for a checkpoint; clear_embeddings(model), then embed, for an embedding",
    ),
    Check(
        "bad_dims",
        "embeddings whose dims is not a positive integer (the size the ctx tool was configured with)",
        "SELECT chunk_id FROM embeddings WHERE typeof(dims) != 'integer' OR dims < 1",
        False,
        "clear_embeddings(model), then embed (vectors are read by their length meanwhile)",
    ),
)


_NOT_FINITE = Check("vectors_not_finite", "vectors holding NaN or infinite values", "", True, RE_EMBED)
_TEXT_AS_BLOB = Check(
    "text_stored_as_blob",
    "TEXT values another program stored as BLOBs (read as text meanwhile)",
    "",
    True,
    "repair stores the same bytes as TEXT",
)
_TEXT_NOT_UTF8 = Check(
    "text_not_utf8",
    "TEXT values whose bytes are not UTF-8 (read with U+FFFD in their place)",
    "",
    False,
    "write these values again in UTF-8 (ingest the document again, or set_checkpoint)",
)
# The contract's tables with TEXT columns, and the key that names a row in a finding.
_TEXT_KEYS = {
    "documents": "id",
    "chunks": "id",
    "checkpoints": "source",
    "embeddings": "chunk_id",
    "chunk_vectors": "chunk_id",
}


def _is_corruption(exc: BaseException) -> bool:
    from .connection import sqlite_error_name

    return sqlite_error_name(exc).startswith("SQLITE_CORRUPT")


def damage_report(query: Callable[[str], list[Any]]) -> list[str]:
    """SQLite's ``quick_check`` report, with its lines split; ``["ok"]`` when the file is sound.

    Where damage stops ``quick_check`` itself (SQLite then raises "database disk image
    is malformed" and reports nothing), each table is checked on its own, so the
    report still names what is damaged; where even the schema cannot be read, the
    report says that. Errors other than damage (a lock, say) are raised.
    """
    try:
        lines = [line for message in query("PRAGMA quick_check") for line in str(message).splitlines()]
        return [line for line in lines if line] or ["ok"]
    except (sqlite3.DatabaseError, peewee.DatabaseError) as exc:
        if not _is_corruption(exc):
            raise
        whole = str(getattr(exc, "orig", exc))
    try:
        tables = query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    except (sqlite3.DatabaseError, peewee.DatabaseError) as exc:
        if not _is_corruption(exc):
            raise
        return [f"the schema (sqlite_master, on page 1) is unreadable: {whole}"]
    report = []
    for name in tables:
        try:
            lines = query(f"PRAGMA quick_check({quoted_identifier(str(name))})")
        except (sqlite3.DatabaseError, peewee.DatabaseError) as exc:
            if not _is_corruption(exc):
                raise
            report.append(
                f"table {name} (or one of its indexes) is unreadable: {getattr(exc, 'orig', exc)}"
            )
            continue
        report.extend(f"table {name}: {line}" for line in lines if line and line != "ok")
    return report or [whole]


def file_damage(path: Path) -> list[str] | None:
    """SQLite's report of the damage of a file too damaged to open, or None if it is not damage.

    Opened read-only through a plain connection: nothing is written to a damaged file.
    """
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        report = damage_report(lambda sql: [row[0] for row in conn.execute(sql)])
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return None if report == ["ok"] else report


def quoted_identifier(name: str) -> str:
    """``name`` as an SQL identifier, whatever it holds (a double quote is doubled)."""
    return '"' + name.replace('"', '""') + '"'


class SQLiteIntegrity:
    """The SQLite side of :func:`ctx_models.integrity.check`."""

    checks: Sequence[Check] = _CHECKS

    def __init__(self, db: Database) -> None:
        self.db = db

    def quick_check(self) -> list[str]:
        """SQLite's own check of the file's structure: ``["ok"]`` when sound, else its report."""
        return damage_report(lambda sql: [row[0] for row in self.db.execute_sql(sql)])

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
        found = {"vectors_not_finite": (_NOT_FINITE, bad)} if bad else {}
        blobs, not_utf8 = self._foreign_text()
        if blobs:
            found["text_stored_as_blob"] = (_TEXT_AS_BLOB, blobs)
        if not_utf8:
            found["text_not_utf8"] = (_TEXT_NOT_UTF8, not_utf8)
        return found

    def _text_columns(self, table: str) -> list[str]:
        rows = self.db.execute_sql(f"PRAGMA table_info({quoted_identifier(table)})")
        return [str(row[1]) for row in rows if str(row[2]).upper() == "TEXT"]

    def _foreign_text(self) -> tuple[list[str], list[str]]:
        """Values of TEXT columns stored as BLOBs, and values whose bytes are not UTF-8.

        Each as "table.column of key". Read as bytes (a cast, so no converter runs)
        and decoded strictly here: SQLite stores any bytes it is handed.
        """
        blobs: list[str] = []
        not_utf8: list[str] = []
        for table, key in _TEXT_KEYS.items():
            columns = self._text_columns(table)
            if not columns:
                continue
            select = ", ".join(
                f"typeof({quoted_identifier(c)}), CAST({quoted_identifier(c)} AS BLOB)" for c in columns
            )
            sql = f"SELECT {quoted_identifier(key)}, {select} FROM {quoted_identifier(table)}"
            for row in self.db.execute_sql(sql):
                where = f" of {row[0]}"
                for i, column in enumerate(columns):
                    kind, raw = row[1 + 2 * i], row[2 + 2 * i]
                    if raw is None:
                        continue
                    if kind == "blob":
                        blobs.append(f"{table}.{column}{where}")
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError:
                        not_utf8.append(f"{table}.{column}{where}")
        return blobs, not_utf8

    def chunks_not_utf8(self) -> set[str]:
        """Chunks whose text is not UTF-8: their hash was made from bytes text cannot hold."""
        bad = set()
        for chunk_id, raw in self.db.execute_sql("SELECT id, CAST(text AS BLOB) FROM chunks"):
            try:
                (raw or b"").decode("utf-8")
            except UnicodeDecodeError:
                bad.add(chunk_id)
        return bad

    def store_blobs_as_text(self, run: Callable[[str, Sequence[Any]], int]) -> int:
        """Store every BLOB in a TEXT column as TEXT holding the same bytes; returns how many.

        Nothing is guessed: the bytes stay. A BLOB of valid UTF-8 is then the text it
        held, and an id stored as a BLOB joins its rows again (SQL never finds a BLOB
        equal to TEXT); bytes that are not UTF-8 stay reported for a person.
        """
        # A key and the references to it change one statement at a time: the foreign keys
        # are checked at commit, when both sides hold TEXT again.
        run("PRAGMA defer_foreign_keys = ON", ())
        changed = 0
        for table in _TEXT_KEYS:
            for column in self._text_columns(table):
                name = quoted_identifier(column)
                changed += run(
                    f"UPDATE {quoted_identifier(table)} SET {name} = CAST({name} AS TEXT) "
                    f"WHERE typeof({name}) = 'blob'",
                    (),
                )
        return changed

    def keyword_index_problems(self) -> list[str]:
        """FTS5's own check of its index against the text it stores.

        Only a report of damage is a finding; any other error (the database is
        locked, say) is the database's and is raised as such. FTS5 runs this check
        as an INSERT, which a file open read-only refuses: it is left out there.
        """
        if getattr(self.db, "read_only", False):
            log.info("FTS5's own index check left out: %s is open read-only", self.db.database)
            return []
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
