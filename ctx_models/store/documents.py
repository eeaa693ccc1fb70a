"""A document's chunks: replacing them, and reading a document with its chunks in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from peewee import prefetch

from ..backends import backend_for, translated
from ..errors import ValidationError
from ..models import Chunk, Document, bound_database, new_id
from . import inputs, writes


@translated("write")
def replace_chunks(
    document: Document | str,
    texts_or_chunks: Sequence[str | Chunk],
    vectors: Any = None,
    model: str | None = None,
) -> list[Chunk]:
    """Replace a document's chunks (and their FTS rows, embeddings and vectors) in one transaction.

    ``texts_or_chunks`` are chunk texts or :class:`Chunk` objects (whose ids are
    kept). With ``vectors`` (one per chunk) and ``model``, the new chunks are
    embedded in the same transaction.
    """
    db = bound_database()
    document_id = (
        document.id
        if isinstance(document, Document)
        else inputs.checked_text(document, "document id")
    )
    if isinstance(texts_or_chunks, (str, bytes)) or not isinstance(texts_or_chunks, Sequence):
        raise ValidationError("texts_or_chunks must be a list of str or Chunk")
    if not texts_or_chunks:
        raise ValidationError("a document needs at least one chunk; pass [''] for an empty body")
    texts = [
        inputs.checked_text(c.text if isinstance(c, Chunk) else c, f"chunk {i}")
        for i, c in enumerate(texts_or_chunks)
    ]
    ids = [
        inputs.checked_text(c.id, f"chunk {i} id", empty=False)
        if isinstance(c, Chunk) and c.id
        else new_id()
        for i, c in enumerate(texts_or_chunks)
    ]
    matrix, model_name = None, ""
    if vectors is not None:
        if model is None:
            raise ValidationError(
                "model is required with vectors: the name of the model that made them"
            )
        model_name = inputs.checked_text(model, "model", empty=False)
        matrix = writes.vector_matrix(vectors, len(texts))
    with backend_for(db).write_transaction():
        if not Document.select().where(Document.id == document_id).exists():
            raise ValidationError(f"no document with id {document_id!r}")
        if matrix is not None:
            writes.check_dims(db, model_name, matrix.shape[1])
        writes.delete_children(db, [document_id], deleting_documents=False)
        written = writes.insert_chunks(db, [(document_id, texts, ids)])
        if matrix is not None:
            writes.write_vectors(
                db, model_name, [(c, d, h) for c, d, _, h in written], matrix, writes.now()
            )
    return [
        Chunk(id=c, document=d, chunk_index=i, text=t, hash=h)
        for i, (c, d, t, h) in enumerate(written)
    ]


def _with_chunks(query: Any) -> Document | None:
    docs = prefetch(query, Chunk.select().order_by(Chunk.chunk_index))
    return docs[0] if docs else None


@translated("read")
def get_document(document_id: str) -> Document | None:
    """The document with this id, its ``chunks`` in order; ``None`` if there is none."""
    bound_database()
    inputs.key_text(document_id, "document id")
    return _with_chunks(Document.select().where(Document.id == document_id))


@translated("read")
def get_document_by_source(source: str, source_id: str) -> Document | None:
    """The document with this ``(source, source_id)``, its ``chunks`` in order, or ``None``."""
    bound_database()
    inputs.key_text(source, "source")
    inputs.key_text(source_id, "source_id")
    return _with_chunks(
        Document.select().where((Document.source == source) & (Document.source_id == source_id))
    )
