"""Vector search on PostgreSQL: an exact pgvector scan, or an HNSW index per vector size.

Vectors of several sizes share the column, so every query names its size
(``vector_dims(embedding) = n``). Cosine distance (``<=>``) is NaN against a
zero vector; such a vector scores 0, as the contract says, and sorts there.
HNSW needs a fixed size: ``ctx-models index --hnsw`` builds one per size, an
expression index on ``embedding::vector(n)`` restricted to that size, and an
approximate search sets ``hnsw.ef_search`` to twice the candidates wanted
(pgvector returns at most that many) with iterative scans for filters.
"""

from __future__ import annotations

from typing import Any

from ... import snippets
from ...fields import PackedVector
from ...identifiers import quote_identifier
from ..base import Candidate, VectorAnswer

__all__ = ["search", "hnsw_index_name", "create_hnsw", "hnsw_sizes", "stored_models", "lengths"]

# The distance, with NaN (a zero vector on either side) read as 1: cosine similarity 0.
_DISTANCE = "CASE WHEN d.distance = 'NaN'::float8 THEN 1.0 ELSE d.distance END"


# pgvector returns at most ef_search rows, and its graph search finds the true nearest
# with a margin only: twice the candidates wanted (bench.py backends: recall@80 at
# 100,000 vectors of few underlying directions, 0.95 at ef_search 80, 0.99 at 200).
EF_SEARCH_FACTOR = 2
EF_SEARCH_MIN = 100
EF_SEARCH_MAX = 1000  # pgvector's upper limit


def ef_search(limit: int) -> int:
    """hnsw.ef_search for ``limit`` candidates."""
    return max(EF_SEARCH_MIN, min(EF_SEARCH_MAX, EF_SEARCH_FACTOR * limit))


def hnsw_index_name(dims: int) -> str:
    return f"chunk_vectors_hnsw_{int(dims)}"


def search(
    db: Any,
    query: bytes,
    limit: int,
    source: str | None,
    since: int | None,
    model: str | None,
    *,
    approximate: bool,
) -> VectorAnswer:
    """The ``limit`` stored vectors of the query's size closest to it, best first."""
    dims = len(query) // 4
    vector = PackedVector(query)
    joins, filters = "", ""
    params: list[Any] = []
    if source is not None or since is not None:
        joins += " JOIN documents AS doc ON doc.id = cv.document_id"
    if model is not None:
        joins += " JOIN embeddings AS e ON e.chunk_id = cv.chunk_id"
        filters += " AND e.model = %s"
    if source is not None:
        filters += " AND doc.source = %s"
    if since is not None:
        filters += " AND doc.updated_at >= %s"
    params.append(vector)
    params += [p for p in (model, source, since) if p is not None]
    params.append(limit)
    if approximate and dims in hnsw_sizes(db):
        db.execute_sql(f"SET LOCAL hnsw.ef_search = {ef_search(limit)}")
        db.execute_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
        # The index's own expression, ordered bare, so that the planner walks the index.
        distance = f"(cv.embedding::vector({dims}) <=> %s::vector({dims}))"
        nearest = (
            f"SELECT cv.chunk_id, cv.document_id, {distance} AS distance "
            f"FROM chunk_vectors AS cv{joins} WHERE vector_dims(cv.embedding) = {dims}{filters} "
            "ORDER BY distance LIMIT %s"
        )
    else:
        distance = "(cv.embedding <=> %s)"
        nearest = (
            "SELECT * FROM (SELECT cv.chunk_id, cv.document_id, "
            f"{distance} AS distance FROM chunk_vectors AS cv{joins} "
            f"WHERE vector_dims(cv.embedding) = {dims}{filters}) AS d "
            f"ORDER BY {_DISTANCE}, d.chunk_id LIMIT %s"
        )
    sql = (
        f"SELECT d.chunk_id, d.document_id, 1.0 - {_DISTANCE} AS score, substr(c.text, 1, %s) "
        f"FROM ({nearest}) AS d JOIN chunks AS c ON c.id = d.chunk_id "
        "ORDER BY score DESC, d.chunk_id"
    )
    rows = db.execute_sql(sql, [snippets.VECTOR_CHARS + 1, *params]).fetchall()
    candidates = [
        Candidate(chunk_id, document_id, float(score), snippets.start_of(text))
        for chunk_id, document_id, score, text in rows
    ]
    if not candidates:
        return VectorAnswer([])
    spread = candidates[0].score - candidates[-1].score
    searched = len(candidates)
    if spread == 0.0 and len(candidates) == limit:
        # All the best are equally close: the spread over every vector decides whether the
        # question said anything (the hashing embedder's nonsense words score 0 everywhere).
        row = db.execute_sql(
            f"SELECT count(*), max(1.0 - {_DISTANCE}) - min(1.0 - {_DISTANCE}) FROM "
            f"(SELECT {distance} AS distance FROM chunk_vectors AS cv{joins} "
            f"WHERE vector_dims(cv.embedding) = {dims}{filters}) AS d",
            params[:-1],
        ).fetchone()
        searched, spread = int(row[0]), float(row[1] or 0.0)
    return VectorAnswer(candidates, searched, spread)


def stored_models(db: Any) -> dict[str, int]:
    """Embeddings per model, most first; distinct names by a walk down the model index."""
    names = [
        row[0]
        for row in db.execute_sql(
            "WITH RECURSIVE m AS (SELECT min(model) AS model FROM embeddings UNION ALL "
            "SELECT (SELECT min(model) FROM embeddings WHERE model > m.model) FROM m "
            "WHERE m.model IS NOT NULL) SELECT model FROM m WHERE model IS NOT NULL"
        )
    ]
    if len(names) <= 1:
        # One model: its count is not needed to choose it (counting reads every row).
        return {name: 1 for name in names}
    rows = db.execute_sql(
        "SELECT model, count(*) FROM embeddings GROUP BY model ORDER BY 2 DESC, 1"
    ).fetchall()
    return {name: int(count) for name, count in rows}


def lengths(db: Any) -> list[int]:
    """The sizes of the stored vectors, by a walk down the size index."""
    return [
        int(row[0])
        for row in db.execute_sql(
            "WITH RECURSIVE s AS (SELECT min(vector_dims(embedding)) AS n FROM chunk_vectors "
            "UNION ALL SELECT (SELECT min(vector_dims(embedding)) FROM chunk_vectors "
            "WHERE vector_dims(embedding) > s.n) FROM s WHERE s.n IS NOT NULL) "
            "SELECT n FROM s WHERE n IS NOT NULL"
        )
    ]


def hnsw_sizes(db: Any) -> dict[int, str]:
    """The HNSW indexes there are: vector size -> index name."""
    rows = db.execute_sql(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'chunk_vectors' "
        "AND schemaname = current_schema() AND indexname LIKE 'chunk_vectors_hnsw_%%'"
    ).fetchall()
    return {int(name.rsplit("_", 1)[1]): name for (name,) in rows}


def create_hnsw(db: Any, dims: int) -> str:
    """Build the HNSW index of vectors of size ``dims`` (cosine); returns its name."""
    name = hnsw_index_name(dims)
    db.execute_sql(
        f"CREATE INDEX IF NOT EXISTS {quote_identifier(name)} ON chunk_vectors "
        f"USING hnsw ((embedding::vector({int(dims)})) vector_cosine_ops) "
        f"WHERE vector_dims(embedding) = {int(dims)}"
    )
    return name
