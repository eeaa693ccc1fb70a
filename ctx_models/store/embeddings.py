"""Embeddings and vectors: upserting, finding what needs embedding, embedding it, clearing."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from peewee import JOIN, fn

from ..backends import backend_for, translated
from ..embedders import Embedder, embed_texts
from ..errors import DimensionMismatchError, ValidationError
from ..fields import encode_vector
from ..models import Chunk, ChunkVector, Embedding, bound_database
from . import inputs, writes

log = logging.getLogger(__name__)


@translated("write")
def upsert_embeddings(rows: Iterable[Any]) -> int:
    """Write embeddings and vectors for many chunks in one transaction.

    ``rows`` are ``(chunk_id, model, vector)`` tuples or mappings with those
    keys. All vectors of one model must have one length, the length already
    stored for that model if any; otherwise nothing is written.
    """
    db = bound_database()
    by_model: dict[str, tuple[list[str], list[np.ndarray]]] = {}
    for n, row in enumerate(rows):
        if isinstance(row, Mapping):
            row = (row.get("chunk_id"), row.get("model"), row.get("vector"))
        if not isinstance(row, (tuple, list)) or len(row) != 3:
            raise ValidationError(f"row {n}: expected (chunk_id, model, vector)")
        chunk_id, model, vector = row
        inputs.checked_text(chunk_id, f"row {n} chunk_id", empty=False)
        inputs.checked_text(model, f"row {n} model", empty=False)
        array = np.frombuffer(encode_vector(vector, f"row {n} vector"), dtype="<f4")
        ids, vectors = by_model.setdefault(model, ([], []))
        if vectors and len(vectors[0]) != len(array):
            raise DimensionMismatchError(
                f"row {n}: {len(array)}-dim vector for model {model!r}, whose other vectors "
                f"here have {len(vectors[0])} dims"
            )
        ids.append(chunk_id)
        vectors.append(array)
    total = 0
    with backend_for(db).write_transaction():
        now = writes.now()
        for model, (ids, vectors) in by_model.items():
            found = writes.chunk_parents(db, ids)
            missing = [c for c in ids if c not in found]
            if missing:
                raise ValidationError(
                    f"{len(missing)} chunk id(s) not found, e.g. {missing[:3]}; nothing was written"
                )
            chunks = [(c, found[c][0], found[c][1]) for c in ids]
            total += writes.write_vectors(db, model, chunks, np.stack(vectors), now)
    return total


def _pending_query(model: str, keep_others: bool = False) -> Any:
    if keep_others:
        # A chunk holds one embedding (the contract's key): leave other models' alone.
        on = Embedding.chunk == Chunk.id
        pending = Embedding.chunk.is_null() | (
            (Embedding.model == model) & (Embedding.hash != Chunk.hash)
        )
    else:
        on = (Embedding.chunk == Chunk.id) & (Embedding.model == model)
        pending = Embedding.chunk.is_null() | (Embedding.hash != Chunk.hash)
    return (
        Chunk.select(Chunk)
        .join(Embedding, JOIN.LEFT_OUTER, on=on)
        .where(pending)
        .order_by(Chunk.document, Chunk.chunk_index)
    )


@translated("read")
def pending_chunks(
    model: str, limit: int | None = None, *, keep_others: bool = False
) -> list[Chunk]:
    """Chunks that need an embedding from ``model``: none yet, or a stale one (hash differs).

    With ``keep_others``, chunks that hold another model's embedding are not pending.
    """
    bound_database()
    inputs.checked_text(model, "model", empty=False)
    query = _pending_query(model, keep_others)
    if limit is not None:
        query = query.limit(limit)
    return list(query)


@translated("read")
def embeddings_replaced_by(model: str) -> dict[str, int]:
    """Embeddings of other models that embedding the pending chunks with ``model`` would replace.

    A chunk has one embedding: embedding it with a new model replaces the old one.
    """
    bound_database()
    inputs.checked_text(model, "model", empty=False)
    rows: Any = (
        Embedding.select(Embedding.model, fn.count(Embedding.chunk))
        .where(Embedding.model != model)
        .group_by(Embedding.model)
        .order_by(Embedding.model)
        .tuples()
    )
    return dict(rows)


def _pending_after(
    model: str, after: str | None, limit: int, keep_others: bool = False
) -> list[Chunk]:
    """The next ``limit`` chunks pending for ``model``, in id order, with ids above ``after``."""
    query = _pending_query(model, keep_others).order_by(Chunk.id).limit(limit)
    if after is not None:
        query = query.where(Chunk.id > after)
    return list(query)


@translated("write")
def embed_pending(
    embedder: Embedder, batch_size: int = 256, *, progress: bool = False, keep_others: bool = False
) -> int:
    """Embed every pending chunk with ``embedder``, one transaction per batch; returns the count.

    One pass over the chunks in id order: a chunk is embedded at most once per
    call, so the call ends even while another process embeds the same chunks with
    another model (and, a chunk having one embedding, replaces this one's).
    Embedding a chunk replaces another model's embedding of it, batch by batch;
    ``keep_others=True`` leaves chunks embedded by other models as they are.
    """
    db = bound_database()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be a positive integer, got {batch_size!r}")
    inputs.checked_text(embedder.model, "the embedder's model", empty=False)
    writes.check_dims(db, embedder.model, embedder.dims)
    total_pending = _pending_query(embedder.model, keep_others).count()
    done = 0
    after: str | None = None
    with writes.progress(progress, total_pending, "chunks") as bar:
        while True:
            chunks = _pending_after(embedder.model, after, batch_size, keep_others)
            if not chunks:
                break
            after = chunks[-1].id
            matrix = embed_texts(embedder, [c.text for c in chunks])
            with backend_for(db).write_transaction():
                # Chunks replaced meanwhile by another writer are skipped, not errors.
                found = writes.chunk_parents(db, [c.id for c in chunks])
                keep = [
                    i for i, c in enumerate(chunks) if found.get(c.id, (None, None))[1] == c.hash
                ]
                rows = [(chunks[i].id, found[chunks[i].id][0], chunks[i].hash) for i in keep]
                done += writes.write_vectors(db, embedder.model, rows, matrix[keep], writes.now())
            bar.update(len(chunks))
    log.info("embedded %d chunks with %s", done, embedder.model)
    return done


@translated("write")
def clear_embeddings(model: str | None = None) -> int:
    """Delete embeddings and vectors (of ``model``, or all); returns how many embeddings went."""
    db = bound_database()
    if model is not None:
        inputs.key_text(model, "model")
    with backend_for(db).write_transaction():
        if model is None:
            ChunkVector.delete().execute()
            return Embedding.delete().execute()
        of_model = Embedding.select(Embedding.chunk).where(Embedding.model == model)
        ChunkVector.delete().where(ChunkVector.chunk.in_(of_model)).execute()
        return Embedding.delete().where(Embedding.model == model).execute()
