"""Opening a PostgreSQL database by URL, psycopg 3 under peewee, and translating its errors.

The ``postgres`` extra brings the driver (``psycopg[binary]``) and pgvector's
Python package; without them a URL is refused with the pip command to run.
The URL is read by ``urls.parse`` and the driver gets keyword arguments, so no
driver message can echo it; a connection the server ended is replaced before
the next statement outside a transaction (``PostgresDatabase``).
"""

from __future__ import annotations

import logging
import re
import select
import struct
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...errors import ConfigError, ConnectionLostError, DatabaseError, NotADatabaseError
from ...fields import PackedVector
from ...models import bind
from ..urls import HINT, is_url, parse, redact, scrub

__all__ = ["connect", "is_url", "redact", "translate_errors", "PostgresDatabase", "DRIVER_ERRORS"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ctx-models[postgres]'"

try:
    import psycopg
    from pgvector.psycopg import register_vector
    from playhouse.postgres_ext import Psycopg3Database
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo
except ImportError:  # the extra is not installed: connect() says what to install
    psycopg = None  # type: ignore[assignment]
    Psycopg3Database = object
    DRIVER_ERRORS: tuple[type[BaseException], ...] = ()
else:
    import peewee

    DRIVER_ERRORS = (psycopg.Error, peewee.DatabaseError, peewee.InterfaceError)


# --------------------------------------------------------------------------- vectors on the wire


def _vector_binary(obj: bytes) -> bytes:
    """pgvector's binary form: dimensions and a reserved 0 (uint16 each), big-endian float32s."""
    values = np.frombuffer(obj, dtype="<f4")
    return struct.pack(">HH", len(values), 0) + values.astype(">f4").tobytes()


def _vector_text(obj: bytes) -> bytes:
    values = np.frombuffer(obj, dtype="<f4")
    # Nine significant digits give back every float32 exactly.
    return ("[" + ",".join(f"{float(v):.9g}" for v in values) + "]").encode()


def _register_vector_types(conn: Any) -> bool:
    """Teach one psycopg connection pgvector's type: our PackedVector out, pgvector's Vector in.

    Returns False while the ``vector`` extension is not installed yet.
    """
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        return False
    register_vector(conn)
    for name, fmt, dump in (("text", Format.TEXT, _vector_text), ("binary", Format.BINARY, _vector_binary)):
        dumper = type(
            f"PackedVector{name.title()}Dumper",
            (Dumper,),
            {"oid": info.oid, "format": fmt, "dump": lambda self, obj, _dump=dump: _dump(obj)},
        )
        conn.adapters.register_dumper(PackedVector, dumper)
    return True


class _Lost(Exception):
    """Raised inside peewee's calls when this thread's connection is gone; the database's
    own methods turn it into :class:`ConnectionLostError`.

    ``stage`` is where it was noticed: ``"statement"`` (outside a transaction),
    ``"transaction"`` (inside one: the server rolled it back) or ``"commit"`` (the
    answer to COMMIT never came: kept or not, nobody knows). Not named like a DB-API
    error, so peewee's exception wrapper (which goes by class names) lets it through.
    """

    def __init__(self, stage: str) -> None:
        super().__init__(f"the connection to the server was lost ({stage})")
        self.stage = stage


#: What the driver and peewee raise, and ours for a lost connection: what translate_errors takes.
DRIVER_ERRORS = (*DRIVER_ERRORS, _Lost)


# Connections whose server sent its last word (a FATAL message) while they were idle.
_ENDED: weakref.WeakSet[Any] = weakref.WeakSet()


def _watch_for_the_end(conn: Any) -> None:
    """Note a FATAL message that arrives between statements: libpq hands it over as a notice."""
    ref = weakref.ref(conn)

    def notice(diagnostic: Any) -> None:
        severity = diagnostic.severity_nonlocalized or diagnostic.severity or ""
        watched = ref()
        if watched is not None and severity.upper() in ("FATAL", "PANIC"):
            _ENDED.add(watched)

    conn.add_notice_handler(notice)


def _readable(fd: int) -> bool:
    """Whether the socket has something to read, now (poll: select cannot take fds >= 1024)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _alive(conn: Any) -> bool:
    """Whether an idle connection still has its server, without a round trip.

    A server that ends a session (``pg_terminate_backend``, a restart) sends a
    FATAL message, then its process exits and the socket closes. An idle
    connection that has something to read has heard from it: reading that, as
    libpq does for notifications, tells a notice from the end, whether or not
    the socket has closed yet.
    """
    if conn.closed or conn in _ENDED:
        return False
    try:
        for _ in range(4):  # the server's last message, then the end of the stream
            if not _readable(conn.fileno()):
                break
            conn.pgconn.consume_input()
            conn.pgconn.is_busy()  # parses what arrived; a FATAL message lands in _ENDED
    except (psycopg.Error, OSError, ValueError):
        return False
    return not conn.closed and conn not in _ENDED


class PostgresDatabase(Psycopg3Database):
    """peewee's psycopg 3 database, with pgvector's type registered on every connection,
    and a new connection after the server ended the old one.

    Vectors are columns of pgvector's ``vector`` type (the models say BLOB, the
    SQLite type; ``field_types`` maps it). ``url`` is the URL as shown, without
    its secrets; the driver gets keyword arguments, never the URL.

    A lost connection (a server restart, ``pg_terminate_backend``) is noticed
    before the next statement outside a transaction, and replaced by a new one
    then. Inside a transaction it is never replaced: the transaction fails with
    :class:`~ctx_models.errors.ConnectionLostError` (the server rolled it back),
    and the call after it connects again.
    """

    def __init__(
        self, dbname: str, *, display: str = "", secrets: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        kwargs.setdefault("field_types", {"BLOB": "vector"})
        super().__init__(dbname, **kwargs)
        self.url = display or f"postgresql:///{dbname}"
        self.secrets = tuple(secrets)

    def _connect(self) -> Any:
        conn = super()._connect()
        _watch_for_the_end(conn)
        try:
            _register_vector_types(conn)
        except psycopg.Error:  # no permission to read the catalog: a query will say so
            log.debug("could not look up pgvector's type", exc_info=True)
        return conn

    def get_context_options(self) -> dict[str, Any]:
        options: dict[str, Any] = super().get_context_options()
        options["json_path"] = json_path
        return options

    def register_vector_types(self) -> None:
        """Call after creating the extension: this connection learns the new type."""
        _register_vector_types(self.connection())

    # ------------------------------------------------------------------ lost connections

    def connection_lost(self) -> bool:
        """True when this thread's connection was open and the driver found it gone."""
        conn = self._state.conn
        return not self._state.closed and conn is not None and bool(conn.closed)

    def _ensure_connection(self) -> None:
        """Before a statement: outside a transaction, replace a connection the server ended;
        inside one, fail (what the transaction did is gone with the connection)."""
        conn = self._state.conn
        if self._state.closed or conn is None:
            return
        if self.in_transaction():
            if conn.closed:
                raise _Lost("transaction")
            return
        if _alive(conn):
            return
        log.info("the connection to %s was lost; connecting again", self.url)
        self._forget_connection()

    def _forget_connection(self) -> None:
        try:
            self._state.conn.close()
        except Exception:  # noqa: BLE001 - it is gone either way
            log.debug("closing a lost connection", exc_info=True)
        self._state.reset()

    def cursor(self, named_cursor: Any = None) -> Any:
        self._ensure_connection()
        return super().cursor(named_cursor)

    def connection(self) -> Any:
        try:
            self._ensure_connection()
        except _Lost as lost:
            raise self._lost_error(lost.stage) from None
        return super().connection()

    def _execute_cursor(self, sql: str, params: Any, **cursor_options: Any) -> Any:
        try:
            return super()._execute_cursor(sql, params, **cursor_options)
        except _Lost as lost:
            raise self._lost_error(lost.stage) from None
        except DRIVER_ERRORS as exc:
            if self.connection_lost():
                stage = "transaction" if self.in_transaction() else "statement"
                raise self._lost_error(stage) from exc
            raise

    def begin(self, isolation_level: Any = None) -> None:
        try:
            super().begin(isolation_level)
        except _Lost as lost:
            raise self._lost_error(lost.stage) from None
        except DRIVER_ERRORS as exc:
            if self.connection_lost():
                raise self._lost_error("statement") from exc  # BEGIN did not happen
            raise

    def commit(self) -> None:
        # Never through cursor(): on a new connection COMMIT would "commit" nothing.
        conn = self._state.conn
        if self._state.closed or conn is None:
            raise peewee.InterfaceError("Cannot commit, database connection not open.")
        if not _alive(conn):
            raise self._lost_error("transaction")  # ended before COMMIT was sent
        try:
            with peewee.__exception_wrapper__:  # type: ignore[attr-defined]
                conn.execute("COMMIT")
        except DRIVER_ERRORS as exc:
            if conn.closed:
                raise self._lost_error("commit") from exc
            raise

    def _lost_error(self, stage: str) -> ConnectionLostError:
        return ConnectionLostError(_lost_message(stage, self.url))

    def rollback(self) -> None:
        conn = self._state.conn
        if self._state.closed or conn is None:
            raise peewee.InterfaceError("Cannot rollback, database connection not open.")
        if not _alive(conn):
            conn.close()  # the server rolled back as the session ended; the next call reconnects
            return
        try:
            with peewee.__exception_wrapper__:  # type: ignore[attr-defined]
                conn.execute("ROLLBACK")
        except DRIVER_ERRORS:
            if not conn.closed:
                raise


def json_path(field: Any, path: tuple[str, ...]) -> Any:
    """``Document.metadata["team"]`` here: the value at the path as text, NULL where the
    stored text is not JSON (``ctx_models_jsonb`` returns NULL for it; see ``schema``)."""
    from peewee import SQL, NodeList, Value, fn

    keys = []
    for item in path:  # playhouse's path items: '."key"' or '[3]'
        key = item[1:-1] if item.startswith("[") else item[2:-1].replace('""', '"')
        keys.append(key)
    return NodeList((fn.ctx_models_jsonb(field), SQL("#>>"), Value(keys, unpack=False)), parens=True)


# --------------------------------------------------------------------------- errors


def _sqlstate(exc: BaseException) -> str:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(getattr(current, "orig", current), "sqlstate", None)
        if state:
            return str(state)
        current = current.__cause__ or current.__context__
    return ""


# A failed connection attempt has no SQLSTATE in psycopg: libpq gives only the text,
# with the server's message in it. These are PostgreSQL's own (English) words.
_CONNECT_STATES = (
    (re.compile(r"password authentication failed|authentication failed for user"), "28P01"),
    (re.compile(r"no password supplied|password is required"), "28P01-none"),
    (re.compile(r'role "[^"]*" does not exist'), "28000-role"),
    (re.compile(r"no pg_hba\.conf entry"), "28000-hba"),
    (re.compile(r'database "[^"]*" does not exist'), "3D000"),
    (re.compile(r"the database system is (starting up|shutting down|in recovery mode)"), "57P03"),
    (re.compile(r"too many clients|too many connections"), "53300"),
)
_QUOTED_USER = re.compile(r'(?:for user|role) "([^"]*)"')
_QUOTED_DATABASE = re.compile(r'database "([^"]*)"')


def _connect_state(message: str) -> str:
    for pattern, state in _CONNECT_STATES:
        if pattern.search(message):
            return state
    return ""


def _driver_text(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """The driver's message, one line, with every secret taken out."""
    original = getattr(exc, "orig", exc)
    text = str(original).strip()
    if not text:
        return type(original).__name__
    text = " ".join(text.splitlines()[0].split())
    text = re.sub(r"^connection failed: ", "", text)
    return scrub(text, secrets)


def _lost_message(stage: str, where: str, action: str = "") -> str:
    done = {
        "statement": "nothing was written",
        "transaction": "the server rolled back this call's transaction, so nothing of it was kept",
        "commit": "the answer to COMMIT never came, so this call's write may or may not have "
        "been kept: check before writing it again",
    }[stage]
    return (
        f"{f'cannot {action} ' if action else ''}{where}: the connection to the server was lost "
        f"(the server restarted, or an administrator ended the session); {done}. The next call "
        "connects again"
    )


def _translated(
    exc: BaseException, where: str, action: str, secrets: tuple[str, ...] = (), db: Any = None
) -> DatabaseError:
    lost = next(
        (e for e in (exc, exc.__cause__, exc.__context__) if isinstance(e, _Lost)), None
    )
    if lost is not None:
        return ConnectionLostError(_lost_message(lost.stage, where, action))
    if db is not None and getattr(db, "connection_lost", lambda: False)():
        return ConnectionLostError(_lost_message("transaction", where, action))
    message = _driver_text(exc, secrets)
    state = _sqlstate(exc) or _connect_state(message)
    named = _QUOTED_USER.search(message)
    given = getattr(db, "connect_params", {}).get("user")
    user = f'user "{named.group(1) if named else given}"' if named or given else "the URL's user"
    if state == "28P01-none":
        return DatabaseError(
            f"cannot {action} {where}: the server asks a password of {user} and none was "
            "given; put it in the URL (percent-encoded), in ~/.pgpass or in $PGPASSWORD"
        )
    if state == "28000-role":
        return DatabaseError(
            f"cannot {action} {where}: the server has no {user.replace('user', 'role')}; "
            "fix the user name in the URL, or create the role (CREATE ROLE ... LOGIN PASSWORD ...)"
        )
    if state == "28000-hba":
        return DatabaseError(
            f"cannot {action} {where}: the server's pg_hba.conf lets no connection of {user} to "
            "this database from here; ask its administrator for a pg_hba.conf line"
        )
    if state.startswith("28"):
        return DatabaseError(
            f"cannot {action} {where}: authentication failed for {user}; check the password "
            "in the URL (or ~/.pgpass) and the server's pg_hba.conf"
        )
    if state == "3D000":
        named = _QUOTED_DATABASE.search(message)
        database = f'database "{named.group(1)}"' if named else "the URL's database"
        name = named.group(1) if named else "NAME"
        return DatabaseError(
            f"cannot {action} {where}: the {database} does not exist; create it "
            f"(createdb {name}, or CREATE DATABASE {name}) or fix the name in the URL"
        )
    if state == "57P03":
        return DatabaseError(
            f"cannot {action} {where}: the server is starting up or shutting down; retry in "
            "a moment"
        )
    if state == "53300":
        return DatabaseError(
            f"cannot {action} {where}: the server has no connection slot left ({message}); "
            "retry later, or raise its max_connections"
        )
    if state == "53100":
        return DatabaseError(
            f"cannot {action} {where}: the database or disk is full; nothing of this write "
            "was kept. Free some space and retry"
        )
    if state.startswith("57P"):
        return ConnectionLostError(_lost_message("statement", where, action))
    if not state and "FATAL:" in message:  # the server answered, and said no
        return DatabaseError(
            f"cannot {action} {where}: the server refused the connection "
            f"({message.split('FATAL:', 1)[1].strip()})"
        )
    if state.startswith("08") or (not state and "connection" in message.lower()):
        return DatabaseError(
            f"cannot {action} {where}: no connection to the server ({message}); check that it "
            "is running and the URL's host and port"
        )
    if state == "42501":
        return DatabaseError(f"cannot {action} {where}: permission denied ({message})")
    if state.startswith(("40P01", "40001")):
        return DatabaseError(f"cannot {action} {where}: a concurrent write got in the way ({message}); retry")
    if state.startswith("XX00"):
        return NotADatabaseError(
            f"{where} reports damage ({message}); restore a backup (pg_dump makes them)"
        )
    if state == "42P01":
        return DatabaseError(
            f"{where} lacks the ctx schema ({message}); run `ctx-models init --db URL`"
        )
    return DatabaseError(f"cannot {action} {where}: {message}")


@contextmanager
def translate_errors(
    where: str, action: str = "open", *, secrets: tuple[str, ...] = (), db: Any = None
) -> Iterator[None]:
    """Turn psycopg's and peewee's errors into ours, by SQLSTATE (or, for a failed
    connection attempt, libpq's words), with no secret of ``secrets`` in the message.
    With ``db``, an error after its connection was lost says so."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise _translated(exc, where, action, secrets, db) from exc


# --------------------------------------------------------------------------- connecting


_KEYWORDS: frozenset[str] = frozenset()


def _libpq_keywords() -> frozenset[str]:
    """The connection parameters this libpq knows (a URL's query may name any of them)."""
    global _KEYWORDS
    if not _KEYWORDS:
        _KEYWORDS = frozenset(o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults())
    return _KEYWORDS


def connect(
    url: str, *, bind_models: bool = True, timeout: float = 30.0, readonly: bool = False, **_: Any
) -> Any:
    """Connect to the PostgreSQL database named by ``url`` and bind every model to it.

    The URL is read here (``postgresql://`` or ``postgres://``, any case) and the
    driver gets its parts as keyword arguments. ``timeout`` bounds the connection
    attempt (unless the URL sets ``connect_timeout``), and how long a statement
    waits for a lock (``lock_timeout``), like SQLite's busy timeout. With
    ``readonly`` every transaction of every connection is read-only
    (``default_transaction_read_only``).
    """
    if psycopg is None:
        raise ConfigError(f"a PostgreSQL URL needs the postgres extra: {INSTALL_HINT}")
    info = parse(url)
    params = dict(info.params)
    unknown = sorted(set(params) - _libpq_keywords())
    if unknown:
        raise ConfigError(
            f"{info.display}: unknown connection parameter(s) {', '.join(unknown)}; the query "
            "takes libpq's parameters (host, port, sslmode, options, connect_timeout...)"
        )
    dbname = params.pop("dbname", "")
    if not dbname:
        raise ConfigError(f"{info.display} names no database; {HINT}")
    milliseconds = int(timeout * 1000)
    # Ours come after the URL's own options (a search_path, say), which they leave alone.
    read_only = "-c default_transaction_read_only=on" if readonly else ""
    params["options"] = " ".join(
        filter(None, (params.get("options", ""), f"-c lock_timeout={milliseconds}", read_only))
    )
    params.setdefault("connect_timeout", str(max(1, int(timeout))))
    db = PostgresDatabase(dbname, display=info.display, secrets=info.secrets, **params)
    with translate_errors(info.display, "connect to", secrets=info.secrets, db=db):
        db.connect(reuse_if_open=True)
        version = db.server_version
    if version and version < 150000:
        db.close()
        raise DatabaseError(
            f"{info.display} runs PostgreSQL {version // 10000}; ctx_models needs 15 or newer"
        )
    log.debug("connected to %s (server %s)", info.display, version)
    if bind_models:
        bind(db)
    return db
