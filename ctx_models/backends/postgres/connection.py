"""Opening a PostgreSQL database by URL, psycopg 3 under peewee, and translating its errors.

The ``postgres`` extra brings the driver (``psycopg[binary]``) and pgvector's
Python package; without them a URL is refused with the pip command to run.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from ...errors import ConfigError, DatabaseError, NotADatabaseError
from ...fields import PackedVector
from ...models import bind
from ..urls import SCHEMES, is_url, redact

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


class PostgresDatabase(Psycopg3Database):
    """peewee's psycopg 3 database, with pgvector's type registered on every connection.

    Vectors are columns of pgvector's ``vector`` type (the models say BLOB, the
    SQLite type; ``field_types`` maps it).
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("field_types", {"BLOB": "vector"})
        super().__init__(url, **kwargs)
        self.url = url

    def _connect(self) -> Any:
        conn = super()._connect()
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


def _translated(exc: BaseException, where: str, action: str) -> DatabaseError:
    state = _sqlstate(exc)
    message = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    if state.startswith("28"):
        return DatabaseError(
            f"cannot {action} {where}: the server refused the credentials ({message}); "
            "check the user and password in the URL"
        )
    if state == "3D000":
        return DatabaseError(
            f"cannot {action} {where}: the database does not exist; create it (createdb) "
            "or fix the name in the URL"
        )
    if state == "53100":
        return DatabaseError(
            f"cannot {action} {where}: the database or disk is full; nothing of this write "
            "was kept. Free some space and retry"
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
def translate_errors(where: str, action: str = "open") -> Iterator[None]:
    """Turn psycopg's and peewee's errors into ours, by SQLSTATE."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise _translated(exc, where, action) from exc


# --------------------------------------------------------------------------- connecting


def connect(
    url: str, *, bind_models: bool = True, timeout: float = 30.0, readonly: bool = False, **_: Any
) -> Any:
    """Connect to the PostgreSQL database named by ``url`` and bind every model to it.

    ``timeout`` bounds the connection attempt, and how long a statement waits for a
    lock (``lock_timeout``), like SQLite's busy timeout. With ``readonly`` every
    transaction of every connection is read-only (``default_transaction_read_only``).
    """
    if psycopg is None:
        raise ConfigError(f"a PostgreSQL URL needs the postgres extra: {INSTALL_HINT}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(f"{redact(url)}: not a postgresql:// URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigError(
            f"{redact(url)} is not a valid URL ({exc}); write postgresql://user@host:5432/dbname"
        ) from None
    query = dict(parse_qsl(parts.query))
    if not (parts.path.strip("/") or query.get("dbname")):
        raise ConfigError(
            f"{redact(url)} names no database; write postgresql://user@host:5432/dbname"
        )
    if re.search(r"\s", url):
        raise ConfigError(f"{redact(url)}: a URL has no spaces")
    milliseconds = int(timeout * 1000)
    # Ours come after the URL's own options (a search_path, say), which they leave alone.
    read_only = "-c default_transaction_read_only=on" if readonly else ""
    options = " ".join(
        filter(None, (query.get("options", ""), f"-c lock_timeout={milliseconds}", read_only))
    )
    db = PostgresDatabase(url, connect_timeout=max(1, int(timeout)), options=options)
    with translate_errors(redact(url), "connect to"):
        db.connect(reuse_if_open=True)
        version = db.server_version
    if version and version < 150000:
        db.close()
        raise DatabaseError(
            f"{redact(url)} runs PostgreSQL {version // 10000}; ctx_models needs 15 or newer"
        )
    log.debug("connected to %s (server %s)", redact(url), version)
    if bind_models:
        bind(db)
    return db
