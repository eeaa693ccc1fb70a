"""Integrity check and repair: find every way the six tables can disagree, and fix what is certain.

:func:`check` reports SQLite's own ``quick_check``, schema drift from the
contract, FTS rows out of step with chunks, orphans, bad vectors, stale
embeddings, gaps in chunk indexes and unreadable checkpoint cursors, each with
a count and a few example ids. With ``repair=True`` it fixes, in one
transaction, what needs no guessing: FTS rows are rebuilt from chunks, rows
whose parent is gone are deleted, bad or stale vectors are deleted (so their
chunks become pending for ``embed``), missing tables and indexes are created.
Everything else is reported for a person to decide. A repair never deletes a
document, nor a chunk whose document exists. (SQLite-specific SQL throughout.)

>>> import ctx_models
>>> from ctx_models import integrity
>>> db = ctx_models.connect(":memory:"); _ = ctx_models.run_migrations(db)
>>> integrity.check(db).clean
True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from peewee import Database

from .errors import CorruptValueError
from .fields import MAX_EPOCH
from .models import MODELS, Checkpoint, bound_database
from .schema import describe_schema, run_migrations, schema_differences
from .sqlite import translate_errors

__all__ = ["Finding", "CheckReport", "check"]

log = logging.getLogger(__name__)

EXAMPLES = 5
_RE_EMBED = "repair deletes them; `ctx-models embed` embeds the chunks again"


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
    """The result of :func:`check`; ``clean`` when SQLite and every finding agree."""

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


@dataclass(frozen=True)
class _Check:
    code: str
    description: str
    sql: str  # selects the ids of the offending rows
    repairable: bool
    advice: str = ""


_CHECKS = (
    _Check(
        "chunks_without_document",
        "chunks whose document does not exist",
        "SELECT id FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)",
        True,
    ),
    _Check(
        "chunks_without_fts",
        "chunks with no FTS row (invisible to keyword search)",
        "SELECT id FROM chunks WHERE id NOT IN (SELECT chunk_id FROM chunks_fts WHERE chunk_id IS NOT NULL)",
        True,
    ),
    _Check(
        "fts_without_chunk",
        "FTS rows whose chunk does not exist",
        "SELECT coalesce(f.chunk_id, 'rowid ' || f.rowid) FROM chunks_fts AS f "
        "LEFT JOIN chunks AS c ON c.id = f.chunk_id WHERE c.id IS NULL",
        True,
    ),
    _Check(
        "fts_mismatch",
        "FTS rows whose text or document differs from their chunk's",
        "SELECT f.chunk_id FROM chunks_fts AS f JOIN chunks AS c ON c.id = f.chunk_id "
        "WHERE f.text IS NOT c.text OR f.document_id IS NOT c.document_id",
        True,
    ),
    _Check(
        "fts_duplicates",
        "chunks with more than one FTS row",
        "SELECT chunk_id FROM chunks_fts WHERE chunk_id IN (SELECT id FROM chunks) "
        "GROUP BY chunk_id HAVING count(*) > 1",
        True,
    ),
    _Check(
        "embeddings_without_chunk",
        "embeddings whose chunk does not exist",
        "SELECT chunk_id FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)",
        True,
    ),
    _Check(
        "vectors_without_chunk",
        "vectors whose chunk does not exist",
        "SELECT chunk_id FROM chunk_vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)",
        True,
    ),
    _Check(
        "vectors_wrong_document",
        "vectors whose document_id differs from their chunk's document",
        "SELECT v.chunk_id FROM chunk_vectors AS v JOIN chunks AS c ON c.id = v.chunk_id "
        "WHERE v.document_id IS NOT c.document_id",
        True,
        "repair sets document_id from the chunk",
    ),
    _Check(
        "vectors_bad_length",
        "vectors whose BLOB is not 4 × dims bytes (or not a multiple of 4)",
        "SELECT v.chunk_id FROM chunk_vectors AS v LEFT JOIN embeddings AS e ON e.chunk_id = v.chunk_id "
        "WHERE typeof(v.embedding) != 'blob' OR length(v.embedding) = 0 OR length(v.embedding) % 4 != 0 "
        "OR (e.dims IS NOT NULL AND length(v.embedding) != 4 * e.dims)",
        True,
        _RE_EMBED,
    ),
    _Check(
        "vectors_without_embedding",
        "vectors with no embeddings row (their model is unknown)",
        "SELECT chunk_id FROM chunk_vectors WHERE chunk_id NOT IN (SELECT chunk_id FROM embeddings)",
        True,
        _RE_EMBED,
    ),
    _Check(
        "embeddings_without_vector",
        "embeddings with no vector (the chunk looks embedded but vector search cannot find it)",
        "SELECT chunk_id FROM embeddings WHERE chunk_id NOT IN (SELECT chunk_id FROM chunk_vectors) "
        "AND chunk_id IN (SELECT id FROM chunks)",
        True,
        _RE_EMBED,
    ),
    _Check(
        "stale_embeddings",
        "embeddings made from older chunk text (hash differs from the chunk's)",
        "SELECT e.chunk_id FROM embeddings AS e JOIN chunks AS c ON c.id = e.chunk_id WHERE e.hash != c.hash",
        True,
        _RE_EMBED,
    ),
    _Check(
        "chunk_index_gaps",
        "documents whose chunk indexes are not 0, 1, 2 … without gaps",
        "SELECT document_id FROM chunks WHERE document_id IN (SELECT id FROM documents) "
        "GROUP BY document_id HAVING min(chunk_index) != 0 OR max(chunk_index) != count(*) - 1",
        False,
        "text may be missing; ingest these documents again",
    ),
    _Check(
        "documents_without_chunks",
        "documents with no chunks (invisible to search)",
        "SELECT id FROM documents WHERE id NOT IN (SELECT document_id FROM chunks)",
        False,
        "ingest these documents again",
    ),
    _Check(
        "bad_timestamps",
        "rows whose timestamp is not epoch seconds (an integer from 0 to 9999-12-31)",
        " UNION ALL ".join(
            f"SELECT {key} FROM {table} WHERE typeof({column}) != 'integer' "
            f"OR {column} < 0 OR {column} > {MAX_EPOCH}"
            for table, key, column in (
                ("documents", "id", "created_at"),
                ("documents", "id", "updated_at"),
                ("embeddings", "chunk_id", "created_at"),
                ("checkpoints", "source", "updated_at"),
            )
        ),
        False,
        "ingest these documents again (or set_checkpoint) with epoch seconds",
    ),
    _Check(
        "bad_metadata",
        "documents whose metadata_json is not a JSON object",
        "SELECT id FROM documents WHERE NOT json_valid(metadata_json) OR json_type(metadata_json) != 'object'",
        False,
        "ingest these documents again with valid metadata",
    ),
)
_SQL = {c.code: c.sql for c in _CHECKS}


def _ids(db: Database, sql: str, params: Sequence[Any] = ()) -> list[str]:
    return [str(row[0]) for row in db.execute_sql(sql, params)]


def _non_finite_vectors(db: Database) -> list[str]:
    """Vectors holding NaN or infinity (among BLOBs whose length is otherwise valid)."""
    cursor = db.execute_sql(
        "SELECT chunk_id, embedding FROM chunk_vectors "
        "WHERE typeof(embedding) = 'blob' AND length(embedding) > 0 AND length(embedding) % 4 = 0"
    )
    return [
        chunk_id for chunk_id, blob in cursor if not np.isfinite(np.frombuffer(blob, "<f4")).all()
    ]


def _bad_checkpoints(db: Database) -> list[str]:
    """Checkpoints whose cursor the contract's readers cannot parse as an integer."""
    bad = []
    for source, cursor in db.execute_sql("SELECT source, cursor FROM checkpoints"):
        try:
            Checkpoint.cursor.python_value(cursor)
        except CorruptValueError:
            bad.append(source)
    return bad


def _fts_index_errors(db: Database) -> list[str]:
    """FTS5's own check of its index against the text it stores."""
    try:
        db.execute_sql("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')")
    except Exception as exc:  # FTS5 reports a damaged index as a generic SQLite error
        return [str(exc)]
    return []


def _findings(db: Database) -> list[Finding]:
    findings = []
    schema = schema_differences(describe_schema(db))
    if schema:
        fixable = any(p.endswith("is missing") and ": column" not in p for p in schema)
        findings.append(
            Finding(
                "schema",
                "schema differs from the storage contract",
                len(schema),
                schema[:EXAMPLES],
                fixable,
                "repair creates missing tables and indexes; other differences need a person",
            )
        )
        if any(p.startswith("table ") for p in schema):
            return findings  # the row checks need every table
    for spec in _CHECKS:
        ids = _ids(db, spec.sql)
        if ids:
            findings.append(
                Finding(
                    spec.code,
                    spec.description,
                    len(ids),
                    ids[:EXAMPLES],
                    spec.repairable,
                    spec.advice,
                )
            )
    for code, description, ids, repairable, advice in (
        (
            "vectors_not_finite",
            "vectors holding NaN or infinite values",
            _non_finite_vectors(db),
            True,
            _RE_EMBED,
        ),
        (
            "bad_checkpoints",
            "checkpoints whose cursor is not an integer",
            _bad_checkpoints(db),
            False,
            "set them again with set_checkpoint(), or delete them for a full re-sync",
        ),
        (
            "fts_index",
            "the FTS5 index disagrees with the text it stores",
            _fts_index_errors(db),
            True,
            "",
        ),
    ):
        if ids:
            findings.append(
                Finding(code, description, len(ids), ids[:EXAMPLES], repairable, advice)
            )
    return findings


def check(db: Database | None = None, *, repair: bool = False) -> CheckReport:
    """Check the database; with ``repair``, fix what is certain in one transaction and check again."""
    db = db or bound_database()
    with translate_errors(db.database, "check"), db.bind_ctx(MODELS):
        report = _report(db)
        if not repair or report.clean:
            return report
        if report.quick_check != ["ok"]:
            log.warning("not repairing %s: SQLite reports damage to the file itself", db.database)
            return report
        repaired = _repair(db, report.findings)
        after = _report(db)
        after.repaired = repaired
        return after


def _report(db: Database) -> CheckReport:
    quick = [row[0] for row in db.execute_sql("PRAGMA quick_check")]
    with db.atomic():  # one snapshot for every finding
        return CheckReport(str(db.database), quick, _findings(db))


_FTS_CODES = {
    "chunks_without_fts",
    "fts_without_chunk",
    "fts_mismatch",
    "fts_duplicates",
    "fts_index",
}


def _repair(db: Database, findings: list[Finding]) -> dict[str, int]:
    """Fix every repairable finding in one IMMEDIATE transaction; returns rows changed per code."""
    codes = {f.code for f in findings if f.repairable}
    done: dict[str, int] = {}

    def run(code: str, sql: str, params: Sequence[Any] = ()) -> None:
        done[code] = done.get(code, 0) + db.execute_sql(sql, params).rowcount

    def drop_vectors(code: str, chunk_ids: Sequence[str]) -> None:
        # Ids first: the queries that find them stop matching once half the pair is gone.
        for start in range(0, len(chunk_ids), 500):
            batch = chunk_ids[start : start + 500]
            marks = ", ".join("?" * len(batch))
            run(code, f"DELETE FROM chunk_vectors WHERE chunk_id IN ({marks})", batch)
            run(code, f"DELETE FROM embeddings WHERE chunk_id IN ({marks})", batch)

    with db.atomic("IMMEDIATE"):
        if "schema" in codes:
            done["schema"] = len(run_migrations(db).created)
            codes |= {f.code for f in _findings(db) if f.repairable}
        if "chunks_without_document" in codes:
            orphans = _SQL["chunks_without_document"]
            drop_vectors("chunks_without_document", _ids(db, orphans))
            run("chunks_without_document", f"DELETE FROM chunks_fts WHERE chunk_id IN ({orphans})")
            run("chunks_without_document", f"DELETE FROM chunks WHERE id IN ({orphans})")
        if "embeddings_without_chunk" in codes:
            run(
                "embeddings_without_chunk",
                f"DELETE FROM embeddings WHERE chunk_id IN ({_SQL['embeddings_without_chunk']})",
            )
        if "vectors_without_chunk" in codes:
            run(
                "vectors_without_chunk",
                f"DELETE FROM chunk_vectors WHERE chunk_id IN ({_SQL['vectors_without_chunk']})",
            )
        if "vectors_wrong_document" in codes:
            run(
                "vectors_wrong_document",
                "UPDATE chunk_vectors SET document_id = (SELECT c.document_id FROM chunks AS c "
                f"WHERE c.id = chunk_vectors.chunk_id) WHERE chunk_id IN ({_SQL['vectors_wrong_document']})",
            )
        for code in ("vectors_bad_length", "stale_embeddings"):
            if code in codes:
                drop_vectors(code, _ids(db, _SQL[code]))
        if "vectors_not_finite" in codes:
            drop_vectors("vectors_not_finite", _non_finite_vectors(db))
        if "vectors_without_embedding" in codes:
            run(
                "vectors_without_embedding",
                f"DELETE FROM chunk_vectors WHERE chunk_id IN ({_SQL['vectors_without_embedding']})",
            )
        if "embeddings_without_vector" in codes:
            run(
                "embeddings_without_vector",
                f"DELETE FROM embeddings WHERE chunk_id IN ({_SQL['embeddings_without_vector']})",
            )
        if codes & _FTS_CODES:
            _rebuild_fts_rows(run, rebuild_index="fts_index" in codes)
    log.info("repaired %s: %s", db.database, done)
    return done


def _rebuild_fts_rows(run: Any, *, rebuild_index: bool) -> None:
    """Leave chunks_fts with exactly one row per chunk, holding the chunk's text and document."""
    if rebuild_index:
        run("fts_index", "INSERT INTO chunks_fts(chunks_fts) VALUES('rebuild')")
    run(
        "fts_rows",
        "DELETE FROM chunks_fts WHERE chunk_id IS NULL OR chunk_id NOT IN (SELECT id FROM chunks)",
    )
    run("fts_rows", f"DELETE FROM chunks_fts WHERE chunk_id IN ({_SQL['fts_mismatch']})")
    run("fts_rows", f"DELETE FROM chunks_fts WHERE chunk_id IN ({_SQL['fts_duplicates']})")
    missing = _SQL["chunks_without_fts"]
    # Use the chunk's rowid where it is free, so later deletes are rowid lookups.
    run(
        "fts_rows",
        "INSERT INTO chunks_fts(rowid, chunk_id, document_id, text) "
        f"SELECT rowid, id, document_id, text FROM chunks WHERE id IN ({missing}) "
        "AND rowid NOT IN (SELECT rowid FROM chunks_fts)",
    )
    run(
        "fts_rows",
        f"INSERT INTO chunks_fts(chunk_id, document_id, text) SELECT id, document_id, text FROM chunks WHERE id IN ({missing})",
    )
