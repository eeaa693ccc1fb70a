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

import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np
from peewee import JOIN, Database, Tuple, prefetch

from . import fts
from .bulk import BulkInsert
from .chunking import DEFAULT_MAX_TOKENS, chunk_text
from .embedders import Embedder, embed_texts
from .errors import DimensionMismatchError, ValidationError, VectorError
from .fields import (
    dump_json,
    dump_json_object,
    encode_vector,
    from_epoch,
    load_json,
    to_epoch,
    validate_vector,
)
from .hashing import chunk_hash, dedup_hash
from .models import (
    Checkpoint,
    Chunk,
    ChunkVector,
    Document,
    Embedding,
    bound_database,
    new_id,
)
from .sqlite import translate_errors

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
    "clear_embeddings",
    "get_checkpoint",
    "set_checkpoint",
    "delete_document",
    "delete_source",
    "stats",
    "export",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
# Parameters per IN (...) list; SQLite allows 32766, this keeps statements small.
_IN_BATCH = 500

_DOCUMENT_FIELDS = (
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
_DOCUMENT_REPLACED = [f for f in _DOCUMENT_FIELDS if f.name not in ("id", "created_at")]
# Columns compared to decide whether an unchanged document needs its row rewritten.
_DOCUMENT_COMPARED = ("source_url", "title", "author", "content_type", "metadata_json", "raw_json")

_DOCUMENT_UPSERT = BulkInsert(
    Document,
    _DOCUMENT_FIELDS,
    lambda q: q.on_conflict(
        conflict_target=[Document.source, Document.source_id], preserve=_DOCUMENT_REPLACED
    ),
)
_CHUNK_INSERT = BulkInsert(Chunk, (Chunk.id, Chunk.document, Chunk.chunk_index, Chunk.text, Chunk.hash))
_EMBEDDING_UPSERT = BulkInsert(
    Embedding,
    (Embedding.chunk, Embedding.model, Embedding.dims, Embedding.created_at, Embedding.hash),
    lambda q: q.on_conflict(
        conflict_target=[Embedding.chunk],
        preserve=[Embedding.model, Embedding.dims, Embedding.created_at, Embedding.hash],
    ),
)
_VECTOR_UPSERT = BulkInsert(
    ChunkVector,
    (ChunkVector.chunk, ChunkVector.document, ChunkVector.embedding),
    lambda q: q.on_conflict(
        conflict_target=[ChunkVector.chunk],
        preserve=[ChunkVector.document, ChunkVector.embedding],
    ),
)


def _now() -> int:
    return int(time.time())


def _batches(items: Sequence[Any], size: int = _IN_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------- validation


def _text(value: Any, what: str, *, optional: bool = False, empty: bool = True) -> str | None:
    """A str that SQLite and the other program can store faithfully, or a ValidationError."""
    if value is None:
        if optional:
            return None
        raise ValidationError(f"{what} is required, got None")
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, got {type(value).__name__}")
    if not empty and not value.strip():
        raise ValidationError(f"{what} must not be empty")
    if "\x00" in value:
        raise ValidationError(
            f"{what} contains a NUL character at index {value.index(chr(0))}; remove it "
            "(other SQLite programs cut text at NUL)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} contains a lone surrogate at index {exc.start}, which is not valid UTF-8; "
            "decode your input with errors='replace'"
        ) from None
    return value


def _raw_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        _text(value, "raw_json")
        load_json(value, "raw_json", error=ValidationError)
        return value
    return dump_json(value, "raw_json")


@dataclass
class _PendingDocument:
    """A validated document on its way in, and what the store decided to do with it."""

    source: str
    source_id: str
    body: str
    title: str | None
    author: str | None
    source_url: str | None
    content_type: str
    metadata_json: str
    raw_json: str | None
    created_at: int | None
    updated_at: int | None
    # Decided against the stored row:
    id: str = ""
    status: str = ""
    final_created_at: int = 0
    final_updated_at: int = 0
    dedup: str = ""
    chunks: list[str] | None = None
    vectors: np.ndarray | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.source,
            self.source_id,
            self.source_url,
            self.title,
            self.author,
            self.final_created_at,
            self.final_updated_at,
            self.content_type,
            self.body,
            self.metadata_json,
            self.raw_json,
            self.dedup,
        )


_INGEST_KEYS = frozenset(
    "source source_id body title author source_url created_at updated_at content_type "
    "metadata raw_json".split()
)


def _pending(
    source: Any,
    source_id: Any,
    body: Any,
    *,
    title: Any = None,
    author: Any = None,
    source_url: Any = None,
    created_at: Any = None,
    updated_at: Any = None,
    content_type: Any = "text/plain",
    metadata: Any = None,
    raw_json: Any = None,
) -> _PendingDocument:
    return _PendingDocument(
        source=_text(source, "source", empty=False),  # type: ignore[arg-type]
        source_id=_text(source_id, "source_id", empty=False),  # type: ignore[arg-type]
        body=_text(body, "body"),  # type: ignore[arg-type]
        title=_text(title, "title", optional=True),
        author=_text(author, "author", optional=True),
        source_url=_text(source_url, "source_url", optional=True),
        content_type=_text(content_type, "content_type", empty=False),  # type: ignore[arg-type]
        metadata_json=dump_json_object({} if metadata is None else metadata, "metadata"),
        raw_json=_raw_json(raw_json),
        created_at=None if created_at is None else to_epoch(created_at, "created_at"),
        updated_at=None if updated_at is None else to_epoch(updated_at, "updated_at"),
    )


def _pending_from_item(item: Any) -> _PendingDocument:
    if isinstance(item, _PendingDocument):
        return item
    if not isinstance(item, Mapping):
        raise ValidationError(
            f"ingest_many() items must be mappings with source, source_id and body, "
            f"got {type(item).__name__}"
        )
    unknown = set(item) - _INGEST_KEYS
    if unknown:
        raise ValidationError(
            f"unknown item keys {sorted(unknown)}; allowed: {sorted(_INGEST_KEYS)}"
        )
    missing = {"source", "source_id", "body"} - set(item)
    if missing:
        raise ValidationError(f"item lacks {sorted(missing)}")
    return _pending(**item)


# --------------------------------------------------------------------------- decisions


def _stored_rows(db: Database, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """The stored rows for these (source, source_id) keys, as raw database values."""
    found: dict[tuple[str, str], tuple] = {}
    columns = [
        Document.source,
        Document.source_id,
        Document.id,
        Document.created_at,
        Document.updated_at,
        Document.dedup_hash,
        *(Document._meta.columns[name] for name in _DOCUMENT_COMPARED),
    ]
    for batch in _batches(list(keys)):
        query = Document.select(*columns).where(
            Tuple(Document.source, Document.source_id).in_(list(batch))
        )
        for row in db.execute_sql(*query.sql()):
            found[(row[0], row[1])] = row[2:]
    return found


def _decide(doc: _PendingDocument, stored: tuple | None, now: int) -> None:
    """Set id, timestamps, dedup hash and status against the stored row (or its absence)."""
    if stored is None:
        doc.id = doc.id or new_id()
        doc.status = "created"
        doc.final_created_at = doc.created_at if doc.created_at is not None else now
        doc.final_updated_at = doc.updated_at if doc.updated_at is not None else now
        doc.dedup = dedup_hash(doc.source, doc.source_id, doc.final_updated_at, doc.body)
        return
    doc_id, created_at, updated_at, stored_dedup, *compared = stored
    doc.id = doc_id
    doc.final_created_at = created_at
    if doc.updated_at is not None:
        doc.final_updated_at = doc.updated_at
    else:
        # No timestamp given: keep the stored one if the body is the same, so that
        # re-ingesting unchanged text changes nothing.
        same = dedup_hash(doc.source, doc.source_id, updated_at, doc.body) == stored_dedup
        doc.final_updated_at = updated_at if same else max(now, updated_at)
    doc.dedup = dedup_hash(doc.source, doc.source_id, doc.final_updated_at, doc.body)
    stored_url, stored_title, stored_author, stored_type, stored_metadata, stored_raw = compared
    if doc.dedup != stored_dedup:
        doc.status = "updated"
    elif (stored_url, stored_title, stored_author, stored_type, stored_raw) != (
        doc.source_url,
        doc.title,
        doc.author,
        doc.content_type,
        doc.raw_json,
    ) or not _same_json(stored_metadata, doc.metadata_json):
        doc.status = "metadata"
    else:
        doc.status = "unchanged"


def _same_json(stored: Any, new: str) -> bool:
    """Equal as JSON values: another program may space or order its JSON text differently."""
    if stored == new:
        return True
    try:
        return bool(json.loads(stored) == json.loads(new))
    except (TypeError, ValueError, RecursionError):
        return False


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IngestResult:
    """What happened to one document.

    ``status`` is ``created``, ``updated`` (content changed: chunks replaced),
    ``metadata`` (only title, URL, metadata… changed: chunks kept) or ``unchanged``.
    """

    document_id: str
    source: str
    source_id: str
    status: str
    chunks: int = 0
    embedded: int = 0

    @property
    def changed(self) -> bool:
        """True when the content changed (created or updated), so chunks were rewritten."""
        return self.status in ("created", "updated")


@dataclass
class IngestSummary:
    """Totals over an :func:`ingest_many` run."""

    created: int = 0
    updated: int = 0
    metadata: int = 0
    unchanged: int = 0
    chunks: int = 0
    embedded: int = 0

    @property
    def documents(self) -> int:
        return self.created + self.updated + self.metadata + self.unchanged

    def add(self, result: IngestResult) -> None:
        setattr(self, result.status, getattr(self, result.status) + 1)
        self.chunks += result.chunks
        self.embedded += result.embedded


# --------------------------------------------------------------------------- writing


def _stored_dims(db: Database, model: str) -> int | None:
    row = db.execute_sql("SELECT dims FROM embeddings WHERE model = ? LIMIT 1", (model,)).fetchone()
    return None if row is None else int(row[0])


def _check_dims(db: Database, model: str, dims: int) -> None:
    stored = _stored_dims(db, model)
    if stored is not None and stored != dims:
        raise DimensionMismatchError(
            f"model {model!r} already has {stored}-dim vectors in this database; refusing "
            f"{dims}-dim ones. Use another model name, or clear_embeddings({model!r}) first"
        )


def _delete_children(db: Database, document_ids: Sequence[str], *, deleting_documents: bool) -> None:
    """Delete vectors, embeddings, FTS rows and chunks of these documents, children first."""
    for batch in _batches(list(document_ids)):
        chunk_ids = Chunk.select(Chunk.id).where(Chunk.document.in_(batch))
        ChunkVector.delete().where(ChunkVector.chunk.in_(chunk_ids)).execute()
        if deleting_documents:
            ChunkVector.delete().where(ChunkVector.document.in_(batch)).execute()
        Embedding.delete().where(Embedding.chunk.in_(chunk_ids)).execute()
        fts.delete_fts_rows(db, batch, always_scan=deleting_documents)
        Chunk.delete().where(Chunk.document.in_(batch)).execute()


def _insert_chunks(
    db: Database,
    chunk_sets: Sequence[tuple[str, Sequence[str], Sequence[str] | None]],
) -> list[tuple[str, str, str, str]]:
    """Insert chunks (document id, texts, optional ids) and their FTS rows.

    Returns (chunk id, document id, text, hash) per chunk, in insertion order.
    """
    written: list[tuple[str, str, str, str]] = []
    rows: list[tuple[str, str, int, str, str]] = []
    for document_id, texts, ids in chunk_sets:
        for index, text in enumerate(texts):
            chunk_id = ids[index] if ids else new_id()
            digest = chunk_hash(text)
            rows.append((chunk_id, document_id, index, text, digest))
            written.append((chunk_id, document_id, text, digest))
    if not rows:
        return written
    before = fts.max_chunk_rowid(db)
    _CHUNK_INSERT.execute(db, rows)
    copied = fts.insert_fts_rows_since(db, before)
    if copied != len(rows):
        raise RuntimeError(f"wrote {copied} FTS rows for {len(rows)} chunks; rolled back")
    return written


def _write_vectors(
    db: Database,
    model: str,
    chunks: Sequence[tuple[str, str, str]],
    matrix: np.ndarray,
    now: int,
) -> int:
    """Upsert embeddings and vectors for (chunk id, document id, hash) rows of ``matrix``."""
    if not len(chunks):
        return 0
    _check_dims(db, model, matrix.shape[1])
    blobs = matrix.astype("<f4", copy=False)
    _EMBEDDING_UPSERT.execute(
        db, ((chunk_id, model, matrix.shape[1], now, digest) for chunk_id, _, digest in chunks)
    )
    _VECTOR_UPSERT.execute(
        db,
        ((chunk_id, document_id, blobs[i].tobytes()) for i, (chunk_id, document_id, _) in enumerate(chunks)),
    )
    return len(chunks)


def _vector_matrix(vectors: Any, count: int, what: str = "vectors") -> np.ndarray:
    """Validate one vector per chunk and stack them into a float32 matrix."""
    if isinstance(vectors, (str, bytes)):
        raise VectorError(f"{what}: expected one vector per chunk, got {type(vectors).__name__}")
    try:
        rows = list(vectors)
    except TypeError:
        raise VectorError(f"{what}: expected one vector per chunk, got {type(vectors).__name__}") from None
    if len(rows) != count:
        raise VectorError(f"{what}: got {len(rows)} vectors for {count} chunks")
    arrays = [np.frombuffer(encode_vector(v, f"{what}[{i}]"), dtype="<f4") for i, v in enumerate(rows)]
    lengths = sorted({len(a) for a in arrays})
    if len(lengths) > 1:
        raise DimensionMismatchError(
            f"{what}: vectors have different lengths {lengths}; all vectors of one model "
            "must have one length"
        )
    return np.stack(arrays).astype(np.float32)


@dataclass
class _Batch:
    """Documents decided and chunked (and embedded) outside the write lock, ready to commit."""

    docs: list[_PendingDocument]
    with_chunks: bool
    embedder: Embedder | None
    max_tokens: int
    now: int


def _decide_batch(
    db: Database, docs: list[_PendingDocument], now: int, *, with_chunks: bool, max_tokens: int
) -> None:
    """Decide every document against the stored rows.

    With chunks, a document whose content is unchanged is still rewritten when
    its stored chunks are not the chunking of its body (say, after
    ``upsert_document`` alone changed the body): chunks always follow the body.
    """
    stored = _stored_rows(db, [d.key for d in docs])
    for doc in docs:
        _decide(doc, stored.get(doc.key), now)
    if not with_chunks:
        return
    kept = [d for d in docs if d.status in ("unchanged", "metadata")]
    hashes = _stored_chunk_hashes(db, [d.id for d in kept])
    for doc in kept:
        if doc.chunks is None:
            doc.chunks = chunk_text(doc.body, max_tokens)
        if hashes.get(doc.id, []) != [chunk_hash(text) for text in doc.chunks]:
            doc.status = "updated"


def _stored_chunk_hashes(db: Database, document_ids: Sequence[str]) -> dict[str, list[str]]:
    """document id -> its chunks' hashes in chunk_index order."""
    found: dict[str, list[str]] = {}
    for batch in _batches(list(document_ids)):
        query = (
            Chunk.select(Chunk.document, Chunk.hash)
            .where(Chunk.document.in_(batch))
            .order_by(Chunk.document, Chunk.chunk_index)
        )
        for document_id, digest in db.execute_sql(*query.sql()):
            found.setdefault(document_id, []).append(digest)
    return found


def _prepare_batch(
    db: Database,
    docs: list[_PendingDocument],
    *,
    with_chunks: bool,
    embedder: Embedder | None,
    max_tokens: int,
) -> _Batch:
    """Decide against the stored rows, then chunk and embed what changed; writes nothing."""
    docs = list({doc.key: doc for doc in docs}.values())  # a later duplicate of a key wins
    now = _now()
    _decide_batch(db, docs, now, with_chunks=with_chunks, max_tokens=max_tokens)
    if with_chunks:
        _prepare_chunks([d for d in docs if d.status in ("created", "updated")], embedder, max_tokens)
    return _Batch(docs, with_chunks, embedder, max_tokens, now)


def _commit_batch(db: Database, batch: _Batch) -> list[IngestResult]:
    """Write a prepared batch in one IMMEDIATE transaction, deciding again under the lock."""
    docs, embedder = batch.docs, batch.embedder
    with translate_errors(db.database, "write"), db.atomic("IMMEDIATE"):
        # Another writer may have changed these rows since the batch was prepared.
        _decide_batch(db, docs, batch.now, with_chunks=batch.with_chunks, max_tokens=batch.max_tokens)
        changed = [d for d in docs if d.status in ("created", "updated")]
        if batch.with_chunks:
            _prepare_chunks(changed, embedder, batch.max_tokens)
            if embedder is not None:
                _check_dims(db, embedder.model, embedder.dims)
        _DOCUMENT_UPSERT.execute(db, (d.row() for d in docs if d.status != "unchanged"))
        results = {d.key: IngestResult(d.id, d.source, d.source_id, d.status) for d in docs}
        if batch.with_chunks:
            _delete_children(db, [d.id for d in changed if d.status == "updated"], deleting_documents=False)
            written = _insert_chunks(db, [(d.id, d.chunks or [""], None) for d in changed])
            embedded = 0
            if embedder is not None and changed:
                matrix = np.concatenate([d.vectors for d in changed])  # type: ignore[misc]
                embedded = _write_vectors(
                    db, embedder.model, [(c, d, h) for c, d, _, h in written], matrix, batch.now
                )
            for d in changed:
                count = len(d.chunks or [""])
                results[d.key] = IngestResult(
                    d.id, d.source, d.source_id, d.status, count, count if embedded else 0
                )
    return list(results.values())


def _write_documents(
    db: Database,
    docs: list[_PendingDocument],
    *,
    with_chunks: bool,
    embedder: Embedder | None,
    max_tokens: int,
) -> list[IngestResult]:
    """Prepare and commit one batch, in this thread."""
    batch = _prepare_batch(db, docs, with_chunks=with_chunks, embedder=embedder, max_tokens=max_tokens)
    return _commit_batch(db, batch)


def _prepare_chunks(docs: Sequence[_PendingDocument], embedder: Embedder | None, max_tokens: int) -> None:
    """Chunk (and embed) the documents that lack chunks, in one embedder call."""
    todo = [d for d in docs if d.chunks is None]
    for doc in todo:
        doc.chunks = chunk_text(doc.body, max_tokens)
    if embedder is None:
        return
    need = [d for d in docs if d.vectors is None]
    texts = [text for d in need for text in d.chunks or [""]]
    matrix = embed_texts(embedder, texts)
    start = 0
    for doc in need:
        count = len(doc.chunks or [""])
        doc.vectors = matrix[start : start + count]
        start += count


def _document_from(doc: _PendingDocument) -> Document:
    return Document(
        id=doc.id,
        source=doc.source,
        source_id=doc.source_id,
        source_url=doc.source_url,
        title=doc.title,
        author=doc.author,
        created_at=from_epoch(doc.final_created_at),
        updated_at=from_epoch(doc.final_updated_at),
        content_type=doc.content_type,
        body=doc.body,
        metadata=json.loads(doc.metadata_json),
        raw_json=doc.raw_json,
        dedup_hash=doc.dedup,
    )


def upsert_document(
    source: str,
    source_id: str,
    body: str,
    *,
    title: str | None = None,
    author: str | None = None,
    source_url: str | None = None,
    created_at: int | dt.datetime | None = None,
    updated_at: int | dt.datetime | None = None,
    content_type: str = "text/plain",
    metadata: Mapping[str, Any] | None = None,
    raw_json: Any = None,
) -> tuple[Document, bool]:
    """Insert or update the document keyed by ``(source, source_id)``; chunks are not touched.

    Returns the document and whether its content (``dedup_hash``) changed. An
    existing document keeps its ``id`` and ``created_at``. Without ``updated_at``,
    a new or changed document gets the current time and an unchanged one keeps
    its stored time. Use :func:`ingest` to keep chunks in step with the body.
    """
    db = bound_database()
    doc = _pending(
        source, source_id, body, title=title, author=author, source_url=source_url,
        created_at=created_at, updated_at=updated_at, content_type=content_type,
        metadata=metadata, raw_json=raw_json,
    )
    (result,) = _write_documents(db, [doc], with_chunks=False, embedder=None, max_tokens=DEFAULT_MAX_TOKENS)
    return _document_from(doc), result.changed


def ingest(
    source: str,
    source_id: str,
    body: str,
    *,
    title: str | None = None,
    author: str | None = None,
    source_url: str | None = None,
    created_at: int | dt.datetime | None = None,
    updated_at: int | dt.datetime | None = None,
    content_type: str = "text/plain",
    metadata: Mapping[str, Any] | None = None,
    raw_json: Any = None,
    embedder: Embedder | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> IngestResult:
    """Upsert a document, chunk it, replace its chunks and embed them, in one transaction.

    A document whose ``dedup_hash`` is unchanged keeps its chunks and vectors
    untouched, which makes re-syncs cheap.
    """
    db = bound_database()
    doc = _pending(
        source, source_id, body, title=title, author=author, source_url=source_url,
        created_at=created_at, updated_at=updated_at, content_type=content_type,
        metadata=metadata, raw_json=raw_json,
    )
    (result,) = _write_documents(db, [doc], with_chunks=True, embedder=embedder, max_tokens=max_tokens)
    return result


def ingest_many(
    items: Iterable[Mapping[str, Any]],
    *,
    embedder: Embedder | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    on_commit: Callable[[list[IngestResult]], None] | None = None,
) -> IngestSummary:
    """:func:`ingest` for a stream of items (mappings of ingest's arguments), committed in batches.

    Each batch of ``batch_size`` documents is one transaction; ``on_commit`` is
    called with a batch's results after it commits. While one batch is being
    written, a worker thread chunks and embeds the next (SQLite releases the
    GIL while it works). An invalid item raises before its batch is written;
    earlier batches stay committed. Set ``progress`` for a tqdm bar on stderr.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValidationError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    db = bound_database()
    summary = IngestSummary()
    total = len(items) if isinstance(items, Sequence) else None
    options = {"with_chunks": True, "embedder": embedder, "max_tokens": max_tokens}
    # An in-memory database is private to its connection, so a worker thread
    # (with a connection of its own) would see an empty one: prepare inline.
    in_memory = str(db.database).startswith((":memory:", "file::memory:")) or "mode=memory" in str(db.database)
    worker = None if in_memory else ThreadPoolExecutor(1, thread_name_prefix="ctx_models-prepare")

    def prepare(docs: list[_PendingDocument]) -> Future[_Batch]:
        if worker is None:
            done: Future[_Batch] = Future()
            done.set_result(_prepare_batch(db, docs, **options))  # type: ignore[arg-type]
            return done
        return worker.submit(_prepare_in_worker, db, docs, options)

    def commit(prepared: Future[_Batch]) -> None:
        batch = prepared.result()
        results = _commit_batch(db, batch)
        for result in results:
            summary.add(result)
        if on_commit is not None:
            on_commit(results)
        bar.update(len(batch.docs))

    in_flight: Future[_Batch] | None = None
    iterator = iter(items)
    try:
        with _progress(progress, total, "documents") as bar:
            docs: list[_PendingDocument] = []
            while True:
                try:
                    item = next(iterator, _END)
                    if item is _END:
                        break
                    docs.append(_pending_from_item(item))
                except Exception:
                    # A bad item (or a failing source of items): the batch prepared
                    # before it is whole and valid, so it is committed first.
                    if in_flight is not None:
                        current, in_flight = in_flight, None
                        commit(current)
                    raise
                if len(docs) >= batch_size:
                    upcoming, docs = prepare(docs), []
                    current, in_flight = in_flight, upcoming
                    if current is not None:
                        commit(current)
            current, in_flight = in_flight, None
            if current is not None:
                commit(current)
            if docs:
                commit(prepare(docs))
    finally:
        if in_flight is not None:
            in_flight.cancel()
        if worker is not None:
            worker.submit(db.close).result()  # the worker's own connection
            worker.shutdown()
    log.info(
        "ingested %d documents: %d created, %d updated, %d unchanged, %d chunks written",
        summary.documents, summary.created, summary.updated, summary.unchanged, summary.chunks,
    )
    return summary


_END = object()


def _prepare_in_worker(db: Database, docs: list[_PendingDocument], options: dict[str, Any]) -> _Batch:
    return _prepare_batch(db, docs, **options)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(enabled: bool, total: int | None, unit: str) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit=f" {unit}", dynamic_ncols=True, leave=False)


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
    document_id = document.id if isinstance(document, Document) else _text(document, "document id")
    if isinstance(texts_or_chunks, (str, bytes)) or not isinstance(texts_or_chunks, Sequence):
        raise ValidationError("texts_or_chunks must be a list of str or Chunk")
    if not texts_or_chunks:
        raise ValidationError("a document needs at least one chunk; pass [''] for an empty body")
    texts = [
        _text(c.text if isinstance(c, Chunk) else c, f"chunk {i}") for i, c in enumerate(texts_or_chunks)
    ]
    ids = [c.id if isinstance(c, Chunk) and c.id else new_id() for c in texts_or_chunks]
    matrix = None
    if vectors is not None:
        if not model:
            raise ValidationError("model is required with vectors: the name of the model that made them")
        _text(model, "model", empty=False)
        matrix = _vector_matrix(vectors, len(texts))
    with translate_errors(db.database, "write"), db.atomic("IMMEDIATE"):
        if not Document.select().where(Document.id == document_id).exists():
            raise ValidationError(f"no document with id {document_id!r}")
        if matrix is not None:
            _check_dims(db, model, matrix.shape[1])  # type: ignore[arg-type]
        _delete_children(db, [document_id], deleting_documents=False)  # type: ignore[list-item]
        written = _insert_chunks(db, [(document_id, texts, ids)])  # type: ignore[list-item]
        if matrix is not None:
            _write_vectors(db, model, [(c, d, h) for c, d, _, h in written], matrix, _now())  # type: ignore[arg-type]
    return [
        Chunk(id=c, document=d, chunk_index=i, text=t, hash=h)
        for i, (c, d, t, h) in enumerate(written)
    ]


# --------------------------------------------------------------------------- reading documents


def _with_chunks(query: Any) -> Document | None:
    docs = prefetch(query, Chunk.select().order_by(Chunk.chunk_index))
    return docs[0] if docs else None


def get_document(document_id: str) -> Document | None:
    """The document with this id, its ``chunks`` in order; ``None`` if there is none."""
    bound_database()
    return _with_chunks(Document.select().where(Document.id == document_id))


def get_document_by_source(source: str, source_id: str) -> Document | None:
    """The document with this ``(source, source_id)``, its ``chunks`` in order, or ``None``."""
    bound_database()
    return _with_chunks(
        Document.select().where((Document.source == source) & (Document.source_id == source_id))
    )


# --------------------------------------------------------------------------- embeddings


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
        _text(chunk_id, f"row {n} chunk_id", empty=False)
        _text(model, f"row {n} model", empty=False)
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
    with translate_errors(db.database, "write"), db.atomic("IMMEDIATE"):
        now = _now()
        for model, (ids, vectors) in by_model.items():
            found = _chunk_parents(db, ids)
            missing = [c for c in ids if c not in found]
            if missing:
                raise ValidationError(
                    f"{len(missing)} chunk id(s) not found, e.g. {missing[:3]}; nothing was written"
                )
            chunks = [(c, found[c][0], found[c][1]) for c in ids]
            total += _write_vectors(db, model, chunks, np.stack(vectors), now)
    return total


def _chunk_parents(db: Database, chunk_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """chunk id -> (document id, hash) for the chunks that exist."""
    found: dict[str, tuple[str, str]] = {}
    for batch in _batches(list(dict.fromkeys(chunk_ids))):
        query = Chunk.select(Chunk.id, Chunk.document, Chunk.hash).where(Chunk.id.in_(batch))
        for chunk_id, document_id, digest in db.execute_sql(*query.sql()):
            found[chunk_id] = (document_id, digest)
    return found


def _pending_query(model: str) -> Any:
    return (
        Chunk.select(Chunk)
        .join(
            Embedding,
            JOIN.LEFT_OUTER,
            on=(Embedding.chunk == Chunk.id) & (Embedding.model == model),
        )
        .where(Embedding.chunk.is_null() | (Embedding.hash != Chunk.hash))
        .order_by(Chunk.document, Chunk.chunk_index)
    )


def pending_chunks(model: str, limit: int | None = None) -> list[Chunk]:
    """Chunks that need an embedding from ``model``: none yet, or a stale one (hash differs)."""
    bound_database()
    _text(model, "model", empty=False)
    query = _pending_query(model)
    if limit is not None:
        query = query.limit(limit)
    return list(query)


def embed_pending(
    embedder: Embedder, batch_size: int = 256, *, progress: bool = False
) -> int:
    """Embed every pending chunk with ``embedder``, one transaction per batch; returns the count."""
    db = bound_database()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_dims(db, embedder.model, embedder.dims)
    total_pending = _pending_query(embedder.model).count()
    done = 0
    with _progress(progress, total_pending, "chunks") as bar:
        while True:
            chunks = pending_chunks(embedder.model, limit=batch_size)
            if not chunks:
                break
            matrix = embed_texts(embedder, [c.text for c in chunks])
            with translate_errors(db.database, "write"), db.atomic("IMMEDIATE"):
                # Chunks replaced meanwhile by another writer are skipped, not errors.
                found = _chunk_parents(db, [c.id for c in chunks])
                keep = [i for i, c in enumerate(chunks) if found.get(c.id, (None, None))[1] == c.hash]
                rows = [(chunks[i].id, found[chunks[i].id][0], chunks[i].hash) for i in keep]
                done += _write_vectors(db, embedder.model, rows, matrix[keep], _now())
            bar.update(len(chunks))
    log.info("embedded %d chunks with %s", done, embedder.model)
    return done


def clear_embeddings(model: str | None = None) -> int:
    """Delete embeddings and vectors (of ``model``, or all); returns how many embeddings went."""
    db = bound_database()
    with translate_errors(db.database, "write"), db.atomic("IMMEDIATE"):
        if model is None:
            ChunkVector.delete().execute()
            return Embedding.delete().execute()
        of_model = Embedding.select(Embedding.chunk).where(Embedding.model == model)
        ChunkVector.delete().where(ChunkVector.chunk.in_(of_model)).execute()
        return Embedding.delete().where(Embedding.model == model).execute()


# --------------------------------------------------------------------------- checkpoints


def get_checkpoint(source: str) -> int | None:
    """The stored cursor for ``source``, or ``None``; a non-integer cursor raises CorruptValueError."""
    bound_database()
    _text(source, "source", empty=False)
    row = Checkpoint.get_or_none(Checkpoint.source == source)
    return None if row is None else row.cursor


def set_checkpoint(source: str, cursor: int) -> None:
    """Store ``cursor`` (an integer, e.g. the newest ``updated_at`` synced) for ``source``."""
    db = bound_database()
    _text(source, "source", empty=False)
    if cursor is None:
        raise ValidationError("cursor must be an integer, got None")
    Checkpoint.cursor.db_value(cursor)  # validates type and range before anything is sent
    with translate_errors(db.database, "write"):
        Checkpoint.insert(source=source, cursor=cursor, updated_at=_now()).on_conflict(
            conflict_target=[Checkpoint.source],
            preserve=[Checkpoint.cursor, Checkpoint.updated_at],
        ).execute()


# --------------------------------------------------------------------------- deleting


def delete_document(document_id: str) -> bool:
    """Delete a document and everything of it (children first); False if there was none."""
    db = bound_database()
    _text(document_id, "document id", empty=False)
    with translate_errors(db.database, "write"), db.atomic("IMMEDIATE"):
        if not Document.select().where(Document.id == document_id).exists():
            return False
        _delete_children(db, [document_id], deleting_documents=True)
        Document.delete().where(Document.id == document_id).execute()
    return True


def delete_source(source: str) -> int:
    """Delete every document of ``source`` and everything of them; returns the document count."""
    db = bound_database()
    _text(source, "source", empty=False)
    with translate_errors(db.database, "write"), db.atomic("IMMEDIATE"):
        ids = [row[0] for row in Document.select(Document.id).where(Document.source == source).tuples()]
        _delete_children(db, ids, deleting_documents=True)
        for batch in _batches(ids):
            Document.delete().where(Document.id.in_(batch)).execute()
        Checkpoint.delete().where(Checkpoint.source == source).execute()
    return len(ids)


# --------------------------------------------------------------------------- stats and export


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
            GROUP BY d.source ORDER BY d.source
            """
        ).fetchall()
        stale = db.execute_sql(
            "SELECT count(*) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id WHERE e.hash != c.hash"
        ).fetchone()[0]
        models = dict(db.execute_sql("SELECT model, count(*) FROM embeddings GROUP BY model ORDER BY model"))
        orphan_checkpoints = db.execute_sql(
            "SELECT source, cursor, updated_at FROM checkpoints "
            "WHERE source NOT IN (SELECT DISTINCT source FROM documents) ORDER BY source"
        ).fetchall()
    sources = [
        SourceStats(src, docs, chunks, embedded, _cursor_or_none(cursor), _iso(at))
        for src, docs, chunks, embedded, cursor, at in per_source
    ] + [SourceStats(src, 0, 0, 0, _cursor_or_none(cursor), _iso(at)) for src, cursor, at in orphan_checkpoints]
    return StoreStats(
        documents=sum(s.documents for s in sources),
        chunks=sum(s.chunks for s in sources),
        embedded=sum(s.embedded for s in sources),
        stale=stale,
        models=models,
        size_bytes=_size_on_disk(db.database),
        sources=sorted(sources, key=lambda s: s.source),
    )


def _cursor_or_none(value: Any) -> int | None:
    try:
        return Checkpoint.cursor.python_value(value)
    except Exception:
        return None


def _iso(epoch: Any) -> str | None:
    if epoch is None:
        return None
    return from_epoch(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def _size_on_disk(path: str) -> int:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(path + suffix)
        except OSError:
            pass
    return total


def export(fp: IO[str], *, source: str | None = None) -> int:
    """Write every document (of ``source``, or all) with its chunks as JSON Lines; returns the count.

    Rows stream from one read transaction, so memory stays flat and the output
    is one consistent snapshot.
    """
    db = bound_database()
    query = (
        Document.select(Document, Chunk.id, Chunk.chunk_index, Chunk.text, Chunk.hash)
        .join(Chunk, JOIN.LEFT_OUTER, on=(Chunk.document == Document.id))
        .order_by(Document.source, Document.source_id, Chunk.chunk_index)
    )
    if source is not None:
        query = query.where(Document.source == source)
    count = 0
    current: dict[str, Any] | None = None
    columns = [f.column_name for f in Document._meta.sorted_fields]
    with db.atomic():
        for row in db.execute_sql(*query.sql()):
            doc = dict(zip(columns, row[: len(columns)]))
            chunk_id, index, text, digest = row[len(columns) :]
            if current is None or current["id"] != doc["id"]:
                if current is not None:
                    fp.write(json.dumps(current, ensure_ascii=False) + "\n")
                    count += 1
                doc["metadata"] = _metadata_or_text(doc.pop("metadata_json"))
                current = {**doc, "chunks": []}
            if chunk_id is not None:
                current["chunks"].append({"id": chunk_id, "chunk_index": index, "text": text, "hash": digest})
        if current is not None:
            fp.write(json.dumps(current, ensure_ascii=False) + "\n")
            count += 1
    return count


def _metadata_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text

