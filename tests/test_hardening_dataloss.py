"""Issue 20, round 3 of hardening: data that must not be lost or leaked through the files a
command writes (export, backup, copy), two embeds at once, a database file replaced under a
writer, and names another program gave its tables and indexes.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --------------------------------------------------------------------------- export is linear


class _CountingCursor:
    """A cursor that counts the rows it hands out holding ``needle`` (the body under test)."""

    def __init__(self, cursor: Any, needle: str, seen: list[int]) -> None:
        self._cursor, self._needle, self._seen = cursor, needle, seen

    def _count(self, rows: list[Any]) -> list[Any]:
        self._seen[0] += sum(1 for row in rows if row and self._needle in row)
        return rows

    def __iter__(self) -> Iterator[Any]:
        for row in self._cursor:
            self._count([row])
            yield row

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        if row is not None:
            self._count([row])
        return row

    def fetchall(self) -> list[Any]:
        return self._count(list(self._cursor.fetchall()))

    def fetchmany(self, *args: Any) -> list[Any]:
        return self._count(list(self._cursor.fetchmany(*args)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.mark.backends("sqlite", "postgres")
def test_export_reads_each_body_once_however_many_chunks_it_has(db, monkeypatch) -> None:
    """The body of a document of many chunks leaves the database once, not once per chunk
    (a 16 MB body took 25 s to export when every chunk row carried it)."""
    body = "\n\n".join(f"paragraph {n} " + "words to fill the chunk " * 40 for n in range(60))
    result = store.ingest("big", "one", body, max_tokens=64)
    store.ingest("small", "two", "a short body")
    chunks = result.chunks
    assert chunks >= 30
    seen = [0]
    real = db.execute_sql
    monkeypatch.setattr(
        db, "execute_sql", lambda *a, **k: _CountingCursor(real(*a, **k), body, seen)
    )
    fp = io.StringIO()
    assert store.export(fp) == 2
    monkeypatch.undo()
    assert seen[0] == 1, f"the body was read {seen[0]} times for {chunks} chunks"
    exported = [json.loads(line) for line in fp.getvalue().splitlines()]
    assert exported[0]["body"] == body
    assert [c["chunk_index"] for c in exported[0]["chunks"]] == list(range(chunks))
    assert "".join(c["text"] for c in exported[0]["chunks"]).replace(" ", "")[:50] == body.replace(
        "\n", ""
    ).replace(" ", "")[:50]
    assert [c["text"] for c in exported[1]["chunks"]] == ["a short body"]
