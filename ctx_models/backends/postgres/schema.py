"""The schema on PostgreSQL: the six tables, pgvector, a generated tsvector, and the version.

The tables and columns are the contract's, in PostgreSQL's types where
SQLite's do not carry over: epoch seconds are BIGINT (INTEGER ends in 2038),
ids TEXT, vectors pgvector's ``vector`` without a fixed size (so several
models and sizes live side by side). ``chunks_fts`` is an ordinary table whose
``tsv`` column is generated from ``text`` with the ``english`` configuration,
under a GIN index. The schema version is a comment on ``documents``, which
``psql``'s ``\\dt+`` shows and ``obj_description('documents'::regclass)`` reads.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import DatabaseError

__all__ = ["CHUNKS_FTS_DDL", "EXTRA_INDEXES", "VERSION_COMMENT", "MIGRATION_LOCK", "WRITE_LOCK"]

#: Advisory lock keys: one for migrations, one that writers take in turn.
MIGRATION_LOCK = 0x63747831  # "ctx1"
WRITE_LOCK = 0x63747832  # "ctx2"

#: metadata_json is text, and may hold any text (the ctx tool's script connectors): JSON
#: paths read it through this function, which gives NULL for text that is not JSON.
JSON_FUNCTION_DDL = (
    "CREATE OR REPLACE FUNCTION ctx_models_jsonb(value text) RETURNS jsonb "
    "LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN value::jsonb; "
    "EXCEPTION WHEN others THEN RETURN NULL; END $$"
)
CHUNKS_FTS_DDL = (
    "CREATE TABLE IF NOT EXISTS chunks_fts ("
    "chunk_id TEXT, document_id TEXT, text TEXT, "
    "tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(text, ''))) STORED)"
)
#: Indexes PostgreSQL needs beyond the contract's four: the keyword index, lookups of
#: keyword rows by chunk and document, and the model and size of stored vectors.
EXTRA_INDEXES = {
    "chunks_fts_tsv": "CREATE INDEX IF NOT EXISTS chunks_fts_tsv ON chunks_fts USING gin (tsv)",
    "chunks_fts_chunk_id": "CREATE INDEX IF NOT EXISTS chunks_fts_chunk_id ON chunks_fts (chunk_id)",
    "chunks_fts_document_id": (
        "CREATE INDEX IF NOT EXISTS chunks_fts_document_id ON chunks_fts (document_id)"
    ),
    "embeddings_model": "CREATE INDEX IF NOT EXISTS embeddings_model ON embeddings (model)",
    "chunk_vectors_dims": (
        "CREATE INDEX IF NOT EXISTS chunk_vectors_dims ON chunk_vectors (vector_dims(embedding))"
    ),
}
VERSION_COMMENT = "ctx_models schema version {version}"
_VERSION = re.compile(r"ctx_models schema version (\d+)")
MIN_PGVECTOR = (0, 5)


def read_version(db: Any) -> int:
    """The version in the comment on ``documents`` (0 when there is none)."""
    row = db.execute_sql(
        "SELECT obj_description(c.oid, 'pg_class') FROM pg_class AS c "
        "WHERE c.relname = 'documents' AND c.relnamespace = current_schema()::regnamespace"
    ).fetchone()
    found = _VERSION.search(row[0] or "") if row else None
    return int(found.group(1)) if found else 0


def ensure_pgvector(db: Any) -> None:
    """Create the ``vector`` extension when allowed; else say in one line what to install."""
    row = db.execute_sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is None:
        available = db.execute_sql(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if available is None:
            raise DatabaseError(
                "the server has no pgvector: install the vector extension (0.5 or newer) on "
                "the PostgreSQL server, then run `ctx-models init` again"
            )
        with db.atomic():  # a savepoint: a refusal leaves the migration's transaction usable
            try:
                db.execute_sql("CREATE EXTENSION IF NOT EXISTS vector")
            except Exception as exc:
                raise DatabaseError(
                    "this user may not create the vector extension: ask an administrator to run "
                    "CREATE EXTENSION vector in this database, then run `ctx-models init` again"
                ) from exc
        row = db.execute_sql(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    version = tuple(int(part) for part in re.findall(r"\d+", row[0])[:2])
    if version < MIN_PGVECTOR:
        raise DatabaseError(
            f"the vector extension is {row[0]}; ctx_models needs 0.5 or newer "
            "(ALTER EXTENSION vector UPDATE)"
        )


def object_names(db: Any) -> set[str]:
    """Tables and indexes in the current schema."""
    rows = db.execute_sql(
        "SELECT relname FROM pg_class WHERE relkind IN ('r', 'i') "
        "AND relnamespace = current_schema()::regnamespace"
    )
    return {row[0] for row in rows}


# What the contract's tables must hold here: column -> type as pg's format_type() writes it.
EXPECTED_COLUMNS = {
    "documents": {
        "id": "text", "source": "text", "source_id": "text", "source_url": "text",
        "title": "text", "author": "text", "created_at": "bigint", "updated_at": "bigint",
        "content_type": "text", "body": "text", "metadata_json": "text", "raw_json": "text",
        "dedup_hash": "text",
    },
    "chunks": {"id": "text", "document_id": "text", "chunk_index": "integer", "text": "text",
               "hash": "text"},
    "checkpoints": {"source": "text", "cursor": "text", "updated_at": "bigint"},
    "chunks_fts": {"chunk_id": "text", "document_id": "text", "text": "text", "tsv": "tsvector"},
    "embeddings": {"chunk_id": "text", "model": "text", "dims": "integer", "created_at": "bigint",
                   "hash": "text"},
    "chunk_vectors": {"chunk_id": "text", "document_id": "text", "embedding": "vector"},
}
#: Index -> its table (a problem names both, as SQLite's check does).
NAMED_INDEXES = {
    "idx_chunks_document_id": "chunks",
    "idx_documents_source": "documents",
    "idx_documents_updated_at": "documents",
    "idx_chunk_vectors_document_id": "chunk_vectors",
    **{name: ddl.split(" ON ", 1)[1].split()[0] for name, ddl in EXTRA_INDEXES.items()},
}


def schema_problems(db: Any) -> list[str]:
    """Differences from the schema ``run_migrations`` makes, in the words of SQLite's check."""
    rows = db.execute_sql(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
        "JOIN pg_class AS c ON c.oid = a.attrelid WHERE c.relkind = 'r' AND a.attnum > 0 "
        "AND NOT a.attisdropped AND c.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    columns: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        columns.setdefault(table, {})[column] = kind
    problems = []
    for table, expected in EXPECTED_COLUMNS.items():
        have = columns.get(table)
        if have is None:
            problems.append(f"table {table} is missing")
            continue
        for column, kind in expected.items():
            if column not in have:
                problems.append(f"{table}: column {column} is missing")
            elif have[column] != kind:
                problems.append(f"{table}: column {column} is {have[column]}, expected {kind}")
    names = object_names(db)
    for index, table in NAMED_INDEXES.items():
        if index not in names:
            problems.append(f"{table}: index {index} is missing")
    return problems
