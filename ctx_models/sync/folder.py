"""Keeping a store in step with a folder of files, as ``ctx sync filesystem`` fills it, incrementally.

Each selected file is a document exactly as ctx's filesystem connector makes
it: ``source`` ``filesystem:NAME``, ``source_id`` the path relative to the
root, ``source_url`` ``file://`` and the absolute path, ``title`` the file's
name, ``created_at`` = ``updated_at`` = its modification time. The one
addition is ``metadata_json`` key ``ctx_models.file``: the size and mtime in
nanoseconds the document was read at, so the next sync can tell an unchanged
file by ``stat`` alone, without reading it (ctx neither reads nor keeps the key).

A file is read only when it is new, or its stat differs from the stored one (or
none is stored): then its content goes through :func:`store.ingest_many`, which
writes nothing when the dedup hash is unchanged, and replaces the chunks of a
changed document, in one transaction per batch. Vectors of chunk texts the
document had before are reused, not computed again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from peewee import chunked, fn

from ..backends import backend_for, translated
from ..chunking import DEFAULT_MAX_TOKENS, chunk_text
from ..embedders import Embedder, default_embedder, embedder_for_model
from ..errors import CorruptValueError, EmbedderUnavailableError, ValidationError
from ..hashing import dedup_hash
from ..models import Document, Embedding, bound_database
from ..store import get_checkpoint, ingest_many, inputs, set_checkpoint, writes
from ..store.ingest import DEFAULT_BATCH_SIZE, IngestResult
from .lock import sync_lock
from .read import Skip, decode, read_file
from .reuse import ReusingEmbedder
from .walk import DEFAULT_INCLUDE, FoundFile, content_type_of, display_text, scan

__all__ = [
    "DEFAULT_MAX_BYTES",
    "STAT_KEY",
    "SyncReport",
    "store_embedder",
    "sync_folder",
]

log = logging.getLogger(__name__)

#: ctx's limit on a file's size (its max_extract_bytes), applied here to every file.
DEFAULT_MAX_BYTES = 50_000_000
#: The metadata_json key that holds what a file's stat was when it was read.
STAT_KEY = "ctx_models.file"
# A file modified this close to the moment it was read may change again within the
# file system's timestamp resolution (1-2 s on some) without its mtime moving: its stat
# is not recorded, so the next sync reads it and compares content (git's "racy" rule).
RACY_NS = 2_000_000_000


@dataclass
class SyncReport:
    """What a sync of one folder found and did (or, in a dry run, would do)."""

    source: str
    root: str
    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Files read because their stat differed or was not recorded, whose content was the same.
    reread: int = 0
    #: (source_id, reason) of files selected but not synced; the reason's text before ":" is its kind.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: source_ids stored for this source whose files are gone (or no longer selected).
    vanished: list[str] = field(default_factory=list)
    pruned: int = 0
    chunks: int = 0
    vectors: int = 0
    #: Of ``vectors``, those copied from the document's previous chunks instead of computed.
    reused: int = 0
    checkpoint: int | None = None
    seconds: float = 0.0
    #: (what, source_id) for every created, updated and pruned document, in that order of events.
    changes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seen(self) -> int:
        """Files selected by the globs: synced, unchanged or skipped."""
        return self.created + self.updated + self.unchanged + len(self.skipped)

    def _seen(self) -> str:
        return f"{self.seen} file{'' if self.seen == 1 else 's'} seen"

    def skip_reasons(self) -> dict[str, int]:
        """How many files were skipped, per kind of reason."""
        return dict(Counter(reason.split(":", 1)[0] for _, reason in self.skipped))

    def summary(self) -> str:
        """One line: files seen, created, updated, unchanged, skipped, pruned, chunks, vectors, time."""
        reasons = ", ".join(f"{n} {kind}" for kind, n in sorted(self.skip_reasons().items()))
        skipped = f"{len(self.skipped)} skipped" + (f" ({reasons})" if reasons else "")
        kept = len(self.vanished) - self.pruned
        if self.dry_run:
            gone = f"{self.pruned} to prune"
            if kept:
                gone += f", {kept} vanished (kept; --prune would remove them)"
            return (
                f"{self.source}: dry run, nothing written: {self._seen()}, "
                f"{self.created} to create, {self.updated} to update, {self.unchanged} unchanged, "
                f"{skipped}, {gone}; about {self.chunks} chunks to write"
            )
        pruned = f"{self.pruned} pruned"
        if kept:
            pruned += f", {kept} vanished (kept; --prune removes them)"
        vectors = f"{self.vectors} vectors" + (f" ({self.reused} reused)" if self.reused else "")
        reread = f" ({self.reread} read to compare)" if self.reread else ""
        return (
            f"{self.source}: {self._seen()}, {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged{reread}, {skipped}, {pruned}; {self.chunks} chunks and {vectors} "
            f"written in {self.seconds:.2f} s"
        )


def store_embedder() -> Embedder:
    """The embedder of the model most of the store's vectors are of, else the default one."""
    query: Any = (
        Embedding.select(Embedding.model, fn.COUNT(Embedding.chunk).alias("n"))
        .group_by(Embedding.model)
        .order_by(fn.COUNT(Embedding.chunk).desc(), Embedding.model)
        .limit(1)
        .tuples()
    )
    rows = list(query)
    if not rows:
        return default_embedder()
    try:
        return embedder_for_model(rows[0][0])
    except EmbedderUnavailableError as exc:
        raise EmbedderUnavailableError(
            f"the store's vectors are of model {rows[0][0]!r}, which cannot embed here: {exc}. "
            "Choose another model (--model, --dims) or write chunks only (--no-embed)"
        ) from None


@translated("write")
def sync_folder(
    root: str | os.PathLike[str],
    *,
    name: str | None = None,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    embedder: Embedder | None = None,
    embed: bool = True,
    prune: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    progress: bool = False,
    wait: bool = False,
) -> SyncReport:
    """Sync the files of the folder ``root`` into the bound store as source ``filesystem:NAME``.

    ``name`` defaults to the folder's name. ``include``/``exclude`` are globs on
    the path relative to the root (``.git``, ``target`` and ``node_modules`` are
    always excluded). Files larger than ``max_bytes``, text that is not UTF-8 and
    files whose text cannot be extracted are skipped and reported. Chunks are
    embedded with ``embedder``, by default the model of the store's vectors (or
    the default model); ``embed=False`` writes chunks only. ``prune`` deletes the
    documents of files that are gone; ``dry_run`` reads and reports but writes
    nothing. Raises SyncInProgressError when another sync holds the store
    (unless ``wait``).
    """
    started = time.perf_counter()
    folder = _checked_root(root)
    label = name if name is not None else os.path.basename(folder)
    if not isinstance(label, str) or not label.strip() or "\x00" in label:
        raise ValidationError(
            f"cannot name the source of {folder}: give a name (--name), got {label!r}"
        )
    for option, value in (("batch_size", batch_size), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"{option} must be a positive integer, got {value!r}")
    include, exclude = _globs(include, "include"), _globs(exclude, "exclude")
    source = f"filesystem:{display_text(label)}"
    report = SyncReport(source=source, root=folder, dry_run=dry_run)
    db = bound_database()
    # A dry run writes nothing, so it needs no lock (and works on a store it cannot write).
    with nullcontext() if dry_run else sync_lock(db, wait=wait):
        found = scan(
            folder,
            include=include,
            exclude=exclude,
            follow_symlinks=follow_symlinks,
            max_bytes=max_bytes,
        )
        report.skipped.extend(found.skipped)
        stored = _stored_documents(source)
        present = {f.source_id for f in found.files}
        report.vanished = sorted(set(stored) - present)
        if prune and stored and not found.files:
            raise ValidationError(
                f"{folder} holds no file to sync; refusing to prune all {len(stored)} documents "
                f"of {source} (is the folder unmounted?). Delete the source with "
                f"`ctx-models delete --source {source}` if that is what you want"
            )
        to_read: list[FoundFile] = []
        newest = 0
        for file in found.files:
            row = stored.get(file.source_id)
            if row is not None and _unchanged_by_stat(file, row):
                report.unchanged += 1
                newest = max(newest, _epoch(file.mtime_ns))
            else:
                to_read.append(file)
        if dry_run:
            _dry_run(report, source, to_read, stored, max_bytes, follow_symlinks, max_tokens)
            if prune:
                report.pruned = len(report.vanished)
                report.changes.extend(("pruned", s) for s in report.vanished)
        else:
            if embed and embedder is None:
                embedder = store_embedder()
            reader = _Reader(source, to_read, stored, max_bytes, follow_symlinks, report)
            reusing = ReusingEmbedder(embedder) if embed and embedder is not None else None
            newest = max(newest, _ingest(reader, reusing, report, batch_size, max_tokens, progress))
            if prune and report.vanished:
                _prune(report, [stored[s][0] for s in report.vanished])
            report.checkpoint = _update_checkpoint(source, newest)
    report.seconds = time.perf_counter() - started
    log.info("%s", report.summary())
    return report


def _checked_root(root: Any) -> str:
    if not isinstance(root, (str, os.PathLike)):
        raise ValidationError(f"root must be a path, got {type(root).__name__}")
    folder = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.exists(folder):
        raise ValidationError(f"{folder} does not exist; give the folder to sync")
    if not os.path.isdir(folder):
        raise ValidationError(f"{folder} is not a folder; give the folder that holds the files")
    return folder


def _globs(patterns: Any, what: str) -> tuple[str, ...]:
    if isinstance(patterns, str):
        patterns = (patterns,)
    try:
        found = tuple(patterns)
    except TypeError:
        raise ValidationError(f"{what} must be a list of globs, got {patterns!r}") from None
    for pattern in found:
        if not isinstance(pattern, str) or not pattern:
            raise ValidationError(f"{what} globs must be non-empty strings, got {pattern!r}")
    return found


def _epoch(mtime_ns: int) -> int:
    """Whole seconds, as ctx takes them (a time before 1970 counts as 0)."""
    return max(0, mtime_ns // 1_000_000_000)


# Stored row: (id, updated_at, dedup_hash, title, source_url, content_type, metadata_json)
_Stored = tuple[str, int, str, Any, Any, str, str]


def _stored_documents(source: str) -> dict[str, _Stored]:
    """source_id -> the stored columns a sync compares, for every document of ``source``."""
    query = Document.select(
        Document.source_id,
        Document.id,
        Document.updated_at,
        Document.dedup_hash,
        Document.title,
        Document.source_url,
        Document.content_type,
        Document.metadata,
    ).where(Document.source == source)
    db = bound_database()
    return {row[0]: tuple(row[1:]) for row in db.execute_sql(*query.sql())}


def _unchanged_by_stat(file: FoundFile, row: _Stored) -> bool:
    """The stored document was read from this very file as it is now: same stat, same fields."""
    _, updated_at, _, title, url, content_type, metadata_json = row
    if (updated_at, title, url, content_type) != (
        _epoch(file.mtime_ns),
        _title(file),
        _url(file),
        content_type_of(file.source_id),
    ):
        return False
    try:
        recorded = json.loads(metadata_json).get(STAT_KEY)
    except (ValueError, AttributeError, TypeError):
        return False
    return recorded == {"size": file.size, "mtime_ns": file.mtime_ns}


def _title(file: FoundFile) -> str:
    return file.source_id.rsplit("/", 1)[-1]


def _url(file: FoundFile) -> str:
    return "file://" + file.url_path


# --------------------------------------------------------------------------- reading

class _Reader:
    """The documents of the files to read, as ingest_many items; records what it skips."""

    def __init__(
        self,
        source: str,
        files: list[FoundFile],
        stored: dict[str, _Stored],
        max_bytes: int,
        follow_symlinks: bool,
        report: SyncReport,
    ) -> None:
        self.source, self.files, self.stored = source, files, stored
        self.max_bytes, self.follow_symlinks, self.report = max_bytes, follow_symlinks, report
        self.mtimes: dict[str, int] = {}  # source_id -> updated_at, of the documents handed on
        self.on_skip: Any = None
        self.embedder: ReusingEmbedder | None = None

    def documents(self) -> Iterator[inputs.PendingDocument]:
        for file in self.files:
            try:
                data, st = read_file(file, self.max_bytes, self.follow_symlinks)
                body, content_type = decode(file, data)
            except Skip as exc:
                self.skip(file, str(exc))
                continue
            updated_at = _epoch(st.st_mtime_ns)
            metadata: dict[str, Any] = {}
            if st.st_mtime_ns < time.time_ns() - RACY_NS:
                metadata[STAT_KEY] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            row = self.stored.get(file.source_id)
            if row is not None and self.embedder is not None:
                if dedup_hash(self.source, file.source_id, updated_at, body) != row[2]:
                    self.embedder.remember(row[0])
            self.mtimes[file.source_id] = updated_at
            yield inputs.pending_document(
                self.source,
                file.source_id,
                body,
                title=_title(file),
                source_url=_url(file),
                created_at=updated_at,
                updated_at=updated_at,
                content_type=content_type,
                metadata=metadata,
            )

    def skip(self, file: FoundFile, reason: str) -> None:
        log.info("skipped %s: %s", file.source_id, reason)
        self.report.skipped.append((file.source_id, reason))
        if self.on_skip is not None:
            self.on_skip()


def _ingest(
    reader: _Reader,
    embedder: ReusingEmbedder | None,
    report: SyncReport,
    batch_size: int,
    max_tokens: int,
    progress: bool,
) -> int:
    """Write the documents read, in batches; returns the newest updated_at written or kept."""
    reader.embedder = embedder
    newest = 0
    with writes.progress(progress and bool(reader.files), len(reader.files), "files") as bar:
        reader.on_skip = lambda: bar.update(1)

        def committed(results: list[IngestResult]) -> None:
            nonlocal newest
            for result in results:
                if embedder is not None:
                    embedder.forget(result.document_id)
                newest = max(newest, reader.mtimes.get(result.source_id, 0))
                if result.status == "created":
                    report.created += 1
                elif result.status == "updated":
                    report.updated += 1
                else:
                    report.unchanged += 1
                    report.reread += 1
                if result.changed:
                    report.changes.append((result.status, result.source_id))
                report.chunks += result.chunks
                report.vectors += result.embedded
            bar.update(len(results))
            bar.set_postfix(chunks=report.chunks, vectors=report.vectors, refresh=False)

        # ingest_many takes validated PendingDocuments as items, as well as mappings.
        items: Any = reader.documents()
        ingest_many(
            items,
            embedder=embedder,
            batch_size=batch_size,
            max_tokens=max_tokens,
            on_commit=committed,
        )
    if embedder is not None:
        report.reused = embedder.reused
    return newest


def _dry_run(
    report: SyncReport,
    source: str,
    files: list[FoundFile],
    stored: dict[str, _Stored],
    max_bytes: int,
    follow_symlinks: bool,
    max_tokens: int,
) -> None:
    """Read the files a sync would read and say what would change; writes nothing."""
    for file in files:
        try:
            data, st = read_file(file, max_bytes, follow_symlinks)
            body, _ = decode(file, data)
        except Skip as exc:
            report.skipped.append((file.source_id, str(exc)))
            continue
        row = stored.get(file.source_id)
        if row is not None and dedup_hash(source, file.source_id, _epoch(st.st_mtime_ns), body) == row[2]:
            report.unchanged += 1
            report.reread += 1
            continue
        status = "created" if row is None else "updated"
        setattr(report, status, getattr(report, status) + 1)
        report.changes.append((status, file.source_id))
        report.chunks += len(chunk_text(body, max_tokens))


def _prune(report: SyncReport, ids: list[str]) -> None:
    """Delete the documents of vanished files, children first, one transaction per batch."""
    db = bound_database()
    for batch in chunked(ids, writes.IN_BATCH):
        with backend_for(db).write_transaction():
            report.pruned += writes.delete_documents(db, batch)
    report.changes.extend(("pruned", s) for s in report.vanished)


def _update_checkpoint(source: str, newest: int) -> int | None:
    """Move the source's cursor up to the newest updated_at synced, as ctx does; only if it moves.

    A stored cursor that is not an integer counts as no checkpoint, as ctx reads it (the
    files were compared by their stat anyway), and is replaced.
    """
    try:
        previous = get_checkpoint(source)
    except CorruptValueError as exc:
        log.warning("%s; read as no checkpoint, as ctx does", exc)
        previous = None
    if not newest:
        return previous
    cursor = max(previous or 0, newest)
    if cursor != previous:
        set_checkpoint(source, cursor)
    return cursor
