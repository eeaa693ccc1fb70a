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

from peewee import Database, ModelIndex

from .errors import SchemaVersionError
from .models import MODELS, Chunk, ChunkVector, Document, bound_database
from .sqlite import translate_errors

__all__ = ["SCHEMA_VERSION", "INDEXES", "MigrationResult", "run_migrations", "schema_version"]

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
