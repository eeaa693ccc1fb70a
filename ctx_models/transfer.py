"""Moving a store: :func:`copy_store` copies every row from one database to another.

Between any two backends (a SQLite file and a PostgreSQL database, either way),
in batches of documents, each batch one transaction. Values are copied as
stored, not read into Python objects and written back: ids, timestamps,
hashes, metadata text (whatever it is), cursors and vector bytes come out
identical, so SQLite → PostgreSQL → SQLite gives back the same rows. Keyword
rows are made from the chunks on the way in, as every write does.

>>> import ctx_models
>>> from ctx_models import store
>>> from ctx_models.transfer import copy_store
>>> a = ctx_models.connect(":memory:", bind_models=False); _ = ctx_models.run_migrations(a)
>>> b = ctx_models.connect(":memory:", bind_models=False); _ = ctx_models.run_migrations(b)
>>> with a.bind_ctx(ctx_models.MODELS):
...     _ = store.ingest("docs", "a", "Postgres failover runbook")
>>> copy_store(a, b).documents
1
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from peewee import Database, chunked

from .backends import ChunkRow, backend_for
from .bulk import BulkInsert
from .errors import ValidationError
from .fields import as_text
from .models import MODELS, Checkpoint, Chunk, ChunkVector, Document, Embedding
from .schema import run_migrations
from .store import writes

__all__ = ["CopyReport", "copy_store"]

log = logging.getLogger(__name__)

DOCUMENT_COLUMNS = writes.DOCUMENT_FIELDS
_CHECKPOINT_UPSERT = BulkInsert(
    Checkpoint,
    (Checkpoint.source, Checkpoint.cursor, Checkpoint.updated_at),
    lambda q: q.on_conflict(
        conflict_target=[Checkpoint.source], preserve=[Checkpoint.cursor, Checkpoint.updated_at]
    ),
)


@dataclass
class CopyReport:
    """What :func:`copy_store` copied."""

    documents: int = 0
    chunks: int = 0
    vectors: int = 0
    checkpoints: int = 0
    replaced: int = 0  # documents of the destination replaced (with ``merge``)


def _rows(db: Database, query: Any) -> list[tuple[Any, ...]]:
    """The query's rows as stored: compiled for ``db`` and run without peewee's conversions."""
    sql, params = db.get_sql_context().sql(query).query()
    return [tuple(row) for row in db.execute_sql(sql, params).fetchall()]


def _blob(value: Any) -> bytes | None:
    """A stored vector as the contract's bytes, whichever engine it comes from; None if it is none.

    Another program may store anything in SQLite's column (text, a number, 5 bytes): that
    is no vector, on either engine, and is left out of the copy (``check`` reports it).
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        blob = bytes(value)
    elif hasattr(value, "to_numpy"):  # pgvector's Vector
        blob = np.asarray(value.to_numpy(), dtype="<f4").tobytes()
    elif isinstance(value, str) and value.startswith("["):  # pgvector's text form
        try:
            blob = np.array(value.strip("[]").split(","), dtype="<f4").tobytes()
        except ValueError:
            return None
    else:
        return None
    return blob if blob and len(blob) % 4 == 0 else None


def copy_store(
    source: Database,
    dest: Database,
    *,
    merge: bool = False,
    batch_size: int = 500,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy every document (with its chunks, embeddings and vectors) and checkpoint.

    The destination gets the schema if it lacks it. A destination that already
    holds documents is refused unless ``merge``: then a copied document replaces
    the one it has with the same id or the same ``(source, source_id)``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be a positive integer, got {batch_size!r}")
    source_backend, dest_backend = backend_for(source), backend_for(dest)
    if _same_file(source, dest):
        raise ValidationError(
            f"{source.database} is both the source and the destination of the copy; "
            "name another destination"
        )
    report = CopyReport()
    with dest_backend.errors("copy to"):
        run_migrations(dest)
        with dest.bind_ctx(MODELS):
            if not merge and Document.select().exists():
                raise ValidationError(
                    f"{dest_backend.location} already holds documents; copy into an empty "
                    "database, or merge into this one (--merge; merge=True), which replaces "
                    "the documents copied"
                )
    with source_backend.errors("copy from"):
        ids = [row[0] for row in _rows(source, Document.select(Document.id).order_by(Document.id))]
        checkpoints = _rows(
            source, Checkpoint.select(Checkpoint.source, Checkpoint.cursor, Checkpoint.updated_at)
        )
    with writes.progress(progress, len(ids), "documents") as bar:
        for batch in chunked(ids, batch_size):
            with source_backend.read_snapshot("copy from"):
                documents, chunks, vectors = _read_batch(source, list(batch))
            with dest_backend.write_transaction("copy to"), dest.bind_ctx(MODELS):
                report.replaced += _make_room(dest, documents) if merge else 0
                writes.DOCUMENT_UPSERT.execute(dest, documents)
                dest_backend.insert_chunks(chunks)
                dest_backend.write_vectors(vectors)
            report.documents += len(documents)
            report.chunks += len(chunks)
            report.vectors += len(vectors)
            bar.update(len(documents))
            if on_batch is not None:
                on_batch(report.documents)
    with dest_backend.write_transaction("copy to"), dest.bind_ctx(MODELS):
        # As stored: a cursor the ctx tool wrote that is not an integer stays what it is.
        report.checkpoints = _CHECKPOINT_UPSERT.execute(dest, checkpoints)
    log.info("copied %s to %s: %s", source_backend.location, dest_backend.location, report)
    return report


def _read_batch(
    db: Database, ids: list[str]
) -> tuple[list[tuple[Any, ...]], list[ChunkRow], list[tuple[str, str, str, str, int, int, bytes]]]:
    documents = _rows(
        db, Document.select(*DOCUMENT_COLUMNS).where(Document.id.in_(ids)).order_by(Document.id)
    )
    chunks = [
        ChunkRow(*row)
        for row in _rows(
            db,
            Chunk.select(Chunk.id, Chunk.document, Chunk.chunk_index, Chunk.text, Chunk.hash)
            .where(Chunk.document.in_(ids))
            .order_by(Chunk.document, Chunk.chunk_index),
        )
    ]
    pairs = _rows(
        db,
        ChunkVector.select(
            ChunkVector.chunk, ChunkVector.document, Embedding.hash, Embedding.model,
            Embedding.dims, Embedding.created_at, ChunkVector.embedding,
        )
        .join(Embedding, on=(Embedding.chunk == ChunkVector.chunk))
        .where(ChunkVector.document.in_(ids))
        .order_by(ChunkVector.chunk),
    )
    vectors: list[tuple[str, str, str, str, int, int, bytes]] = []
    for c, d, h, m, n, t, v in pairs:
        blob = _blob(v)
        if blob is None:
            log.warning(
                "not copying the vector of chunk %s: it is stored as %s, not float32 values "
                "(its chunk is copied, and `ctx-models embed` embeds it again)",
                as_text(c), f"{len(v)} bytes" if isinstance(v, bytes) else type(v).__name__,
            )
            continue
        vectors.append((c, d, h, m, n, t, blob))
    return documents, chunks, vectors


def _make_room(dest: Database, documents: Sequence[tuple[Any, ...]]) -> int:
    """Delete the destination's documents that the copied ones replace; returns how many."""
    ids = {row[0] for row in documents}
    keys = {(row[1], row[2]) for row in documents}
    candidates: Any = (
        Document.select(Document.id, Document.source, Document.source_id)
        .where(Document.id.in_(list(ids)) | Document.source_id.in_([key[1] for key in keys]))
        .tuples()
    )
    clashing = [
        doc_id
        for doc_id, source, source_id in candidates
        if doc_id in ids or (source, source_id) in keys
    ]
    return writes.delete_documents(dest, clashing) if clashing else 0


def _same_file(source: Database, dest: Database) -> bool:
    """Whether two SQLite databases are one file (by any name or link): a copy onto itself."""
    names = (str(source.database), str(dest.database))
    if backend_for(source).name != "sqlite" or backend_for(dest).name != "sqlite" or ":memory:" in names:
        return False
    try:
        return os.path.samefile(*names)
    except OSError:  # one of them is not there yet
        return False
