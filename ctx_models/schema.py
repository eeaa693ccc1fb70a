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

from .backends import backend_for
from .errors import SchemaVersionError
from .identifiers import quote_identifier
from .models import CONTRACT_TABLES, MODELS, SCHEMA_VERSION, bound_database

__all__ = [
    "SCHEMA_VERSION",
    "INDEXES",
    "CONTRACT_TABLES",
    "MigrationResult",
    "run_migrations",
    "schema_version",
]

log = logging.getLogger(__name__)

#: The contract's named indexes, as declared on the models (``create_tables`` makes them).
INDEXES: tuple[ModelIndex, ...] = tuple(
    index for model in MODELS for index in model._meta.indexes if isinstance(index, ModelIndex)
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
    """The stored schema version (0 when never stamped)."""
    return backend_for(db or bound_database()).schema_version()


def run_migrations(db: Database | None = None) -> MigrationResult:
    """Create missing tables and indexes and apply upgrade steps; safe to run any number of times.

    Everything happens under the backend's migration lock (on SQLite one
    ``BEGIN IMMEDIATE`` transaction), so concurrent runs queue up and the later
    ones find nothing to do. A database stamped with a newer version than
    :data:`SCHEMA_VERSION` is refused without being changed.
    """
    db = db or bound_database()
    backend = backend_for(db)
    with backend.errors("migrate"), db.bind_ctx(MODELS), backend.migration_lock():
        stored = backend.schema_version()
        if stored > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{backend.location} has schema version {stored}, newer than this ctx_models "
                f"knows ({SCHEMA_VERSION}); upgrade ctx_models (pip install -U ctx-models)"
            )
        created = backend.create_schema()
        # A damaged file can still list its tables: read a row of each, so that
        # "already up to date" is never said of a database that cannot be read.
        for table in CONTRACT_TABLES:
            db.execute_sql(f"SELECT * FROM {quote_identifier(table)} LIMIT 1").fetchall()
        result = MigrationResult(version=max(stored, 1), created=created)
        for target in range(max(stored, 1) + 1, SCHEMA_VERSION + 1):
            log.info("upgrading %s to schema version %d", backend.location, target)
            UPGRADES[target](db)
            result.upgraded_from, result.version = result.upgraded_from or stored, target
        if result.changed and stored != result.version:
            backend.stamp_schema_version(result.version)
    if created:
        log.info("created %s in %s", ", ".join(created), backend.location)
    return result
