"""Opening a SQLite database the way the contract asks: file checks, pragmas, error translation."""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import peewee
from peewee import SqliteDatabase

from ...errors import DatabaseError, NotADatabaseError, SchemaVersionError
from ...models import SCHEMA_VERSION, bind

__all__ = [
    "connect",
    "check_database_file",
    "read_user_version",
    "translate_errors",
    "sqlite_error_name",
    "ContextDatabase",
    "FileConnection",
    "ReadOnlyDatabase",
    "change_stamp",
    "DEFAULT_BUSY_TIMEOUT",
    "SQLITE_HEADER",
]

log = logging.getLogger(__name__)

#: Seconds a writer waits for another writer before giving up.
DEFAULT_BUSY_TIMEOUT = 30.0
SQLITE_HEADER = b"SQLite format 3\x00"

# Set on every connection. WAL is switched on separately (see _switch_to_wal).
# A 64 MB page cache (an upper bound, not an allocation) speeds bulk loads and
# FTS5 segment merges; SQLite's default is 2 MB.
PRAGMAS = (
    ("foreign_keys", 1),
    ("synchronous", "normal"),
    ("cache_size", -65536),
)


def check_database_file(path: Path) -> None:
    """Refuse paths that are not, or cannot become, a SQLite database file.

    Runs before SQLite opens the file, so nothing is changed on a bad path.
    """
    if path.is_dir():
        raise NotADatabaseError(
            f"{path} is a directory; pass the path of a database file, e.g. {path / 'ctx.sqlite'}"
        )
    if not path.exists():
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise DatabaseError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    if not header:
        return  # An empty file is a valid, empty SQLite database.
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise NotADatabaseError(
            f"{path} is not a SQLite database (its first bytes are not the SQLite header); "
            "pass the path of a ctx database, or a new path to create one"
        )
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, page_count = struct.unpack(">II", header[24:32])
    valid_for = struct.unpack(">I", header[92:96])[0]
    # Only a file at rest can be judged by its header: while a WAL file exists, a
    # checkpoint in another process may have written page 1 before the pages it adds.
    at_rest = not Path(f"{path}-wal").exists()
    if at_rest and valid_for == change_counter and page_count * page_size > path.stat().st_size:
        raise NotADatabaseError(
            f"{path} is truncated: its header says {page_count * page_size} bytes, the file has "
            f"{path.stat().st_size}; restore it from a backup"
        )


def read_user_version(path: Path, timeout: float = DEFAULT_BUSY_TIMEOUT) -> int:
    """Read ``PRAGMA user_version`` without changing the file (0 for a new file)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        with translate_errors(path):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return int(version)
    finally:
        conn.close()


def sqlite_error_name(exc: BaseException) -> str:
    """SQLite's name for the error behind ``exc`` (``SQLITE_FULL``, ``SQLITE_CORRUPT_VTAB``...).

    peewee wraps sqlite3's exception and keeps it as ``orig``; when a rollback
    fails after SQLite already undid the transaction, the cause is the
    exception it happened during, so the chain is followed.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = getattr(getattr(current, "orig", current), "sqlite_errorname", "")
        if name and name != "SQLITE_ERROR":
            return str(name)
        current = current.__cause__ or current.__context__
    return str(getattr(getattr(exc, "orig", exc), "sqlite_errorname", "") or "")


BACKUP_HINT = "run `ctx-models check` to see the damage, and restore a backup (`ctx-models backup` makes one)"


@contextmanager
def translate_errors(path: Any, action: str = "open") -> Iterator[None]:
    """Turn ``sqlite3``/peewee errors into our exceptions, by SQLite's error name."""
    try:
        yield
    except (sqlite3.Error, peewee.DatabaseError, peewee.InterfaceError) as exc:
        raise _translated(exc, path, action) from exc


def _translated(exc: BaseException, path: Any, action: str) -> DatabaseError:
    name = sqlite_error_name(exc)
    message = str(getattr(exc, "orig", exc))
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return NotADatabaseError(
            f"{path} is damaged or not a SQLite database ({message}); {BACKUP_HINT}"
        )
    if name.startswith("SQLITE_FULL"):
        return DatabaseError(
            f"cannot {action} {path}: the database or disk is full; nothing of this "
            "write was kept. Free some space (or raise max_page_count) and retry"
        )
    if name.startswith("SQLITE_READONLY"):
        return DatabaseError(
            f"cannot write to {path}: the file or its directory is read-only; "
            "fix the permissions or use another path"
        )
    if name.startswith("SQLITE_CANTOPEN"):
        return DatabaseError(
            f"cannot {action} {path}: SQLite could not open it; check the directory "
            "exists and is writable"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseError(
            f"{path} stayed locked by another process past the busy timeout; retry, "
            "or raise `timeout` in connect()"
        )
    if name.startswith("SQLITE_IOERR"):
        return DatabaseError(f"cannot {action} {path}: the disk reported an I/O error ({message})")
    return DatabaseError(f"cannot {action} {path}: {message}")


class FileConnection(sqlite3.Connection):
    """sqlite3's connection, remembering which file (path, device, inode) it opened."""

    opened: tuple[str, int, int] | None = None


class ContextDatabase(SqliteDatabase):
    """peewee's ``SqliteDatabase``, that notices its file being replaced, and whose rollback
    is a no-op once SQLite has rolled back itself.

    A database file deleted or replaced (a restore, ``mv``, ``backup --force`` by
    another program) while a connection is open leaves the connection on the
    old, unlinked file: what it commits is lost with it. So each transaction
    compares the file at the path with the one opened (one ``stat``, at BEGIN
    and again before COMMIT; before a statement outside a transaction) and
    fails with our error when they differ.

    On some errors (a full disk, an interrupt) SQLite ends the transaction on
    its own; peewee's rollback would then fail with "cannot rollback - no
    transaction is active" and hide the real error.
    """

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("factory", FileConnection)
        super().__init__(database, *args, **kwargs)

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()  # type: ignore[misc]  # peewee types lack _connect
        if isinstance(conn, FileConnection) and self.database not in (":memory:", ""):
            path = os.path.abspath(self.database)  # as opened: later chdir() changes nothing
            try:
                found = os.stat(path)
            except OSError:
                return conn  # not a plain file path (a URI): nothing to compare
            conn.opened = (path, found.st_dev, found.st_ino)
        return conn

    def check_file(self) -> None:
        """Raise DatabaseError when the file at the path is no longer the one this connection opened."""
        opened = getattr(self.connection(), "opened", None)
        if opened is None:
            return
        path, device, inode = opened
        try:
            found = os.stat(path)
            same = (found.st_dev, found.st_ino) == (device, inode)
        except OSError:
            same = False
        if not same:
            raise DatabaseError(
                f"the database file {path} was deleted or replaced while open; nothing of "
                "this transaction was kept. Reopen it (run the command again) to use the "
                "file that is there now"
            )

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        # A statement outside a transaction commits by itself (set_checkpoint's upsert).
        if not self.connection().in_transaction:
            self.check_file()
        return super().execute_sql(sql, params)

    def begin(self, lock_type: str | None = None) -> None:
        self.check_file()
        super().begin(lock_type)

    def commit(self) -> None:
        # A failing commit is rolled back by peewee's transaction, which re-raises.
        self.check_file()
        super().commit()

    def rollback(self) -> None:
        if not self.is_closed() and not self.connection().in_transaction:
            return
        super().rollback()


class ReadOnlyDatabase(ContextDatabase):
    """A database every connection of which (one per thread) SQLite opens read-only.

    ``mode=ro``: a write raises SQLITE_READONLY, whatever the file's permissions,
    so a reader (``ctx-models serve``) cannot change the store by mistake. The
    path stays in ``database`` for messages; only the connection uses a URI.
    """

    def _connect(self) -> sqlite3.Connection:
        uri = Path(self.database).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(
            uri, timeout=self._timeout, isolation_level=None, uri=True, **self.connect_params  # type: ignore[attr-defined]
        )
        try:
            self._add_conn_hooks(conn)  # type: ignore[attr-defined]
        except Exception:
            conn.close()
            raise
        return conn


def _switch_to_wal(db: SqliteDatabase, timeout: float) -> str:
    """Turn on WAL, retrying while another process holds the lock, for up to ``timeout`` seconds.

    Changing the journal mode of a new file takes an exclusive lock, and SQLite
    does not wait for it through the busy handler (it could deadlock), so several
    processes opening one new file at once would fail at once without this.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            return str(db.execute_sql("PRAGMA journal_mode = wal").fetchone()[0])
        except (sqlite3.OperationalError, peewee.OperationalError) as exc:
            locked = sqlite_error_name(exc).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
            if not locked or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def _check_version(path: Any, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has schema version {version}, newer than this ctx_models "
            f"knows ({SCHEMA_VERSION}); upgrade ctx_models (pip install -U ctx-models)"
        )


def connect(
    path: str | os.PathLike[str],
    *,
    bind_models: bool = True,
    timeout: float = DEFAULT_BUSY_TIMEOUT,
    check_version: bool = True,
    create: bool = True,
    readonly: bool = False,
) -> SqliteDatabase:
    """Open (creating if needed) the database at ``path`` with the contract's settings.

    WAL journal, foreign keys on, ``synchronous=NORMAL`` and a busy timeout of
    ``timeout`` seconds. Creates the file and its parent directory unless
    ``create`` is false. With ``bind_models`` (the default) every model uses the
    returned database. A database written by a newer ctx_models is refused
    before anything in it is touched. With ``readonly`` every connection is
    opened read-only (``mode=ro``): the file must exist, and nothing, not even
    the journal mode, is changed.
    """
    raw = os.fspath(path)
    if readonly:
        create = False
    if raw == ":memory:":
        db = ContextDatabase(":memory:", pragmas=list(PRAGMAS), timeout=timeout)
    else:
        file_path = Path(raw).expanduser()
        check_database_file(file_path)
        if not create and not file_path.exists():
            raise DatabaseError(
                f"no database at {file_path}; create it with `ctx-models init --db {file_path}`"
            )
        if check_version and not readonly:  # read-only: checked below, on its own connection
            _check_version(file_path, read_user_version(file_path, timeout))
        if readonly:
            # The contract's WAL mode is the writer's to set; a reader reads either journal.
            db = ReadOnlyDatabase(str(file_path), pragmas=list(PRAGMAS), timeout=timeout)
        else:
            try:
                file_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create directory {file_path.parent}: {exc.strerror}; "
                    "choose a writable location with --db or CTX_MODELS_DB"
                ) from exc
            db = ContextDatabase(str(file_path), pragmas=list(PRAGMAS), timeout=timeout)
    with translate_errors(raw):
        db.connect(reuse_if_open=True)
        if readonly:
            mode = str(db.execute_sql("PRAGMA journal_mode").fetchone()[0])
            version = int(db.execute_sql("PRAGMA user_version").fetchone()[0])
            db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()
        else:
            mode = _switch_to_wal(db, timeout) if raw != ":memory:" else "memory"
    if readonly and check_version:
        try:
            _check_version(raw, version)
        except SchemaVersionError:
            db.close()
            raise
    if raw != ":memory:" and not readonly and str(mode).lower() != "wal":
        db.close()
        raise DatabaseError(
            f"{raw}: SQLite refused WAL mode (journal_mode is {mode}); the file system may "
            "not support shared memory (network drives); use a local path"
        )
    log.debug("opened %s (journal_mode=%s, busy timeout %.1fs)", raw, mode, timeout)
    if bind_models:
        bind(db)
    return db


def change_stamp(conn: sqlite3.Connection) -> tuple[int, int]:
    """What changes whenever the data may have: ``(PRAGMA data_version, total_changes)``.

    ``data_version`` moves when another connection (or process) commits,
    ``total_changes`` when this one writes.
    """
    return (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
