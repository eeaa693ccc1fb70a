"""One sync at a time per store: an advisory lock that the operating system or server releases.

On SQLite it is ``flock`` on a file beside the database (``<database>.sync-lock``,
made once, never written to, and left in place: removing a lock file races
with the next process that opens it). On PostgreSQL it is a session-level
advisory lock keyed on the schema. Either is released when the holder ends,
even by SIGKILL, so a crashed sync never blocks the next one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from peewee import Database

from ..backends import backend_for
from ..errors import DatabaseError, SyncInProgressError

__all__ = ["sync_lock", "lock_path"]

log = logging.getLogger(__name__)

_PG_KEY = "ctx_models.sync:"
_POLL_SECONDS = 0.2


def lock_path(db: Database) -> str | None:
    """The lock file of a SQLite database on disk (None for an in-memory one)."""
    name = str(db.database)
    if name.startswith((":memory:", "file::memory:")) or "mode=memory" in name:
        return None
    if name.startswith("file:"):
        name = name[5:].split("?", 1)[0]
    return os.path.abspath(name) + ".sync-lock"


@contextmanager
def sync_lock(db: Database, *, wait: bool = False) -> Iterator[None]:
    """Hold the store's sync lock; SyncInProgressError at once when it is held (unless ``wait``)."""
    backend = backend_for(db)
    if backend.name == "postgresql":
        with _postgres_lock(db, wait):
            yield
        return
    path = lock_path(db)
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock, as before this existed
        log.warning("no file locks on this system: two syncs at once are not prevented")
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DatabaseError(f"cannot open the sync lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise SyncInProgressError(
                f"another sync is writing to {backend.location} (it holds {path}); "
                "wait for it to finish, or pass --wait to queue behind it"
            ) from None
        except OSError as exc:  # e.g. a file system without locks
            raise DatabaseError(
                f"cannot lock {path} to sync: {exc.strerror}; put the database on a local disk"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _postgres_lock(db: Database, wait: bool) -> Iterator[None]:
    backend = backend_for(db)
    key = "SELECT hashtext(%s || current_schema())"
    with backend.errors("lock"):
        (lock_key,) = db.execute_sql(key, (_PG_KEY,)).fetchone()
        while True:
            (got,) = db.execute_sql("SELECT pg_try_advisory_lock(%s)", (lock_key,)).fetchone()
            if got:
                break
            if not wait:
                raise SyncInProgressError(
                    f"another sync is writing to {backend.location}; wait for it to finish, "
                    "or pass --wait to queue behind it"
                )
            time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        with backend.errors("unlock"):
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (lock_key,))
