"""Database backends: SQLite (the contract's engine, one file) and, for larger stores, PostgreSQL.

:func:`backend_for` gives the :class:`~ctx_models.backends.base.Backend` of a
peewee database; everything engine-specific goes through it, so the models,
the store, search and the command line have no other branch on the engine.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from peewee import Database, PostgresqlDatabase, SqliteDatabase

from ..errors import DatabaseError
from .base import Backend, Candidate, ChunkRow, KeywordAnswer, VectorAnswer
from .urls import is_url, location

__all__ = [
    "Backend",
    "Candidate",
    "ChunkRow",
    "KeywordAnswer",
    "VectorAnswer",
    "backend_for",
    "connect",
    "is_url",
    "translated",
]

_LOCK = threading.Lock()


def connect(target: str | os.PathLike[str], **options: Any) -> Database:
    """Open the database ``target`` and bind every model to it.

    ``target`` is a SQLite file path, or a ``postgresql://user@host:5432/dbname``
    URL (with the ``postgres`` extra installed). Options: ``bind_models``,
    ``timeout`` (seconds a writer waits for another), ``readonly`` (every
    connection read-only), and for SQLite ``create`` and ``check_version``; see
    each backend's ``connect``. Text that starts like another URL
    (``sqlite:///x.db``, ``postgresql:/x``) is refused with
    :class:`~ctx_models.errors.ConfigError` unless a file of that name exists.
    """
    if isinstance(target, str):
        target = location(target) if target != ":memory:" else target
    if is_url(target):
        from .postgres.connection import connect as connect_postgres

        return connect_postgres(str(target), **options)
    from .sqlite.connection import connect as connect_sqlite

    return connect_sqlite(target, **options)


F = TypeVar("F", bound=Callable[..., Any])


def translated(action: str) -> Callable[[F], F]:
    """Run a public API function with the bound database's driver errors turned into ours."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            from ..models import bound_database

            with backend_for(bound_database()).errors(action):
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def backend_for(db: Database) -> Backend:
    """The backend of ``db`` (one per database object, made on first use).

    Kept on the database object itself: a weak-keyed table whose values hold
    their keys (a backend holds its database) would keep every database, and its
    connection, alive for good.
    """
    found: Backend | None = getattr(db, "_ctx_models_backend", None)
    if found is None:
        with _LOCK:
            found = getattr(db, "_ctx_models_backend", None)
            if found is None:
                found = _make(db)
                db._ctx_models_backend = found  # type: ignore[attr-defined]
    return found


def _make(db: Database) -> Backend:
    if isinstance(db, SqliteDatabase):
        from .sqlite import SQLiteBackend

        return SQLiteBackend(db)
    if isinstance(db, PostgresqlDatabase):
        from .postgres import PostgresBackend

        return PostgresBackend(db)
    raise DatabaseError(
        f"ctx_models has no backend for {type(db).__name__}; connect with "
        "ctx_models.connect(path or postgresql:// URL)"
    )
