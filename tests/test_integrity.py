"""integrity.check and `ctx-models check`: every kind of damage is found, counted and (when certain) repaired.

Each damage is made with raw sqlite3 (foreign keys off where the damage needs
it) on a small database written by store.ingest with the hashing embedder.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import ctx_models
from ctx_models import integrity, search, store
from ctx_models.embedders import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 16  # 64 bytes: each paragraph below is one chunk
DOCS = 8
PARAGRAPHS = 3


def paragraph(doc: int, number: int) -> str:
    return f"document {doc} paragraph {number} word{doc}x{number} text"


@dataclass
class Store:
    path: Path
    db: object
    embedder: HashingEmbedder
    docs: list[str]  # document ids, by document number
    chunks: list[list[str]]  # chunk ids, by document number and chunk index


@pytest.fixture
def built(db, db_path: Path, embedder: HashingEmbedder) -> Store:
    docs, chunks = [], []
    for n in range(DOCS):
        body = "\n\n".join(paragraph(n, p) for p in range(PARAGRAPHS))
        result = store.ingest(
            "files",
            f"doc{n}.txt",
            body,
            embedder=embedder,
            max_tokens=MAX_TOKENS,
            metadata={"n": n},
        )
        assert result.chunks == PARAGRAPHS
        docs.append(result.document_id)
        chunks.append([c.id for c in store.get_document(result.document_id).chunks])
    store.set_checkpoint("files", 1_700_000_000)
    assert integrity.check(db).clean
    return Store(db_path, db, embedder, docs, chunks)


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection, foreign keys off, autocommit: how the damage is done."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


def damage(s: Store, fn: Callable[[sqlite3.Connection, Store], list[str]]) -> list[str]:
    conn = raw(s.path)
    try:
        return fn(conn, s)
    finally:
        conn.close()


def document_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM documents")}


def parented_chunk_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT id FROM chunks WHERE document_id IN (SELECT id FROM documents)"
            )
        }


def all_rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'chunks_fts_%' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        rows = {
            t: sorted(conn.execute(f'SELECT rowid, * FROM "{t}"').fetchall(), key=repr)
            for t in tables
        }
        rows["sqlite_master"] = sorted(
            conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=repr
        )
        return rows
    finally:
        conn.close()


def vector_of(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


# --------------------------------------------------------------------------- the damages


def chunk_without_fts(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("DELETE FROM chunks_fts WHERE chunk_id = ?", (s.chunks[0][1],))
    return [s.chunks[0][1]]


def fts_without_chunk(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES ('ghost-chunk', ?, 'ghost words')",
        (s.docs[0],),
    )
    return ["ghost-chunk"]


def fts_text_differs(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunks_fts SET text = 'something else entirely' WHERE chunk_id = ?",
        (s.chunks[1][0],),
    )
    return [s.chunks[1][0]]


def fts_duplicate(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO chunks_fts (chunk_id, document_id, text) "
        "SELECT chunk_id, document_id, text FROM chunks_fts WHERE chunk_id = ?",
        (s.chunks[2][2],),
    )
    return [s.chunks[2][2]]


def chunk_without_document(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("DELETE FROM documents WHERE id = ?", (s.docs[3],))
    return list(s.chunks[3])


def embedding_without_chunk(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO embeddings (chunk_id, model, dims, created_at, hash) VALUES ('ghost-emb', ?, 384, 1, 'x')",
        (s.embedder.model,),
    )
    return ["ghost-emb"]


def vector_without_chunk(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES ('ghost-vec', ?, ?)",
        (s.docs[0], vector_of([1.0] * 384)),
    )
    return ["ghost-vec"]


def vector_wrong_document(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET document_id = ? WHERE chunk_id = ?", (s.docs[5], s.chunks[4][0])
    )
    return [s.chunks[4][0]]


def vector_wrong_length(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id = ?",
        (vector_of([0.5, 0.5]), s.chunks[4][1]),
    )
    return [s.chunks[4][1]]


def vector_not_multiple_of_4(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id = ?", (b"\x01" * 7, s.chunks[4][2])
    )
    return [s.chunks[4][2]]


def vector_nan(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id = ?",
        (vector_of([float("nan")] + [0.1] * 383), s.chunks[5][0]),
    )
    return [s.chunks[5][0]]


def vector_infinite(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute(
        "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id = ?",
        (vector_of([0.1] * 383 + [float("-inf")]), s.chunks[5][1]),
    )
    return [s.chunks[5][1]]


def stale_embedding(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("UPDATE embeddings SET hash = ? WHERE chunk_id = ?", ("0" * 64, s.chunks[5][2]))
    return [s.chunks[5][2]]


def chunk_index_gap(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("UPDATE chunks SET chunk_index = 7 WHERE id = ?", (s.chunks[6][1],))
    return [s.docs[6]]


def document_without_chunks(c: sqlite3.Connection, s: Store) -> list[str]:
    ids = s.chunks[7]
    marks = ", ".join("?" * len(ids))
    for table, column in (
        ("chunk_vectors", "chunk_id"),
        ("embeddings", "chunk_id"),
        ("chunks_fts", "chunk_id"),
        ("chunks", "id"),
    ):
        c.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
    return [s.docs[7]]


def bad_cursor(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("INSERT INTO checkpoints (source, cursor, updated_at) VALUES ('broken', 'abc', 1)")
    return ["broken"]


def metadata_not_object(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("UPDATE documents SET metadata_json = '[1, 2]' WHERE id = ?", (s.docs[2],))
    return [s.docs[2]]


def metadata_not_json(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("UPDATE documents SET metadata_json = '{not json' WHERE id = ?", (s.docs[1],))
    return [s.docs[1]]


def missing_index(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("DROP INDEX idx_chunks_document_id")
    return ["chunks: index idx_chunks_document_id is missing"]


def missing_table(c: sqlite3.Connection, s: Store) -> list[str]:
    c.execute("DROP TABLE checkpoints")
    return ["table checkpoints is missing"]


@dataclass(frozen=True)
class Damage:
    apply: Callable[[sqlite3.Connection, Store], list[str]]
    code: str
    count: int
    repairable: bool
    also: frozenset[str] = field(
        default_factory=frozenset
    )  # other findings the same damage implies


DAMAGES = {
    "chunk-without-fts": Damage(chunk_without_fts, "chunks_without_fts", 1, True),
    "fts-without-chunk": Damage(fts_without_chunk, "fts_without_chunk", 1, True),
    "fts-text-differs": Damage(fts_text_differs, "fts_mismatch", 1, True),
    "fts-duplicate": Damage(fts_duplicate, "fts_duplicates", 1, True),
    "chunk-without-document": Damage(
        chunk_without_document, "chunks_without_document", PARAGRAPHS, True
    ),
    "embedding-without-chunk": Damage(embedding_without_chunk, "embeddings_without_chunk", 1, True),
    "vector-without-chunk": Damage(
        vector_without_chunk,
        "vectors_without_chunk",
        1,
        True,
        frozenset({"vectors_without_embedding"}),
    ),
    "vector-wrong-document": Damage(vector_wrong_document, "vectors_wrong_document", 1, True),
    "vector-length-not-multiple-of-4": Damage(
        vector_not_multiple_of_4, "vectors_bad_length", 1, True
    ),
    "vector-nan": Damage(vector_nan, "vectors_not_finite", 1, True),
    "vector-infinite": Damage(vector_infinite, "vectors_not_finite", 1, True),
    "stale-embedding": Damage(stale_embedding, "stale_embeddings", 1, True),
    "chunk-index-gap": Damage(chunk_index_gap, "chunk_index_gaps", 1, False),
    "document-without-chunks": Damage(
        document_without_chunks, "documents_without_chunks", 1, False
    ),
    "cursor-abc": Damage(bad_cursor, "bad_checkpoints", 1, False),
    "metadata-not-object": Damage(metadata_not_object, "bad_metadata", 1, False),
    "metadata-not-json": Damage(metadata_not_json, "bad_metadata", 1, False),
    "missing-index": Damage(missing_index, "schema", 1, True),
    "missing-table": Damage(missing_table, "schema", 1, True),
}


def findings(report: integrity.CheckReport) -> dict[str, integrity.Finding]:
    codes = [f.code for f in report.findings]
    assert len(codes) == len(set(codes)), f"a code is reported twice: {codes}"
    return {f.code: f for f in report.findings}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damage_is_reported_and_repaired(name: str, built: Store) -> None:
    spec = DAMAGES[name]
    examples = damage(built, spec.apply)
    docs_before, chunks_before = document_ids(built.path), parented_chunk_ids(built.path)

    report = integrity.check(built.db)
    assert report.quick_check == ["ok"]
    assert not report.clean
    found = findings(report)
    assert set(found) == {spec.code} | spec.also, found
    finding = found[spec.code]
    assert finding.count == spec.count
    assert sorted(finding.examples) == sorted(examples)[: integrity.EXAMPLES]
    assert finding.repairable is spec.repairable
    assert finding.description
    assert report.repaired == {}

    rows_before = all_rows(built.path)
    repaired = integrity.check(built.db, repair=True)
    after = integrity.check(built.db)
    assert findings(after).keys() == findings(repaired).keys()
    if spec.repairable:
        assert repaired.repaired, "repair reported no changes"
        # What check counted is what repair says it fixed.
        assert {code: repaired.repaired[code] for code in found} == {
            code: f.count for code, f in found.items()
        }
        assert repaired.clean, repaired.findings
        assert after.clean, after.findings
    else:
        still = findings(after)
        assert set(still) == {spec.code}
        assert still[spec.code].count == spec.count
        assert sorted(still[spec.code].examples) == sorted(examples)
        assert all_rows(built.path) == rows_before, (
            "repair changed rows although nothing was repairable"
        )
    # A repair never deletes a document, nor a chunk whose document exists.
    assert document_ids(built.path) == docs_before
    assert parented_chunk_ids(built.path) == chunks_before


def test_vectors_whose_length_differs_from_dims_are_valid_data(built: Store) -> None:
    """embeddings.dims is what the ctx tool was configured with; the BLOB's length is the truth.

    Such vectors are neither reported nor deleted, and the store keeps writing that model.
    """
    conn = raw(built.path)
    conn.execute("UPDATE embeddings SET dims = 1536 WHERE model = ?", (built.embedder.model,))
    conn.close()
    rows_before = all_rows(built.path)
    assert integrity.check(built.db).clean
    assert integrity.check(built.db, repair=True).clean
    assert all_rows(built.path) == rows_before
    chunk_id = built.chunks[0][0]
    assert store.upsert_embeddings([(chunk_id, built.embedder.model, np.ones(384))]) == 1
    with pytest.raises(ctx_models.DimensionMismatchError, match="384"):
        store.upsert_embeddings([(chunk_id, built.embedder.model, np.ones(16))])


@pytest.mark.parametrize("name", ["chunk-without-fts", "fts-text-differs", "fts-duplicate"])
def test_repaired_fts_rows_serve_keyword_search(name: str, built: Store) -> None:
    (chunk_id,) = damage(built, DAMAGES[name].apply)
    assert integrity.check(built.db, repair=True).clean
    text = built.db.execute_sql("SELECT text FROM chunks WHERE id = ?", (chunk_id,)).fetchone()[0]
    rows = built.db.execute_sql(
        "SELECT text FROM chunks_fts WHERE chunk_id = ?", (chunk_id,)
    ).fetchall()
    assert rows == [(text,)]
    unique_word = text.split()[4]  # wordNxP
    assert [c.chunk_id for c in search.keyword_search(unique_word)] == [chunk_id]


@pytest.mark.parametrize(
    "name", ["vector-nan", "vector-length-not-multiple-of-4", "stale-embedding"]
)
def test_repaired_vectors_become_pending(name: str, built: Store) -> None:
    (chunk_id,) = damage(built, DAMAGES[name].apply)
    assert integrity.check(built.db, repair=True).clean
    assert [c.id for c in store.pending_chunks(built.embedder.model)] == [chunk_id]
    assert store.embed_pending(built.embedder) == 1
    assert integrity.check(built.db).clean
    hits = search.vector_search(
        built.embedder.embed([paragraph(5 if "vector-nan" == name else 4, 0)])[0], limit=3
    )
    assert hits and all(h.score == h.score for h in hits)  # no NaN scores


def test_missing_index_and_table_are_recreated(built: Store) -> None:
    damage(built, missing_index)
    damage(built, missing_table)
    report = integrity.check(built.db)
    assert [f.code for f in report.findings] == ["schema"]
    assert sorted(report.findings[0].examples) == [
        "chunks: index idx_chunks_document_id is missing",
        "table checkpoints is missing",
    ]
    assert integrity.check(built.db, repair=True).clean
    names = {r[0] for r in built.db.execute_sql("SELECT name FROM sqlite_master")}
    assert {"checkpoints", "idx_chunks_document_id"} <= names


def test_everything_at_once_repairs_in_one_transaction(built: Store) -> None:
    everything = [
        d
        for name, d in DAMAGES.items()
        if name not in ("missing-table", "metadata-not-json", "vector-infinite")
    ]
    expected: dict[str, list[str]] = {}
    for spec in everything:
        expected.setdefault(spec.code, []).extend(damage(built, spec.apply))
    docs_before, chunks_before = document_ids(built.path), parented_chunk_ids(built.path)

    report = integrity.check(built.db)
    found = findings(report)
    assert set(found) == set(expected) | {"vectors_without_embedding"}
    for code, ids in expected.items():
        assert found[code].count == len(ids), code
        assert set(found[code].examples) <= set(ids) and len(found[code].examples) == min(
            len(ids), 5
        ), code

    statements: list[str] = []
    connection = built.db.connection()
    connection.set_trace_callback(statements.append)
    try:
        repaired = integrity.check(built.db, repair=True)
    finally:
        connection.set_trace_callback(None)

    unrepairable = {
        "chunk_index_gaps",
        "documents_without_chunks",
        "bad_checkpoints",
        "bad_metadata",
    }
    left = findings(repaired)
    assert set(left) == unrepairable
    for code in unrepairable:
        assert left[code].count == found[code].count and left[code].examples == found[code].examples
    assert set(findings(integrity.check(built.db))) == unrepairable
    assert document_ids(built.path) == docs_before
    assert parented_chunk_ids(built.path) == chunks_before

    # One transaction: every write of the repair sits between its single BEGIN IMMEDIATE and COMMIT.
    top = [s.strip() for s in statements if not s.startswith("--")]
    begins = [i for i, s in enumerate(top) if s.upper().startswith("BEGIN IMMEDIATE")]
    assert len(begins) == 1, [s for s in top if s.upper().startswith("BEGIN")]
    start = begins[0]
    end = next(i for i in range(start, len(top)) if top[i].upper() in ("COMMIT", "END"))
    writes = [
        i
        for i, s in enumerate(top)
        if s.split(None, 1)[0].upper()
        in ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP")
        and "'integrity-check'" not in s
    ]
    assert writes, "the repair wrote nothing"
    assert all(start < i < end for i in writes), [
        top[i][:80] for i in writes if not start < i < end
    ]


# --------------------------------------------------------------------------- the command line


def test_cli_check_exit_codes_and_json(built: Store, run_cli) -> None:
    path = str(built.path)
    code, out, err = run_cli("check", "--db", path)
    assert (code, err) == (0, "") and "clean" in out

    code, out, _ = run_cli("check", "--db", path, "--json")
    assert code == 0 and json.loads(out)["clean"] is True

    damage(built, chunk_without_fts)
    damage(built, chunk_index_gap)
    code, out, err = run_cli("check", "--db", path)
    assert code == 1 and err == ""
    assert "chunks with no FTS row" in out and built.chunks[0][1] in out and built.docs[6] in out

    code, out, _ = run_cli("check", "--db", path, "--json")
    data = json.loads(out)
    assert code == 1 and data["clean"] is False
    assert {f["code"]: f["count"] for f in data["findings"]} == {
        "chunks_without_fts": 1,
        "chunk_index_gaps": 1,
    }

    code, out, _ = run_cli("check", "--db", path, "--repair", "--json")
    data = json.loads(out)
    assert code == 1 and data["clean"] is False  # the gap needs a person
    assert data["repaired"] and [f["code"] for f in data["findings"]] == ["chunk_index_gaps"]

    conn = raw(built.path)
    conn.execute("UPDATE chunks SET chunk_index = 1 WHERE id = ?", (built.chunks[6][1],))
    conn.close()
    code, out, _ = run_cli("check", "--db", path, "--repair")
    assert code == 0 and "clean" in out


def test_cli_check_unreadable_exits_2(tmp_path: Path, run_cli) -> None:
    missing = tmp_path / "nowhere" / "ctx.sqlite"
    code, out, err = run_cli("check", "--db", str(missing))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error:")
    assert not missing.exists() and not missing.parent.exists()

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, just some text\n" * 20)
    code, out, err = run_cli("check", "--db", str(garbage))
    assert code == 2 and err.count("\n") == 1 and "not a SQLite database" in err
    assert garbage.read_bytes() == b"this is not a database, just some text\n" * 20

    code, out, err = run_cli("check", "--db", str(tmp_path))
    assert code == 2 and err.count("\n") == 1

    code, out, err = run_cli("check", "--db", str(garbage), "--json")
    assert code == 2 and out == ""


def test_cli_check_truncated_database_exits_2(built: Store, run_cli) -> None:
    built.db.close()
    conn = sqlite3.connect(built.path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = delete")
    conn.close()
    data = built.path.read_bytes()
    assert len(data) > 8192
    built.path.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli("check", "--db", str(built.path))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err + out


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CTX_MODELS_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "ctx_models", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=120,
        check=False,
    )


def test_issue_scenario_on_the_demo_database(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "ctx.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seeded = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed.py"), "--db", str(path), "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr

    clean = _cli("check", "--db", str(path))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "clean" in clean.stdout

    conn = raw(path)
    docs = [r[0] for r in conn.execute("SELECT id FROM documents ORDER BY source, source_id")]
    victim_chunk = conn.execute(
        "SELECT id FROM chunks WHERE document_id = ? ORDER BY chunk_index", (docs[0],)
    ).fetchone()[0]
    orphans = sorted(
        r[0] for r in conn.execute("SELECT id FROM chunks WHERE document_id = ?", (docs[1],))
    )
    conn.execute("DELETE FROM chunks_fts WHERE chunk_id = ?", (victim_chunk,))
    conn.execute("DELETE FROM documents WHERE id = ?", (docs[1],))
    conn.close()
    docs_left = document_ids(path)
    chunks_left = parented_chunk_ids(path)

    broken = _cli("check", "--db", str(path))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert (
        "chunks with no FTS row" in broken.stdout
        and "chunks whose document does not exist" in broken.stdout
    )
    assert victim_chunk in broken.stdout

    report = _cli("check", "--db", str(path), "--json")
    assert report.returncode == 1
    data = json.loads(report.stdout)
    assert data["clean"] is False
    found = {f["code"]: f for f in data["findings"]}
    assert set(found) == {"chunks_without_fts", "chunks_without_document"}
    assert found["chunks_without_fts"]["count"] == 1 and found["chunks_without_fts"][
        "examples"
    ] == [victim_chunk]
    assert found["chunks_without_document"]["count"] == len(orphans)
    assert sorted(found["chunks_without_document"]["examples"]) == orphans[:5]

    fixed = _cli("check", "--db", str(path), "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired" in fixed.stdout

    again = _cli("check", "--db", str(path), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["clean"] is True
    assert document_ids(path) == docs_left
    assert parented_chunk_ids(path) == chunks_left


# --------------------------------------------------------------------------- values another program stored badly


@pytest.mark.parametrize("value", ["2024-01-01", 1e30], ids=["text", "out-of-range"])
def test_timestamp_that_is_not_epoch_seconds_is_reported(value: object, built: Store) -> None:
    """Reading such a row raises CorruptValueError telling the user to run `ctx-models check`,
    so check must find it (and a repair must not delete the document)."""
    conn = raw(built.path)
    conn.execute("UPDATE documents SET updated_at = ? WHERE id = ?", (value, built.docs[2]))
    conn.close()
    with pytest.raises(ctx_models.CorruptValueError, match="ctx-models check"):
        store.get_document(built.docs[2]).updated_at  # noqa: B018
    report = integrity.check(built.db)
    assert not report.clean, "check reports nothing, yet reading the row says to run check"
    assert any(built.docs[2] in f.examples for f in report.findings), report.findings
    integrity.check(built.db, repair=True)
    assert built.docs[2] in document_ids(built.path)


def test_search_over_a_bad_timestamp_raises_our_error(built: Store) -> None:
    """hybrid_search ranks by updated_at; a value that is not epoch seconds must give CorruptValueError,
    not a bare ValueError from int()."""
    conn = raw(built.path)
    conn.execute("UPDATE documents SET updated_at = '2024-01-01' WHERE id = ?", (built.docs[2],))
    conn.close()
    query = paragraph(2, 0)
    try:
        results = search.hybrid_search(query, built.embedder.embed([query])[0])
    except ctx_models.CtxModelsError as exc:
        assert isinstance(exc, ctx_models.CorruptValueError), exc
    else:
        assert built.docs[2] in [r.id for r in results]
