"""Issue 20, round 3 of hardening: data that must not be lost or leaked through the files a
command writes (export, backup, copy), two embeds at once, a database file replaced under a
writer, and names another program gave its tables and indexes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import ctx_models
from ctx_models import store

# --------------------------------------------------------------------------- names with quotes


ODD_NAMES = ['my"idx', "it's", "with space", '"', 'a""b', "x'); DROP TABLE chunks; --"]


def _quoted(name: str) -> str:
    # Written out here, not ctx_models' helper: the test must not trust the code it tests.
    return '"' + name.replace('"', '""') + '"'


@pytest.mark.parametrize("name", ODD_NAMES)
def test_check_and_init_read_tables_and_indexes_named_with_quotes_and_spaces(
    name: str, db_path: Path, run_cli
) -> None:
    """Another program's index on a contract table, and its own table, named with ", ' and spaces."""
    ctx_models.connect(db_path)
    ctx_models.run_migrations()
    store.ingest("s", "a", "words about quoting")
    conn = sqlite3.connect(db_path)
    conn.execute(f"CREATE INDEX {_quoted(name)} ON chunks (hash)")
    conn.execute(f"CREATE TABLE {_quoted('t ' + name)} (x)")
    conn.commit()
    conn.close()
    code, out, err = run_cli("check", "--db", str(db_path))
    assert (code, err) == (0, ""), out + err
    assert "clean" in out
    code, out, err = run_cli("init", "--db", str(db_path))
    assert (code, err) == (0, ""), out + err
    assert "already up to date" in out
    # The other program's objects are left as they were.
    conn = sqlite3.connect(db_path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {name, "t " + name} <= names
