"""The SQLite backend: the contract's own engine, one file.

``connection`` opens the file (WAL, foreign keys, busy timeout) and translates
errors; ``fts`` writes the FTS5 rows beside the chunks; ``keyword`` turns a
question into an FTS5 query; ``vectors`` keeps every vector in memory for
exact search; ``state`` holds what a connection keeps between searches, and
notices when other processes commit.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import peewee

from ... import outputs
from ...bulk import BulkInsert
from ...errors import DatabaseError, QuerySyntaxError, ValidationError
from ...fields import as_text
from ...models import Chunk
from ..base import Backend, Candidate, ChunkRow, KeywordAnswer, VectorAnswer
from . import fts, keyword
from .connection import change_stamp, connect, sqlite_error_name, translate_errors
from .state import ConnectionState, state_for
from .vectors import USABLE_VECTOR

if TYPE_CHECKING:
    from .integrity import SQLiteIntegrity

__all__ = ["SQLiteBackend", "connect"]

# Chunk id, document and the start of the text, for the vector winners only.
_WINNERS_SQL = (
    "SELECT cv.rowid, c.id, c.document_id, substr(c.text, 1, ?) "
    "FROM chunk_vectors AS cv JOIN chunks AS c ON c.id = cv.chunk_id WHERE cv.rowid IN ({params})"
)


@functools.lru_cache(maxsize=64)
def _winners_sql(count: int) -> str:
    return _WINNERS_SQL.format(params=", ".join("?" * count))


_CHUNK_INSERT = BulkInsert(
    Chunk, (Chunk.id, Chunk.document, Chunk.chunk_index, Chunk.text, Chunk.hash)
)


class SQLiteBackend(Backend):
    """A peewee ``SqliteDatabase`` holding the contract's schema."""

    name = "sqlite"
    driver_errors = (sqlite3.Error, peewee.DatabaseError, peewee.InterfaceError)

    # ------------------------------------------------------------------ errors and transactions

    def errors(self, action: str) -> AbstractContextManager[None]:
        return translate_errors(self.db.database, action)

    @contextmanager
    def write_transaction(self, action: str = "write") -> Iterator[None]:
        # IMMEDIATE: take the write lock at BEGIN, waiting (busy timeout) for other
        # writers, so a read inside the transaction can never go stale.
        with self.errors(action), self.db.atomic("IMMEDIATE"):
            yield

    @contextmanager
    def read_snapshot(self, action: str = "read") -> Iterator[bool]:
        with self.errors(action):
            if self.db.connection().in_transaction and not self.db.in_transaction():
                # Opened with db.begin(), which peewee does not track: read inside it.
                yield True
                return
            outer = self.db.in_transaction()
            with self.db.atomic():
                yield outer

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int:
        return int(self.db.execute_sql("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        # One IMMEDIATE transaction: concurrent runs on one file queue up at BEGIN.
        with self.db.atomic("IMMEDIATE"):
            yield

    def create_schema(self) -> list[str]:
        from ...models import MODELS

        before = self._object_names()
        self.db.create_tables(MODELS, safe=True)  # with the named indexes declared on the models
        created = sorted(self._object_names() - before)
        # Shadow tables and autoindexes come with their table; report what the user knows.
        return [n for n in created if not n.startswith(("chunks_fts_", "sqlite_"))]

    def stamp_schema_version(self, version: int) -> None:
        # user_version lives in the file header, written in the same transaction as the DDL.
        self.db.execute_sql(f"PRAGMA user_version = {int(version)}")

    def table_names(self) -> set[str]:
        cursor = self.db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in cursor}

    def _object_names(self) -> set[str]:
        cursor = self.db.execute_sql(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
        )
        return {row[0] for row in cursor}

    # ------------------------------------------------------------------ writes

    def insert_chunks(self, rows: Sequence[ChunkRow]) -> None:
        if not rows:
            return
        before = fts.max_chunk_rowid(self.db)
        _CHUNK_INSERT.execute(self.db, rows)
        copied = fts.insert_fts_rows_since(self.db, before)
        if copied != len(rows):
            raise RuntimeError(f"wrote {copied} FTS rows for {len(rows)} chunks; rolled back")

    def delete_keyword_rows(self, document_ids: Sequence[str], *, deleting_documents: bool) -> None:
        fts.delete_fts_rows(self.db, document_ids, always_scan=deleting_documents)

    # ------------------------------------------------------------------ reads

    def _fresh_state(self, outer_transaction: bool) -> tuple[sqlite3.Connection, ConnectionState]:
        """This connection's search state, checked against the current snapshot."""
        conn = self.db.connection()
        state = state_for(self.db, conn)
        state.vectors.ensure_fresh(conn, may_hold_uncommitted=outer_transaction)
        return conn, state

    def keyword_search(
        self,
        text: str,
        limit: int,
        source: str | None,
        since: int | None,
        *,
        raw: bool,
        match: str,
        outer_transaction: bool,
    ) -> KeywordAnswer:
        conn = self.db.connection()
        if raw:
            if "\x00" in text:
                raise QuerySyntaxError("the raw FTS5 query contains a NUL character")
            answer = KeywordAnswer([], text)
        elif match == "all":
            answer = KeywordAnswer([], keyword.user_query(text, "all"))
        else:
            stats = state_for(self.db, conn).keywords
            stats.ensure_fresh(conn, change_stamp(conn), trust=not outer_transaction)
            answer = stats.plan(conn, text)
        if not answer.expression.strip():
            return answer
        try:
            answer.candidates = keyword.run(conn, answer.expression, limit, source, since)
        except sqlite3.OperationalError as exc:
            if raw and str(exc).startswith(keyword.FTS_QUERY_ERRORS):
                raise QuerySyntaxError(
                    f"FTS5 rejected the query {text!r:.80}: {exc}. Check quotes and operators, "
                    "or search without raw=True to treat the text as plain words"
                ) from exc
            raise
        return answer

    def vector_search(
        self,
        query: np.ndarray,
        limit: int,
        source: str | None,
        since: int | None,
        model: str | None,
        *,
        outer_transaction: bool,
        exact: bool = True,
    ) -> VectorAnswer:
        from ... import snippets

        conn, state = self._fresh_state(outer_transaction)
        hits = state.vectors.search(query, limit, source=source, since=since, model=model)
        if not hits:
            return VectorAnswer([], hits.searched, hits.spread)
        kept = state.vectors.candidates(len(query), hits)
        if kept is not None:
            return VectorAnswer(kept, hits.searched, hits.spread)
        sql = _winners_sql(len(hits))
        params = [snippets.VECTOR_CHARS + 1, *(rowid for rowid, _ in hits)]
        found = {row[0]: row for row in conn.execute(sql, params).fetchall()}
        # A winner missing here was deleted since the index was built: never return it.
        candidates = [
            Candidate(as_text(row[1]), as_text(row[2]), score, snippets.start_of(as_text(row[3])))
            for rowid, score in hits
            if (row := found.get(rowid)) is not None
        ]
        return VectorAnswer(candidates, hits.searched, hits.spread)

    def vector_size(self, model: str) -> int | None:
        row = self.db.execute_sql(
            "SELECT length(embedding) FROM embeddings AS e "
            "JOIN chunk_vectors AS v ON v.chunk_id = e.chunk_id "
            f"WHERE e.model = ? AND {USABLE_VECTOR} LIMIT 1",
            (model,),
        ).fetchone()
        return None if row is None or not row[0] else int(row[0]) // 4

    def stored_models(self, *, outer_transaction: bool) -> dict[str, int]:
        conn, state = self._fresh_state(outer_transaction)
        return state.vectors.models(conn)

    def vector_lengths(self, *, outer_transaction: bool) -> list[int]:
        _, state = self._fresh_state(outer_transaction)
        return state.vectors.lengths

    # ------------------------------------------------------------------ integrity and maintenance

    def integrity(self) -> SQLiteIntegrity:
        # Imported when asked for: the checks' modules cost a search 7 ms to import.
        from .integrity import SQLiteIntegrity

        return SQLiteIntegrity(self.db)

    def backup(self, target: Path) -> None:
        """SQLite's online backup, in one step: a consistent copy while other processes write.

        Refuses a ``target`` that is this database or one of its files, and one
        with a WAL or rollback journal beside it (SQLite would replay it into the
        copy; it may belong to a program that has ``target`` open). Written to a
        temporary file of its own beside ``target`` (see :mod:`ctx_models.outputs`),
        with the database file's permission bits, and renamed into place when whole.
        """
        source = Path(self.db.database)
        in_memory = str(self.db.database) == ":memory:"
        if not in_memory:
            outputs.refuse_database_files(target, source, "backup")
        beside = [p for p in (Path(f"{target}-wal"), Path(f"{target}-journal")) if p.exists()]
        if beside and not target.exists():
            # No database to open and close: the journal belongs to nothing here.
            raise ValidationError(
                f"{' and '.join(map(str, beside))} "
                f"{'exists' if len(beside) == 1 else 'exist'} beside {target}, which is not "
                "there: it is left from a database that was moved or deleted. Remove it, or "
                "back up to another file"
            )
        if beside:
            raise ValidationError(
                f"{' and '.join(map(str, beside))} {'exists' if len(beside) == 1 else 'exist'} "
                f"beside {target}: a program may have it open, or it was not closed cleanly, and "
                "SQLite would replay it into the backup. Close that program, or open and close "
                f"the file once (ctx-models check --db {target}), or back up to another file"
            )
        outputs.remove_abandoned(target, "backup")
        mode = outputs.new_file_mode() if in_memory else outputs.file_mode(source)
        with outputs.replaced_atomically(target, mode=mode, tag="backup") as partial:
            copy = sqlite3.connect(partial)
            try:
                with _backup_errors(self.db.database, target):
                    self.db.connection().backup(copy)
            finally:
                copy.close()

    def size_on_disk(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(str(self.db.database) + suffix)
            except OSError:
                pass
        return total


@contextmanager
def _backup_errors(source: str, target: Path) -> Iterator[None]:
    """Errors of writing the copy name the backup's file; the others, the database read."""
    try:
        yield
    except sqlite3.Error as exc:
        name = sqlite_error_name(exc)
        if name.startswith("SQLITE_FULL"):
            raise DatabaseError(
                f"cannot write the backup {target}: the disk holding it is full (or the "
                "file may grow no larger); nothing was written there. Free some space, or "
                "back up to another disk"
            ) from exc
        if name.startswith(("SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")):
            raise DatabaseError(f"cannot write the backup {target}: {exc}") from exc
        with translate_errors(source, "back up"):
            raise
