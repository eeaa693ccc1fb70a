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
matches the snapshot the caller reads. (SQLite-specific: a PostgreSQL
backend would need its own change signal.)
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from peewee import Database

from .errors import CorruptValueError, DimensionMismatchError

__all__ = ["VectorIndex", "index_for"]

log = logging.getLogger(__name__)

_BUILD_SQL = """
SELECT cv.rowid, cv.document_id, e.model, cv.embedding
FROM chunk_vectors AS cv LEFT JOIN embeddings AS e ON e.chunk_id = cv.chunk_id
"""
_DOCUMENTS_SQL = "SELECT id, source, updated_at FROM documents"


@dataclass
class _Group:
    """All vectors of one length: the normalised matrix and, per row, what filters need."""

    matrix: np.ndarray  # (n, dims) float32, rows of unit length (or zero)
    rowids: np.ndarray  # chunk_vectors.rowid, int64
    sources: np.ndarray  # source code per row, int32 (-1: document missing)
    updated: np.ndarray  # documents.updated_at per row, int64
    models: np.ndarray  # model code per row, int32 (-1: no embeddings row)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.matrix, self.rowids, self.sources, self.updated, self.models))


class VectorIndex:
    """The in-memory vectors seen by one connection; use :func:`index_for` to get it."""

    def __init__(self) -> None:
        self._groups: dict[int, _Group] = {}
        self._source_codes: dict[str, int] = {}
        self._model_codes: dict[str, int] = {}
        self._seen: tuple[int, int] | None = None  # (data_version, total_changes) when built
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
        doc_source: dict[str, int] = {}
        doc_updated: dict[str, int] = {}
        sources: dict[str, int] = {}
        for doc_id, source, updated_at in conn.execute(_DOCUMENTS_SQL):
            doc_source[doc_id] = sources.setdefault(source, len(sources))
            doc_updated[doc_id] = updated_at if isinstance(updated_at, int) else 0
        models: dict[str, int] = {}
        by_length: dict[int, list[tuple[int, str, Any, bytes]]] = {}
        for row in conn.execute(_BUILD_SQL):
            blob = row[3]
            by_length.setdefault(len(blob), []).append(row)
        groups: dict[int, _Group] = {}
        for length, rows in by_length.items():
            if length == 0 or length % 4:
                raise CorruptValueError(
                    f"{len(rows)} vector BLOB(s) are {length} bytes, not a positive multiple of 4; "
                    "run `ctx-models check --repair`"
                )
            dims = length // 4
            raw = np.frombuffer(b"".join([r[3] for r in rows]), dtype="<f4").reshape(len(rows), dims)
            norms = np.linalg.norm(raw, axis=1, keepdims=True)
            matrix = np.divide(raw, norms, out=np.zeros(raw.shape, dtype=np.float32), where=norms > 0)
            del raw
            groups[dims] = _Group(
                matrix=matrix,
                rowids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                sources=np.fromiter((doc_source.get(r[1], -1) for r in rows), np.int32, len(rows)),
                updated=np.fromiter((doc_updated.get(r[1], 0) for r in rows), np.int64, len(rows)),
                models=np.fromiter(
                    (models.setdefault(r[2], len(models)) if r[2] is not None else -1 for r in rows),
                    np.int32,
                    len(rows),
                ),
            )
        self._groups, self._source_codes, self._model_codes = groups, sources, models
        log.debug("vector index built: %s", {d: len(g.rowids) for d, g in groups.items()})

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
            code = self._model_codes.get(model)
            of_model = group.models == (code if code is not None else -2)
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
            conn.total_changes
        except sqlite3.ProgrammingError:  # closed
            del per_connection[key]
