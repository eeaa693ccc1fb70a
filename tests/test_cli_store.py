"""The store commands of the CLI, run in-process against a seeded temporary database."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ctx_tool import table_rows

import ctx_models
from ctx_models import store
from ctx_models.embedders import default_embedder

BODY = "First paragraph about {name}.\n\n" + " ".join(f"term{i}" for i in range(30))


@pytest.fixture(autouse=True)
def _close_cli_connections(db) -> Iterator[None]:
    """The CLI opens (and binds) its own connection; close it after the test."""
    yield
    bound = ctx_models.bound_database()
    if bound is not db:
        bound.close()


@pytest.fixture
def seeded(db, db_path: Path) -> dict[str, str]:
    ids = {}
    for source, names in (("alpha", ("a1", "a2", "a3")), ("beta", ("b1", "b2"))):
        for name in names:
            ids[name] = store.ingest(source, name, BODY.format(name=name), max_tokens=20, title=name).document_id
    store.set_checkpoint("alpha", 1_767_225_600)
    store.set_checkpoint("beta", 1_700_000_000)
    return ids


@pytest.fixture
def raw(db_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    conn.close()


def count(conn: sqlite3.Connection, sql: str, *params: object) -> int:
    return conn.execute(sql, params).fetchone()[0]


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- stats


def test_stats_table(run_cli, seeded, db_path, raw) -> None:
    code, out, err = run_cli("stats", "--db", str(db_path))
    assert code == 0, err
    chunks = count(raw, "SELECT count(*) FROM chunks")
    lines = out.splitlines()
    assert lines[0].startswith(f"database   {db_path} (")
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


def test_stats_json(run_cli, seeded, db_path, raw) -> None:
    code, out, err = run_cli("stats", "--db", str(db_path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["documents"] == 5
    assert report["chunks"] == count(raw, "SELECT count(*) FROM chunks")
    assert (report["embedded"], report["stale"], report["models"]) == (0, 0, {})
    assert [s["source"] for s in report["sources"]] == ["alpha", "beta"]
    assert [s["documents"] for s in report["sources"]] == [3, 2]
    assert [s["checkpoint"] for s in report["sources"]] == [1_767_225_600, 1_700_000_000]
    assert report["size_bytes"] >= db_path.stat().st_size


# --------------------------------------------------------------------------- export


def test_export_to_file(run_cli, seeded, db_path, tmp_path, raw) -> None:
    out_file = tmp_path / "export.jsonl"
    code, out, err = run_cli("export", "--db", str(db_path), "--out", str(out_file))
    assert code == 0, err
    assert out == ""
    assert err.strip() == f"exported 5 documents to {out_file}"
    lines = out_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5
    docs = [json.loads(line) for line in lines]
    assert sorted(d["id"] for d in docs) == sorted(seeded.values())
    assert sum(len(d["chunks"]) for d in docs) == count(raw, "SELECT count(*) FROM chunks")

    code, _, err = run_cli("export", "--db", str(db_path), "--out", str(out_file), "--source", "beta")
    assert code == 0, err
    assert [json.loads(line)["source_id"] for line in out_file.read_text().splitlines()] == ["b1", "b2"]


def test_export_to_stdout(run_cli, seeded, db_path) -> None:
    code, out, err = run_cli("export", "--db", str(db_path))
    assert code == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert [(d["source"], d["source_id"]) for d in docs] == [
        ("alpha", "a1"), ("alpha", "a2"), ("alpha", "a3"), ("beta", "b1"), ("beta", "b2"),
    ]
    assert all(d["chunks"] and d["chunks"][0]["chunk_index"] == 0 for d in docs)
    code, out, _ = run_cli("export", "--db", str(db_path), "--out", "-", "--source", "alpha")
    assert code == 0 and len(out.splitlines()) == 3


# --------------------------------------------------------------------------- delete


def _nothing_left(raw: sqlite3.Connection, doc_ids: list[str]) -> None:
    marks = ",".join("?" * len(doc_ids))
    for sql in (
        f"SELECT count(*) FROM documents WHERE id IN ({marks})",
        f"SELECT count(*) FROM chunks WHERE document_id IN ({marks})",
        f"SELECT count(*) FROM chunks_fts WHERE document_id IN ({marks})",
        f"SELECT count(*) FROM chunk_vectors WHERE document_id IN ({marks})",
    ):
        assert count(raw, sql, *doc_ids) == 0, sql
    assert count(raw, "SELECT count(*) FROM chunks_fts") == count(raw, "SELECT count(*) FROM chunks")


def test_delete_source_with_yes(run_cli, seeded, db_path, raw, embedder) -> None:
    store.embed_pending(embedder)
    beta_before = raw.execute(
        "SELECT c.id, c.text, e.hash FROM chunks c JOIN documents d ON d.id = c.document_id "
        "JOIN embeddings e ON e.chunk_id = c.id WHERE d.source = 'beta' ORDER BY c.id"
    ).fetchall()
    code, out, err = run_cli("delete", "--db", str(db_path), "--source", "alpha", "--yes")
    assert code == 0, err
    assert out.strip() == "deleted 3 document(s) of source 'alpha'"
    _nothing_left(raw, [seeded["a1"], seeded["a2"], seeded["a3"]])
    assert count(raw, "SELECT count(*) FROM embeddings") == len(beta_before)
    assert raw.execute("SELECT source FROM checkpoints").fetchall() == [("beta",)]
    assert raw.execute(
        "SELECT c.id, c.text, e.hash FROM chunks c JOIN documents d ON d.id = c.document_id "
        "JOIN embeddings e ON e.chunk_id = c.id WHERE d.source = 'beta' ORDER BY c.id"
    ).fetchall() == beta_before


def test_delete_id_with_yes(run_cli, seeded, db_path, raw) -> None:
    code, out, err = run_cli("delete", "--db", str(db_path), "--id", seeded["b1"], "-y")
    assert code == 0, err
    assert out.strip() == f"deleted document {seeded['b1']}"
    _nothing_left(raw, [seeded["b1"]])
    assert count(raw, "SELECT count(*) FROM documents") == 4
    assert count(raw, "SELECT count(*) FROM checkpoints") == 2
    # deleting it again: nothing to delete, not an error
    code, out, _ = run_cli("delete", "--db", str(db_path), "--id", seeded["b1"], "--yes")
    assert code == 0 and out.startswith("nothing to delete")


@pytest.mark.parametrize("target", [("--source", "alpha"), ("--id", "a2")])
def test_delete_refuses_without_yes_when_stdin_is_not_a_terminal(
    run_cli, seeded, db_path, raw, monkeypatch, target
) -> None:
    option, value = target
    value = seeded.get(value, value)
    before = table_rows(raw)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, err = run_cli("delete", "--db", str(db_path), option, value)
    assert code != 0
    assert out == ""
    assert "--yes" in one_error_line(err)
    assert table_rows(raw) == before


# --------------------------------------------------------------------------- embed


def test_embed_pending_then_nothing(run_cli, seeded, db_path, raw) -> None:
    chunks = count(raw, "SELECT count(*) FROM chunks")
    code, out, err = run_cli("embed", "--db", str(db_path), "--batch-size", "3", "--dims", "384")
    assert code == 0, err
    assert out.splitlines() == [f"embedded {chunks} chunk(s) with hashing-v1-384"]
    assert raw.execute(
        "SELECT count(*), min(e.dims), max(e.dims), min(e.model), max(e.model), sum(e.hash = c.hash), "
        "sum(length(v.embedding)) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id "
        "JOIN chunk_vectors v ON v.chunk_id = e.chunk_id"
    ).fetchone() == (chunks, 384, 384, "hashing-v1-384", "hashing-v1-384", chunks, chunks * 384 * 4)
    before = table_rows(raw)
    code, out, err = run_cli("embed", "--db", str(db_path), "-q", "--model", "hashing-v1-384")
    assert code == 0, err
    assert out.splitlines() == ["embedded 0 chunk(s) with hashing-v1-384"]
    assert table_rows(raw) == before


def test_embed_uses_the_default_model_and_refuses_absurd_sizes(run_cli, seeded, db_path, raw) -> None:
    code, out, err = run_cli("embed", "--db", str(db_path), "-q")
    assert code == 0, err
    assert out.splitlines()[-1].endswith(f"with {default_embedder().model}")
    before = table_rows(raw)
    for args in (("--dims", "2000000000"), ("--dims", "0"), ("--model", "no-such-model")):
        code, out, err = run_cli("embed", "--db", str(db_path), *args)
        assert code != 0 and out == ""
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert table_rows(raw) == before


# --------------------------------------------------------------------------- errors


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


def test_database_without_schema_is_one_line_error(run_cli, tmp_path) -> None:
    path = tmp_path / "plain.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.close()
    code, out, err = run_cli("stats", "--db", str(path))
    assert code != 0 and out == ""
    assert "schema" in one_error_line(err)


def test_not_a_database_is_one_line_error(run_cli, tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not sqlite\n" * 20)
    code, out, err = run_cli("export", "--db", str(path))
    assert code != 0 and out == ""
    one_error_line(err)
    assert path.read_text() == "this is not sqlite\n" * 20
