"""Keyword search on PostgreSQL: the question's words as optional lexemes, ranked BM25-like.

The word rule is the SQLite backend's (:mod:`ctx_models.words`): every word is
optional, and each goes through ``plainto_tsquery('english', ...)``, which
stems it (Snowball, as the SQLite backend's word forms) and drops English stop
words, so no text is tsquery syntax. ``match="all"`` requires every word;
``raw=True`` passes the text to ``to_tsquery`` as written.

PostgreSQL has no BM25, and ``ts_rank_cd`` ignores how rare a word is, which
for questions of ordinary words ranks poorly (NFCorpus nDCG@10 0.24, against
0.30 for ``ts_rank``). So a chunk scores BM25's shape: the sum over the
question's lexemes of IDF × ``ts_rank`` of that lexeme (0.32 when every
matching chunk is scored so). Each call decompresses the chunk's tsvector, so
that score is given to the best :data:`FIRST_PASS` chunks by one ``ts_rank``
of the whole question (0.319 at 300). A lexeme's document frequency comes from
PostgreSQL's statistics of the column (``pg_stats.most_common_elems``, kept
by ANALYZE) when it is common, else it is counted through the GIN index. As on
SQLite, lexemes in more than half of the chunks carry no weight and are left
out, and so are those in more than a fifth when the question would make the
server score too many chunks.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from typing import Any

from ... import snippets
from ...stemming import stem
from ...words import unique_words
from ..base import Candidate, KeywordAnswer

__all__ = ["ColumnStatistics", "plan", "run"]

COMMON_FRACTION = 0.5
SPEED_FRACTION = 0.2
# ts_rank reads and decompresses each matching chunk's tsvector: about ten times
# FTS5's cost per chunk, so the budget is a quarter of SQLite's. Forcing the cut on
# every NFCorpus question changes nDCG@10 by +0.0006 (bench.py quality --db).
ROW_BUDGET = 5_000

_FREQUENCIES = (
    "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs FROM pg_stats AS s "
    "WHERE s.schemaname = current_schema() AND s.tablename = 'chunks_fts' AND s.attname = 'tsv'"
)
_CHUNKS = (
    "SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint "
    "ELSE (SELECT count(*) FROM chunks_fts) END FROM pg_class AS c "
    "WHERE c.oid = 'chunks_fts'::regclass"
)
FIRST_PASS = 300


class ColumnStatistics:
    """What ANALYZE knows of ``chunks_fts.tsv``, read at most once per search: the plan
    (which words are too common) and the ranking (IDF) share it."""

    def __init__(self, db: Any) -> None:
        self._db = db

    @cached_property
    def shares(self) -> dict[str, float]:
        """The share of chunks holding each common lexeme ({} before the first ANALYZE)."""
        row = self._db.execute_sql(_FREQUENCIES).fetchone()
        return dict(zip(row[0], row[1], strict=False)) if row is not None and row[0] else {}

    @cached_property
    def chunks(self) -> int:
        return int(self._db.execute_sql(_CHUNKS).fetchone()[0])


def plan(
    db: Any, text: str, match: str, raw: bool, statistics: ColumnStatistics
) -> KeywordAnswer:
    """The question's lexemes as a tsquery (its text form), and which words counted."""
    if raw:
        row = db.execute_sql("SELECT to_tsquery('english', %s)::text", (text,)).fetchone()
        return KeywordAnswer([], row[0] or "")
    words = unique_words(text)
    if not words:
        return KeywordAnswer([], "")
    rows = db.execute_sql(
        "SELECT word, plainto_tsquery('english', word)::text FROM unnest(%s::text[]) AS word",
        (words,),
    ).fetchall()
    lexemes = {word: query for word, query in rows if query}
    stop_words = [w for w in words if w not in lexemes]
    if match == "all":
        used = [w for w in words if w in lexemes]
        expression = " & ".join(f"({lexemes[w]})" for w in used)
        return KeywordAnswer([], expression, used=used, dropped=stop_words)
    common = _too_common(lexemes, statistics)
    used = [w for w in words if w in lexemes and w not in common]
    expression = " | ".join(dict.fromkeys(f"({lexemes[w]})" for w in used))
    return KeywordAnswer([], expression, used=used, dropped=stop_words + common)


def _lexemes_of(group: str) -> list[str]:
    """The lexemes of one word's tsquery: 'word', or 'a' & 'b' for a word that splits."""
    return [part.strip(" ()'") for part in group.split("&")]


def _too_common(lexemes: dict[str, str], statistics: ColumnStatistics) -> list[str]:
    """Words whose lexeme is in so many chunks that it cannot change the order (or costs too much)."""
    shares = statistics.shares
    if not shares:
        return []  # not analyzed yet: a small or new table, cheap to rank whole

    def share(query: str) -> float:
        # A word that stems to several lexemes is as common as its rarest.
        return min(shares.get(lexeme, 0.0) for lexeme in _lexemes_of(query))

    words = sorted(lexemes, key=lambda w: -share(lexemes[w]))
    dropped = [w for w in words if share(lexemes[w]) > COMMON_FRACTION]
    kept = [w for w in words if w not in dropped]
    if not kept:
        return []
    chunks = statistics.chunks
    scored = sum(share(lexemes[w]) for w in kept) * chunks
    for word in kept[:-1]:
        if scored <= ROW_BUDGET or share(lexemes[word]) <= SPEED_FRACTION:
            break
        dropped.append(word)
        scored -= share(lexemes[word]) * chunks
    return dropped


def _idf(db: Any, groups: list[str], statistics: ColumnStatistics) -> list[float]:
    """BM25's IDF of each word's tsquery: ln((N - n + 0.5) / (n + 0.5)), at least 1e-6.

    n is taken from the column's statistics for a common lexeme, and counted
    through the GIN index for the others (which are rare, so the count is quick).
    """
    shares, chunks = statistics.shares, statistics.chunks
    weights = []
    for group in groups:
        known = [shares[lex] for lex in _lexemes_of(group) if lex in shares]
        if known:
            holding = min(known) * chunks
        else:
            holding = db.execute_sql(
                "SELECT count(*) FROM chunks_fts WHERE tsv @@ %s::tsquery", (group,)
            ).fetchone()[0]
        weights.append(max(1e-6, math.log((chunks - holding + 0.5) / (holding + 0.5))))
    return weights


def run(
    db: Any,
    expression: str,
    limit: int,
    source: str | None,
    since: int | None,
    statistics: ColumnStatistics,
) -> list[Candidate]:
    """The best ``limit`` chunks for a tsquery, with FTS5-like snippets."""
    # "(a) | (b & c)": one group per word, each a tsquery of its own (no "|" inside one).
    groups = [part.strip() for part in expression.split(" | ")]
    joins, filters = "", ""
    params: list[Any] = [expression]
    if source is not None or since is not None:
        joins = " JOIN documents AS d ON d.id = f.document_id"
    if source is not None:
        filters += " AND d.source = %s"
        params.append(source)
    if since is not None:
        filters += " AND d.updated_at >= %s"
        params.append(since)
    first = (
        "WITH q AS (SELECT %s::tsquery AS query), "
        # ts_rank's normalization 1 divides by 1 + the log of the chunk's length: of two
        # chunks holding the same words, the shorter ranks first, as in BM25.
        "c AS (SELECT f.chunk_id, f.document_id, f.tsv, ts_rank(f.tsv, q.query, 1) AS rank "
        f"FROM chunks_fts AS f CROSS JOIN q{joins} WHERE f.tsv @@ q.query{filters} "
        "ORDER BY rank DESC, f.chunk_id LIMIT %s), "
    )
    if len(groups) > 1:
        weights = _idf(db, groups, statistics)
        score = " + ".join("%s * ts_rank(c.tsv, %s::tsquery, 1)" for _ in groups)
        params += [max(FIRST_PASS, 4 * limit)]
        params += [value for pair in zip(weights, groups, strict=True) for value in pair]
    else:
        score = "c.rank"
        params += [limit]
    sql = first + (
        f"top AS (SELECT c.chunk_id, c.document_id, ({score}) AS score FROM c "
        "ORDER BY score DESC, c.chunk_id LIMIT %s) "
        "SELECT top.chunk_id, top.document_id, top.score, ch.text FROM top "
        "JOIN chunks AS ch ON ch.id = top.chunk_id ORDER BY top.score DESC, top.chunk_id"
    )
    params.append(limit)
    lexemes = {lexeme for group in groups for lexeme in _lexemes_of(group)}
    candidates = _starting_with(lexemes)
    return [
        Candidate(chunk_id, document_id, float(score), snippets.around(text, _hits(text, lexemes, candidates)))
        for chunk_id, document_id, score, text in db.execute_sql(sql, params).fetchall()
    ]


def _starting_with(lexemes: set[str]) -> re.Pattern[str]:
    """Words that may stem to a lexeme: they start with it, but for its last letter ("happy"
    is "happi"). A cheap first test; the stemmer decides for the few words that pass."""
    prefixes = sorted({re.escape(lex[: max(2, len(lex) - 1)]) for lex in lexemes if lex}, key=len)
    return re.compile(rf"\b(?:{'|'.join(reversed(prefixes)) or '(?!)'})\w*", re.IGNORECASE)


def _hits(text: str, lexemes: set[str], candidates: re.Pattern[str]) -> set[int]:
    return {m.start() for m in candidates.finditer(text) if stem(m.group().lower()) in lexemes}
