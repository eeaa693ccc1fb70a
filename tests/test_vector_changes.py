"""Every way another program can change the stored vectors, done by a real second process while
this one holds a warm vector index: the next search answers from the new data, exactly.

The in-memory index is rebuilt when SQLite says another connection committed
(``PRAGMA data_version``); these tests make sure no kind of change slips past
that, including the ones a cheaper check (row counts, the header's change
counter, file times) would miss: an in-place UPDATE of a BLOB of the same
length, VACUUM, a reused rowid, a backup restored over the live file.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ctx_models
from ctx_models import search, snippets, store
from ctx_models.backends.sqlite.state import index_for

DIMS = 16
DOCS = 12
PER_DOC = 5
TOL = 1e-5


def _seed() -> None:
    rng = np.random.default_rng(5)
    for d in range(DOCS):
        doc, _ = store.upsert_document("s", f"doc-{d}", f"document {d}", updated_at=1_700_000_000 + d)
        vectors = rng.standard_normal((PER_DOC, DIMS)).astype(np.float32)
        store.replace_chunks(doc.id, [f"doc {d} chunk {i}" for i in range(PER_DOC)], vectors, "m")


def _reference(path: Path, query: np.ndarray) -> dict[str, float]:
    """Cosine of every stored vector, read with plain sqlite3 (chunk id -> score)."""
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT chunk_id, embedding FROM chunk_vectors").fetchall()
    conn.close()
    q = query.astype(np.float64)
    out = {}
    for chunk_id, blob in rows:
        v = np.frombuffer(blob, "<f4").astype(np.float64)
        denominator = np.linalg.norm(v) * np.linalg.norm(q)
        out[chunk_id] = float(v @ q / denominator) if denominator else 0.0
    return out


def _chunks(path: Path) -> dict[str, tuple[str, str]]:
    """Each chunk's document id and the start of its text, read with plain sqlite3."""
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT id, document_id, text FROM chunks").fetchall()
    conn.close()
    return {chunk_id: (document_id, snippets.start_of(text)) for chunk_id, document_id, text in rows}


def _assert_exact(path: Path, query: np.ndarray, k: int = 10) -> None:
    hits = search.vector_search(query, limit=k)
    reference = _reference(path, query)
    best = sorted(reference.items(), key=lambda kv: -kv[1])[:k]
    assert [h.chunk_id for h in hits] == [cid for cid, _ in best]
    assert [h.score for h in hits] == pytest.approx([s for _, s in best], abs=TOL)
    chunks = _chunks(path)
    assert [(h.document_id, h.snippet) for h in hits] == [chunks[h.chunk_id] for h in hits]


def _other_process(path: Path, code: str) -> None:
    script = textwrap.dedent(
        """
        import sqlite3, sys
        import numpy as np
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        """
    ) + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)


# Each change, as SQL another program runs. The query below is the first
# stored vector of doc-0's first chunk, so most changes move the top hit.
CHANGES = {
    # The ctx tool's upsert of an embedding: an UPDATE in place, same length.
    "update-same-length": """
        first = conn.execute("SELECT chunk_id FROM chunk_vectors ORDER BY rowid LIMIT 1").fetchone()[0]
        conn.execute(
            "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) "
            "SELECT chunk_id, document_id, ? FROM chunk_vectors WHERE chunk_id = ? "
            "ON CONFLICT(chunk_id) DO UPDATE SET embedding = excluded.embedding",
            (np.full(16, -1.0, "<f4").tobytes(), first),
        )
    """,
    "update-one-byte": """
        conn.execute(
            "UPDATE chunk_vectors SET embedding = "
            "CAST(substr(embedding, 1, 20) || x'00' || substr(embedding, 22) AS BLOB) "
            "WHERE rowid = (SELECT max(rowid) FROM chunk_vectors)"
        )
    """,
    "insert": """
        row = conn.execute("SELECT id, document_id FROM chunks ORDER BY rowid LIMIT 1").fetchone()
        conn.execute("DELETE FROM chunk_vectors WHERE chunk_id = ?", (row[0],))
        conn.execute(
            "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES (?, ?, ?)",
            (row[0], row[1], np.arange(16, dtype="<f4").tobytes()),
        )
    """,
    # The text of the best chunk rewritten in place: its vector stays, its snippet moves.
    "update-chunk-text": """
        first = conn.execute("SELECT chunk_id FROM chunk_vectors ORDER BY rowid LIMIT 1").fetchone()[0]
        conn.execute("BEGIN")
        conn.execute("UPDATE chunks SET text = 'rewritten by another program' WHERE id = ?", (first,))
        conn.execute("UPDATE chunks_fts SET text = 'rewritten by another program' WHERE chunk_id = ?", (first,))
        conn.execute("COMMIT")
    """,
    "delete": """
        conn.execute("DELETE FROM chunk_vectors WHERE rowid IN (SELECT rowid FROM chunk_vectors LIMIT 7)")
    """,
    # Delete the last row and insert another: SQLite hands out the same rowid again.
    "rowid-reuse": """
        last, doc = conn.execute(
            "SELECT rowid, document_id FROM chunk_vectors ORDER BY rowid DESC LIMIT 1").fetchone()
        chunk = conn.execute("SELECT chunk_id FROM chunk_vectors WHERE rowid = ?", (last,)).fetchone()[0]
        first = conn.execute("SELECT chunk_id FROM chunk_vectors ORDER BY rowid LIMIT 1").fetchone()[0]
        conn.execute("BEGIN")
        conn.execute("DELETE FROM chunk_vectors WHERE rowid = ?", (last,))
        conn.execute("DELETE FROM chunk_vectors WHERE chunk_id = ?", (first,))
        conn.execute(
            "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES (?, ?, ?)",
            (first, doc, np.ones(16, "<f4").tobytes()),
        )
        conn.execute("COMMIT")
        new = conn.execute("SELECT rowid FROM chunk_vectors WHERE chunk_id = ?", (first,)).fetchone()[0]
        assert new == last, (new, last)
    """,
    # Rows renumbered: delete every other row, then VACUUM.
    "vacuum": """
        conn.execute("DELETE FROM chunk_vectors WHERE rowid % 2 = 0")
        conn.execute("VACUUM")
    """,
    # An older copy written over the live database through SQLite's backup API.
    "restore-backup": """
        source = sqlite3.connect(sys.argv[1] + ".old")
        source.backup(conn)
        source.close()
    """,
}


@pytest.fixture
def warm(db, db_path: Path) -> np.ndarray:
    """The seeded store with its index built and, searched twice, its chunks' details kept
    (ids, snippets) in memory; returns the query."""
    _seed()
    conn = sqlite3.connect(db_path)
    query = np.frombuffer(
        conn.execute("SELECT embedding FROM chunk_vectors ORDER BY rowid LIMIT 1").fetchone()[0], "<f4"
    ).copy()
    conn.close()
    _assert_exact(db_path, query)
    _assert_exact(db_path, query)
    assert index_for(db, db.connection())._groups[DIMS].details is not None
    return query


@pytest.mark.parametrize("change", list(CHANGES))
def test_next_search_sees_a_change_by_another_process(change, warm, db, db_path: Path) -> None:
    if change == "restore-backup":
        # The "backup": the store as it was, with its vectors turned around.
        old = Path(str(db_path) + ".old")
        conn = sqlite3.connect(old)
        live = sqlite3.connect(db_path)
        live.backup(conn)
        live.close()
        conn.execute("UPDATE chunk_vectors SET embedding = ?", (np.full(DIMS, 0.5, "<f4").tobytes(),))
        conn.execute(
            "UPDATE chunk_vectors SET embedding = ? WHERE rowid = (SELECT max(rowid) FROM chunk_vectors)",
            (np.asarray(warm, "<f4").tobytes(),),
        )
        conn.commit()
        conn.close()
    builds = index_for(db, db.connection()).builds
    before = _reference(db_path, warm), _chunks(db_path)
    _other_process(db_path, CHANGES[change])
    after = _reference(db_path, warm), _chunks(db_path)
    assert after != before, "the change changed nothing: the test is wrong"
    _assert_exact(db_path, warm)  # rebuilt, the winners' details read from SQL
    _assert_exact(db_path, warm)  # and from the details the index keeps now
    assert index_for(db, db.connection()).builds == builds + 1


def test_a_copy_of_the_file_answers_from_its_own_data(warm, db, db_path: Path, tmp_path: Path) -> None:
    """A copy changed apart from the original: each answers from its own vectors."""
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "copy.sqlite"
    shutil.copy(db_path, copy)
    _other_process(copy, CHANGES["update-same-length"])
    other = ctx_models.connect(copy)  # binds the models to the copy
    try:
        _assert_exact(copy, warm)
        _assert_exact(copy, warm)
        assert search.vector_search(warm, limit=1)[0].score < 0.999
    finally:
        other.close()
        ctx_models.connect(db_path)
    _assert_exact(db_path, warm)
    _assert_exact(db_path, warm)
    assert search.vector_search(warm, limit=1)[0].score == pytest.approx(1.0, abs=TOL)
