"""Exact vector search from memory: every stored vector, normalised, in one float32 matrix.

Reading every BLOB for every query (what the ``ctx`` tool does) costs far more
than the arithmetic. :class:`VectorIndex` reads them once, keeps the
L2-normalised matrix with small arrays beside it (row id, source, updated_at,
model per row), and answers a query with one matrix-vector product and
``argpartition``. Filters are boolean masks over those arrays.

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
import sqlite3
import threading
import weakref
from dataclasses import dataclass

import numpy as np
from peewee import Database

from .errors import CorruptValueError, DimensionMismatchError

__all__ = ["VectorIndex", "index_for"]

log = logging.getLogger(__name__)

# Vectors in table (rowid) order. Document ids come from a scan of the small
# document index instead, and models only when a model filter asks for them:
# joining per row would cost more than reading the vectors.
_VECTORS_SQL = "SELECT rowid, embedding FROM chunk_vectors"
_VECTOR_COUNT_SQL = "SELECT count(*) FROM chunk_vectors"
# One row per document (a covering scan of idx_chunk_vectors_document_id), not per vector.
_VECTOR_DOCUMENTS_SQL = (
    "SELECT document_id, group_concat(rowid) FROM chunk_vectors GROUP BY document_id"
)
_VECTOR_MODELS_SQL = "SELECT cv.rowid, e.model FROM chunk_vectors AS cv JOIN embeddings AS e ON e.chunk_id = cv.chunk_id"
_DOCUMENTS_SQL = "SELECT id, source, updated_at FROM documents"


@dataclass
class _Group:
    """All vectors of one length: the normalised matrix and, per row, what filters need."""

    matrix: np.ndarray  # (n, dims) float32, rows of unit length (or zero)
    rowids: np.ndarray  # chunk_vectors.rowid, int64
    sources: np.ndarray  # source code per row, int32 (-1: document missing)
    updated: np.ndarray  # documents.updated_at per row, int64
    models: np.ndarray | None = None  # model code per row, int32 (-1: none); made on first use

    @property
    def nbytes(self) -> int:
        arrays = (self.matrix, self.rowids, self.sources, self.updated, self.models)
        return sum(a.nbytes for a in arrays if a is not None)


class VectorIndex:
    """The in-memory vectors seen by one connection; use :func:`index_for` to get it."""

    def __init__(self) -> None:
        self._groups: dict[int, _Group] = {}
        self._source_codes: dict[str, int] = {}
        self._model_codes: dict[str, int] = {}
        self._seen: tuple[int, int] | None = None  # (data_version, total_changes) when built
        self._conn: sqlite3.Connection | None = None
        self.builds = 0

    # ------------------------------------------------------------------ freshness

    def ensure_fresh(self, conn: sqlite3.Connection, *, may_hold_uncommitted: bool = False) -> bool:
        """Rebuild unless nothing was committed, by anyone, since the last build; True if rebuilt.

        Call inside a read transaction, so the check and the build see one
        snapshot. Set ``may_hold_uncommitted`` when that transaction may hold
        this connection's uncommitted writes: a rollback would undo them without
        changing either counter, so such a build is used once and not trusted.
        """
        seen = (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
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
        # Per document: its source (as a small code) and updated_at.
        doc_index: dict[str, int] = {}
        sources: dict[str, int] = {}
        doc_sources: list[int] = []
        doc_updated: list[int] = []
        for doc_id, source, updated_at in conn.execute(_DOCUMENTS_SQL):
            doc_index[doc_id] = len(doc_sources)
            doc_sources.append(sources.setdefault(source, len(sources)))
            doc_updated.append(updated_at if isinstance(updated_at, int) else 0)
        doc_sources.append(-1)  # the slot for vectors whose document is missing
        doc_updated.append(0)
        missing = len(doc_sources) - 1

        source_array = np.asarray(doc_sources, dtype=np.int32)
        updated_array = np.asarray(doc_updated, dtype=np.int64)
        # rowid -> document slot.
        documents, rowid_lists = [], []
        for doc_id, rowid_list in conn.execute(_VECTOR_DOCUMENTS_SQL):
            documents.append(doc_index.get(doc_id, missing))
            rowid_lists.append(rowid_list)
        counts = [text.count(",") + 1 for text in rowid_lists]
        slot_rowids = np.asarray(
            ",".join(rowid_lists).split(",") if rowid_lists else [], dtype=np.int64
        )
        slot_of = np.repeat(np.asarray(documents, dtype=np.int64), counts)
        order = np.argsort(slot_rowids)
        slot_rowids, slot_of = slot_rowids[order], slot_of[order]

        groups: dict[int, _Group] = {}
        for length, (rowids, matrix) in self._read_vectors(conn).items():
            if length == 0 or length % 4:
                raise CorruptValueError(
                    f"{len(rowids)} vector BLOB(s) are {length} bytes, not a positive multiple of 4; "
                    "run `ctx-models check --repair`"
                )
            norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
            matrix *= np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)[:, None]
            slots = slot_of[np.searchsorted(slot_rowids, rowids)]
            groups[length // 4] = _Group(
                matrix=matrix,
                rowids=rowids,
                sources=source_array[slots],
                updated=updated_array[slots],
            )
        self._groups, self._source_codes, self._model_codes = groups, sources, {}
        self._conn = conn
        log.debug("vector index built: %s", {d: len(g.rowids) for d, g in groups.items()})

    @staticmethod
    def _read_vectors(conn: sqlite3.Connection) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """BLOB length -> (rowids, float32 matrix), each BLOB copied once into its row.

        Rows stream into one buffer sized from ``count(*)``; no list of BLOBs is kept.
        BLOBs of another length than the first (several models) go to groups of their own.
        """
        total = conn.execute(_VECTOR_COUNT_SQL).fetchone()[0]
        length = 0
        buffer = bytearray()
        rowids = np.empty(total, dtype=np.int64)
        filled = 0
        others: dict[int, tuple[list[int], list[bytes]]] = {}
        for rowid, blob in conn.execute(_VECTORS_SQL):
            size = len(blob)
            if not filled and not length:
                length = size
                buffer = bytearray(total * size)
                view = memoryview(buffer)
            if size == length:
                view[filled * size : (filled + 1) * size] = blob
                rowids[filled] = rowid
                filled += 1
            else:
                other_rowids, other_blobs = others.setdefault(size, ([], []))
                other_rowids.append(rowid)
                other_blobs.append(blob)
        groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if filled:
            usable = (filled * length) // 4 * 4
            matrix = (
                np.frombuffer(buffer, dtype="<f4", count=usable // 4)
                if length % 4 == 0
                else np.empty(0)
            )
            groups[length] = (
                rowids[:filled],
                matrix.reshape(filled, length // 4) if length % 4 == 0 else matrix,
            )
        for size, (other_rowids, other_blobs) in others.items():
            matrix = (
                np.frombuffer(bytearray().join(other_blobs), dtype="<f4")
                if size % 4 == 0
                else np.empty(0)
            )
            groups[size] = (
                np.asarray(other_rowids, dtype=np.int64),
                matrix.reshape(len(other_rowids), size // 4) if size % 4 == 0 else matrix,
            )
        return groups

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

    # ------------------------------------------------------------------ querying

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
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk_vectors rowid, cosine) pairs, best first, ties by rowid."""
        groups = self._groups
        if not groups:
            return []
        group = groups.get(len(query))
        if group is None:
            raise DimensionMismatchError(
                f"query vector has {len(query)} dims; stored vectors have "
                f"{', '.join(str(d) for d in sorted(groups))}. Embed the query with the same model"
            )
        norm = float(np.linalg.norm(query))
        if norm == 0.0:
            scores = np.zeros(len(group.rowids), dtype=np.float32)
        else:
            scores = group.matrix @ (query.astype(np.float32) / np.float32(norm))
        mask = self._mask(group, source, since, model)
        if mask is not None:
            candidates = np.flatnonzero(mask)
            if not len(candidates):
                return []
            scores_of = scores[candidates]
        else:
            candidates, scores_of = None, scores
        top = _top_k(scores_of, group.rowids if candidates is None else group.rowids[candidates], k)
        rows = top if candidates is None else candidates[top]
        return [(int(group.rowids[i]), float(scores[i])) for i in rows]

    def _mask(
        self, group: _Group, source: str | None, since: int | None, model: str | None
    ) -> np.ndarray | None:
        mask = None
        if source is not None:
            code = self._source_codes.get(source)
            mask = group.sources == (code if code is not None else -2)
        if since is not None:
            recent = group.updated >= since
            mask = recent if mask is None else mask & recent
        if model is not None:
            models = self._models_of(group)
            code = self._model_codes.get(model)
            of_model = models == (code if code is not None else -2)
            mask = of_model if mask is None else mask & of_model
        return mask


def _top_k(scores: np.ndarray, rowids: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the ``k`` best scores, best first; equal scores in rowid order."""
    n = len(scores)
    if k < n:
        # Take every row tied with the k-th best so the tie-break below is exact.
        part = np.argpartition(-scores, k - 1)[:k]
        threshold = scores[part].min()
        part = np.flatnonzero(scores >= threshold)
    else:
        part = np.arange(n)
    order = np.lexsort((rowids[part], -scores[part]))
    return part[order[:k]]


# One index per connection: the change counters are per connection, so an index
# validated by one connection says nothing about another's snapshot. Peewee
# gives each thread its own connection; a single-threaded program has one index.
_INDEXES: weakref.WeakKeyDictionary[Database, dict[int, tuple[sqlite3.Connection, VectorIndex]]] = (
    weakref.WeakKeyDictionary()
)
_INDEXES_LOCK = threading.Lock()


def index_for(db: Database, conn: sqlite3.Connection) -> VectorIndex:
    """The vector index of ``db`` as seen through ``conn`` (its current thread's connection)."""
    with _INDEXES_LOCK:
        per_connection = _INDEXES.setdefault(db, {})
        entry = per_connection.get(id(conn))
        # The connection is kept in the entry, so its id cannot be reused while listed.
        if entry is None or entry[0] is not conn:
            _forget_closed(per_connection)
            entry = per_connection[id(conn)] = (conn, VectorIndex())
        return entry[1]


def _forget_closed(per_connection: dict[int, tuple[sqlite3.Connection, VectorIndex]]) -> None:
    for key, (conn, _) in list(per_connection.items()):
        try:
            _ = conn.total_changes
        except sqlite3.ProgrammingError:  # closed
            del per_connection[key]
