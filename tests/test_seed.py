"""scripts/seed.py: fills a database with the demo corpus, and running it again changes nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ctx_models.embedders import default_embedder

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "scripts" / "seed.py"
TABLES = ("documents", "chunks", "checkpoints", "embeddings", "chunk_vectors")


def run_seed(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CTX_MODELS_DB"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(  # noqa: PLW1510 - the exit status is checked below
        [sys.executable, str(SEED), "--db", str(db), "-q", *args],
        cwd=db.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table (rowid included), and the schema version."""
    conn = sqlite3.connect(str(db))
    try:
        rows = {t: conn.execute(f"SELECT rowid, * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}
        rows["chunks_fts"] = conn.execute(
            "SELECT rowid, chunk_id, document_id, text FROM chunks_fts ORDER BY rowid"
        ).fetchall()
        rows["user_version"] = conn.execute("PRAGMA user_version").fetchall()
        return rows
    finally:
        conn.close()


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A database seeded twice: (path, rows after the first run, rows after the second)."""
    db = tmp_path_factory.mktemp("seed") / "demo.sqlite"
    first = run_seed(db)
    assert "created" in first.stdout
    after_first = snapshot(db)
    run_seed(db)
    after_second = snapshot(db)
    return db, after_first, after_second


def test_second_run_changes_nothing(seeded):
    _db, first, second = seeded
    for table in (*TABLES, "chunks_fts"):
        assert len(first[table]) == len(second[table]), table
    assert {r[1] for r in first["documents"]} == {r[1] for r in second["documents"]}
    assert {r[1] for r in first["chunks"]} == {r[1] for r in second["chunks"]}
    assert {(r[2], r[3]) for r in first["documents"]} == {(r[2], r[3]) for r in second["documents"]}
    # Full contents, checkpoints (cursor and updated_at) included.
    assert first == second


def test_demo_corpus_shape(seeded):
    db, rows, _ = seeded
    assert len(rows["documents"]) >= 12
    sources = {r[0] for r in query(db, "SELECT DISTINCT source FROM documents")}
    assert len(sources) >= 3
    per_doc = dict(query(db, "SELECT document_id, count(*) FROM chunks GROUP BY document_id"))
    assert set(per_doc) == {r[1] for r in rows["documents"]}  # every document has chunks
    assert sum(1 for n in per_doc.values() if n >= 2) >= 2
    gaps = query(
        db,
        "SELECT document_id FROM chunks GROUP BY document_id "
        "HAVING min(chunk_index) != 0 OR max(chunk_index) != count(*) - 1",
    )
    assert gaps == []
    assert query(db, "PRAGMA user_version") == [(1,)]


def test_every_chunk_has_one_fts_row(seeded):
    _db, rows, _ = seeded
    chunks = {(cid, doc, text) for _rowid, cid, doc, _i, text, _h in rows["chunks"]}
    fts = [(cid, doc, text) for _rowid, cid, doc, text in rows["chunks_fts"]]
    assert len(fts) == len(set(fts))
    assert set(fts) == chunks


def test_every_chunk_has_a_vector_of_the_default_model(seeded):
    """WordLlama (256 dims) with the test extra installed, the hashing embedder (384) without."""
    model = default_embedder()
    db, rows, _ = seeded
    missing = query(
        db,
        "SELECT c.id FROM chunks c LEFT JOIN chunk_vectors v ON v.chunk_id = c.id "
        "LEFT JOIN embeddings e ON e.chunk_id = c.id WHERE v.chunk_id IS NULL OR e.chunk_id IS NULL",
    )
    assert missing == []
    bad = query(
        db,
        "SELECT c.id FROM chunks c JOIN chunk_vectors v ON v.chunk_id = c.id "
        "JOIN embeddings e ON e.chunk_id = c.id "
        "WHERE typeof(v.embedding) != 'blob' OR length(v.embedding) != ? OR e.dims != ? "
        "OR e.model != ? OR e.hash != c.hash OR v.document_id != c.document_id",
        (4 * model.dims, model.dims, model.model),
    )
    assert bad == []
    assert len(rows["chunk_vectors"]) == len(rows["chunks"]) == len(rows["embeddings"])


def test_one_checkpoint_per_source_at_newest_updated_at(seeded):
    db, rows, _ = seeded
    newest = dict(query(db, "SELECT source, max(updated_at) FROM documents GROUP BY source"))
    checkpoints = {source: cursor for _rowid, source, cursor, _at in rows["checkpoints"]}
    assert checkpoints == {source: str(value) for source, value in newest.items()}


def test_synthetic_documents_added_once(seeded, tmp_path):
    db = tmp_path / "synthetic.sqlite"
    assert not Path(f"{seeded[0]}-wal").exists()
    db.write_bytes(seeded[0].read_bytes())  # the demo corpus, seeded twice
    before = snapshot(db)
    run_seed(db, "--docs", "20")
    after = snapshot(db)
    assert len(after["documents"]) == len(before["documents"]) + 20
    assert len(after["chunks"]) == len(before["chunks"]) + 200
    assert len(after["chunks_fts"]) == len(before["chunks_fts"]) + 200
    assert len(after["chunk_vectors"]) == len(before["chunk_vectors"]) + 200
    old_ids = {r[1] for r in before["documents"]}
    new_ids = {r[1] for r in after["documents"]} - old_ids
    assert len(new_ids) == 20
    per_doc = dict(query(db, "SELECT document_id, count(*) FROM chunks GROUP BY document_id"))
    assert {per_doc[d] for d in new_ids} == {10}
    # The demo rows are untouched.
    for table in TABLES:
        if table != "checkpoints":
            assert set(before[table]) <= set(after[table]), table
    assert set(before["checkpoints"]) <= set(after["checkpoints"])
    newest = dict(query(db, "SELECT source, max(updated_at) FROM documents GROUP BY source"))
    assert dict(query(db, "SELECT source, cursor FROM checkpoints")) == {s: str(v) for s, v in newest.items()}

    run_seed(db, "--docs", "20")
    assert snapshot(db) == after
