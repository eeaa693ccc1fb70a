"""Deleting documents and sources, totals, and export as JSON Lines."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import outputs
from ..backends import backend_for, connect, translated
from ..errors import CorruptValueError
from ..fields import as_text, iso_or_stored, load_json
from ..integrity import CheckReport
from ..models import Checkpoint, Chunk, Document, bound_database
from . import inputs, writes


@translated("write")
def delete_document(document_id: str) -> bool:
    """Delete a document and everything of it (children first); False if there was none."""
    db = bound_database()
    inputs.checked_text(document_id, "document id", empty=False)
    with backend_for(db).write_transaction():
        if not Document.select().where(Document.id == document_id).exists():
            return False
        writes.delete_documents(db, [document_id])
    return True


@translated("write")
def delete_source(source: str) -> int:
    """Delete every document of ``source`` and everything of them; returns the document count."""
    db = bound_database()
    inputs.checked_text(source, "source", empty=False)
    with backend_for(db).write_transaction():
        of_source: Any = Document.select(Document.id).where(Document.source == source).tuples()
        ids = [row[0] for row in of_source]
        writes.delete_documents(db, ids)
        Checkpoint.delete().where(Checkpoint.source == source).execute()
    return len(ids)


@dataclass
class SourceStats:
    source: str
    documents: int
    chunks: int
    embedded: int
    checkpoint: int | None
    checkpoint_at: str | None


@dataclass
class StoreStats:
    documents: int
    chunks: int
    embedded: int
    stale: int
    models: dict[str, int]
    size_bytes: int
    sources: list[SourceStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@translated("read")
def stats() -> StoreStats:
    """Totals, per-source counts and the database size on disk (WAL file included)."""
    db = bound_database()
    with db.atomic():  # one snapshot for every count
        per_source = db.execute_sql(
            """
            SELECT d.source, count(DISTINCT d.id), count(c.id),
                   count(e.chunk_id), k.cursor, k.updated_at
            FROM documents d
            LEFT JOIN chunks c ON c.document_id = d.id
            LEFT JOIN embeddings e ON e.chunk_id = c.id AND e.hash = c.hash
            LEFT JOIN checkpoints k ON k.source = d.source
            GROUP BY d.source, k.cursor, k.updated_at ORDER BY d.source
            """
        ).fetchall()
        stale = db.execute_sql(
            "SELECT count(*) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id WHERE e.hash != c.hash"
        ).fetchone()[0]
        models = {
            as_text(model): count
            for model, count in db.execute_sql(
                "SELECT model, count(*) FROM embeddings GROUP BY model ORDER BY model"
            )
        }
        orphan_checkpoints = db.execute_sql(
            "SELECT source, cursor, updated_at FROM checkpoints "
            "WHERE source NOT IN (SELECT DISTINCT source FROM documents) ORDER BY source"
        ).fetchall()
    sources = [
        SourceStats(as_text(src), docs, chunks, embedded, _cursor_or_none(cursor), iso_or_stored(at))
        for src, docs, chunks, embedded, cursor, at in per_source
    ] + [
        SourceStats(as_text(src), 0, 0, 0, _cursor_or_none(cursor), iso_or_stored(at))
        for src, cursor, at in orphan_checkpoints
    ]
    return StoreStats(
        documents=sum(s.documents for s in sources),
        chunks=sum(s.chunks for s in sources),
        embedded=sum(s.embedded for s in sources),
        stale=stale,
        models=models,
        size_bytes=backend_for(db).size_on_disk() or 0,
        sources=sorted(sources, key=lambda s: s.source),
    )


def _cursor_or_none(value: Any) -> int | None:
    try:
        return Checkpoint.cursor.python_value(value)
    except Exception:
        return None


@translated("read")
def export(fp: IO[str], *, source: str | None = None) -> int:
    """Write every document (of ``source``, or all) with its chunks as JSON Lines; returns the count.

    Rows stream from one read transaction, so memory stays flat and the output
    is one consistent snapshot. Documents and chunks are read by two queries in
    the same order and merged, so each body is read once, not once per chunk.
    """
    db = bound_database()
    # Both ordered by the document's (source, source_id, id): the chunks of each
    # document come in one run, in the documents' order.
    order = (Document.source, Document.source_id, Document.id)
    documents = Document.select(Document).order_by(*order)
    chunks = (
        Chunk.select(Chunk.document, Chunk.id, Chunk.chunk_index, Chunk.text, Chunk.hash)
        .join(Document, on=(Chunk.document == Document.id))
        .order_by(*order, Chunk.chunk_index)
    )
    if source is not None:
        source = inputs.key_text(source, "source")
        documents = documents.where(Document.source == source)
        chunks = chunks.where(Document.source == source)
    count = 0
    columns = [f.column_name for f in Document._meta.sorted_fields]
    with db.atomic():
        chunk_rows = (tuple(map(_as_stored, row)) for row in db.execute_sql(*chunks.sql()))
        pending = next(chunk_rows, None)
        for row in db.execute_sql(*documents.sql()):
            doc = dict(zip(columns, map(_as_stored, row)))
            doc["metadata"] = _metadata_or_text(doc.pop("metadata_json"))
            own = []
            while pending is not None and pending[0] == doc["id"]:
                _, chunk_id, index, text, digest = pending
                own.append({"id": chunk_id, "chunk_index": index, "text": text, "hash": digest})
                pending = next(chunk_rows, None)
            fp.write(json.dumps({**doc, "chunks": own}, ensure_ascii=False) + "\n")
            count += 1
    return count


def _as_stored(value: Any) -> Any:
    """A stored value as JSON can hold it: what another program stored oddly shows as stored.

    A BLOB in a TEXT column reads as text, and an infinite REAL in an INTEGER column as its
    text ("inf"), which json.dumps would write as Infinity, not JSON. check reports both.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return as_text(value)


def _metadata_or_text(text: Any) -> Any:
    """The stored metadata as JSON, or as the text stored when it is not strict JSON.

    Another program may store any text: NaN (which would make the line invalid JSON),
    nesting deeper than Python parses, or no JSON at all. ``check`` reports it.
    """
    if not isinstance(text, str):
        return text
    try:
        return load_json(text, "metadata_json")
    except CorruptValueError:
        return text


@translated("back up")
def backup(dest: str | os.PathLike[str], *, overwrite: bool = False) -> CheckReport:
    """Copy the database to ``dest`` consistently while others may write, then check the copy.

    The copy is written beside ``dest`` and renamed into place when whole, so
    ``dest`` never holds half a backup; ``dest`` is never the database itself
    (or one of its files, or a link to them). Returns the copy's integrity report.
    """
    from ..integrity import check

    db = bound_database()
    target = Path(dest).expanduser()
    outputs.refuse_existing(target, overwrite)
    backend_for(db).backup(target)
    copy = connect(target, bind_models=False, create=False)
    try:
        return check(copy)
    finally:
        copy.close()
