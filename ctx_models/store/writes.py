"""The row writes every store function shares: bulk statements, chunk and vector inserts, child deletes.

Nothing here opens a transaction: callers do, so each public function is one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from peewee import Database, chunked

from ..backends import ChunkRow, backend_for
from ..bulk import BulkInsert
from ..errors import DimensionMismatchError, VectorError
from ..fields import encode_vector
from ..hashing import chunk_hash
from ..models import Chunk, ChunkVector, Document, Embedding, new_ids

# Parameters per IN (...) list; SQLite allows 32766, this keeps statements small.
IN_BATCH = 500

DOCUMENT_FIELDS = (
    Document.id,
    Document.source,
    Document.source_id,
    Document.source_url,
    Document.title,
    Document.author,
    Document.created_at,
    Document.updated_at,
    Document.content_type,
    Document.body,
    Document.metadata,
    Document.raw_json,
    Document.dedup_hash,
)
# Columns an upsert replaces: all but id and created_at, as the contract says.
DOCUMENT_REPLACED = [f for f in DOCUMENT_FIELDS if f.name not in ("id", "created_at")]

DOCUMENT_UPSERT = BulkInsert(
    Document,
    DOCUMENT_FIELDS,
    lambda q: q.on_conflict(
        conflict_target=[Document.source, Document.source_id], preserve=DOCUMENT_REPLACED
    ),
)


def now() -> int:
    return int(time.time())


def stored_dims(db: Database, model: str) -> int | None:
    """The length of the vectors stored for ``model`` (None when it has none).

    Read from a vector, not from ``embeddings.dims``: the ctx tool records there
    the size it was configured with, which can differ from what it stored.
    """
    return backend_for(db).vector_size(model)


def check_dims(db: Database, model: str, dims: int) -> None:
    stored = stored_dims(db, model)
    if stored is not None and stored != dims:
        raise DimensionMismatchError(
            f"model {model!r} already has {stored}-dim vectors in this database; refusing "
            f"{dims}-dim ones. Use another model name, or clear_embeddings({model!r}) first"
        )


def delete_children(db: Database, document_ids: Sequence[str], *, deleting_documents: bool) -> None:
    """Delete vectors, embeddings, FTS rows and chunks of these documents, children first."""
    for batch in chunked(document_ids, IN_BATCH):
        chunk_ids = Chunk.select(Chunk.id).where(Chunk.document.in_(batch))
        ChunkVector.delete().where(ChunkVector.chunk.in_(chunk_ids)).execute()
        if deleting_documents:
            ChunkVector.delete().where(ChunkVector.document.in_(batch)).execute()
        Embedding.delete().where(Embedding.chunk.in_(chunk_ids)).execute()
        backend_for(db).delete_keyword_rows(batch, deleting_documents=deleting_documents)
        Chunk.delete().where(Chunk.document.in_(batch)).execute()


def delete_documents(db: Database, document_ids: Sequence[str]) -> int:
    """Delete these documents and everything of them, children first; returns how many went."""
    delete_children(db, document_ids, deleting_documents=True)
    deleted = 0
    for batch in chunked(document_ids, IN_BATCH):
        deleted += Document.delete().where(Document.id.in_(batch)).execute()
    return deleted


def insert_chunks(
    db: Database,
    chunk_sets: Sequence[tuple[str, Sequence[str], Sequence[str] | None]],
) -> list[tuple[str, str, str, str]]:
    """Insert chunks (document id, texts, optional ids) and their FTS rows.

    Returns (chunk id, document id, text, hash) per chunk, in insertion order.
    """
    written: list[tuple[str, str, str, str]] = []
    rows: list[ChunkRow] = []
    fresh = iter(new_ids(sum(len(texts) for _, texts, ids in chunk_sets if not ids)))
    for document_id, texts, ids in chunk_sets:
        for index, text in enumerate(texts):
            chunk_id = ids[index] if ids else next(fresh)
            digest = chunk_hash(text)
            rows.append(ChunkRow(chunk_id, document_id, index, text, digest))
            written.append((chunk_id, document_id, text, digest))
    backend_for(db).insert_chunks(rows)
    return written


def write_vectors(
    db: Database,
    model: str,
    chunks: Sequence[tuple[str, str, str]],
    matrix: np.ndarray,
    now: int,
) -> int:
    """Upsert embeddings and vectors for (chunk id, document id, hash) rows of ``matrix``."""
    if not len(chunks):
        return 0
    check_dims(db, model, matrix.shape[1])
    blobs = matrix.astype("<f4", copy=False)
    dims = matrix.shape[1]
    backend_for(db).write_vectors(
        [
            (chunk_id, document_id, digest, model, dims, now, blobs[i].tobytes())
            for i, (chunk_id, document_id, digest) in enumerate(chunks)
        ]
    )
    return len(chunks)


def vector_matrix(vectors: Any, count: int, what: str = "vectors") -> np.ndarray:
    """Validate one vector per chunk and stack them into a float32 matrix."""
    if isinstance(vectors, (str, bytes)):
        raise VectorError(f"{what}: expected one vector per chunk, got {type(vectors).__name__}")
    try:
        rows = list(vectors)
    except TypeError:
        raise VectorError(
            f"{what}: expected one vector per chunk, got {type(vectors).__name__}"
        ) from None
    if len(rows) != count:
        raise VectorError(f"{what}: got {len(rows)} vectors for {count} chunks")
    arrays = [
        np.frombuffer(encode_vector(v, f"{what}[{i}]"), dtype="<f4") for i, v in enumerate(rows)
    ]
    lengths = sorted({len(a) for a in arrays})
    if len(lengths) > 1:
        raise DimensionMismatchError(
            f"{what}: vectors have different lengths {lengths}; all vectors of one model "
            "must have one length"
        )
    return np.stack(arrays).astype(np.float32)


def chunk_parents(db: Database, chunk_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """chunk id -> (document id, hash) for the chunks that exist."""
    found: dict[str, tuple[str, str]] = {}
    for batch in chunked(dict.fromkeys(chunk_ids), IN_BATCH):
        query = Chunk.select(Chunk.id, Chunk.document, Chunk.hash).where(Chunk.id.in_(batch))
        for chunk_id, document_id, digest in db.execute_sql(*query.sql()):
            found[chunk_id] = (document_id, digest)
    return found


def progress(enabled: bool, total: int | None, unit: str) -> Any:
    """A tqdm bar on stderr, or a silent one (tqdm's own ``disable``) when not ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, unit=f" {unit}", dynamic_ncols=True, leave=False, disable=not enabled)
