"""Ingesting documents: upsert, chunk, replace chunks and embed, one transaction per batch."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
from peewee import Database, chunked

from ..backends import backend_for, translated
from ..chunking import DEFAULT_MAX_TOKENS, chunk_text
from ..embedders import Embedder, embed_texts
from ..errors import ValidationError
from ..fields import from_epoch, is_epoch
from ..hashing import chunk_hash, dedup_hash
from ..models import Chunk, Document, bound_database, new_ids
from . import inputs, writes

log = logging.getLogger(__name__)


DEFAULT_BATCH_SIZE = 500
# Columns compared to decide whether an unchanged document needs its row rewritten.
_DOCUMENT_COMPARED = ("source_url", "title", "author", "content_type", "metadata_json", "raw_json")


def _stored_rows(db: Database, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """The stored rows for these (source, source_id) keys, as raw database values.

    Looked up per source, as ``source = ? AND source_id IN (...)``: SQLite plans a
    row-value ``IN`` list as a scan of every document (so ingest grew quadratic),
    while this form walks the UNIQUE(source, source_id) index.
    """
    found: dict[tuple[str, str], tuple] = {}
    by_source: dict[str, list[str]] = {}
    for source, source_id in keys:
        by_source.setdefault(source, []).append(source_id)
    for source, source_ids in by_source.items():
        for batch in chunked(source_ids, writes.IN_BATCH):
            # A class is hashable; mypy reads peewee's instance __hash__ as the class's.
            sql = _stored_rows_sql(type(db), len(batch))  # type: ignore[arg-type]
            for row in db.execute_sql(sql, [source, *batch]):
                found[(row[0], row[1])] = row[2:]
    return found


@lru_cache(maxsize=32)
def _stored_rows_sql(database: type[Database], keys: int) -> str:
    """The lookup of ``keys`` documents of one source, compiled by peewee once per dialect and size.

    Compiling a 500-key ``IN`` node by node took 13% of ingesting one-chunk
    documents (bench.py backends); the statement only differs in its parameters.
    """
    columns = [
        Document.source,
        Document.source_id,
        Document.id,
        Document.created_at,
        Document.updated_at,
        Document.dedup_hash,
        *(Document._meta.columns[name] for name in _DOCUMENT_COMPARED),
    ]
    query = Document.select(*columns).where(
        (Document.source == "") & Document.source_id.in_([""] * keys)
    )
    sql, params = database(None).get_sql_context().sql(query).query()
    if len(params) != 1 + keys:
        raise RuntimeError(f"unexpected lookup SQL: {sql}")
    return sql


def _decide(doc: inputs.PendingDocument, stored: tuple | None, now: int) -> None:
    """Set timestamps, dedup hash and status against the stored row (or its absence).

    A new document already has its id (see :func:`_decide_batch`); a stored one takes the stored id.
    """
    if stored is None:
        doc.status = "created"
        doc.replace_created_at = False
        doc.final_created_at = doc.created_at if doc.created_at is not None else now
        doc.final_updated_at = doc.updated_at if doc.updated_at is not None else now
        doc.dedup = dedup_hash(doc.source, doc.source_id, doc.final_updated_at, doc.body)
        return
    doc_id, created_at, updated_at, stored_dedup, *compared = stored
    doc.id = doc_id
    # A timestamp another program stored that is not epoch seconds (check reports it) can be
    # neither hashed nor read back: created_at is written anew, updated_at counts as changed.
    doc.replace_created_at = not is_epoch(created_at)
    if doc.replace_created_at:
        doc.final_created_at = doc.created_at if doc.created_at is not None else now
    else:
        doc.final_created_at = created_at
    if doc.updated_at is not None:
        doc.final_updated_at = doc.updated_at
    elif not is_epoch(updated_at):
        doc.final_updated_at = now
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
    if doc.status == "unchanged" and doc.replace_created_at:
        doc.status = "metadata"  # the row is written again, for its created_at


def _same_json(stored: Any, new: str) -> bool:
    """Equal as JSON values: another program may space or order its JSON text differently."""
    if stored == new:
        return True
    try:
        return bool(json.loads(stored) == json.loads(new))
    except (TypeError, ValueError, RecursionError):
        return False


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


@dataclass
class _Batch:
    """Documents decided and chunked (and embedded) outside the write lock, ready to commit."""

    docs: list[inputs.PendingDocument]
    with_chunks: bool
    embedder: Embedder | None
    max_tokens: int
    now: int


def _decide_batch(
    db: Database,
    docs: list[inputs.PendingDocument],
    now: int,
    *,
    with_chunks: bool,
    max_tokens: int,
) -> None:
    """Decide every document against the stored rows.

    With chunks, a document whose content is unchanged is still rewritten when
    its stored chunks are not the chunking of its body (say, after
    ``upsert_document`` alone changed the body): chunks always follow the body.
    """
    stored = _stored_rows(db, [d.key for d in docs])
    # Ids for new documents in one draw (see models.new_ids).
    new = [d for d in docs if d.key not in stored and not d.id]
    for doc, doc_id in zip(new, new_ids(len(new)), strict=True):
        doc.id = doc_id
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
    for batch in chunked(document_ids, writes.IN_BATCH):
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
    docs: list[inputs.PendingDocument],
    *,
    with_chunks: bool,
    embedder: Embedder | None,
    max_tokens: int,
) -> _Batch:
    """Decide against the stored rows, then chunk and embed what changed; writes nothing."""
    docs = list({doc.key: doc for doc in docs}.values())  # a later duplicate of a key wins
    now = writes.now()
    _decide_batch(db, docs, now, with_chunks=with_chunks, max_tokens=max_tokens)
    if with_chunks:
        _prepare_chunks(
            [d for d in docs if d.status in ("created", "updated")], embedder, max_tokens
        )
    return _Batch(docs, with_chunks, embedder, max_tokens, now)


def _commit_batch(db: Database, batch: _Batch) -> list[IngestResult]:
    """Write a prepared batch in one IMMEDIATE transaction, deciding again under the lock."""
    docs, embedder = batch.docs, batch.embedder
    with backend_for(db).write_transaction():
        # Another writer may have changed these rows since the batch was prepared.
        _decide_batch(
            db, docs, batch.now, with_chunks=batch.with_chunks, max_tokens=batch.max_tokens
        )
        changed = [d for d in docs if d.status in ("created", "updated")]
        if batch.with_chunks:
            _prepare_chunks(changed, embedder, batch.max_tokens)
            if embedder is not None:
                writes.check_dims(db, embedder.model, embedder.dims)
        writes.DOCUMENT_UPSERT.execute(db, (d.row() for d in docs if d.status != "unchanged"))
        for d in docs:
            if d.replace_created_at:  # the upsert keeps created_at, as the contract says
                Document.update(created_at=d.final_created_at).where(Document.id == d.id).execute()
        results = {d.key: IngestResult(d.id, d.source, d.source_id, d.status) for d in docs}
        if batch.with_chunks:
            writes.delete_children(
                db, [d.id for d in changed if d.status == "updated"], deleting_documents=False
            )
            written = writes.insert_chunks(db, [(d.id, d.chunks or [""], None) for d in changed])
            embedded = 0
            if embedder is not None and changed:
                matrix = np.concatenate([d.vectors for d in changed if d.vectors is not None])
                embedded = writes.write_vectors(
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
    docs: list[inputs.PendingDocument],
    *,
    with_chunks: bool,
    embedder: Embedder | None,
    max_tokens: int,
) -> list[IngestResult]:
    """Prepare and commit one batch, in this thread."""
    batch = _prepare_batch(
        db, docs, with_chunks=with_chunks, embedder=embedder, max_tokens=max_tokens
    )
    return _commit_batch(db, batch)


def _prepare_chunks(
    docs: Sequence[inputs.PendingDocument], embedder: Embedder | None, max_tokens: int
) -> None:
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


def _document_from(doc: inputs.PendingDocument) -> Document:
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


@translated("write")
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
    doc = inputs.pending_document(
        source,
        source_id,
        body,
        title=title,
        author=author,
        source_url=source_url,
        created_at=created_at,
        updated_at=updated_at,
        content_type=content_type,
        metadata=metadata,
        raw_json=raw_json,
    )
    (result,) = _write_documents(
        db, [doc], with_chunks=False, embedder=None, max_tokens=DEFAULT_MAX_TOKENS
    )
    return _document_from(doc), result.changed


@translated("write")
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
    doc = inputs.pending_document(
        source,
        source_id,
        body,
        title=title,
        author=author,
        source_url=source_url,
        created_at=created_at,
        updated_at=updated_at,
        content_type=content_type,
        metadata=metadata,
        raw_json=raw_json,
    )
    (result,) = _write_documents(
        db, [doc], with_chunks=True, embedder=embedder, max_tokens=max_tokens
    )
    return result


@translated("write")
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
    prepare_batch = partial(
        _prepare_batch, db, with_chunks=True, embedder=embedder, max_tokens=max_tokens
    )
    # An in-memory database is private to its connection, so a worker thread
    # (with a connection of its own) would see an empty one: prepare inline.
    name = str(db.database)
    in_memory = name.startswith((":memory:", "file::memory:")) or "mode=memory" in name
    worker = None if in_memory else ThreadPoolExecutor(1, thread_name_prefix="ctx_models-prepare")

    def prepare(docs: list[inputs.PendingDocument]) -> Future[_Batch]:
        if worker is None:
            done: Future[_Batch] = Future()
            done.set_result(prepare_batch(docs))
            return done
        return worker.submit(prepare_batch, docs)

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
        with writes.progress(progress, total, "documents") as bar:
            docs: list[inputs.PendingDocument] = []
            while True:
                try:
                    item = next(iterator, _END)
                    if item is _END:
                        break
                    docs.append(inputs.pending_from_item(item))
                except Exception:
                    # A bad item (or a failing source of items): the batch prepared
                    # before it is whole and valid, so it is committed first.
                    if in_flight is not None:
                        prepared, in_flight = in_flight, None
                        commit(prepared)
                    raise
                if len(docs) >= batch_size:
                    upcoming, docs = prepare(docs), []
                    previous, in_flight = in_flight, upcoming
                    if previous is not None:
                        commit(previous)
            last, in_flight = in_flight, None
            if last is not None:
                commit(last)
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
        summary.documents,
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.chunks,
    )
    return summary


_END = object()
