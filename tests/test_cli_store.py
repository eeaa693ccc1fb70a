"""The store commands of the CLI, run in-process against a seeded temporary database.

They run on both backends; what is about a SQLite file (a missing file, a file that is not
a database) is SQLite only.
"""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ctx_tool import table_rows

import ctx_models
from ctx_models import store
from ctx_models.embedders import default_embedder

pytestmark = pytest.mark.backends("sqlite", "postgres")

BODY = "First paragraph about {name}.\n\n" + " ".join(f"term{i}" for i in range(30))


@pytest.fixture(autouse=True)
def _close_cli_connections(location) -> Iterator[None]:
    """The CLI opens (and binds) its own connection; close it after the test, before the
    test's database (a PostgreSQL schema) is dropped."""
    yield
    try:
        bound = ctx_models.bound_database()
    except ctx_models.CtxModelsError:  # nothing bound: the CLI refused before connecting
        return
    bound.close()


@pytest.fixture
def seeded(db) -> dict[str, str]:
    ids = {}
    for source, names in (("alpha", ("a1", "a2", "a3")), ("beta", ("b1", "b2"))):
        for name in names:
            ids[name] = store.ingest(source, name, BODY.format(name=name), max_tokens=20, title=name).document_id
    store.set_checkpoint("alpha", 1_767_225_600)
    store.set_checkpoint("beta", 1_700_000_000)
    return ids


def count(conn: Any, sql: str, *params: object) -> int:
    return conn.execute(sql, params).fetchone()[0]


def shown(location: Path | str) -> str:
    """How the CLI names the database: the path, or the URL with its password as ``***``."""
    if isinstance(location, Path):
        return str(location)
    password = urlsplit(location).password
    return location if password is None else location.replace(f":{password}@", ":***@", 1)


def relation_sizes(raw: Any) -> int:
    """Bytes of the contract's tables in the test's schema, with their indexes and TOAST."""
    return count(
        raw,
        "SELECT sum(pg_total_relation_size(to_regclass(quote_ident(current_schema()) || '.' || t))) "
        "FROM unnest(ARRAY['documents', 'chunks', 'checkpoints', 'chunks_fts', 'embeddings', "
        "'chunk_vectors']) AS t",
    )


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- stats


def test_stats_table(run_cli, seeded, location, raw) -> None:
    code, out, err = run_cli("stats", "--db", str(location))
    assert code == 0, err
    chunks = count(raw, "SELECT count(*) FROM chunks")
    lines = out.splitlines()
    assert lines[0].startswith(f"database   {shown(location)} (")
    password = None if isinstance(location, Path) else urlsplit(location).password
    assert not password or password not in out
    assert "documents  5" in lines
    assert f"chunks     {chunks}" in lines
    assert "embedded   0 (stale: 0)" in lines
    assert all(line == line.rstrip() for line in lines), "no trailing spaces"
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in ("alpha", "beta")}
    alpha_chunks = count(
        raw, "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source = 'alpha'"
    )
    assert rows["alpha"][1:4] == ["3", str(alpha_chunks), "0"]
    assert rows["beta"][1:4] == ["2", str(chunks - alpha_chunks), "0"]
    # the last column is the cursor, the newest updated_at synced, as a time
    header = next(line for line in lines if line.startswith("source "))
    assert header.endswith("synced up to (cursor)")
    assert rows["alpha"][4] == "2026-01-01T00:00:00Z"  # cursor 1_767_225_600
    assert rows["beta"][4] == "2023-11-14T22:13:20Z"  # cursor 1_700_000_000


def test_stats_json(run_cli, seeded, location, backend, raw) -> None:
    code, out, err = run_cli("stats", "--db", str(location), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["documents"] == 5
    assert report["chunks"] == count(raw, "SELECT count(*) FROM chunks")
    assert (report["embedded"], report["stale"], report["models"]) == (0, 0, {})
    assert [s["source"] for s in report["sources"]] == ["alpha", "beta"]
    assert [s["documents"] for s in report["sources"]] == [3, 2]
    assert [s["checkpoint"] for s in report["sources"]] == [1_767_225_600, 1_700_000_000]
    if backend == "sqlite":
        assert report["size_bytes"] >= location.stat().st_size
    else:  # the contract's tables in the schema, indexes and TOAST included
        assert report["size_bytes"] == relation_sizes(raw) > 0


# --------------------------------------------------------------------------- export


def test_export_to_file(run_cli, seeded, location, tmp_path, raw) -> None:
    out_file = tmp_path / "export.jsonl"
    code, out, err = run_cli("export", "--db", str(location), "--out", str(out_file))
    assert code == 0, err
    assert out == ""
    assert err.strip() == f"exported 5 documents to {out_file}"
    lines = out_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5
    docs = [json.loads(line) for line in lines]
    assert sorted(d["id"] for d in docs) == sorted(seeded.values())
    assert sum(len(d["chunks"]) for d in docs) == count(raw, "SELECT count(*) FROM chunks")

    # An existing file is replaced only when asked to.
    code, _, err = run_cli("export", "--db", str(location), "--out", str(out_file), "--source", "beta")
    assert code == 1 and "exists" in err and "--force" in err, err
    assert len(out_file.read_text(encoding="utf-8").splitlines()) == 5
    code, _, err = run_cli(
        "export", "--db", str(location), "--out", str(out_file), "--source", "beta", "--force"
    )
    assert code == 0, err
    assert [json.loads(line)["source_id"] for line in out_file.read_text().splitlines()] == ["b1", "b2"]


def test_export_to_stdout(run_cli, seeded, location) -> None:
    code, out, err = run_cli("export", "--db", str(location))
    assert code == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert [(d["source"], d["source_id"]) for d in docs] == [
        ("alpha", "a1"), ("alpha", "a2"), ("alpha", "a3"), ("beta", "b1"), ("beta", "b2"),
    ]
    assert all(d["chunks"] and d["chunks"][0]["chunk_index"] == 0 for d in docs)
    code, out, _ = run_cli("export", "--db", str(location), "--out", "-", "--source", "alpha")
    assert code == 0 and len(out.splitlines()) == 3


# --------------------------------------------------------------------------- delete


def _nothing_left(raw: Any, doc_ids: list[str]) -> None:
    marks = ",".join("?" * len(doc_ids))
    for sql in (
        f"SELECT count(*) FROM documents WHERE id IN ({marks})",
        f"SELECT count(*) FROM chunks WHERE document_id IN ({marks})",
        f"SELECT count(*) FROM chunks_fts WHERE document_id IN ({marks})",
        f"SELECT count(*) FROM chunk_vectors WHERE document_id IN ({marks})",
    ):
        assert count(raw, sql, *doc_ids) == 0, sql
    assert count(raw, "SELECT count(*) FROM chunks_fts") == count(raw, "SELECT count(*) FROM chunks")


def test_delete_source_with_yes(run_cli, seeded, location, raw, embedder) -> None:
    store.embed_pending(embedder)
    beta_before = raw.execute(
        "SELECT c.id, c.text, e.hash FROM chunks c JOIN documents d ON d.id = c.document_id "
        "JOIN embeddings e ON e.chunk_id = c.id WHERE d.source = 'beta' ORDER BY c.id"
    ).fetchall()
    code, out, err = run_cli("delete", "--db", str(location), "--source", "alpha", "--yes")
    assert code == 0, err
    assert out.strip() == "deleted 3 document(s) of source 'alpha'"
    _nothing_left(raw, [seeded["a1"], seeded["a2"], seeded["a3"]])
    assert count(raw, "SELECT count(*) FROM embeddings") == len(beta_before)
    assert raw.execute("SELECT source FROM checkpoints").fetchall() == [("beta",)]
    assert raw.execute(
        "SELECT c.id, c.text, e.hash FROM chunks c JOIN documents d ON d.id = c.document_id "
        "JOIN embeddings e ON e.chunk_id = c.id WHERE d.source = 'beta' ORDER BY c.id"
    ).fetchall() == beta_before


def test_delete_id_with_yes(run_cli, seeded, location, raw) -> None:
    code, out, err = run_cli("delete", "--db", str(location), "--id", seeded["b1"], "-y")
    assert code == 0, err
    assert out.strip() == f"deleted document {seeded['b1']}"
    _nothing_left(raw, [seeded["b1"]])
    assert count(raw, "SELECT count(*) FROM documents") == 4
    assert count(raw, "SELECT count(*) FROM checkpoints") == 2
    # deleting it again: nothing to delete, not an error
    code, out, _ = run_cli("delete", "--db", str(location), "--id", seeded["b1"], "--yes")
    assert code == 0 and out.startswith("nothing to delete")


@pytest.mark.parametrize("target", [("--source", "alpha"), ("--id", "a2")])
def test_delete_refuses_without_yes_when_stdin_is_not_a_terminal(
    run_cli, seeded, location, raw, monkeypatch, target
) -> None:
    option, value = target
    value = seeded.get(value, value)
    before = table_rows(raw)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, err = run_cli("delete", "--db", str(location), option, value)
    assert code != 0
    assert out == ""
    assert "--yes" in one_error_line(err)
    assert table_rows(raw) == before


# --------------------------------------------------------------------------- embed


def test_embed_pending_then_nothing(run_cli, seeded, location, raw) -> None:
    chunks = count(raw, "SELECT count(*) FROM chunks")
    code, out, err = run_cli("embed", "--db", str(location), "--batch-size", "3", "--dims", "384")
    assert code == 0, err
    assert out.splitlines() == [f"embedded {chunks} chunk(s) with hashing-v1-384"]
    assert raw.execute(
        "SELECT count(*), min(e.dims), max(e.dims), min(e.model), max(e.model), "
        "sum(CASE WHEN e.hash = c.hash THEN 1 ELSE 0 END) FROM embeddings e "
        "JOIN chunks c ON c.id = e.chunk_id JOIN chunk_vectors v ON v.chunk_id = e.chunk_id"
    ).fetchone() == (chunks, 384, 384, "hashing-v1-384", "hashing-v1-384", chunks)
    # every vector is 384 float32s (a BLOB on SQLite, pgvector's vector read back as one)
    vectors = [bytes(blob) for (blob,) in raw.execute("SELECT embedding FROM chunk_vectors")]
    assert len(vectors) == chunks and {len(blob) for blob in vectors} == {384 * 4}
    before = table_rows(raw)
    code, out, err = run_cli("embed", "--db", str(location), "-q", "--model", "hashing-v1-384")
    assert code == 0, err
    assert out.splitlines() == ["embedded 0 chunk(s) with hashing-v1-384"]
    assert table_rows(raw) == before


def test_embed_uses_the_default_model_and_refuses_absurd_sizes(run_cli, seeded, location, raw) -> None:
    code, out, err = run_cli("embed", "--db", str(location), "-q")
    assert code == 0, err
    assert out.splitlines()[-1].endswith(f"with {default_embedder().model}")
    before = table_rows(raw)
    for args in (("--dims", "2000000000"), ("--dims", "0"), ("--model", "no-such-model")):
        code, out, err = run_cli("embed", "--db", str(location), *args)
        assert code != 0 and out == ""
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert table_rows(raw) == before


# --------------------------------------------------------------------------- errors


@pytest.mark.backends("sqlite")  # a file that is not there; test_postgres has the missing database
@pytest.mark.parametrize(
    "argv",
    [
        ("stats",),
        ("stats", "--json"),
        ("export",),
        ("delete", "--source", "alpha", "--yes"),
        ("delete", "--id", "x", "--yes"),
        ("embed", "-q"),
    ],
)
def test_missing_database_is_one_line_error(run_cli, tmp_path, argv) -> None:
    missing = tmp_path / "nowhere" / "ctx.sqlite"
    code, out, err = run_cli(*argv, "--db", str(missing))
    assert code != 0
    assert out == ""
    line = one_error_line(err)
    assert str(missing) in line
    assert not missing.exists() and not missing.parent.exists()


@pytest.fixture
def without_schema(backend, location, tmp_path) -> Iterator[Path | str]:
    """A database holding a table that is not ctx's, and none of ctx's: a file, or a schema."""
    if backend == "sqlite":
        path = tmp_path / "plain.sqlite"
        sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.close()
        yield path
        return
    import psycopg

    with psycopg.connect(location, autocommit=True) as conn:
        conn.execute("CREATE TABLE unrelated (x integer)")
    yield location


@pytest.mark.parametrize(
    "argv", [("stats",), ("export",), ("delete", "--source", "alpha", "--yes"), ("embed", "-q")]
)
def test_database_without_schema_is_one_line_error(run_cli, without_schema, argv) -> None:
    code, out, err = run_cli(*argv, "--db", str(without_schema))
    assert code != 0 and out == ""
    line = one_error_line(err)
    assert "schema" in line and shown(without_schema) in line
    assert "init" in line  # says what to run
    assert table_names(without_schema) == {"unrelated"}  # and creates nothing


def table_names(where: Path | str) -> set[str]:
    if isinstance(where, Path):
        conn: Any = sqlite3.connect(where)
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        import psycopg

        conn = psycopg.connect(where)
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    try:
        return {name for (name,) in conn.execute(sql).fetchall()}
    finally:
        conn.close()


@pytest.mark.backends("sqlite")  # a file that holds something else
def test_not_a_database_is_one_line_error(run_cli, tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not sqlite\n" * 20)
    code, out, err = run_cli("export", "--db", str(path))
    assert code != 0 and out == ""
    one_error_line(err)
    assert path.read_text() == "this is not sqlite\n" * 20
