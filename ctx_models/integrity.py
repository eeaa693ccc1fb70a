"""Integrity check and repair: find every way the six tables can disagree, and fix what is certain.

:func:`check` reports the engine's own check of the file, schema drift from the
contract, keyword-index rows out of step with chunks, orphans, bad vectors,
chunk text edited behind the store's back, stale embeddings, gaps in chunk
indexes and unreadable checkpoint cursors, each with a count and a few example
ids. With ``repair=True`` it fixes, in the same transaction, what needs no
guessing: keyword rows are rebuilt from chunks, rows whose parent is gone are
deleted, the hash of edited text is recomputed, bad or stale vectors are
deleted (so their chunks become pending for ``embed``), missing tables and
indexes are created. Everything else is reported for a person to decide. A
repair never deletes a document, nor a chunk whose document exists.

The check reads one consistent state: it runs in one write transaction, so it
waits for other writers to finish (up to the busy timeout) and none can commit
while it looks. Each finding's count is what ``repair`` then fixes.

>>> import ctx_models
>>> from ctx_models import integrity
>>> db = ctx_models.connect(":memory:"); _ = ctx_models.run_migrations(db)
>>> integrity.check(db).clean
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from peewee import Database, chunked

from .backends import backend_for
from .backends.base import RE_EMBED, Check
from .errors import CorruptValueError, DatabaseError
from .fields import UnreadableJSON, as_text
from .hashing import chunk_hash
from .models import MODELS, Checkpoint, Chunk, Document, bound_database

__all__ = ["Finding", "CheckReport", "Check", "check", "check_damaged_file", "EXAMPLES"]

log = logging.getLogger(__name__)

EXAMPLES = 5


@dataclass
class Finding:
    """One kind of problem: how many, a few example ids, and whether ``repair`` fixes it."""

    code: str
    description: str
    count: int
    examples: list[str]
    repairable: bool
    advice: str = ""


@dataclass
class CheckReport:
    """The result of :func:`check`; ``clean`` when the engine and every finding agree."""

    path: str
    quick_check: list[str]
    findings: list[Finding] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.quick_check == ["ok"] and not self.findings

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        return data


# Checks whose SQL every backend runs as written; each backend adds its own.
CHECKS = (
    Check(
        "chunks_without_document",
        "chunks whose document does not exist",
        "SELECT id FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)",
        True,
    ),
    Check(
        "chunks_without_fts",
        "chunks with no FTS row (invisible to keyword search)",
        "SELECT id FROM chunks WHERE id NOT IN "
        "(SELECT chunk_id FROM chunks_fts WHERE chunk_id IS NOT NULL)",
        True,
    ),
    Check(
        "fts_duplicates",
        "chunks with more than one FTS row",
        "SELECT chunk_id FROM chunks_fts WHERE chunk_id IN (SELECT id FROM chunks) "
        "GROUP BY chunk_id HAVING count(*) > 1",
        True,
    ),
    Check(
        "embeddings_without_chunk",
        "embeddings whose chunk does not exist",
        "SELECT chunk_id FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)",
        True,
    ),
    Check(
        "vectors_without_chunk",
        "vectors whose chunk does not exist",
        "SELECT chunk_id FROM chunk_vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)",
        True,
    ),
    Check(
        "vectors_without_embedding",
        "vectors with no embeddings row (their model is unknown)",
        "SELECT chunk_id FROM chunk_vectors WHERE chunk_id NOT IN (SELECT chunk_id FROM embeddings)",
        True,
        RE_EMBED,
    ),
    Check(
        "embeddings_without_vector",
        "embeddings with no vector (the chunk looks embedded but vector search cannot find it)",
        "SELECT chunk_id FROM embeddings WHERE chunk_id NOT IN (SELECT chunk_id FROM chunk_vectors) "
        "AND chunk_id IN (SELECT id FROM chunks)",
        True,
        RE_EMBED,
    ),
    Check(
        "stale_embeddings",
        "embeddings made from older chunk text (hash differs from the chunk's)",
        "SELECT e.chunk_id FROM embeddings AS e JOIN chunks AS c ON c.id = e.chunk_id "
        "WHERE e.hash != c.hash",
        True,
        RE_EMBED,
    ),
    Check(
        "chunk_index_gaps",
        "documents whose chunk indexes are not 0, 1, 2 … without gaps",
        "SELECT document_id FROM chunks WHERE document_id IN (SELECT id FROM documents) "
        "GROUP BY document_id HAVING min(chunk_index) != 0 OR max(chunk_index) != count(*) - 1",
        False,
        "text may be missing; ingest these documents again",
    ),
    Check(
        "documents_without_chunks",
        "documents with no chunks (invisible to search)",
        "SELECT id FROM documents WHERE id NOT IN (SELECT document_id FROM chunks)",
        False,
        "ingest these documents again",
    ),
)

_KEYWORD_CODES = (
    "chunks_without_fts",
    "fts_without_chunk",
    "fts_mismatch",
    "fts_duplicates",
    "fts_index",
)


def check(db: Database | None = None, *, repair: bool = False) -> CheckReport:
    """Check the database; with ``repair``, fix what is certain in the same transaction and check again."""
    db = db or bound_database()
    backend = backend_for(db)
    probe = backend.integrity()
    with backend.errors("check"), db.bind_ctx(MODELS):
        # The engine's check of the file reads pages, not rows: it needs no lock, and
        # on a large file it takes a while that writers should not wait for.
        quick = probe.quick_check()
        if quick != ["ok"]:
            if repair:
                log.warning("not repairing %s: the file itself is damaged", backend.location)
            return CheckReport(backend.location, quick)
        read_only = bool(getattr(db, "read_only", False))
        if repair and read_only:
            raise DatabaseError(
                f"cannot repair {backend.location}: this process may not write it (it is "
                "open read-only); run `ctx-models check --repair` where the file is writable"
            )
        # A file this process may not write is checked in one read snapshot instead: no
        # writer can be waited for, and none of this process's own can commit meanwhile.
        transaction = backend.read_snapshot if read_only else backend.write_transaction
        with transaction("check"):
            report = CheckReport(backend.location, quick, _findings(db, probe))
            if repair and not report.clean:
                repaired = _repair(db, probe, report.findings)
                report = CheckReport(backend.location, quick, _findings(db, probe), repaired)
    return report


def check_damaged_file(path: Any) -> CheckReport | None:
    """The report on a SQLite file too damaged to open: SQLite's own lines; None if not damage.

    ``check`` uses it when opening the file fails because SQLite finds it damaged,
    so it can still say what is damaged instead of only that it is.
    """
    from .backends.sqlite.integrity import file_damage
    from .backends.urls import is_url

    if not isinstance(path, (str, os.PathLike)) or is_url(path):
        return None
    report = file_damage(Path(path).expanduser())
    return None if report is None else CheckReport(str(path), report)


def _ids(db: Database, sql: str, params: Sequence[Any] = ()) -> list[str]:
    return [str(as_text(row[0])) for row in db.execute_sql(sql, params)]


def _finding(spec: Check, ids: list[str]) -> Finding:
    return Finding(spec.code, spec.description, len(ids), ids[:EXAMPLES], spec.repairable, spec.advice)


def edited_chunks(db: Database) -> list[str]:
    """Chunks whose text no longer has their ``hash``: edited by another program."""
    return [
        chunk_id
        for chunk_id, text, digest in db.execute_sql("SELECT id, text, hash FROM chunks")
        if isinstance(text, str) and chunk_hash(text) != digest
    ]


def bad_checkpoints(db: Database) -> list[str]:
    """Checkpoints whose cursor the contract's readers cannot parse as an integer."""
    bad = []
    for source, cursor in db.execute_sql("SELECT source, cursor FROM checkpoints"):
        try:
            Checkpoint.cursor.python_value(cursor)
        except CorruptValueError:
            bad.append(source)
    return bad


def bad_metadata(db: Database) -> list[str]:
    """Documents whose metadata_json the store reads as ``{}``: not a JSON object to Python's
    strict parser (so NaN, a number no float holds, or nesting too deep to parse count too)."""
    field = Document.metadata
    return [
        as_text(doc_id)
        for doc_id, text in db.execute_sql("SELECT id, metadata_json FROM documents")
        if isinstance(field.python_value(text), UnreadableJSON)
    ]


def _found(db: Database, probe: Any) -> dict[str, tuple[Check, list[str]]]:
    """Offending ids per check that found any."""
    found: dict[str, tuple[Check, list[str]]] = {}
    for spec in (*CHECKS, *probe.checks):
        ids = _ids(db, spec.sql)
        if ids:
            found[spec.code] = (spec, ids)
    edited = edited_chunks(db)
    if edited and hasattr(probe, "chunks_not_utf8"):
        # Text that is not UTF-8 reads with U+FFFD, so its hash cannot match: that is not an
        # edit, and recomputing the hash would be a guess (it is reported as not UTF-8).
        unreadable = probe.chunks_not_utf8()
        edited = [chunk_id for chunk_id in edited if chunk_id not in unreadable]
    if edited:
        found["chunk_text_edited"] = (
            Check(
                "chunk_text_edited",
                "chunks whose text no longer matches their hash (edited by another program)",
                "",
                True,
                "repair recomputes the hash; their embeddings are stale, so `embed` redoes them",
            ),
            edited,
        )
        # Their embeddings were made from the old text, whatever their hash says.
        with_embeddings = set(_ids(db, "SELECT chunk_id FROM embeddings"))
        embedded = [c for c in edited if c in with_embeddings]
        if embedded:
            spec, stale = found.get("stale_embeddings", (_stale_check(), []))
            found["stale_embeddings"] = (spec, list(dict.fromkeys(stale + embedded)))
    found.update(probe.extra_findings())  # what only the engine's own view can find
    for code, description, ids, repairable, advice in (
        ("bad_metadata", "documents whose metadata_json is not a JSON object (read as {}, kept "
         "as stored)", bad_metadata(db), False,
         "ingest these documents again with metadata to replace the text"),
        ("bad_checkpoints", "checkpoints whose cursor is not an integer (the ctx tool reads "
         "them as no checkpoint)", bad_checkpoints(db), False,
         "set them again with set_checkpoint(), or delete them for a full re-sync"),
        ("fts_index", "the keyword index disagrees with the text it stores",
         probe.keyword_index_problems(), True, ""),
    ):
        if ids:
            found[code] = (Check(code, description, "", repairable, advice), ids)
    return found


def _stale_check() -> Check:
    return next(spec for spec in CHECKS if spec.code == "stale_embeddings")


def _findings(db: Database, probe: Any) -> list[Finding]:
    schema = probe.schema_problems()
    if schema:
        fixable = any(p.endswith("is missing") and ": column" not in p for p in schema)
        finding = Finding(
            "schema",
            "schema differs from the storage contract",
            len(schema),
            schema[:EXAMPLES],
            fixable,
            "repair creates missing tables and indexes; other differences need a person",
        )
        if any(p.startswith("table ") for p in schema):
            return [finding]  # the row checks need every table
        return [finding, *(_finding(s, ids) for s, ids in _found(db, probe).values())]
    return [_finding(spec, ids) for spec, ids in _found(db, probe).values()]


def _repair(db: Database, probe: Any, findings: list[Finding]) -> dict[str, int]:
    """Fix every repairable finding (inside the caller's transaction); returns what was fixed per code.

    Offending ids are collected before anything changes: the queries that find
    a pair's orphan stop matching once half the pair is gone.
    """
    from .schema import run_migrations

    codes = {f.code for f in findings if f.repairable}
    done: dict[str, int] = {}
    if "schema" in codes:
        done["schema"] = len(run_migrations(db).created)

    def run(sql: str, params: Sequence[Any] = ()) -> int:
        return int(db.execute_sql(sql, params).rowcount)

    if "text_stored_as_blob" in codes:
        # First: an id stored as a BLOB matches nothing in SQL, so its rows look orphaned
        # until it is TEXT again, and the orphan repairs below would delete them.
        done["text_stored_as_blob"] = probe.store_blobs_as_text(run)
    found = {
        code: ids
        for code, (_, ids) in _found(db, probe).items()
        if code in codes and code != "text_stored_as_blob"
    }

    def each(ids: Sequence[str], statement: Callable[[str], str]) -> None:
        for batch in chunked(ids, 500):
            run(statement(", ".join([db.param] * len(batch))), batch)

    def drop_vectors(ids: Sequence[str]) -> None:
        each(ids, lambda marks: f"DELETE FROM chunk_vectors WHERE chunk_id IN ({marks})")
        each(ids, lambda marks: f"DELETE FROM embeddings WHERE chunk_id IN ({marks})")

    if ids := found.get("chunk_text_edited"):
        for batch in chunked(ids, 500):
            rows: Any = Chunk.select(Chunk.id, Chunk.text).where(Chunk.id.in_(batch)).tuples()
            for chunk_id, text in list(rows):
                Chunk.update(hash=chunk_hash(text)).where(Chunk.id == chunk_id).execute()
    if ids := found.get("chunks_without_document"):
        drop_vectors(ids)
        each(ids, lambda marks: f"DELETE FROM chunks_fts WHERE chunk_id IN ({marks})")
        each(ids, lambda marks: f"DELETE FROM chunks WHERE id IN ({marks})")
    if ids := found.get("embeddings_without_chunk"):
        each(ids, lambda marks: f"DELETE FROM embeddings WHERE chunk_id IN ({marks})")
    if ids := found.get("vectors_without_chunk"):
        each(ids, lambda marks: f"DELETE FROM chunk_vectors WHERE chunk_id IN ({marks})")
    if ids := found.get("vectors_wrong_document"):
        each(
            ids,
            lambda marks: "UPDATE chunk_vectors SET document_id = (SELECT c.document_id "
            f"FROM chunks AS c WHERE c.id = chunk_vectors.chunk_id) WHERE chunk_id IN ({marks})",
        )
    for code in ("vectors_bad_length", "stale_embeddings", "vectors_not_finite"):
        if ids := found.get(code):
            drop_vectors(ids)
    if ids := found.get("vectors_without_embedding"):
        each(ids, lambda marks: f"DELETE FROM chunk_vectors WHERE chunk_id IN ({marks})")
    if ids := found.get("embeddings_without_vector"):
        each(ids, lambda marks: f"DELETE FROM embeddings WHERE chunk_id IN ({marks})")
    keyword_codes = codes & set(_KEYWORD_CODES)
    if keyword_codes:
        if "fts_index" in keyword_codes:
            probe.rebuild_keyword_index()
        probe.repair_keyword_rows(run)
    for code, ids in found.items():
        done[code] = len(ids)
    log.info("repaired %s: %s", db.database, done)
    return done
