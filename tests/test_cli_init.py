"""``ctx-models init``: where the database goes, what it prints, and how every error looks.

Most runs are in-process (the ``run_cli`` fixture); a few are real subprocesses
(``python -m ctx_models``) to see exactly what a user sees, tracebacks included.

Naming the database (--db, a config's [db], $CTX_MODELS_DB), creating it, running init
again and refusing a newer schema run on both backends; the default location, the ctx
tool's files and damaged or wrong files are SQLite's.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ctx_tool
import pytest

import ctx_models

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = Path(".ctx") / "data" / "ctx.sqlite"


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """A clean working directory and no CTX_MODELS_DB in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CTX_MODELS_DB", raising=False)
    return tmp_path


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CTX_MODELS_DB"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_module(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: PLW1510 - the exit status is what the tests check
        [sys.executable, "-m", "ctx_models", *args],
        cwd=cwd, env=env or _subprocess_env(), capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def target(location) -> Iterator[Path | str]:
    """The test's database (a SQLite path, or a PostgreSQL URL); the connection the CLI opened
    is closed after the test, before the PostgreSQL schema is dropped."""
    yield location
    try:
        bound = ctx_models.bound_database()
    except ctx_models.CtxModelsError:
        return
    bound.close()


def _raw(where: Path | str) -> Any:
    if isinstance(where, Path):
        return sqlite3.connect(str(where))
    import psycopg

    return psycopg.connect(where, autocommit=True)


def _query(where: Path | str, sql: str) -> list[tuple]:
    conn = _raw(where)
    try:
        cursor = conn.execute(sql)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    finally:
        conn.close()


def _user_version(where: Path | str) -> int:
    """The stamped schema version: SQLite's user_version, or the comment on PostgreSQL's documents."""
    if isinstance(where, Path):
        return _query(where, "PRAGMA user_version")[0][0]
    (comment,), = _query(where, "SELECT obj_description(to_regclass('documents'), 'pg_class')")
    found = re.fullmatch(r"ctx_models schema version (\d+)", comment or "")
    return int(found.group(1)) if found else 0


def _tables(where: Path | str) -> set[str]:
    if isinstance(where, Path):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    return {row[0] for row in _query(where, sql)}


def _schema(where: Path | str) -> list[tuple]:
    """Every object of the schema as stored; on PostgreSQL with its storage (relfilenode: a
    rewritten table gets a new one), columns and comments."""
    if isinstance(where, Path):
        return _query(where, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    return _query(
        where,
        "SELECT c.relname, c.relkind, c.oid::bigint, c.relfilenode::bigint, "
        "obj_description(c.oid, 'pg_class'), CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) END "
        "FROM pg_class AS c WHERE c.relnamespace = current_schema()::regnamespace ORDER BY c.relname",
    ) + _query(
        where,
        "SELECT table_name, column_name, data_type, udt_name, column_default, is_nullable, "
        "generation_expression FROM information_schema.columns WHERE table_schema = current_schema() "
        "ORDER BY table_name, ordinal_position",
    )


def _shown(where: Path | str) -> str:
    """How the CLI names the database: the path, or the URL with its password as ``***``."""
    if isinstance(where, Path):
        return str(where)
    password = urlsplit(where).password
    return where if password is None else where.replace(f":{password}@", ":***@", 1)


CTX_TABLES = {"documents", "chunks", "checkpoints", "chunks_fts", "embeddings", "chunk_vectors"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(code: int, out: str, err: str) -> str:
    assert code != 0, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].strip(), err
    assert lines[0].startswith("error"), err
    return lines[0]


# --------------------------------------------------------------------------- init: where and what


def test_init_creates_default_database(cwd, run_cli):
    code, out, err = run_cli("init")
    assert code == 0, err
    assert err == ""
    path = cwd / DEFAULT
    assert path.is_file()
    assert "created" in out
    assert str(DEFAULT) in out
    assert re.search(rf"schema version {ctx_models.SCHEMA_VERSION}\b", out)
    assert CTX_TABLES <= _tables(path)
    assert _user_version(path) == ctx_models.SCHEMA_VERSION


def test_second_init_is_already_up_to_date(cwd, run_cli):
    assert run_cli("init")[0] == 0
    path = cwd / DEFAULT
    conn = sqlite3.connect(str(path))
    before = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    conn.close()
    code, out, err = run_cli("init")
    assert code == 0, err
    assert "already up to date" in out
    assert "created" not in out
    assert str(DEFAULT) in out
    assert re.search(r"schema version 1\b", out)
    conn = sqlite3.connect(str(path))
    assert conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == before
    conn.close()


def test_init_on_ctx_tool_database_leaves_it_unstamped(cwd, run_cli):
    path = cwd / "ctx.sqlite"
    ctx_tool.create_contract_db(str(path)).close()
    code, out, err = run_cli("init", "--db", str(path))
    assert code == 0, err
    assert "already up to date" in out
    assert _user_version(path) == 0


@pytest.mark.backends("sqlite", "postgres")
def test_init_with_db_option(cwd, run_cli, backend, target):
    where = cwd / "elsewhere" / "deep" / "my.sqlite" if backend == "sqlite" else target
    assert not where.exists() if backend == "sqlite" else not _tables(where)
    code, out, err = run_cli("init", "--db", str(where))
    assert code == 0, err
    assert err == ""
    assert out.splitlines() == [f"created {_shown(where)} (schema version {ctx_models.SCHEMA_VERSION})"]
    if backend == "sqlite":
        assert where.is_file()
    assert CTX_TABLES <= _tables(where)
    assert _user_version(where) == ctx_models.SCHEMA_VERSION
    assert not (cwd / DEFAULT).exists()


@pytest.mark.backends("sqlite", "postgres")
def test_second_init_with_db_changes_nothing(cwd, run_cli, target):
    assert run_cli("init", "--db", str(target))[0] == 0
    before = _schema(target)
    code, out, err = run_cli("init", "--db", str(target))
    assert code == 0, err
    assert out.splitlines() == [
        f"already up to date: {_shown(target)} (schema version {ctx_models.SCHEMA_VERSION})"
    ]
    assert _schema(target) == before
    assert _user_version(target) == ctx_models.SCHEMA_VERSION


@pytest.mark.backends("sqlite", "postgres")
def test_init_with_config_file(cwd, run_cli, backend, target):
    if backend == "sqlite":
        target = cwd / "from-config" / "ctx.sqlite"
        db = f'path = "{target.as_posix()}"'
    else:
        db = f'url = "{target}"'
    config = cwd / "ctx.toml"
    config.write_text(f'[db]\n{db}\n\n[chunking]\nmax_tokens = 700\n', encoding="utf-8")
    code, out, err = run_cli("init", "--config", str(config))
    assert code == 0, err
    if backend == "sqlite":
        assert target.is_file()
    assert CTX_TABLES <= _tables(target)
    assert out.splitlines() == [f"created {_shown(target)} (schema version {ctx_models.SCHEMA_VERSION})"]
    assert not (cwd / DEFAULT).exists()


def test_config_relative_path_is_relative_to_working_directory(cwd, run_cli):
    conf_dir = cwd / "conf"
    conf_dir.mkdir()
    config = conf_dir / "ctx.toml"
    config.write_text('[db]\npath = "./data/rel.sqlite"\n', encoding="utf-8")
    code, _out, err = run_cli("init", "--config", str(config))
    assert code == 0, err
    assert (cwd / "data" / "rel.sqlite").is_file()
    assert not (conf_dir / "data").exists()


@pytest.mark.backends("sqlite", "postgres")
def test_init_with_environment_variable(cwd, run_cli, monkeypatch, backend, target):
    if backend == "sqlite":
        target = cwd / "env" / "ctx.sqlite"
    monkeypatch.setenv("CTX_MODELS_DB", str(target))
    code, out, err = run_cli("init")
    assert code == 0, err
    if backend == "sqlite":
        assert target.is_file()
    assert CTX_TABLES <= _tables(target)
    assert out.splitlines() == [f"created {_shown(target)} (schema version {ctx_models.SCHEMA_VERSION})"]
    assert not (cwd / DEFAULT).exists()


@pytest.mark.parametrize(
    "use_db, use_config, use_env, winner",
    [
        (True, True, True, None),  # --db and --config both name the database: refused
        (True, False, True, "db"),
        (True, True, False, None),
        (False, True, True, "config"),
        (False, False, True, "env"),
        (False, False, False, "default"),
    ],
)
def test_precedence_db_config_env_default(cwd, run_cli, monkeypatch, use_db, use_config, use_env, winner):
    paths = {
        "db": cwd / "by-db.sqlite",
        "config": cwd / "by-config.sqlite",
        "env": cwd / "by-env.sqlite",
        "default": cwd / DEFAULT,
    }
    config = cwd / "ctx.toml"
    config.write_text(f'[db]\npath = "{paths["config"].as_posix()}"\n', encoding="utf-8")
    args = ["init"]
    if use_db:
        args += ["--db", str(paths["db"])]
    if use_config:
        args += ["--config", str(config)]
    if use_env:
        monkeypatch.setenv("CTX_MODELS_DB", str(paths["env"]))
    code, _out, err = run_cli(*args)
    if winner is None:
        assert code == 1 and "not both" in err
        assert not any(path.exists() for path in paths.values())
        return
    assert code == 0, err
    assert {name for name, path in paths.items() if path.exists()} == {winner}


def test_empty_environment_variable_falls_back_to_default(cwd, run_cli, monkeypatch):
    monkeypatch.setenv("CTX_MODELS_DB", "")
    code, _out, err = run_cli("init")
    assert code == 0, err
    assert (cwd / DEFAULT).is_file()


# --------------------------------------------------------------------------- error paths


def _truncated_copy(cwd: Path) -> Path:
    full = cwd / "full.sqlite"
    conn = ctx_tool.create_contract_db(str(full))
    for i in range(60):
        ctx_tool.ctx_write_document(conn, "filesystem", f"doc-{i}.md", [f"paragraph {i} " * 100, "second " * 200])
    conn.close()
    data = full.read_bytes()
    assert len(data) > 16 * 8192  # many pages beyond the cut
    assert not Path(str(full) + "-wal").exists()
    truncated = cwd / "truncated.sqlite"
    truncated.write_bytes(data[:8192])
    return truncated


def _newer(cwd: Path) -> Path:
    path = cwd / "newer.sqlite"
    conn = sqlite3.connect(str(path))
    conn.executescript(ctx_tool.CONTRACT_DDL)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    return path


def _not_sqlite(cwd: Path) -> Path:
    path = cwd / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 20, encoding="utf-8")
    return path


def _short_not_sqlite(cwd: Path) -> Path:
    path = cwd / "short.sqlite"
    path.write_bytes(b"hello")
    return path


def _under_a_file(cwd: Path) -> Path:
    (cwd / "afile").write_text("I am a regular file\n", encoding="utf-8")
    return cwd / "afile" / "db.sqlite"


def _directory(cwd: Path) -> Path:
    path = cwd / "a-directory"
    path.mkdir()
    return path


def _write_config(cwd: Path, text: str) -> Path:
    path = cwd / "ctx.toml"
    path.write_text(text, encoding="utf-8")
    return path


ERROR_CASES = {
    "parent-is-a-file": lambda cwd: ["--db", str(_under_a_file(cwd))],
    "not-a-sqlite-file": lambda cwd: ["--db", str(_not_sqlite(cwd))],
    "short-not-sqlite-file": lambda cwd: ["--db", str(_short_not_sqlite(cwd))],
    "truncated-database": lambda cwd: ["--db", str(_truncated_copy(cwd))],
    "newer-user-version": lambda cwd: ["--db", str(_newer(cwd))],
    "path-is-a-directory": lambda cwd: ["--db", str(_directory(cwd))],
    "missing-config": lambda cwd: ["--config", str(cwd / "nope.toml")],
    "config-without-db-section": lambda cwd: ["--config", str(_write_config(cwd, '[other]\npath = "x.sqlite"\n'))],
    "config-db-without-path": lambda cwd: ["--config", str(_write_config(cwd, '[db]\nname = "x"\n'))],
    "config-db-path-empty": lambda cwd: ["--config", str(_write_config(cwd, '[db]\npath = ""\n'))],
    "config-db-path-not-string": lambda cwd: ["--config", str(_write_config(cwd, "[db]\npath = 3\n"))],
    "config-not-toml": lambda cwd: ["--config", str(_write_config(cwd, "[db\npath = = 'x'\n"))],
    "config-is-a-directory": lambda cwd: ["--config", str(_directory(cwd))],
    "config-db-url-not-postgres": lambda cwd: [
        "--config", str(_write_config(cwd, '[db]\nurl = "mysql://user@host/db"\n'))
    ],
    "config-db-path-and-url": lambda cwd: [
        "--config",
        str(_write_config(cwd, '[db]\npath = "x.sqlite"\nurl = "postgresql://user@host/db"\n')),
    ],
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_init_errors_are_one_line(cwd, run_cli, case):
    args = ERROR_CASES[case](cwd)
    before = {p: _digest(p) for p in cwd.rglob("*") if p.is_file()}
    code, out, err = run_cli("init", *args)
    line = assert_one_line_error(code, out, err)
    # A refused database is left exactly as it was, and nothing new appears.
    assert {p: _digest(p) for p in cwd.rglob("*") if p.is_file()} == before
    assert not (cwd / DEFAULT).exists()
    assert re.search(EXPECTED_WORDS[case], line, re.IGNORECASE), line


# What each error line must say, besides being one line.
EXPECTED_WORDS = {
    "parent-is-a-file": r"afile",
    "not-a-sqlite-file": r"not a (SQLite )?database",
    "short-not-sqlite-file": r"not a (SQLite )?database",
    "truncated-database": r"truncated|corrupt|malformed",
    "newer-user-version": r"\b99\b",
    "path-is-a-directory": r"directory",
    "missing-config": r"config.*(not exist|not found|no such)",
    "config-without-db-section": r"config.*\[db\]",
    "config-db-without-path": r"config.*\[db\]",
    "config-db-path-empty": r"config.*path",
    "config-db-path-not-string": r"config.*path",
    "config-not-toml": r"config.*TOML",
    "config-is-a-directory": r"config.*directory",
    "config-db-url-not-postgres": r"config.*\[db\] url must be a postgresql:// URL",
    "config-db-path-and-url": r"config.*both path and url",
}


@pytest.mark.backends("sqlite", "postgres")
def test_newer_schema_version_is_refused_and_left_alone(cwd, run_cli, backend, target):
    if backend == "sqlite":
        target = _newer(cwd)
    else:
        assert run_cli("init", "--db", str(target))[0] == 0
        _query(target, "COMMENT ON TABLE documents IS 'ctx_models schema version 99'")
    before = _schema(target)
    line = assert_one_line_error(*run_cli("init", "--db", str(target)))
    assert re.search(r"\b99\b", line) and _shown(target) in line, line
    assert _schema(target) == before
    assert _user_version(target) == 99


def test_env_path_that_is_a_directory_is_an_error(cwd, run_cli, monkeypatch):
    monkeypatch.setenv("CTX_MODELS_DB", str(_directory(cwd)))
    assert_one_line_error(*run_cli("init"))


@pytest.mark.parametrize("case", ["parent-is-a-file", "not-a-sqlite-file", "truncated-database",
                                  "newer-user-version", "config-not-toml", "path-is-a-directory"])
def test_init_errors_in_a_real_process(tmp_path, case):
    args = ERROR_CASES[case](tmp_path)
    result = run_module("init", *args, cwd=tmp_path)
    assert_one_line_error(result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""


def test_unknown_option_is_one_line_usage_error(cwd, run_cli):
    code, _out, err = run_cli("init", "--no-such-option")
    assert code != 0
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


# --------------------------------------------------------------------------- help, version, entry point


def test_help_mentions_init(cwd, run_cli):
    code, out, _err = run_cli("--help")
    assert code == 0
    assert "init" in out


def test_init_help(cwd, run_cli):
    code, out, _err = run_cli("init", "--help")
    assert code == 0
    assert "--db" in out and "--config" in out


def test_console_script_declared_in_setup_cfg():
    parser = configparser.RawConfigParser()
    assert parser.read(ROOT / "setup.cfg", encoding="utf-8")
    scripts = parser.get("options.entry_points", "console_scripts")
    entries = {
        name.strip(): target.strip()
        for name, _, target in (line.partition("=") for line in scripts.splitlines() if line.strip())
    }
    assert entries.get("ctx-models") == "ctx_models.cli:main"
    module, _, attr = entries["ctx-models"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_python_m_version(tmp_path):
    result = run_module("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ctx_models.__version__ in result.stdout
    assert "Traceback" not in result.stderr


def test_python_m_init_then_again(tmp_path):
    first = run_module("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and str(DEFAULT) in first.stdout
    assert (tmp_path / DEFAULT).is_file()
    second = run_module("init", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already up to date" in second.stdout
    env = _subprocess_env()
    env["CTX_MODELS_DB"] = str(tmp_path / "from-env.sqlite")
    third = run_module("init", cwd=tmp_path, env=env)
    assert third.returncode == 0, third.stderr
    assert (tmp_path / "from-env.sqlite").is_file()
