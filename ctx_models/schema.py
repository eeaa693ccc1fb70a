"""Creating and upgrading the schema: :func:`run_migrations`.

The schema version lives in SQLite's ``PRAGMA user_version`` rather than in a
``playhouse.migrations`` history table, because the contract fixes the set of
tables: an extra table would make our databases differ from the ``ctx`` tool's.
``user_version`` is one integer in the file header, changes in the same
transaction as the DDL, and is readable by any SQLite tool; a linear chain of
upgrade steps is all this schema needs.

Version 0 means "not stamped": a new file, or a database the ``ctx`` tool made.
A complete unstamped schema *is* the contract's baseline (version 1), so
``run_migrations`` leaves such a database exactly as it is and only stamps the
version when it had to create something or apply an upgrade step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from peewee import Database, ModelIndex

from .errors import SchemaVersionError
from .models import MODELS, Chunk, ChunkVector, Document, bound_database
from .sqlite import translate_errors

__all__ = [
    "SCHEMA_VERSION",
    "INDEXES",
    "CONTRACT_TABLES",
    "MigrationResult",
    "run_migrations",
    "schema_version",
    "describe_schema",
    "reference_schema",
    "schema_differences",
]

log = logging.getLogger(__name__)

#: The newest schema version this package knows how to create and read.
SCHEMA_VERSION = 1

#: The contract's named indexes; created after the tables, by name.
INDEXES: tuple[ModelIndex, ...] = (
    ModelIndex(Chunk, (Chunk.document,), name="idx_chunks_document_id"),
    ModelIndex(Document, (Document.source,), name="idx_documents_source"),
    ModelIndex(Document, (Document.updated_at.desc(),), name="idx_documents_updated_at"),
    ModelIndex(ChunkVector, (ChunkVector.document,), name="idx_chunk_vectors_document_id"),
)

#: Upgrade steps: ``UPGRADES[n]`` turns a version ``n - 1`` database into version ``n``.
#: Version 1 is the contract's baseline, which ``create_tables`` already builds.
UPGRADES: dict[int, Callable[[Database], None]] = {}


@dataclass
class MigrationResult:
    """What :func:`run_migrations` did."""

    version: int
    created: list[str] = field(default_factory=list)
    upgraded_from: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.created) or self.upgraded_from is not None


def schema_version(db: Database | None = None) -> int:
    """The stored ``user_version`` (0 when never stamped)."""
    db = db or bound_database()
    return int(db.execute_sql("PRAGMA user_version").fetchone()[0])


def _object_names(db: Database) -> set[str]:
    cursor = db.execute_sql("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
    return {row[0] for row in cursor}


def run_migrations(db: Database | None = None) -> MigrationResult:
    """Create missing tables and indexes and apply upgrade steps; safe to run any number of times.

    Everything happens in one ``BEGIN IMMEDIATE`` transaction, so concurrent
    runs on one file queue up and the later ones find nothing to do. A
    database stamped with a newer version than :data:`SCHEMA_VERSION` is
    refused without being changed.
    """
    db = db or bound_database()
    with translate_errors(db.database, "migrate"), db.bind_ctx(MODELS), db.atomic("IMMEDIATE"):
        stored = schema_version(db)
        if stored > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{db.database} has schema version {stored}, newer than this ctx_models knows "
                f"({SCHEMA_VERSION}); upgrade ctx_models (pip install -U ctx-models)"
            )
        before = _object_names(db)
        db.create_tables(MODELS, safe=True)
        for index in INDEXES:
            db.execute(index.safe(True))
        created = sorted(_object_names(db) - before)
        # Shadow tables and autoindexes come with their table; report what the user knows.
        created = [n for n in created if not n.startswith(("chunks_fts_", "sqlite_"))]
        result = MigrationResult(version=max(stored, 1), created=created)
        for target in range(max(stored, 1) + 1, SCHEMA_VERSION + 1):
            log.info("upgrading %s to schema version %d", db.database, target)
            UPGRADES[target](db)
            result.upgraded_from, result.version = result.upgraded_from or stored, target
        if result.changed and stored != result.version:
            db.execute_sql(f"PRAGMA user_version = {int(result.version)}")
    if created:
        log.info("created %s in %s", ", ".join(created), db.database)
    return result


# --------------------------------------------------------------------------- comparing schemas

#: The contract's tables, in the order a reader meets them.
CONTRACT_TABLES = (
    "documents",
    "chunks",
    "checkpoints",
    "chunks_fts",
    "embeddings",
    "chunk_vectors",
)


def describe_schema(conn: Any) -> dict[str, Any]:
    """What SQLite reports about the contract's tables: columns, indexes, foreign keys, FTS5 columns.

    ``conn`` is a ``sqlite3.Connection`` or a peewee database. Primary key columns
    are reported without NOT NULL, which the contract leaves open.
    """
    execute = conn.execute_sql if hasattr(conn, "execute_sql") else conn.execute
    description: dict[str, Any] = {}
    for table in CONTRACT_TABLES:
        row = execute("SELECT type, sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        if row is None:
            continue
        if table == "chunks_fts":
            description[table] = {"fts5_columns": _fts5_columns(row[1])}
            continue
        columns = [
            (name, decl_type, bool(notnull) and not pk, default, pk)
            for _, name, decl_type, notnull, default, pk in execute(f'PRAGMA table_info("{table}")')
        ]
        indexes = {}
        for _, name, unique, origin, partial in execute(f'PRAGMA index_list("{table}")'):
            info = tuple(
                (col, bool(desc), coll)
                for _, _, col, desc, coll, key in execute(f'PRAGMA index_xinfo("{name}")')
                if key
            )
            indexes[name] = (bool(unique), origin, bool(partial), info)
        foreign_keys = sorted(
            (src, ref_table, dst, on_update, on_delete, match)
            for _, _, ref_table, src, dst, on_update, on_delete, match in execute(
                f'PRAGMA foreign_key_list("{table}")'
            )
        )
        description[table] = {"columns": columns, "indexes": indexes, "foreign_keys": foreign_keys}
    return description


def _fts5_columns(sql: str) -> list[str] | None:
    """The column list of a ``CREATE VIRTUAL TABLE ... USING fts5(...)``, identifiers unquoted."""
    head, _, rest = sql.partition("(")
    if "fts5" not in head.lower() or not rest.rstrip().endswith(")"):
        return None
    items = [item.strip() for item in rest.rstrip()[:-1].split(",")]
    return [" ".join(part.strip('"`[]') for part in item.split()) for item in items]


def reference_schema() -> dict[str, Any]:
    """:func:`describe_schema` of a database that :func:`run_migrations` just made."""
    from peewee import SqliteDatabase

    reference = SqliteDatabase(":memory:")
    try:
        run_migrations(reference)
        return describe_schema(reference)
    finally:
        reference.close()


def schema_differences(actual: dict[str, Any], expected: dict[str, Any] | None = None) -> list[str]:
    """Human-readable differences from the contract's schema; empty when they match."""
    expected = reference_schema() if expected is None else expected
    problems: list[str] = []
    for table, want in expected.items():
        have = actual.get(table)
        if have is None:
            problems.append(f"table {table} is missing")
            continue
        for key in ("fts5_columns", "foreign_keys"):
            if key in want and have.get(key) != want[key]:
                problems.append(
                    f"{table}: {key.replace('_', ' ')} are {have.get(key)}, expected {want[key]}"
                )
        if "columns" in want:
            have_columns = {c[0]: c for c in have["columns"]}
            for column in want["columns"]:
                if column[0] not in have_columns:
                    problems.append(f"{table}: column {column[0]} is missing")
                elif have_columns[column[0]] != column:
                    problems.append(
                        f"{table}: column {column[0]} is {have_columns[column[0]][1:]}, expected {column[1:]}"
                    )
            for name in sorted(set(have_columns) - {c[0] for c in want["columns"]}):
                problems.append(f"{table}: unexpected column {name}")
            for name, index in want["indexes"].items():
                if name.startswith("sqlite_autoindex"):
                    if index not in have["indexes"].values():
                        problems.append(f"{table}: constraint index {index[3]} is missing")
                elif name not in have["indexes"]:
                    problems.append(f"{table}: index {name} is missing")
                elif have["indexes"][name] != index:
                    problems.append(
                        f"{table}: index {name} is {have['indexes'][name]}, expected {index}"
                    )
    return problems
