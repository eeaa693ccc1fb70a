"""The interface between the portable code and a database: what each backend does its own way.

Models, the store, search and the command line are written once. What SQLite
and PostgreSQL do differently sits behind :class:`Backend`: opening
transactions and translating driver errors, the schema beyond the six models
(FTS5 or a tsvector, the vector type, version stamps), the keyword query, the
vector candidates and how a cache notices other processes' commits, bulk
writes of chunks and vectors, and the integrity checks that need the engine's
own views.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from peewee import Database

from ..bulk import BulkInsert
from ..errors import DatabaseError
from ..models import ChunkVector, Embedding

__all__ = ["Backend", "Candidate", "KeywordAnswer", "VectorAnswer", "ChunkRow", "Check"]

#: The advice of every finding whose repair deletes vectors.
RE_EMBED = "repair deletes them; `ctx-models embed` embeds the chunks again"

EMBEDDING_UPSERT = BulkInsert(
    Embedding,
    (Embedding.chunk, Embedding.model, Embedding.dims, Embedding.created_at, Embedding.hash),
    lambda q: q.on_conflict(
        conflict_target=[Embedding.chunk],
        preserve=[Embedding.model, Embedding.dims, Embedding.created_at, Embedding.hash],
    ),
)
VECTOR_UPSERT = BulkInsert(
    ChunkVector,
    (ChunkVector.chunk, ChunkVector.document, ChunkVector.embedding),
    lambda q: q.on_conflict(
        conflict_target=[ChunkVector.chunk],
        preserve=[ChunkVector.document, ChunkVector.embedding],
    ),
)


@dataclass(frozen=True)
class Check:
    """A kind of problem, found by SQL that selects the ids of the offending rows.

    :mod:`ctx_models.integrity` runs the checks every engine shares; each
    backend's integrity part adds its own.
    """

    code: str
    description: str
    sql: str
    repairable: bool
    advice: str = ""


class Candidate(NamedTuple):
    """A chunk found by one signal; ``score`` is raw (−bm25 or a text rank for keywords, cosine
    for vectors). A named tuple: results are built in bulk on every search, and a tuple is cheap.
    """

    chunk_id: str
    document_id: str
    score: float
    snippet: str


class ChunkRow(NamedTuple):
    """A chunk on its way in: what the store writes to ``chunks`` (and the keyword index)."""

    id: str
    document_id: str
    chunk_index: int
    text: str
    hash: str


@dataclass
class KeywordAnswer:
    """Keyword candidates, best first, and how the question was searched."""

    candidates: list[Candidate]
    expression: str  # what the engine was asked ("" when the question had nothing to search)
    used: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # too common to change the order
    absent: list[str] = field(default_factory=list)  # in no chunk at all


@dataclass
class VectorAnswer:
    """Vector candidates, best first; how many vectors were compared, and their scores' spread."""

    candidates: list[Candidate]
    searched: int = 0
    spread: float = 0.0


class Backend(ABC):
    """One database's engine-specific operations; get it with :func:`ctx_models.backends.backend_for`."""

    #: "sqlite" or "postgresql"
    name: str
    #: The exceptions the driver (and peewee around it) raises, which :meth:`errors` translates.
    driver_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ errors and transactions

    @abstractmethod
    def errors(self, action: str) -> AbstractContextManager[None]:
        """Turn the driver's errors into ctx_models exceptions that say what to do."""

    @abstractmethod
    def write_transaction(self, action: str = "write") -> AbstractContextManager[None]:
        """One write transaction that waits for other writers (and translates errors)."""

    @abstractmethod
    def read_snapshot(self, action: str = "read") -> AbstractContextManager[bool]:
        """One consistent read; yields True when the caller already had a transaction open."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages: a file path, or a URL without its password."""
        return str(self.db.database)

    # ------------------------------------------------------------------ schema

    @abstractmethod
    def schema_version(self) -> int:
        """The stored schema version (0 when never stamped)."""

    @abstractmethod
    def migration_lock(self) -> AbstractContextManager[None]:
        """Held while migrating, so concurrent migrations queue up instead of colliding."""

    @abstractmethod
    def create_schema(self) -> list[str]:
        """Create what is missing (tables, keyword index, named indexes); returns what was made."""

    @abstractmethod
    def stamp_schema_version(self, version: int) -> None:
        """Record ``version`` where the engine's own tools can read it."""

    @abstractmethod
    def table_names(self) -> set[str]:
        """The tables that exist."""

    # ------------------------------------------------------------------ writes

    @abstractmethod
    def insert_chunks(self, rows: Sequence[ChunkRow]) -> None:
        """Insert chunks and their keyword-index rows (inside the caller's transaction)."""

    @abstractmethod
    def delete_keyword_rows(self, document_ids: Sequence[str], *, deleting_documents: bool) -> None:
        """Delete the keyword-index rows of these documents' chunks (before the chunks go)."""

    def write_vectors(self, rows: Sequence[tuple[str, str, str, str, int, int, bytes]]) -> None:
        """Upsert ``(chunk_id, document_id, hash, model, dims, created_at, blob)`` embeddings and vectors."""
        EMBEDDING_UPSERT.execute(self.db, ((c, m, n, t, h) for c, _, h, m, n, t, _ in rows))
        VECTOR_UPSERT.execute(self.db, ((c, d, b) for c, d, _, _, _, _, b in rows))

    # ------------------------------------------------------------------ reads

    @abstractmethod
    def keyword_search(
        self,
        text: str,
        limit: int,
        source: str | None,
        since: int | None,
        *,
        raw: bool,
        match: str,
        outer_transaction: bool,
    ) -> KeywordAnswer:
        """Keyword candidates for a question (inside :meth:`read_snapshot`)."""

    @abstractmethod
    def vector_search(
        self,
        query: np.ndarray,
        limit: int,
        source: str | None,
        since: int | None,
        model: str | None,
        *,
        outer_transaction: bool,
        exact: bool = True,
    ) -> VectorAnswer:
        """The ``limit`` stored vectors of ``query``'s length closest to it (inside a snapshot).

        ``exact=False`` allows an approximate index where the engine has one.
        """

    @abstractmethod
    def vector_size(self, model: str) -> int | None:
        """The length of one stored vector of ``model`` (None when it has none)."""

    @abstractmethod
    def stored_models(self, *, outer_transaction: bool) -> dict[str, int]:
        """Embeddings per model name, most first (inside a snapshot)."""

    @abstractmethod
    def vector_lengths(self, *, outer_transaction: bool) -> list[int]:
        """The lengths of the stored vectors, ascending (inside a snapshot)."""

    # ------------------------------------------------------------------ integrity and maintenance

    @abstractmethod
    def integrity(self) -> Any:
        """The engine's side of :func:`ctx_models.integrity.check` (its own checks and repairs)."""

    def build_hnsw_indexes(self) -> list[tuple[str, int]]:
        """Build an HNSW index per stored vector size; returns (index name, size) pairs."""
        raise DatabaseError(
            f"{self.location}: HNSW indexes are for PostgreSQL; vector search here is exact, "
            "from memory, and needs none"
        )

    def sample_vectors(self, dims: int, count: int) -> list[np.ndarray]:
        """Up to ``count`` stored vectors of length ``dims``, chosen at random.

        The queries :func:`ctx_models.search.hnsw_recall` measures an approximate
        index with; only engines with such an index need them.
        """
        raise DatabaseError(f"{self.location}: no approximate vector index to measure")

    @abstractmethod
    def backup(self, target: Path) -> None:
        """Write a consistent copy of the database to the file ``target``."""

    def size_on_disk(self) -> int | None:
        """Bytes the store takes on disk, when the engine can say."""
        return None
