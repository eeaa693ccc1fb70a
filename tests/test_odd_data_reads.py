"""Values another program stored that our writers never would, against every read path.

``ctx`` (or anyone with sqlite3) can put TEXT, REAL, huge integers or BLOBs in the INTEGER
columns, metadata that is not a JSON object, vectors of the wrong byte length, dims that
disagree with the vector, and embeddings of a model nobody knows. Every case here stores one
such value with plain sqlite3, then runs every read: the Python API, the CLI and the server's
tools, and copy, backup and embed. A read either goes on (the value shown as stored, or the row
skipped with a warning) or fails with our own error saying what to do (``Odd.refuses``);
``check`` reports the value, and after ``check --repair`` the store still reads. Smaller tests
pin each fix: the formatter, from_epoch, odd vectors, chunk indexes, sync's cursor, ingesting
again over an odd timestamp, and the odd values a PostgreSQL column can hold, on both engines.

BLOBs and bytes that are not UTF-8 in TEXT columns are tests/test_foreign_text.py's; this
module adds the other kinds (and BLOBs in the INTEGER and vector columns).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_foreign_text import BASE, EMBEDDER, two_documents

import ctx_models
from ctx_models import integrity, search, store
from ctx_models.errors import CorruptValueError, EmbedderUnavailableError
from ctx_models.fields import MAX_EPOCH, from_epoch, iso_or_stored
from ctx_models.server import tools


@dataclass(frozen=True)
class Odd:
    """One odd value: the SQL that stores it (``:doc``, ``:chunk`` name the target's ids), and
    the check finding that must report it (None: the contract allows it, check stays clean)."""

    id: str
    sql: str
    finding: str | None
    #: The reads that must refuse, with our error, because their type cannot hold the value:
    #: "document" (get_document's datetimes; the server's get shows them as stored),
    #: "checkpoint" (an int cursor), "semantic" (no embedder for any stored model), "embed"
    #: (the model's vectors have two lengths: which is its size is not certain).
    refuses: frozenset[str] = frozenset()


def _timestamps() -> list[Odd]:
    values = {
        "text": "'yesterday'",
        "empty": "''",
        "real-huge": "1e30",
        "real-infinite": "1e999",
        "real-fraction": "2.5",
        "int-2^62": str(2**62),
        "negative": "-5",
        "int-min": str(-(2**63)),
        "blob": "x'ff'",
        "text-not-utf8": "CAST(x'ff' AS TEXT)",
    }
    where = {
        ("documents", "created_at"): "id = :doc",
        ("documents", "updated_at"): "id = :doc",
        ("embeddings", "created_at"): "chunk_id = :chunk",
        ("checkpoints", "updated_at"): "source = 'notes'",
    }
    return [
        Odd(f"{table}.{column}-{name}", f"UPDATE {table} SET {column} = {value} WHERE {w}", "bad_timestamps",
            frozenset({"document"} if table == "documents" else ()))
        for (table, column), w in where.items()
        for name, value in values.items()
    ]


def _integers() -> list[Odd]:
    """chunks.chunk_index and embeddings.dims: INTEGER columns that are not timestamps."""
    values = {
        "text": ("'first'", "'many'"),
        "real": ("0.5", "16.5"),
        "real-infinite": ("1e999", "-1e999"),
        "huge": (str(2**62), str(2**62)),
        "negative": ("-1", "-16"),
        "blob": ("x'00'", "x'10'"),
        "empty": ("''", "''"),
    }
    return [
        Odd(f"chunks.chunk_index-{name}", f"UPDATE chunks SET chunk_index = {index} WHERE id = :chunk",
            "chunk_index_gaps")
        for name, (index, _) in values.items()
    ] + [
        # The contract: dims is what ctx was configured with (it may differ from the vector's
        # length, which is the truth), but it is a size: a positive integer.
        Odd(f"embeddings.dims-{name}", f"UPDATE embeddings SET dims = {dims} WHERE chunk_id = :chunk",
            None if name == "huge" else "bad_dims")
        for name, (_, dims) in values.items()
    ]


def _metadata() -> list[Odd]:
    values = {
        "not-json": "'team=birds'",
        "empty": "''",
        "array": "'[1, 2]'",
        "number": "'5'",
        "string": "'\"birds\"'",
        "null": "'null'",
        "nan": "'{\"a\": NaN}'",
        "number-overflows": "'{\"a\": 1e400}'",
        "deep": "'" + "[" * 5000 + "]" * 5000 + "'",
        "deep-object": "'" + '{"a":' * 900 + "1" + "}" * 900 + "'",
        "blob-object": "CAST('{\"team\": \"birds\"}' AS BLOB)",
    }
    findings = {"blob-object": "text_stored_as_blob", "deep-object": None}  # 900 deep is JSON
    return [
        Odd(f"documents.metadata_json-{name}", f"UPDATE documents SET metadata_json = {value} WHERE id = :doc",
            findings.get(name, "bad_metadata"))
        for name, value in values.items()
    ]


def _vectors() -> list[Odd]:
    values = {
        "5-bytes": ("x'0000803f00'", "vectors_bad_length"),
        "empty-blob": ("x''", "vectors_bad_length"),
        "text": ("'not a vector'", "vectors_bad_length"),
        "integer": ("7", "vectors_bad_length"),
        "real": ("1.5", "vectors_bad_length"),
        "nan": ("x'0000c07f" + "00" * 60 + "'", "vectors_not_finite"),
        "infinite": ("x'0000807f" + "0000803f" * 15 + "'", "vectors_not_finite"),
        # A whole float32 vector of another length than its model's other vectors.
        "shorter": ("x'0000803f0000803f'", None),
    }
    return [
        Odd(f"chunk_vectors.embedding-{name}", f"UPDATE chunk_vectors SET embedding = {value} WHERE chunk_id = :chunk",
            finding, frozenset({"embed"} if name == "shorter" else ()))
        for name, (value, finding) in values.items()
    ]


def _others() -> list[Odd]:
    return [
        Odd("embeddings.model-unknown", "UPDATE embeddings SET model = 'nobody-knows-v9' WHERE chunk_id = :chunk", None),
        Odd("embeddings.model-empty", "UPDATE embeddings SET model = '' WHERE chunk_id = :chunk", None),
        Odd("embeddings.model-all-unknown", "UPDATE embeddings SET model = 'nobody-knows-v9'", None,
            frozenset({"semantic"})),
        Odd("checkpoints.cursor-text", "UPDATE checkpoints SET cursor = 'soon' WHERE source = 'notes'",
            "bad_checkpoints", frozenset({"checkpoint"})),
        Odd("checkpoints.cursor-empty", "UPDATE checkpoints SET cursor = '' WHERE source = 'notes'",
            "bad_checkpoints", frozenset({"checkpoint"})),
        Odd("checkpoints.cursor-huge", f"UPDATE checkpoints SET cursor = '{2**64}' WHERE source = 'notes'",
            "bad_checkpoints", frozenset({"checkpoint"})),
        Odd("checkpoints.orphan-odd", "INSERT INTO checkpoints VALUES ('gone', 'x', 'yesterday')",
            "bad_timestamps"),
        Odd("documents.source-empty", "UPDATE documents SET source = '', source_id = '' WHERE id = :doc", None),
        Odd("checkpoints.source-empty", "INSERT INTO checkpoints VALUES ('', '5', 1)", None),
        Odd("documents.title-empty", "UPDATE documents SET title = '', author = '', source_url = '' WHERE id = :doc",
            None),
        Odd("documents.body-empty", "UPDATE documents SET body = '' WHERE id = :doc", None),
        Odd("documents.content_type-empty", "UPDATE documents SET content_type = '' WHERE id = :doc", None),
        Odd("documents.raw_json-not-json", "UPDATE documents SET raw_json = '{oops' WHERE id = :doc", None),
        Odd("chunks.text-empty", "UPDATE chunks SET text = '' WHERE id = :chunk", "chunk_text_edited"),
        Odd("chunks.hash-empty", "UPDATE chunks SET hash = '' WHERE id = :chunk", "chunk_text_edited"),
    ]


CASES = [
    pytest.param(case, id=case.id)
    for case in [*_timestamps(), *_integers(), *_metadata(), *_vectors(), *_others()]
]


@pytest.fixture
def odd(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """Two documents embedded and a checkpoint; then the case's odd value stored by sqlite3."""
    case: Odd = request.param
    path = tmp_path / "ctx.sqlite"
    target_id = two_documents(path)
    conn = sqlite3.connect(path, isolation_level=None)
    (chunk,) = conn.execute(
        "SELECT id FROM chunks WHERE document_id = ? AND chunk_index = 0", (target_id,)
    ).fetchone()
    conn.execute(case.sql, {"doc": target_id, "chunk": chunk})
    conn.close()
    db = ctx_models.connect(path)
    yield db, target_id, case
    db.close()


def _json_safe(value: Any) -> None:
    """What a read returns is strict JSON that encodes as UTF-8."""
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _refused(case: Odd, what: str, read: Callable[[], Any], error: type[Exception], advice: str) -> Any:
    """``read()``'s value; it must raise ``error`` saying ``advice`` exactly when the case says so."""
    try:
        value = read()
    except error as exc:
        assert what in case.refuses, (what, exc)
        assert advice in str(exc), exc
        return None
    assert what not in case.refuses, f"{what} read {case.id} without refusing"
    return value


def _api_reads(document_id: str, case: Odd) -> None:
    """Every Python read: it goes on, or refuses with our error (see Odd.refuses)."""
    for mode in search.MODES:
        for fusion in search.FUSIONS:
            for explain in (False, True):
                found = _refused(
                    case, "semantic" if mode == "semantic" else "",
                    lambda: search.hybrid_search("kestrel", mode=mode, fusion=fusion, explain=explain),
                    EmbedderUnavailableError, "no embedder is known",
                )
                _json_safe([hit.to_dict() for hit in found or []])
    _json_safe([c._asdict() for c in search.keyword_search("kestrel")])
    _json_safe([c._asdict() for c in search.vector_search("kestrel", embedder=EMBEDDER)])
    _json_safe([hit.to_dict() for hit in search.hybrid_search("kestrel", since=BASE - 10, explain=True)])
    out = io.StringIO()
    store.export(out)
    for line in out.getvalue().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"export wrote {name}"))
    _json_safe(store.stats().to_dict())
    store.pending_chunks(EMBEDDER.model)
    _refused(case, "document", lambda: store.get_document(document_id), CorruptValueError, "ctx-models check")
    _refused(case, "checkpoint", lambda: store.get_checkpoint("notes"), CorruptValueError, "set_checkpoint")
    for what, name, params, error, advice in (
        ("", "search", {"query": "kestrel"}, Exception, ""),
        ("semantic", "search", {"query": "kestrel", "mode": "semantic", "explain": True},
         EmbedderUnavailableError, "no embedder is known"),
        ("", "search", {"query": "kestrel", "mode": "hybrid", "filters": {"since": "2025-01-01"}, "explain": True},
         Exception, ""),
        ("", "get", {"id": document_id}, Exception, ""),
        ("", "sources", {}, Exception, ""),
    ):
        _json_safe(_refused(case, what, lambda: tools.call(name, params), error, advice))


CLI_READS = (
    ("stats",),
    ("stats", "--json"),
    ("search", "kestrel", "--json"),
    ("search", "kestrel", "--mode", "semantic", "--json"),
    ("search", "kestrel", "--mode", "hybrid", "--json", "--explain"),
    ("search", "kestrel", "--mode", "hybrid", "--explain", "--since", "2025-01-01"),
    ("search", "kestrel", "--mode", "keyword"),
    ("export",),
    ("checkpoint", "other"),
)


def _cli_reads(run_cli: Any, where: str, case: Odd) -> None:
    for argv in (*CLI_READS, ("checkpoint", "notes")):
        code, out, err = run_cli(*argv, "--db", where)
        assert "unexpected" not in err and "Traceback" not in err, err
        refuses = ("semantic" in argv and "semantic" in case.refuses) or (
            argv == ("checkpoint", "notes") and "checkpoint" in case.refuses
        )
        if refuses:
            assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), (argv, err)
            continue
        assert code == 0, (argv, err)
        if "--json" in argv:
            _json_safe(json.loads(out))


@pytest.mark.parametrize("odd", CASES, indirect=True)
def test_every_read_goes_on_or_says_what_to_do(odd: Any, run_cli: Any) -> None:
    db, document_id, case = odd
    _api_reads(document_id, case)
    _cli_reads(run_cli, str(db.database), case)


@pytest.mark.parametrize("odd", CASES, indirect=True)
def test_check_reports_it_and_repair_leaves_a_store_that_reads(odd: Any, run_cli: Any) -> None:
    db, document_id, case = odd
    where = str(db.database)
    report = integrity.check(db)
    codes = {f.code for f in report.findings}
    if case.finding is None:
        assert codes <= {"chunk_text_edited", "stale_embeddings"} or not codes, report.findings
    else:
        assert case.finding in codes, report.findings
    code, out, err = run_cli("check", "--db", where)
    assert code == (0 if report.clean else 1), (out, err)
    assert "unexpected" not in err and "Traceback" not in err, err
    code, out, err = run_cli("check", "--repair", "--db", where)
    assert code in (0, 1) and "unexpected" not in err and "Traceback" not in err, (out, err)
    after = integrity.check(db)
    assert all(not f.repairable for f in after.findings), after.findings
    code, out, err = run_cli("check", "--json", "--db", where)
    assert code == (0 if after.clean else 1) and json.loads(out)["clean"] == after.clean, (out, err)
    conn = sqlite3.connect(where)
    try:
        # A repair never deletes a document.
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (2,)
    finally:
        conn.close()
    _api_reads(document_id, case)
    _cli_reads(run_cli, where, case)



@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, None),
        (0, "1970-01-01T00:00:00Z"),
        (BASE, "2026-01-01T00:00:00Z"),
        (MAX_EPOCH, "9999-12-31T23:59:59Z"),
        (dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), "2026-01-01T00:00:00Z"),
        (dt.datetime(2026, 1, 1), "2026-01-01T00:00:00Z"),
        ("yesterday", "yesterday"),
        ("", ""),
        (1e30, "1e+30"),
        (2.5, "2.5"),
        (MAX_EPOCH + 1, str(MAX_EPOCH + 1)),
        (-5, "-5"),
        (b"\xff", "\ufffd"),
        (True, "True"),
    ],
)
def test_iso_or_stored_shows_what_is_not_epoch_seconds_as_stored(value: Any, shown: str | None) -> None:
    assert iso_or_stored(value) == shown


@pytest.mark.parametrize(
    "blob",
    ["x'0000803f00'", "'not a vector'", "7", "x'0000c07f" + "00" * 60 + "'"],
    ids=["5-bytes", "text", "integer", "nan"],
)
def test_a_vector_search_cannot_read_is_left_out_with_a_warning(
    db: Any, raw: Any, caplog: pytest.LogCaptureFixture, blob: str
) -> None:
    """The other vectors are still searched; the warning says what to run."""
    kept = store.ingest("notes", "kept", "Kestrel notes.", updated_at=BASE, embedder=EMBEDDER).document_id
    odd = store.ingest("notes", "odd", "Kestrel notes, too.", updated_at=BASE, embedder=EMBEDDER).document_id
    raw.execute(f"UPDATE chunk_vectors SET embedding = {blob} WHERE document_id = ?", (odd,))
    with caplog.at_level("WARNING", logger="ctx_models"):
        found = search.hybrid_search("kestrel notes", mode="semantic")
    assert [hit.id for hit in found] == [kept]
    assert any("check --repair" in r.getMessage() for r in caplog.records), caplog.records


@pytest.mark.parametrize("blob", ["x'0000803f00'", "'not a vector'", "x''"], ids=["5-bytes", "text", "empty"])
def test_a_vector_that_is_not_whole_float32_does_not_set_its_models_size(db: Any, raw: Any, blob: str) -> None:
    """Embedding more chunks of the model goes on; the odd row does not make it 1 or 0 dims."""
    store.ingest("notes", "a", "Kestrel notes.", updated_at=BASE, embedder=EMBEDDER)
    raw.execute(f"UPDATE chunk_vectors SET embedding = {blob}")
    store.ingest("notes", "b", "More kestrel notes.", updated_at=BASE, embedder=EMBEDDER)
    assert raw.execute("SELECT count(*) FROM chunk_vectors WHERE length(embedding) = 64").fetchone() == (1,)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("0.5", "0.5"), ("x'00'", "\x00"), ("'first'", "first"), ("1e999", "inf"), (str(2**62), 2**62)],
    ids=["real", "blob", "text", "infinite", "huge"],
)
def test_an_odd_chunk_index_is_shown_as_stored(db: Any, raw: Any, stored: str, shown: Any) -> None:
    """Not truncated (peewee's int() made REAL 0.5 index 0) nor bytes (which JSON cannot hold)."""
    document_id = store.ingest("notes", "a", "Kestrel notes.", updated_at=BASE).document_id
    raw.execute(f"UPDATE chunks SET chunk_index = {stored}")
    assert [c.chunk_index for c in store.get_document(document_id).chunks] == [shown]
    assert tools.get(document_id)["chunks"][0]["index"] == shown


@pytest.mark.parametrize("value", [2.5, 5.0, -5, MAX_EPOCH + 1, "5", b"5", True, None])
def test_from_epoch_reads_only_what_to_epoch_writes(value: Any) -> None:
    """Before, int() read REAL 2.5 as 2 and -5 as 1969: a time nobody stored, while check
    reported the row. Now the read says so, as check does."""
    with pytest.raises(CorruptValueError, match="ctx-models check"):
        from_epoch(value)
    assert from_epoch(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert from_epoch(MAX_EPOCH) == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


# Every vector, as long as each is whole float32 values (else count(*) differs).
WHOLE_VECTORS = (
    "SELECT count(CASE WHEN typeof(embedding) = 'blob' AND length(embedding) > 0 "
    "AND length(embedding) % 4 = 0 THEN 1 END), count(*) FROM chunk_vectors"
)


@pytest.mark.parametrize("odd", CASES, indirect=True)
def test_copy_backup_and_embed_read_it_too(odd: Any, run_cli: Any, tmp_path: Path) -> None:
    """copy takes values as stored (a vector that is none is left out, with a warning); backup
    copies the file and reports the copy's check; embed embeds what is pending."""
    db, document_id, case = odd
    where, dest = str(db.database), str(tmp_path / "copy.sqlite")
    vectors, _ = db.execute_sql(WHOLE_VECTORS).fetchone()
    for argv in (
        ("copy", where, dest, "-q"),
        ("backup", str(tmp_path / "backup.sqlite"), "--db", where),
        ("embed", "--model", EMBEDDER.model, "-q", "-y", "--db", where),
        ("stats", "--db", dest),
        ("export", "--db", dest),
    ):
        code, out, err = run_cli(*argv)
        assert "unexpected" not in err and "Traceback" not in err, (argv, err)
        if argv[0] in case.refuses:
            assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        else:
            assert code == 0 or (argv[0] == "backup" and code == 1 and not err), (argv, code, err)
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (2,)
        # Only vectors are copied: before, the number 7 was copied as the vector [7.0].
        assert conn.execute(WHOLE_VECTORS).fetchone() == (vectors, vectors)
    finally:
        conn.close()


@pytest.mark.parametrize(("stored", "shown"), [("'yesterday'", "yesterday"), ("2.5", "2.5"), ("-5", "-5")])
def test_the_servers_get_shows_an_odd_timestamp_as_stored(db: Any, raw: Any, stored: str, shown: str) -> None:
    """get_document has no datetime for it and refuses; an agent still gets the document."""
    document_id = store.ingest("notes", "a", "Kestrel notes.", updated_at=BASE, metadata={"k": 1}).document_id
    raw.execute(f"UPDATE documents SET updated_at = {stored}")
    with pytest.raises(CorruptValueError, match="ctx-models check"):
        store.get_document(document_id)
    got = tools.get(document_id)
    assert (got["updated_at"], got["body"], got["metadata"]) == (shown, "Kestrel notes.", {"k": 1})
    assert got["chunks"] == [{"index": 0, "text": "Kestrel notes."}]


@pytest.mark.parametrize("cursor", ["'soon'", "''", f"'{2**64}'", "x'ff'"], ids=["text", "empty", "huge", "blob"])
def test_sync_reads_a_cursor_that_is_not_an_integer_as_no_checkpoint(
    db: Any, raw: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, cursor: str
) -> None:
    """As ctx does (the contract's Writing section). Before, the sync wrote the files, then
    failed on the cursor with exit 1, and every later sync failed the same way."""
    from ctx_models.sync import sync_folder

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("Kestrel hovering.", encoding="utf-8")
    os.utime(folder / "a.md", (BASE, BASE))
    sync_folder(folder, embed=False)
    raw.execute(f"UPDATE checkpoints SET cursor = {cursor}")
    (folder / "b.md").write_text("Kestrel nesting.", encoding="utf-8")
    os.utime(folder / "b.md", (BASE + 60, BASE + 60))
    with caplog.at_level("WARNING", logger="ctx_models"):
        report = sync_folder(folder, embed=False)
    assert report.checkpoint == BASE + 60 and store.get_checkpoint("filesystem:notes") == BASE + 60
    assert any("no checkpoint" in r.getMessage() for r in caplog.records), caplog.records


def _follow_the_advice(where: str, document_id: str) -> None:
    """What bad_timestamps' advice says to do for a row of ``where``."""
    if where.startswith("documents."):
        # The same text, and no updated_at: only the odd timestamp is written anew.
        store.ingest("notes", "target", "Kestrel hovering over the field.\n\nSecond paragraph about kestrels.",
                     title="Kestrel", author="Ann", source_url="https://example.com/k",
                     metadata={"team": "birds"}, raw_json={"raw": 1}, embedder=EMBEDDER)
    elif where == "embeddings.created_at":
        store.clear_embeddings(EMBEDDER.model)
        store.embed_pending(EMBEDDER)
    else:
        store.set_checkpoint("notes", 13)


@pytest.mark.parametrize(
    "odd",
    [case for case in CASES if case.values[0].finding == "bad_timestamps" and case.id.startswith(
        ("documents.", "embeddings.", "checkpoints.updated_at"))],
    indirect=True,
)
def test_doing_what_check_advises_for_a_bad_timestamp_leaves_a_clean_store(odd: Any) -> None:
    db, document_id, case = odd
    report = integrity.check(db)
    (finding,) = [f for f in report.findings if f.code == "bad_timestamps"]
    where = case.id.split("-", 1)[0]
    action = {"documents.created_at": "ingest", "documents.updated_at": "ingest",
              "embeddings.created_at": "clear_embeddings", "checkpoints.updated_at": "set_checkpoint"}
    assert action[where] in finding.advice, finding.advice
    _follow_the_advice(where, document_id)
    assert integrity.check(db).clean, integrity.check(db).findings


# What a PostgreSQL column can hold that our writers never write (its types refuse the rest).
PG_ODD = {
    "updated_at-huge": f"UPDATE documents SET updated_at = {2**62} WHERE id = ?",
    "created_at-negative": "UPDATE documents SET created_at = -5 WHERE id = ?",
    "checkpoint-updated_at-negative": "UPDATE checkpoints SET updated_at = -5 WHERE source <> ?",
    "embedding-created_at-huge": f"UPDATE embeddings SET created_at = {2**62} WHERE chunk_id <> ?",
    "metadata-not-json": "UPDATE documents SET metadata_json = 'team=birds' WHERE id = ?",
    "metadata-overflows": "UPDATE documents SET metadata_json = '{\"a\": 1e400}' WHERE id = ?",
    "metadata-deep": "UPDATE documents SET metadata_json = '" + "[" * 5000 + "]" * 5000 + "' WHERE id = ?",
    "chunk_index-negative": "UPDATE chunks SET chunk_index = -1 WHERE document_id = ?",
    "dims-negative": "UPDATE embeddings SET dims = -16 WHERE chunk_id <> ?",
    "cursor-text": "UPDATE checkpoints SET cursor = 'soon' WHERE source <> ?",
}


@pytest.mark.backends("sqlite", "postgres")
@pytest.mark.parametrize("sql", PG_ODD.values(), ids=PG_ODD.keys())
def test_reads_go_on_over_odd_values_on_both_engines(db: Any, raw: Any, sql: str) -> None:
    """The shared code (iso_or_stored, export, the server's tools) on PostgreSQL too."""
    document_id = store.ingest(
        "notes", "target", "Kestrel hovering.", updated_at=BASE, metadata={"team": "birds"}, embedder=EMBEDDER
    ).document_id
    store.set_checkpoint("notes", 12)
    raw.execute(sql, (document_id,))
    for mode in search.MODES:
        _json_safe([hit.to_dict() for hit in search.hybrid_search("kestrel", mode=mode, explain=True)])
    out = io.StringIO()
    store.export(out)
    json.loads(out.getvalue(), parse_constant=lambda name: pytest.fail(f"export wrote {name}"))
    _json_safe(store.stats().to_dict())
    for name, params in (("search", {"query": "kestrel", "mode": "hybrid"}), ("get", {"id": document_id}),
                         ("sources", {})):
        _json_safe(tools.call(name, params))
    assert not integrity.check(db).clean


@pytest.mark.parametrize("column", ["created_at", "updated_at"])
@pytest.mark.parametrize("stored", ["'yesterday'", "2.5", "-5", "x'ff'", "1e999"])
def test_ingesting_again_writes_an_odd_timestamp_anew(db: Any, raw: Any, column: str, stored: str) -> None:
    """Before: with no updated_at given, ingest hashed the stored 'yesterday' and failed with
    struct's "required argument is not an integer"; upsert_document wrote the row and then
    failed building the Document it returns; and created_at stayed odd for good."""
    store.ingest("notes", "a", "Kestrel notes.", updated_at=BASE)
    raw.execute(f"UPDATE documents SET {column} = {stored}")
    assert store.ingest("notes", "a", "Kestrel notes.").status in ("metadata", "updated")
    document, _ = store.upsert_document("notes", "a", "Kestrel notes, again.")
    assert document.created_at.year >= 1970 and document.updated_at.year >= 2026
    assert store.get_document(document.id).updated_at == document.updated_at
    assert not [f for f in integrity.check(db).findings if f.code == "bad_timestamps"]


@pytest.mark.backends("sqlite", "postgres")
@pytest.mark.parametrize("column", ["created_at", "updated_at"])
@pytest.mark.parametrize("stored", ["-5", str(2**62)])
def test_ingesting_again_writes_an_odd_timestamp_anew_on_both_engines(
    db: Any, raw: Any, column: str, stored: str
) -> None:
    test_ingesting_again_writes_an_odd_timestamp_anew(db, raw, column, stored)
