"""Text another program stored badly: a BLOB in a TEXT column, or TEXT that is not valid UTF-8.

Reads never fail on it (the bad bytes read as U+FFFD); `check` reports both kinds, and
`check --repair` stores a BLOB as TEXT with the same bytes (a BLOB of valid UTF-8 is then
whole again), leaving text that is not UTF-8 for a person. Every TEXT column of every table,
times the three kinds of bad value, times every read and check.

Before, semantic search, `--json`, export and get_document failed with "unexpected TypeError"
or a raw UnicodeDecodeError, `check --repair` said clean, and invalid UTF-8 made `check` exit 2.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

import ctx_models
from ctx_models import integrity, search, store
from ctx_models.embedders import HashingEmbedder
from ctx_models.hashing import chunk_hash

EMBEDDER = HashingEmbedder(16)
BASE = 1_767_225_600

# (table, key column, TEXT column): every TEXT column of the contract's tables.
COLUMNS = [
    ("documents", "id", column)
    for column in (
        "id", "source", "source_id", "source_url", "title", "author", "content_type", "body",
        "metadata_json", "raw_json", "dedup_hash",
    )
] + [
    ("chunks", "id", column) for column in ("id", "document_id", "text", "hash")
] + [
    ("checkpoints", "source", column) for column in ("source", "cursor")
] + [
    ("embeddings", "chunk_id", column) for column in ("chunk_id", "model", "hash")
] + [
    ("chunk_vectors", "chunk_id", column) for column in ("chunk_id", "document_id")
]

KEY_FAMILIES = [
    [("documents", "id"), ("chunks", "document_id"), ("chunk_vectors", "document_id"),
     ("chunks_fts", "document_id")],
    [("chunks", "id"), ("embeddings", "chunk_id"), ("chunk_vectors", "chunk_id"), ("chunks_fts", "chunk_id")],
]

# Values the repair rebuilds (a chunk's hash) or drops with their row (embeddings, vectors).
DERIVED = {("chunks", "hash"), ("embeddings", "hash"), ("embeddings", "model"), ("embeddings", "chunk_id"),
           ("chunk_vectors", "chunk_id"), ("chunk_vectors", "document_id")}

# How each kind turns the stored value's text into what is stored instead.
KINDS = {
    "blob-utf8": lambda text: ("CAST(? AS BLOB)", text.encode("utf-8")),
    "blob-not-utf8": lambda text: ("CAST(? AS BLOB)", text.encode("utf-8") + b"\xff\xfe"),
    "text-not-utf8": lambda text: ("CAST(? AS TEXT)", text.encode("utf-8") + b"\xc3"),
}


def two_documents(path: Path) -> str:
    """A new store at ``path``: a targeted document and a clean one, embedded, and a checkpoint.

    Returns the targeted document's id; the store is closed, for another program to rewrite.
    """
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    target = store.ingest(
        "notes", "target", "Kestrel hovering over the field.\n\nSecond paragraph about kestrels.",
        title="Kestrel", author="Ann", source_url="https://example.com/k", updated_at=BASE,
        metadata={"team": "birds"}, raw_json={"raw": 1}, embedder=EMBEDDER,
    )
    store.ingest("other", "plain", "A kestrel note that stays clean.", title="Plain", updated_at=BASE,
                 embedder=EMBEDDER)
    store.set_checkpoint("notes", 12)
    db.close()
    return target.document_id


@pytest.fixture
def damaged(tmp_path: Path, request: pytest.FixtureRequest):
    """A store of two documents (one targeted), then one value rewritten by another program."""
    table, key, column = request.param[0]
    kind = request.param[1]
    path = tmp_path / "ctx.sqlite"
    target_id = two_documents(path)
    conn = sqlite3.connect(path, isolation_level=None)
    chunk_ids = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE document_id = ?", (target_id,))]
    key_value = {"documents": target_id, "checkpoints": "notes"}.get(table, chunk_ids[0])
    (current,) = conn.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", (key_value,)).fetchone()
    expression, value = KINDS[kind](str(current))
    conn.execute("PRAGMA foreign_keys = OFF")
    # New bytes in an id change it: they change everywhere it is used, as the other program's
    # own write would, so rows stay joined. A BLOB of the same bytes changes one side only:
    # SQL then sees no match, and a repair must not take that for an orphan.
    family = next((f for f in KEY_FAMILIES if (table, column) in f), None)
    if family is None or kind == "blob-utf8":
        conn.execute(f"UPDATE {table} SET {column} = {expression} WHERE {key} = ?", (value, key_value))
    else:
        for other_table, other_column in family:
            conn.execute(
                f"UPDATE {other_table} SET {other_column} = {expression} WHERE {other_column} = ?",
                (value, current),
            )
    conn.close()
    db = ctx_models.connect(path)
    yield db, target_id, (table, column, kind)
    db.close()


CASES = [(c, k) for c in COLUMNS for k in KINDS]
IDS = [f"{t}.{c}-{k}" for (t, _, c), k in CASES]


def _no_bad_surprise(value) -> None:
    """Whatever a read returns is text Python can print and JSON can hold."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("damaged", CASES, ids=IDS, indirect=True)
def test_reads_never_fail_on_foreign_text(damaged, run_cli, tmp_path) -> None:
    db, document_id, (table, column, kind) = damaged
    where = db.database
    for mode in ("keyword", "semantic", "hybrid"):
        for fusion in ("rrf", "minmax"):
            results = search.hybrid_search("kestrel", mode=mode, fusion=fusion, explain=True)
            _no_bad_surprise([r.to_dict() for r in results])
    _no_bad_surprise([c._asdict() for c in search.keyword_search("kestrel")])
    _no_bad_surprise([c._asdict() for c in search.vector_search("kestrel")])
    _no_bad_surprise([c._asdict() for c in search.vector_search("kestrel")])  # from kept details
    out = io.StringIO()
    store.export(out)
    for line in out.getvalue().splitlines():
        json.loads(line)
    doc = store.get_document(document_id)
    if doc is not None:
        _no_bad_surprise({f: getattr(doc, f) for f in ("id", "source", "source_id", "title", "body")})
        _no_bad_surprise([c.text for c in doc.chunks])
    _no_bad_surprise(store.stats().to_dict())
    for argv in (
        ("search", "kestrel", "--json"),
        ("search", "kestrel", "--mode", "semantic", "--json"),
        ("search", "kestrel", "--mode", "keyword"),
        ("search", "kestrel", "--explain"),
        ("stats",),
        ("stats", "--json"),
        ("export",),
        ("export", "--source", "notes"),
    ):
        code, out, err = run_cli(*argv, "--db", str(where))
        assert code == 0, (argv, err)
        assert "unexpected" not in err and "Traceback" not in err, err
        if "--json" in argv:
            json.loads(out)


def _finding(report, code):
    return next((f for f in report.findings if f.code == code), None)


@pytest.mark.parametrize("damaged", CASES, ids=IDS, indirect=True)
def test_check_reports_and_repair_stores_the_bytes_as_text(damaged, run_cli) -> None:
    db, document_id, (table, column, kind) = damaged
    report = integrity.check(db)
    assert not report.clean
    blob = _finding(report, "text_stored_as_blob")
    not_utf8 = _finding(report, "text_not_utf8")
    assert (blob is not None) == kind.startswith("blob"), report.findings
    assert (not_utf8 is not None) == kind.endswith("not-utf8"), report.findings
    named = f"{table}.{column}"
    assert all(any(named in e for e in f.examples) for f in (blob, not_utf8) if f is not None)
    code, out, err = run_cli("check", "--db", str(db.database))
    assert code == 1 and named in out and "unexpected" not in err, (out, err)

    code, out, err = run_cli("check", "--repair", "--db", str(db.database))
    assert "unexpected" not in err and "Traceback" not in err and "error" not in err, err
    after = integrity.check(db)
    assert _finding(after, "text_stored_as_blob") is None
    conn = sqlite3.connect(db.database)
    try:
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE typeof({column}) = 'blob'").fetchone() == (0,)
        # Nothing was deleted: a repair never guesses what the bytes meant.
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] >= 2
    finally:
        conn.close()
    if kind == "blob-utf8":
        assert code == 0 and after.clean, after.findings
    elif _finding(after, "text_not_utf8") is not None:
        assert code == 1 and not _finding(after, "text_not_utf8").repairable
        assert "needs a person" in out
    else:
        # Derived values (a hash, an embedding's row) are rebuilt or dropped by the repair,
        # and then no bytes that are not UTF-8 are left.
        assert (table, column) in DERIVED, (table, column)
        assert code == 0 and after.clean, after.findings


def test_a_chunk_whose_text_is_not_utf8_is_not_called_edited(tmp_path: Path) -> None:
    """Its hash was made from its bytes: recomputing it from U+FFFD text would be a guess."""
    path = tmp_path / "ctx.sqlite"
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    store.ingest("s", "a", "text")
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    raw = b"caf\xe9 au lait"
    import hashlib

    conn.execute("UPDATE chunks SET text = CAST(? AS TEXT), hash = ?", (raw, hashlib.sha256(raw).hexdigest()))
    conn.close()
    db = ctx_models.connect(path)
    report = integrity.check(db)
    assert [f.code for f in report.findings if f.code != "fts_mismatch"] == ["text_not_utf8"]
    assert chunk_hash("café au lait") != hashlib.sha256(raw).hexdigest()
    db.close()
