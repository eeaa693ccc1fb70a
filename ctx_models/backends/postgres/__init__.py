"""The PostgreSQL backend: the same models, store and search, on PostgreSQL with pgvector.

For stores shared across machines and processes, or too large for one file.
``connection`` opens a URL on psycopg 3 and translates errors; ``schema``
creates the tables, pgvector and the generated tsvector; ``keyword`` and
``vectors`` answer searches in SQL; ``bulk`` writes chunks and vectors with
COPY; ``integrity`` holds the logical checks.

Writers take turns (a transaction-level advisory lock), as on SQLite: each
write call decides against the stored rows under the lock, so two processes
ingesting the same document cannot both create it. Readers never wait, and
each search reads one snapshot (REPEATABLE READ).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np

from ...errors import DatabaseError, QuerySyntaxError
from ...models import MODELS, ChunkFTS, ChunkVector
from ..base import Backend, ChunkRow, KeywordAnswer, VectorAnswer
from . import bulk, keyword, schema, vectors
from .connection import DRIVER_ERRORS, connect, translate_errors
from .integrity import PostgresIntegrity

__all__ = ["PostgresBackend", "connect"]


class PostgresBackend(Backend):
    """A :class:`~ctx_models.backends.postgres.connection.PostgresDatabase` holding the schema."""

    name = "postgresql"
    driver_errors = DRIVER_ERRORS

    @property
    def location(self) -> str:
        return str(getattr(self.db, "url", "") or f"postgresql:///{self.db.database}")

    # ------------------------------------------------------------------ errors and transactions

    def errors(self, action: str) -> AbstractContextManager[None]:
        return translate_errors(
            self.location, action, secrets=getattr(self.db, "secrets", ()), db=self.db
        )

    @contextmanager
    def write_transaction(self, action: str = "write") -> Iterator[None]:
        with self.errors(action), self.db.atomic():
            # Writers take turns, as on SQLite (and wait up to lock_timeout for their turn).
            self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (schema.WRITE_LOCK,))
            yield

    @contextmanager
    def read_snapshot(self, action: str = "read") -> Iterator[bool]:
        with self.errors(action):
            if self.db.in_transaction():
                yield True
                return
            with self.db.atomic("REPEATABLE READ"):
                yield False

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int:
        return schema.read_version(self.db)

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        # Concurrent `init`s queue up on the lock; the later ones find nothing to do.
        with self.db.atomic():
            self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (schema.MIGRATION_LOCK,))
            yield

    def create_schema(self) -> list[str]:
        schema.ensure_pgvector(self.db)
        self.db.register_vector_types()  # type: ignore[attr-defined]
        before = schema.object_names(self.db)
        self.db.create_tables([m for m in MODELS if m is not ChunkFTS], safe=True)
        self.db.execute_sql(schema.CHUNKS_FTS_DDL)
        if not self.db.execute_sql(
            "SELECT 1 FROM pg_proc WHERE proname = 'ctx_models_jsonb' "
            "AND pronamespace = current_schema()::regnamespace"
        ).fetchone():
            self.db.execute_sql(schema.JSON_FUNCTION_DDL)
        for ddl in schema.EXTRA_INDEXES.values():
            self.db.execute_sql(ddl)
        created = sorted(schema.object_names(self.db) - before)
        return [name for name in created if not name.endswith("_pkey")]

    def stamp_schema_version(self, version: int) -> None:
        comment = schema.VERSION_COMMENT.format(version=int(version))
        self.db.execute_sql(f"COMMENT ON TABLE documents IS '{comment}'")

    def table_names(self) -> set[str]:
        return set(self.db.get_tables())

    # ------------------------------------------------------------------ writes

    def insert_chunks(self, rows: Sequence[ChunkRow]) -> None:
        bulk.insert_chunks(self.db, rows)

    def delete_keyword_rows(self, document_ids: Sequence[str], *, deleting_documents: bool) -> None:
        self.db.execute_sql(
            "DELETE FROM chunks_fts WHERE document_id = ANY(%s)", (list(document_ids),)
        )

    def write_vectors(self, rows: Sequence[tuple[str, str, str, str, int, int, bytes]]) -> None:
        bulk.write_vectors(self.db, rows)

    # ------------------------------------------------------------------ reads

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
        statistics = keyword.ColumnStatistics(self.db)
        try:
            with self.db.atomic():  # a savepoint: a syntax error leaves the snapshot usable
                answer = keyword.plan(self.db, text, match, raw, statistics)
        except DRIVER_ERRORS as exc:
            if raw and _sqlstate(exc) in ("42601", "22023"):
                raise QuerySyntaxError(
                    f"PostgreSQL rejected the tsquery {text!r:.80}: {exc}. Check the operators "
                    "(& | ! <->), or search without raw=True to treat the text as plain words"
                ) from exc
            raise
        if answer.expression:
            answer.candidates = keyword.run(
                self.db, answer.expression, limit, source, since, statistics
            )
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
        packed = query.astype("<f4").tobytes()
        return vectors.search(self.db, packed, limit, source, since, model, approximate=not exact)

    def vector_size(self, model: str) -> int | None:
        row = self.db.execute_sql(
            "SELECT vector_dims(v.embedding) FROM embeddings AS e "
            "JOIN chunk_vectors AS v ON v.chunk_id = e.chunk_id WHERE e.model = %s LIMIT 1",
            (model,),
        ).fetchone()
        return None if row is None else int(row[0])

    def stored_models(self, *, outer_transaction: bool) -> dict[str, int]:
        return vectors.stored_models(self.db)

    def vector_lengths(self, *, outer_transaction: bool) -> list[int]:
        return vectors.lengths(self.db)

    # ------------------------------------------------------------------ integrity and maintenance

    def integrity(self) -> PostgresIntegrity:
        return PostgresIntegrity(self.db)

    def build_hnsw_indexes(self) -> list[tuple[str, int]]:
        built = []
        with self.write_transaction("index"):
            for dims in vectors.lengths(self.db):
                if dims > 2000:  # pgvector's HNSW limit for vector
                    raise DatabaseError(
                        f"vectors of {dims} dimensions are too long for pgvector's HNSW (2,000 "
                        "at most); exact search serves them"
                    )
                built.append((vectors.create_hnsw(self.db, dims), dims))
        return built

    def sample_vectors(self, dims: int, count: int) -> list[np.ndarray]:
        with self.read_snapshot("measure"):
            rows = self.db.execute_sql(
                "SELECT embedding FROM chunk_vectors WHERE vector_dims(embedding) = %s "
                "ORDER BY random() LIMIT %s",
                (dims, count),
            ).fetchall()
        # vector_dims() of a NULL is NULL, so every row read holds a vector.
        decoded = (ChunkVector.embedding.python_value(stored) for (stored,) in rows)
        return [vector for vector in decoded if vector is not None]

    def backup(self, target: Path) -> None:
        raise DatabaseError(
            f"backing up {self.location} is pg_dump's job: pg_dump --format=custom "
            f"--file={target} URL (ctx-models copy URL {target} makes a SQLite copy)"
        )

    def size_on_disk(self) -> int | None:
        row = self.db.execute_sql(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class AS c WHERE c.relkind = 'r' "
            "AND c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace",
            (["documents", "chunks", "checkpoints", "chunks_fts", "embeddings", "chunk_vectors"],),
        ).fetchone()
        return int(row[0] or 0)


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(getattr(exc, "orig", exc), "sqlstate", "") or "")
