"""The write path and everyday reads: every table kept consistent, one transaction per call.

A chunk never exists without its FTS row, and replacing a document's chunks
removes their embeddings and vectors in the same transaction, following the
contract's write behaviour. All functions work on the database the models are
bound to (see :func:`ctx_models.connect`).

>>> import ctx_models
>>> from ctx_models import store
>>> db = ctx_models.connect(":memory:"); _ = ctx_models.run_migrations(db)
>>> result = store.ingest("filesystem", "notes/a.txt", "Hello world.\\n\\nSecond paragraph.")
>>> result.status, result.chunks
('created', 1)
>>> store.ingest("filesystem", "notes/a.txt", "Hello world.\\n\\nSecond paragraph.").status
'unchanged'
"""

from __future__ import annotations

from ..chunking import chunk_text
from .checkpoints import clear_checkpoint, get_checkpoint, set_checkpoint
from .documents import get_document, get_document_by_source, replace_chunks
from .embeddings import (
    clear_embeddings,
    embed_pending,
    embeddings_replaced_by,
    pending_chunks,
    upsert_embeddings,
)
from .ingest import IngestResult, IngestSummary, ingest, ingest_many, upsert_document
from .maintenance import (
    SourceStats,
    StoreStats,
    backup,
    delete_document,
    delete_source,
    export,
    stats,
)

__all__ = [
    "IngestResult",
    "IngestSummary",
    "SourceStats",
    "StoreStats",
    "upsert_document",
    "get_document",
    "get_document_by_source",
    "chunk_text",
    "replace_chunks",
    "ingest",
    "ingest_many",
    "upsert_embeddings",
    "pending_chunks",
    "embed_pending",
    "embeddings_replaced_by",
    "clear_embeddings",
    "get_checkpoint",
    "set_checkpoint",
    "clear_checkpoint",
    "delete_document",
    "delete_source",
    "stats",
    "export",
    "backup",
]
