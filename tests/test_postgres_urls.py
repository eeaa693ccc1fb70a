"""PostgreSQL URLs: every shape of a password stays out of what is printed and logged; URLs are
read by us for both schemes and any case; malformed URLs and URL-like typos are refused in our
words.

The session's embedded server trusts local users, so a URL may carry any password and still
connect: the passwords here are made of tokens (``Tk1...``) that must appear nowhere.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import psycopg
import pytest
from conftest import ROOT

import ctx_models
from ctx_models.backends import urls

pytestmark = pytest.mark.backends("postgres")


@pytest.fixture
def schema(pg_url: str) -> Iterator[str]:
    """A new schema on the session server; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    try:
        ctx_models.bound_database().close()
    except ctx_models.CtxModelsError:
        pass
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _close_connections() -> None:
    """The CLI run in-process leaves the bound database open to the process's exit: close it.

    (copy closes its own two databases.) No gc.collect() here: in the full suite's heap it
    took a quarter of a second, twelve times per case.
    """
    try:
        ctx_models.bound_database().close()
    except ctx_models.CtxModelsError:
        pass


def _server(pg_url: str) -> tuple[str, str, str, str]:
    """(user, host:port part, database, query) of the session server's URL."""
    parts = urlsplit(pg_url)
    hostspec = parts.netloc.rsplit("@", 1)[-1]
    return parts.username or "postgres", hostspec, parts.path.lstrip("/"), parts.query


# Each shape: (id, userinfo password as written or None, extra query as written, the tokens that
# must never be shown, whether the URL is valid). Every password is made of tokens Tk<n>.
SHAPES = [
    ("userinfo", "Tk1secret", "", ["Tk1secret"], True),
    ("query", None, "password=Tk2secret", ["Tk2secret"], True),
    ("query-upper-key", None, "PASSWORD=Tk3secret", ["Tk3secret"], False),
    ("both", "Tk4first", "password=Tk5second", ["Tk4first", "Tk5second"], True),
    ("hash-and-question", "Tk6a#Tk7b?Tk8c", "", ["Tk6a", "Tk7b", "Tk8c"], True),
    ("encoded-specials", "Tk9a%23%2F%3F%40%25Tk10b", "", ["Tk9a", "Tk10b"], True),
    ("unencoded-slash", "Tk11a/Tk12b", "", ["Tk11a", "Tk12b"], False),
    ("unencoded-at", "Tk13a@Tk14b", "", ["Tk13a", "Tk14b"], False),
    ("bad-escape", "Tk15a%zzTk16b", "", ["Tk15a", "Tk16b"], False),
    ("bad-escape-in-query", None, "password=Tk17a%zTk18b", ["Tk17a", "Tk18b"], False),
    ("unicode", "Tk19pässwörd€", "", ["Tk19pässwörd", "pässwörd€"], True),
    ("unicode-encoded", quote("Tk20pässwörd"), "", ["Tk20pässwörd", "Tk20p%C3%A4"], True),
    ("sslpassword-passfile", None, "sslpassword=Tk21key&passfile=%2Ftmp%2FTk22file",
     ["Tk21key", "Tk22file"], True),
    ("options-holding-one", None, "options=-c%20password%3DTk23opt", ["Tk23opt"], False),
]
# Every shape with the usual scheme; the main ones with the others too.
CASES = [(shape, "postgresql") for shape in SHAPES] + [
    (shape, scheme)
    for shape in SHAPES
    if shape[0] in ("userinfo", "query", "both", "bad-escape")
    for scheme in ("POSTGRESQL", "postgres")
]


def _url(pg_url: str, schema: str | None, scheme: str, password: str | None, extra: str) -> str:
    user, hostspec, database, query = _server(pg_url)
    userinfo = f"{user}:{password}@" if password is not None else f"{user}@"
    pairs = [query] if query else []
    if schema:
        pairs.append("options=" + quote(f"-c search_path={schema},public", safe=""))
    if extra:
        pairs.append(extra)
    return f"{scheme}://{userinfo}{hostspec}/{database}?{'&'.join(pairs)}"


def _refused(pg_url: str, password: str | None, extra: str) -> str:
    """The same shape, aimed at a port where nothing listens."""
    user, _, database, _ = _server(pg_url)
    userinfo = f"{user}:{password}@" if password is not None else f"{user}@"
    return f"postgresql://{userinfo}127.0.0.1:9/{database}?connect_timeout=2" + (
        f"&{extra}" if extra else ""
    )


def _commands(url: str, tmp_path: Path) -> list[tuple[str, ...]]:
    copy = tmp_path / f"copy-{uuid.uuid4().hex[:8]}.sqlite"
    return [
        ("init", "--db", url),
        ("stats", "--db", url),
        ("stats", "--json", "--db", url),
        ("check", "--db", url),
        ("search", "runbook", "--db", url),
        ("export", "--db", url),
        ("copy", url, str(copy)),
        ("copy", "--merge", str(copy), url),
        ("index", "--hnsw", "--db", url),
        ("delete", "--source", "nothing-here", "--yes", "--db", url),
        ("backup", str(tmp_path / "backup.sqlite"), "--db", url),  # says: use pg_dump
    ]


@pytest.mark.parametrize("shape, scheme", CASES, ids=[f"{s[0]}-{scheme}" for s, scheme in CASES])
def test_no_password_shape_is_ever_printed_or_logged(
    shape, scheme: str, pg_url: str, schema: str, tmp_path: Path, run_cli, caplog
) -> None:
    _, password, extra, tokens, valid = shape
    url = _url(pg_url, schema, scheme, password, extra)
    caplog.set_level(logging.DEBUG)
    seen = []
    for argv in _commands(url, tmp_path) + [("stats", "--db", _refused(pg_url, password, extra))]:
        code, out, err = run_cli(*argv, "-vv")
        _close_connections()
        seen.append((argv[0], code, out, err))
        if valid and argv[0] == "backup":
            assert code == 1 and "pg_dump" in err, err
        elif valid and "127.0.0.1:9" not in argv[-1]:
            assert code == 0, (argv, err)
        else:
            assert code in (1, 2) and out == "" and err.count("\n") == 1, (argv, out, err)
            assert "unexpected" not in err and err.startswith("error: "), err
    logged = caplog.text
    for command, code, out, err in seen:
        for token in tokens:
            assert token not in out and token not in err, (command, out, err)
    for token in tokens:
        assert token not in logged, token


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] in ("userinfo", "query", "bad-escape")],
                         ids=["userinfo", "query", "bad-escape"])
def test_no_password_in_a_real_process_at_debug_level(shape, pg_url: str, schema: str) -> None:
    """The command line as a user runs it: its own logging set-up at -vv, stdout and stderr."""
    _, password, extra, tokens, valid = shape
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CTX_MODELS_DB", None)
    for url in (_url(pg_url, schema, "postgresql", password, extra), _refused(pg_url, password, extra)):
        for command in (["init"], ["stats"]):
            done = subprocess.run(
                [sys.executable, "-m", "ctx_models", "-vv", *command, "--db", url],
                capture_output=True, text=True, env=env, timeout=120,
            )
            assert "DEBUG" in done.stderr or done.returncode != 0
            for token in tokens:
                assert token not in done.stdout and token not in done.stderr, (command, done.stderr)


# --------------------------------------------------------------------------- reading URLs


def test_postgres_scheme_and_upper_case_reach_the_host_and_database_given(
    pg_url: str, schema: str, run_cli
) -> None:
    for scheme in ("postgres", "POSTGRESQL", "PostgreSQL"):
        url = _url(pg_url, schema, scheme, None, "")
        db = ctx_models.connect(url)
        ctx_models.run_migrations(db)
        # The query's host (a socket directory) and options (the search_path) were used.
        assert db.execute_sql("SELECT current_schema()").fetchone()[0] == schema
        assert db.execute_sql("SELECT current_database()").fetchone()[0] == _server(pg_url)[2]
        db.close()
        code, out, err = run_cli("stats", "--db", url)
        assert code == 0 and out.startswith(f"database   {scheme.lower()}://"), err


def test_a_url_shows_without_any_secret_but_keeps_the_rest() -> None:
    url = "POSTGRESQL://me:Tk1x@db.example.com:6543/ctx?sslmode=require&password=Tk2y&sslpassword=Tk3z"
    info = urls.parse(url)
    assert info.params == {
        "user": "me", "password": "Tk2y", "host": "db.example.com", "port": "6543",
        "dbname": "ctx", "sslmode": "require", "sslpassword": "Tk3z",
    }
    assert urls.redact(url) == (
        "postgresql://me:***@db.example.com:6543/ctx?sslmode=require&password=***&sslpassword=***"
    )
    assert urls.parse("postgresql://[::1]:5432,other:5433/db").params == {
        "host": "::1,other", "port": "5432,5433", "dbname": "db",
    }
    # libpq's reading: '#' and '?' before the '@' belong to the password.
    assert urls.parse("postgresql://me:a#b?c@host/db").params["password"] == "a#b?c"


@pytest.mark.parametrize(
    "url, words",
    [
        ("postgresql://[::1/db", "IPv6"),
        ("postgresql://[::1]x/db", "IPv6"),
        ("postgresql://host:99999/db", "port"),
        ("postgresql://host:port/db", "port"),
        ("postgresql://me:Tk1a@Tk2b@host/db", "more than one '@'"),
        ("postgresql://me:Tk1a/Tk2b@host/db", "after a '/'"),
        ("postgresql://host/db%zz", "two hex digits"),
        ("postgresql://host/db%00", "%00"),
        ("postgresql://host/db%ff", "not UTF-8"),
        ("postgresql://host/db?sslmode", "key=value"),
        ("postgresql://host/db?=x", "key=value"),
        ("postgresql://host/db?nosuch=1", "unknown connection parameter"),
        ("postgresql://host/db?Password=Tk1a", "unknown connection parameter"),
        ("postgresql://host", "names no database"),
        ("postgresql://host/db name", "spaces"),
    ],
)
def test_a_malformed_url_is_our_config_error_that_quotes_no_secret(url: str, words: str, run_cli) -> None:
    with pytest.raises(ctx_models.ConfigError, match=words) as caught:
        ctx_models.connect(url, timeout=2)
    assert "Tk1a" not in str(caught.value) and "Tk2b" not in str(caught.value)
    code, out, err = run_cli("stats", "--db", url)
    assert code == 1 and out == "" and err.count("\n") == 1 and words in err
    assert "unexpected" not in err and "Tk1a" not in err and "Tk2b" not in err


TYPOS = ["postgresql:/x", "postgres:x", "sqlite:///x.db", "postgresql//x", "file:x.db",
         "PostgreSQL:/x", "sqlite:x.db", "postgres:/me:Tk1a@host/db"]


@pytest.mark.parametrize("typo", TYPOS)
def test_url_like_typos_are_refused_and_create_nothing(
    typo: str, tmp_path: Path, monkeypatch, run_cli
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CTX_MODELS_DB", raising=False)
    with pytest.raises(ctx_models.ConfigError, match="postgresql://"):
        ctx_models.connect(typo)
    for argv in (("init", "--db", typo), ("copy", str(tmp_path / "none.sqlite"), typo)):
        code, out, err = run_cli(*argv)
        assert code == 1 and out == "" and "looks like a URL" in err and "./NAME" in err, err
        assert "Tk1a" not in err
    monkeypatch.setenv("CTX_MODELS_DB", typo)
    code, _, err = run_cli("init")
    assert code == 1 and "looks like a URL" in err
    config = tmp_path / "ctx.toml"
    config.write_text(f'[db]\npath = "{typo}"\n')
    code, _, err = run_cli("init", "--config", str(config))
    assert code == 1 and "looks like a URL" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx.toml"]


def test_a_path_written_as_one_or_a_file_that_exists_still_opens(tmp_path: Path, monkeypatch, run_cli) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("init", "--db", "./postgresql:x")
    assert code == 0 and (tmp_path / "postgresql:x").is_file(), err
    assert urls.location("postgresql:x") == Path("postgresql:x")  # it exists now
    code, out, err = run_cli("stats", "--db", "postgresql:x")
    assert code == 0 and "documents  0" in out, err
    assert urls.location("C:x") == Path("C:x")  # one letter and a colon: a drive, not a scheme


def test_a_config_url_with_a_password_is_shown_without_it(pg_url: str, schema: str, tmp_path: Path, run_cli) -> None:
    url = _url(pg_url, schema, "postgresql", "Tk1cfg", "password=Tk2cfg")
    config = tmp_path / "ctx.toml"
    config.write_text(f'[db]\nurl = "{url}"\n')
    for argv in (("init",), ("stats",), ("check",)):
        code, out, err = run_cli(*argv, "--config", str(config))
        assert code == 0, err
        assert "Tk1cfg" not in out + err and "Tk2cfg" not in out + err
        assert "***" in out


def test_connection_parameters_of_the_url_reach_the_driver(pg_url: str, schema: str) -> None:
    url = _url(pg_url, schema, "postgres", None, "application_name=ctx_pgurl_test")
    db = ctx_models.connect(url, bind_models=False)
    try:
        assert db.execute_sql("SHOW application_name").fetchone()[0] == "ctx_pgurl_test"
    finally:
        db.close()
    assert dict(parse_qsl(urlsplit(pg_url).query))  # the session URL names its socket
