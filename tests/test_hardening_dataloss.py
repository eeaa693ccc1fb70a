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


@pytest.fixture(autouse=True)
def _close_cli_connections() -> Iterator[None]:
    """The CLI opens (and binds) its own connection: close it after each test."""
    yield
    try:
        ctx_models.bound_database().close()
    except ctx_models.CtxModelsError:
        pass


def _closing(run_cli: Any) -> Any:
    """``run_cli`` that closes the connection the CLI left bound, so its -wal and -shm go."""

    def run(*argv: str) -> tuple[int, str, str]:
        result = run_cli(*argv)
        try:
            ctx_models.bound_database().close()
        except ctx_models.CtxModelsError:
            pass
        return result

    return run


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


# --------------------------------------------------------------------------- export --out


@pytest.fixture
def small_store(db_path: Path) -> Path:
    """A SQLite store with two documents, its connection closed (as the CLI finds it)."""
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations(database)
    store.ingest("s", "a", "first body\n\nwith two paragraphs")
    store.ingest("s", "b", "second body")
    database.close()
    return db_path


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1 and out == "", out + err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
@pytest.mark.parametrize("force", [False, True])
def test_export_refuses_the_database_and_its_files_by_name(
    small_store: Path, run_cli, suffix: str, force: bool
) -> None:
    run_cli = _closing(run_cli)
    before = _files(small_store.parent)
    out = f"{small_store}{suffix}"
    err = _one_line_error(
        *run_cli("export", "--db", str(small_store), "--out", out, *(["--force"] * force))
    )
    assert "is the database" in err
    assert _files(small_store.parent) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink", "symlinked-directory"])
def test_export_refuses_the_database_through_links(small_store: Path, tmp_path: Path, run_cli, link: str) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    if link == "symlink":
        out = other / "out.jsonl"
        out.symlink_to(small_store)
    elif link == "hardlink":
        out = other / "out.jsonl"
        out.hardlink_to(small_store)
    else:
        (other / "d").symlink_to(small_store.parent, target_is_directory=True)
        out = other / "d" / small_store.name
    before = small_store.read_bytes()
    for extra in ([], ["--force"]):
        err = _one_line_error(*run_cli("export", "--db", str(small_store), "--out", str(out), *extra))
        assert "is the database" in err
    assert small_store.read_bytes() == before
    # A link to the database's WAL file, which need not exist now, is refused as well.
    wal_link = other / "wal.jsonl"
    wal_link.symlink_to(f"{small_store}-wal")
    _one_line_error(*run_cli("export", "--db", str(small_store), "--out", str(wal_link), "--force"))
    assert not Path(f"{small_store}-wal").exists() or Path(f"{small_store}-wal").stat().st_size == 0


def test_export_over_a_symlink_with_force_replaces_the_link_not_its_target(
    small_store: Path, tmp_path: Path, run_cli
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    out = tmp_path / "out.jsonl"
    out.symlink_to(precious)
    err = _one_line_error(*run_cli("export", "--db", str(small_store), "--out", str(out)))
    assert "exists" in err and "--force" in err
    code, _, err = run_cli("export", "--db", str(small_store), "--out", str(out), "--force")
    assert code == 0, err
    assert precious.read_text() == "keep me\n"
    assert not out.is_symlink()
    assert [json.loads(line)["source_id"] for line in out.read_text().splitlines()] == ["a", "b"]


def test_export_leaves_no_temporary_file_and_an_existing_output_whole_on_failure(
    small_store: Path, tmp_path: Path, run_cli, monkeypatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("the old export\n")

    def failing(fp: Any, source: Any = None) -> int:
        fp.write("half of an export")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "export", failing)
    code, _, err = run_cli("export", "--db", str(small_store), "--out", str(out), "--force")
    assert code == 1 and "No space left" in err and str(out) in err, err
    assert out.read_text() == "the old export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out.jsonl"]
