"""Exact vector search from memory: every stored vector, normalised, in one float32 matrix.

Reading every BLOB for every query (what the ``ctx`` tool does) costs far more
than the arithmetic. :class:`VectorIndex` reads them once, keeps the
L2-normalised matrix with small arrays beside it (row id, source, updated_at,
model per row), and answers a query with one matrix-vector product and a
partition. Filters are boolean masks over those arrays. A small index also
keeps each chunk's id, document id and snippet, from its second search on, so
a warm search runs no SQL but the freshness test.

The index is rebuilt when the data may have changed. The test runs inside
the caller's read transaction: ``PRAGMA data_version`` changes when another
connection (or process) commits, and ``total_changes`` when this connection
writes, so neither kind of change can go unnoticed, and the index always
matches the snapshot the caller reads. Both counters belong to one
connection, so each connection (in peewee: each thread) has its own index.
(SQLite-specific: a PostgreSQL backend would need its own change signal.)
"""

from __future__ import annotations

import logging
import mmap
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ... import snippets
from ...errors import CorruptValueError, OutOfMemoryError
from ...fields import as_text
from ..base import Candidate
from .connection import change_stamp

__all__ = ["VectorIndex", "VectorHits"]

log = logging.getLogger(__name__)

# One scan in rowid order reads each vector with its row id. The scan reads every
# vector page once, so caching those pages is useless: the cache is kept small
# for its duration, and the process's memory is the matrix (measured at 100,000
# x 384: peak 1.1x the matrix, against 2.5x with the connection's cache and a
# memory map, for the same speed: bench.py search, "build memory"). The slice
# of rows copied and normalised together, and that cache, are small for the
# same reason: at 5,000 x 384 (a 7.7 MB matrix) a first search peaked 8 MB
# above the matrix with 1,000-row slices and a 2 MB cache, 2.7 MB with 250 rows
# and 256 KB, and building 100,000 vectors took as long with slices of 200 or
# 1,000 rows (190-210 ms).
# Only whole float32 BLOBs are vectors. Another program may store anything in the column
# (text, a number, 5 bytes): such rows are left out of search with a warning, not allowed to
# fail it; `ctx-models check` reports them and `--repair` deletes them.
USABLE_VECTOR = (
    "typeof(embedding) = 'blob' AND length(embedding) > 0 AND length(embedding) % 4 = 0"
)
_VECTOR_ROWS_SQL = f"SELECT rowid, embedding FROM chunk_vectors WHERE {USABLE_VECTOR} ORDER BY rowid"
_VECTOR_COUNT_SQL = f"SELECT count(*), count(CASE WHEN {USABLE_VECTOR} THEN 1 END) FROM chunk_vectors"
_LENGTHS_FROM_SQL = (
    "SELECT length(embedding), count(*) FROM chunk_vectors "
    f"WHERE rowid >= ? AND {USABLE_VECTOR} GROUP BY 1"
)
_SLICE_ROWS = 250
_SCAN_CACHE_KIB = 256
# One row per document (a covering scan of idx_chunk_vectors_document_id), not per vector.
_VECTOR_DOCUMENTS_SQL = (
    "SELECT document_id, group_concat(rowid) FROM chunk_vectors GROUP BY document_id"
)
_VECTOR_MODELS_SQL = "SELECT cv.rowid, e.model FROM chunk_vectors AS cv JOIN embeddings AS e ON e.chunk_id = cv.chunk_id"
_DOCUMENTS_SQL = "SELECT id, source, updated_at FROM documents"
_MODEL_COUNTS_SQL = "SELECT model, count(*) FROM embeddings GROUP BY model ORDER BY 2 DESC, 1"
# Chunk id, document and the start of the text of every vector with a chunk.
_DETAILS_SQL = (
    "SELECT cv.rowid, c.id, c.document_id, substr(c.text, 1, ?) "
    "FROM chunk_vectors AS cv JOIN chunks AS c ON c.id = cv.chunk_id"
)
# A warm search of a small index spends more time fetching its winners' ids and
# snippets from SQLite (0.3-0.6 ms for 80 rows) than scoring every vector, so an
# index of at most this many vectors keeps them in memory: about 0.5 KB a row
# (2.5 MB at 5,000 rows, beside a 7.7 MB matrix of 384 dimensions), read once in
# 25-100 ms at 5,000 rows. A bigger index fetches its winners: reading every
# chunk's text would stall one search for longer than the fetches it saves.
_DETAILS_MAX_ROWS = 10_000
# Below this norm a vector has no direction: it scores 0 against everything (as in ctx).
_EPSILON32 = float(np.finfo(np.float32).eps)


def _new_matrix(rows: int, dims: int) -> np.ndarray:
    """An uninitialised float32 matrix, in memory the kernel hands over in 4 KB pages.

    numpy asks Linux for huge pages for big arrays. Where the kernel compacts
    memory to find them as they are first touched (its default setting,
    ``defrag=madvise``), filling a new 1.5 GB matrix took 1.8-4.3 s on our test
    machine against 0.7-0.8 s in 4 KB pages, a first search of 1,000,000
    vectors 4.5-10.7 s against 2.3-5.0 s (of 100,000: median 294 ms against
    252), and warm queries ran as fast on either.
    """
    nbytes = rows * dims * 4
    try:
        if not nbytes or not hasattr(mmap, "MADV_NOHUGEPAGE"):  # Linux only
            return np.empty((rows, dims), dtype=np.float32)
        memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (MemoryError, OSError) as exc:
        raise OutOfMemoryError(
            f"vector search needs {nbytes / 1e6:,.1f} MB for {rows:,} vectors of {dims} "
            f"dimensions and the system refused it ({exc}); free memory, or keep a store "
            "this large in PostgreSQL"
        ) from exc
    memory.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(memory, dtype=np.float32).reshape(rows, dims)


@dataclass
class _Group:
    """All vectors of one length: the normalised matrix and, per row, what filters need.

    The per-row arrays for filters are filled on the first search that filters.
    """

    matrix: np.ndarray  # (n, dims) float32, rows of unit length (or zero)
    rowids: np.ndarray  # chunk_vectors.rowid, int64, ascending
    sources: np.ndarray | None = None  # source code per row, int32 (-1: document missing)
    updated: np.ndarray | None = None  # documents.updated_at per row, int64
    models: np.ndarray | None = None  # model code per row, int32 (-1: no embeddings row)
    # per row: (chunk id, document id, snippet), None where the chunk is missing
    details: list[tuple[str, str, str] | None] | None = None

    @property
    def nbytes(self) -> int:
        arrays = (self.matrix, self.rowids, self.sources, self.updated, self.models)
        return sum(a.nbytes for a in arrays if a is not None)


class _GroupBuilder:
    """Fills one group's matrix slice by slice: copy, then normalise while the slice is in cache."""

    def __init__(self, length: int, capacity: int) -> None:
        self.length = length
        self.capacity = capacity
        self.matrix: np.ndarray | None = None
        self.filled = 0
        self.positions: list[np.ndarray] = []

    def reserve(self, rows: int) -> None:
        """Make the matrix hold exactly ``rows`` rows in all (the rows filled are kept)."""
        self.capacity = rows
        if self.matrix is not None and len(self.matrix) != rows:
            resized = _new_matrix(max(rows, self.filled), self.length // 4)
            resized[: self.filled] = self.matrix[: self.filled]
            self.matrix = resized

    def add(self, blobs: list[bytes], positions: np.ndarray) -> None:
        if self.length == 0 or self.length % 4:
            raise CorruptValueError(
                f"vector BLOB(s) of {self.length} bytes, not a positive multiple of 4; "
                "run `ctx-models check --repair`"
            )
        part = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
        norms = np.sqrt(np.einsum("ij,ij->i", part, part))
        if not np.isfinite(norms).all():
            norms, kept = self._exact_norms(part, norms)
            if kept is not None:
                part, norms, positions = part[kept], norms[kept], positions[kept]
        if self.matrix is None or self.filled + len(part) > len(self.matrix):
            needed = self.filled + len(part)
            # The room counted for this length; twice what is needed only if the count was short.
            rows = self.capacity if self.capacity >= needed else max(self.capacity, 2 * needed)
            grown = _new_matrix(rows, self.length // 4)
            if self.matrix is not None:
                grown[: self.filled] = self.matrix[: self.filled]
            self.matrix = grown
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms >= _EPSILON32)
        np.multiply(part, scale[:, None], out=self.matrix[self.filled : self.filled + len(part)])
        self.filled += len(part)
        self.positions.append(positions)

    @staticmethod
    def _exact_norms(part: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Norms where float32 overflowed, in float64; and which rows to keep, if not all.

        A vector holding NaN or infinity (another program's: our writers refuse them) is
        left out of search with a warning rather than failing it; `ctx-models check
        --repair` deletes it.
        """
        bad = ~np.isfinite(norms)
        norms = norms.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            norms[bad] = np.linalg.norm(part[bad].astype(np.float64), axis=1)
        broken = ~np.isfinite(norms)
        if not broken.any():
            return norms, None
        log.warning(
            "%d stored vector(s) hold NaN or infinite values and are left out of search; "
            "run `ctx-models check --repair`",
            int(broken.sum()),
        )
        return norms, ~broken

    def finish(self, rowids: np.ndarray) -> _Group:
        assert self.matrix is not None
        matrix = self.matrix
        if self.filled < len(matrix):  # fewer rows of this length than room was made for
            matrix = _new_matrix(self.filled, matrix.shape[1])
            matrix[:] = self.matrix[: self.filled]
        return _Group(matrix, rowids[np.concatenate(self.positions)])


class VectorHits(list[tuple[int, float]]):
    """(rowid, cosine) pairs, best first; how many vectors were searched, and their scores' spread."""

    def __init__(
        self,
        hits: Iterable[tuple[int, float]] = (),
        searched: int = 0,
        spread: float = 0.0,
        positions: list[int] | None = None,
    ) -> None:
        super().__init__(hits)
        self.searched = searched
        self.spread = spread
        self.positions = positions or []  # each hit's row in its group, for the kept details


class VectorIndex:
    """The in-memory vectors seen by one connection; use :func:`index_for` to get it."""

    def __init__(self) -> None:
        self._groups: dict[int, _Group] = {}
        self._source_codes: dict[str, int] = {}
        self._model_codes: dict[str, int] = {}
        self._seen: tuple[int, int] | None = None  # (data_version, total_changes) when built
        self._conn: sqlite3.Connection | None = None
        self._models: dict[str, int] | None = None
        self._answered = 0  # searches answered by candidates() since the build
        self.builds = 0

    # ------------------------------------------------------------------ freshness

    def ensure_fresh(self, conn: sqlite3.Connection, *, may_hold_uncommitted: bool = False) -> bool:
        """Rebuild unless nothing was committed, by anyone, since the last build; True if rebuilt.

        Call inside a read transaction, so the check and the build see one
        snapshot. Set ``may_hold_uncommitted`` when that transaction may hold
        this connection's uncommitted writes: a rollback would undo them without
        changing either counter, so such a build is used once and not trusted.
        """
        seen = change_stamp(conn)
        if seen == self._seen:
            return False
        self._build(conn)
        self.builds += 1
        self._seen = None if may_hold_uncommitted else seen
        return True

    def invalidate(self) -> None:
        """Forget the build so the next search rebuilds."""
        self._seen = None

    # ------------------------------------------------------------------ building

    def _build(self, conn: sqlite3.Connection) -> None:
        with _small_cache(conn):
            groups = _read_groups(conn)
        self._groups, self._source_codes, self._model_codes = groups, {}, {}
        self._models = None
        self._answered = 0
        self._conn = conn
        log.debug("vector index built: %s", {d: len(g.rowids) for d, g in groups.items()})

    def _documents_of(self, group: _Group) -> tuple[np.ndarray, np.ndarray]:
        """Source code and updated_at per row of ``group``, read on first use.

        Read in a later search than the build, but only after that search found
        nothing changed, so it describes the same snapshot.
        """
        if group.sources is None or group.updated is None:
            assert self._conn is not None, "the index is built before it is searched"
            rowids, sources, updated = _document_columns(self._conn, self._source_codes)
            for each in self._groups.values():
                at = np.searchsorted(rowids, each.rowids)
                each.sources, each.updated = sources[at], updated[at]
        assert group.sources is not None and group.updated is not None
        return group.sources, group.updated

    def _models_of(self, group: _Group) -> np.ndarray:
        """Model code per row of ``group``, read on first use (in the snapshot the index was built from)."""
        if group.models is None:
            codes = {
                dims: np.full(len(g.rowids), -1, dtype=np.int32) for dims, g in self._groups.items()
            }
            position = {
                rowid: (dims, i)
                for dims, g in self._groups.items()
                for i, rowid in enumerate(g.rowids.tolist())
            }
            assert self._conn is not None, "the index is built before it is searched"
            for rowid, model in self._conn.execute(_VECTOR_MODELS_SQL):
                hit = position.get(rowid)
                if hit is not None:
                    codes[hit[0]][hit[1]] = self._model_codes.setdefault(
                        model, len(self._model_codes)
                    )
            for dims, g in self._groups.items():
                g.models = codes[dims]
        assert group.models is not None
        return group.models

    def _keep_details(self) -> None:
        """Read every vector's chunk id, document id and snippet (in the snapshot of the build).

        Read in a later search than the build, like the filter columns, and only
        after that search found nothing changed.
        """
        assert self._conn is not None, "the index is built before it is searched"
        conn = self._conn
        details: dict[int, tuple[str, str, str]] = {
            rowid: (as_text(chunk_id), as_text(document_id), snippets.start_of(as_text(text)))
            for rowid, chunk_id, document_id, text in conn.execute(
                _DETAILS_SQL, (snippets.VECTOR_CHARS + 1,)
            )
        }
        for group in self._groups.values():
            group.details = [details.get(rowid) for rowid in group.rowids.tolist()]

    def candidates(self, query_length: int, hits: VectorHits) -> list[Candidate] | None:
        """``hits`` (of a search for a vector of ``query_length``) as candidates, from the kept
        details; ``None`` when this index does not keep them, so the caller reads them from SQL.

        Call once per search, after :meth:`ensure_fresh` in the same snapshot. A
        small index reads the details on its second search after a build: a
        process that searches again and again, where they pay for themselves (a
        one-shot CLI search never reads them). A vector whose chunk is missing is
        left out, as the SQL join leaves it out.
        """
        self._answered += 1
        group = self._groups.get(query_length)
        if group is None or self.size > _DETAILS_MAX_ROWS or self._answered < 2:
            return None
        if group.details is None:
            self._keep_details()
        assert group.details is not None
        details = group.details
        return [
            Candidate(detail[0], detail[1], score, detail[2])
            for (_, score), position in zip(hits, hits.positions, strict=True)
            if (detail := details[position]) is not None
        ]

    def models(self, conn: sqlite3.Connection) -> dict[str, int]:
        """Embeddings per model name, most first, in the snapshot of the last build.

        Read on first use after a build, like the filter columns.
        """
        if self._models is None:
            self._models = dict(conn.execute(_MODEL_COUNTS_SQL).fetchall())
        return self._models

    # ------------------------------------------------------------------ querying

    @property
    def lengths(self) -> list[int]:
        """The vector lengths stored, ascending (several when several models wrote vectors)."""
        return sorted(self._groups)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays of the index."""
        return sum(g.nbytes for g in self._groups.values())

    @property
    def size(self) -> int:
        return sum(len(g.rowids) for g in self._groups.values())

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        source: str | None = None,
        since: int | None = None,
        model: str | None = None,
    ) -> VectorHits:
        """Top ``k`` (chunk_vectors rowid, cosine) pairs, best first, ties by rowid.

        The result also says how many vectors were searched (``.searched``) and
        the best score minus the worst among them (``.spread``).
        """
        group = self._groups.get(len(query))
        if group is None:  # no stored vector of this length: nothing to compare it with
            return VectorHits()
        norm = float(np.linalg.norm(query.astype(np.float64)))
        if norm < _EPSILON32:
            scores = np.zeros(len(group.rowids), dtype=np.float32)
        else:
            scores = group.matrix @ (query.astype(np.float32) / np.float32(norm))
        mask = self._mask(group, source, since, model)
        if mask is not None:
            candidates = np.flatnonzero(mask)
            if not len(candidates):
                return VectorHits()
            scores_of = scores[candidates]
        else:
            candidates, scores_of = None, scores
        top = _top_k(scores_of, group.rowids if candidates is None else group.rowids[candidates], k)
        rows = top if candidates is None else candidates[top]
        spread = float(scores[rows[0]]) - float(scores_of.min())
        hits = zip(group.rowids[rows].tolist(), scores[rows].tolist(), strict=True)
        return VectorHits(hits, len(scores_of), spread, rows.tolist())

    def _mask(
        self, group: _Group, source: str | None, since: int | None, model: str | None
    ) -> np.ndarray | None:
        mask = None
        if source is not None or since is not None:
            sources, updated = self._documents_of(group)
        if source is not None:
            code = self._source_codes.get(source)
            mask = sources == (code if code is not None else -2)
        if since is not None:
            recent = updated >= since
            mask = recent if mask is None else mask & recent
        if model is not None:
            models = self._models_of(group)
            code = self._model_codes.get(model)
            of_model = models == (code if code is not None else -2)
            mask = of_model if mask is None else mask & of_model
        return mask


def _document_columns(
    conn: sqlite3.Connection, source_codes: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every vector's rowid (ascending) with its document's source code and updated_at.

    Sources are coded through ``source_codes``, which gains the sources it lacks;
    a vector whose document is missing gets source -1 and updated_at 0.
    """
    doc_slots: dict[str, int] = {}
    doc_sources: list[int] = []
    doc_updated: list[int] = []
    for doc_id, source, updated_at in conn.execute(_DOCUMENTS_SQL):
        doc_slots[doc_id] = len(doc_sources)
        doc_sources.append(source_codes.setdefault(source, len(source_codes)))
        doc_updated.append(updated_at if isinstance(updated_at, int) else 0)
    doc_sources.append(-1)  # the slot of vectors whose document is missing
    doc_updated.append(0)
    missing = len(doc_sources) - 1
    slots, rowid_lists = [], []
    for doc_id, rowid_list in conn.execute(_VECTOR_DOCUMENTS_SQL):
        slots.append(doc_slots.get(doc_id, missing))
        rowid_lists.append(rowid_list)
    counts = [text.count(",") + 1 for text in rowid_lists]
    rowids = np.asarray(",".join(rowid_lists).split(",") if rowid_lists else [], np.int64)
    slot_of = np.repeat(np.asarray(slots, dtype=np.int64), counts)
    order = np.argsort(rowids)
    slot_of = slot_of[order]
    sources = np.asarray(doc_sources, dtype=np.int32)[slot_of]
    updated = np.asarray(doc_updated, dtype=np.int64)[slot_of]
    return rowids[order], sources, updated


@contextmanager
def _small_cache(conn: sqlite3.Connection) -> Iterator[None]:
    """Keep the connection's page cache small while one scan reads every vector page once.

    The scan would evict the cache anyway (the vectors outgrow it); kept at its
    full size it only adds its pages to the process's memory, and allocating
    them makes the scan slower, not faster.
    """
    size = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    conn.execute(f"PRAGMA cache_size = {-_SCAN_CACHE_KIB}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {size}")


def _read_groups(conn: sqlite3.Connection) -> dict[int, _Group]:
    """Every vector, normalised, grouped by length, with its chunk_vectors row id (ascending).

    Each length's matrix is sized by its own count. One length (one model) is
    nearly always all there is, so the first length gets room for every row,
    known from a cheap count; once a second length shows up, the rows still to
    come are counted per length (one more scan, only for stores of several
    lengths) and every matrix is resized to what it will hold, so one odd vector
    never reserves a matrix of its size for every row.
    """
    stored, count = conn.execute(_VECTOR_COUNT_SQL).fetchone()
    if stored != count:
        log.warning(
            "%d of %d stored vectors are not whole float32 BLOBs and are left out of search; "
            "run `ctx-models check --repair`",
            stored - count,
            stored,
        )
    rowids = np.empty(count, dtype=np.int64)
    cursor = conn.execute(_VECTOR_ROWS_SQL)
    builders: dict[int, _GroupBuilder] = {}
    # Rows per length from the slice where a second length appeared on; None while one length.
    coming: dict[int, int] | None = None

    def count_coming(first_rowid: int) -> dict[int, int]:
        counts = dict(conn.execute(_LENGTHS_FROM_SQL, (first_rowid,)).fetchall())
        for size, builder in builders.items():
            builder.reserve(builder.filled + counts.get(size, 0))
        return counts

    def add(size: int, blobs: list[bytes], positions: np.ndarray, first_rowid: int) -> None:
        nonlocal coming
        if size not in builders:
            builders[size] = _GroupBuilder(size, count if coming is None else coming.get(size, 0))
        try:
            builders[size].add(blobs, positions)
        except OutOfMemoryError:
            if coming is not None:
                raise
            # Room for every row was refused: size each length by its own count, then retry.
            coming = count_coming(first_rowid)
            builders[size].add(blobs, positions)

    position = 0
    while rows := cursor.fetchmany(_SLICE_ROWS):
        if position + len(rows) > count:  # both queries read one snapshot, so this is a bug
            raise RuntimeError(f"more than the {count} vectors counted")
        rowids[position : position + len(rows)] = [rowid for rowid, _ in rows]
        blobs = [blob for _, blob in rows]
        sizes = set(map(len, blobs))
        first_rowid = rows[0][0]
        if coming is None and len(sizes | builders.keys()) > 1:
            coming = count_coming(first_rowid)
        if len(sizes) == 1:
            add(sizes.pop(), blobs, np.arange(position, position + len(blobs)), first_rowid)
        else:  # vectors of several lengths (several models): one group per length
            for size in sorted(sizes):
                picked = [i for i, blob in enumerate(blobs) if len(blob) == size]
                add(size, [blobs[i] for i in picked], position + np.asarray(picked), first_rowid)
        position += len(blobs)
    if position != count:
        raise RuntimeError(f"{position} vectors but {count} counted")
    groups = {}
    for builder in builders.values():
        group = builder.finish(rowids)
        groups[group.matrix.shape[1]] = group
    return groups


def _top_k(scores: np.ndarray, rowids: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the ``k`` best scores, best first; equal scores in rowid order."""
    n = len(scores)
    if k < n:
        # The k-th best score from a partition of the values (of the negated
        # scores: numpy's selection near the end of an array with many equal
        # values, the zeros of sparse vectors, took 20-90 ms at 1,000,000 vectors,
        # this 1-2 ms), then every row at least that good: half the time of
        # argpartition, which also moves the indexes.
        threshold = -np.partition(-scores, k - 1)[k - 1]
        part = np.flatnonzero(scores >= threshold)
        if len(part) > k:
            # More rows tie with the k-th best than there is room for (duplicate
            # chunks do that): every better row, then the tied rows with the
            # smallest rowids.
            better = np.flatnonzero(scores > threshold)
            tied = np.flatnonzero(scores == threshold)
            room = k - len(better)  # at least 1: the threshold is among the k best
            if room < len(tied):
                tied = tied[np.argpartition(rowids[tied], room - 1)[:room]]
            part = np.concatenate([better, tied])
    else:
        part = np.arange(n)
    order = np.lexsort((rowids[part], -scores[part]))
    return part[order[:k]]
