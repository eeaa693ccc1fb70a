"""Keyword search on SQLite: a question's words as an FTS5 query, ranked by BM25.

Every word is optional (``OR``) and quoted whole, so no text is FTS5 syntax
and a word with combining marks stays one phrase; English words match their
forms; words that cannot change the order are left out (see the notes below).
``match="all"`` requires every word as written, as the ``ctx`` tool does, and
raw FTS5 syntax passes through on request.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from ... import snippets
from ...fields import as_text
from ...stemming import stem as _stem
from ...words import unique_words
from ..base import Candidate, KeywordAnswer

__all__ = ["MATCH_MODES", "user_query", "keyword_query", "run", "KeywordStats", "Term", "FTS_QUERY_ERRORS"]

#: ``any``: every word optional, BM25 ranks; ``all``: every word required, as the ctx tool does.
MATCH_MODES = ("any", "all")


def user_query(text: str, match: str = "all") -> str:
    """Turn user text into an FTS5 query that cannot fail: its words, each quoted whole.

    ``match="all"`` requires every word (implicit AND), ``"any"`` joins them
    with ``OR``. Words follow :mod:`ctx_models.words`; every other character
    (quotes, operators, brackets, emoji, NUL) only separates words, so the
    result is always valid FTS5 syntax. Returns "" when the text has no words.
    """
    joiner = " OR " if match == "any" else " "
    return joiner.join(f'"{word}"' for word in unique_words(text))


# --------------------------------------------------------------------------- planning a question
#
# With every word optional, FTS5 computes BM25 for every chunk that holds any
# of them, about 1.5 microseconds a chunk, before it sorts. Two things keep that
# cheap without changing the ranking that matters:
#
# * A word in more than half of the chunks has an IDF that FTS5 clamps to almost
#   0, so it cannot change the order; it is left out.
# * When the words left would still make FTS5 score more than ROW_BUDGET chunks,
#   the words in more than a fifth of the chunks (IDF below 1.4) are left out too,
#   most common first, until the question fits. Measured on NFCorpus with this cut
#   forced on every question, nDCG@10 moved from 0.3183 to 0.3177, while at
#   100,000 chunks it halves the rows scored (see README, "Search speed").
#
# Word forms: the contract's tokenizer does not stem, so "scanners" would not
# find "scanner". An English word becomes the prefix query "scanne"* (the
# shortest prefix of it, from four letters) when the indexed words with that
# prefix have its Snowball stem, but for strays holding at most STRAY_FRACTION
# as many chunks; BM25 then counts the forms together as one term, as a stemming
# index would. Otherwise the word is searched as written. On NFCorpus, requiring
# no strays at all gave nDCG@10 0.3142, 5% 0.3183, 10% 0.3181 (as written: 0.3082).

COMMON_FRACTION = 0.5
STRAY_FRACTION = 0.05
SPEED_FRACTION = 0.2
ROW_BUDGET = 20_000
_MIN_PREFIX = 4

# A TEMP table: it lives in the connection, not in the file, so the schema the
# ctx tool sees is unchanged. fts5vocab counts the chunks that hold each word.
_CREATE_VOCAB = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_fts_vocab USING fts5vocab(main, chunks_fts, row)"
)
_VOCAB_TERM = "SELECT doc FROM temp.chunks_fts_vocab WHERE term = ?"
_VOCAB_RANGE = "SELECT term, doc FROM temp.chunks_fts_vocab WHERE term >= ? AND term < ?"


@dataclass(frozen=True)
class Term:
    """One word of a question as FTS5 searches it."""

    word: str
    phrase: str  # '"word"', or '"prefix"*' for all its forms
    chunks: int | None  # chunks holding it (its forms summed); None: not known, see _look_up


class KeywordStats:
    """Chunk counts per word, read through ``fts5vocab`` and kept while nothing changes.

    One per connection, like the vector index: the change counters it checks
    belong to one connection (see :mod:`ctx_models.backends.sqlite.state`).
    """

    def __init__(self) -> None:
        self._terms: dict[str, Term] = {}
        self._stamp: tuple[int, int] | None = None
        self.chunks = 0

    def ensure_fresh(self, conn: sqlite3.Connection, stamp: tuple[int, int], *, trust: bool) -> None:
        if stamp == self._stamp:
            return
        conn.execute(_CREATE_VOCAB)
        self._terms = {}
        self.chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        self._stamp = stamp if trust else None

    def term(self, conn: sqlite3.Connection, word: str) -> Term:
        key = word.lower()
        found = self._terms.get(key)
        if found is None:
            found = self._terms[key] = self._look_up(conn, word, key)
        return found

    def _look_up(self, conn: sqlite3.Connection, word: str, key: str) -> Term:
        if not (key.isascii() and key.isalpha() and len(key) > _MIN_PREFIX):
            row = conn.execute(_VOCAB_TERM, (key,)).fetchone()
            if row is None and not key.isascii():
                # FTS5 folds case and diacritics with its own tables ("zürich" is indexed
                # as "zurich"), so a miss says nothing: FTS5 will fold the query the same way.
                return Term(word, f'"{word}"', None)
            return Term(word, f'"{word}"', row[0] if row else 0)
        start = key[:_MIN_PREFIX]
        forms = conn.execute(_VOCAB_RANGE, (start, start[:-1] + chr(ord(start[-1]) + 1))).fetchall()
        if not forms:
            return Term(word, f'"{word}"', 0)
        stem = _stem(key)
        # No indexed word is longer than the longest form: a longer prefix covers nothing,
        # so a long word costs one pass over it, not one copy of each of its prefixes.
        longest = max(len(term) for term, _ in forms)
        for length in range(_MIN_PREFIX, min(len(key), longest) + 1):
            prefix = key[:length]
            covered = [(term, count) for term, count in forms if term.startswith(prefix)]
            if not covered:
                break
            own = sum(count for term, count in covered if _stem(term) == stem)
            other = sum(count for term, count in covered if _stem(term) != stem)
            if own and other <= STRAY_FRACTION * own:
                chunks = min(self.chunks, own + other)
                if [term for term, _ in covered] == [key]:
                    return Term(word, f'"{word}"', chunks)
                return Term(word, f'"{prefix}"*', chunks)
        return Term(word, f'"{word}"', dict(forms).get(key, 0))

    def plan(self, conn: sqlite3.Connection, text: str) -> KeywordAnswer:
        """The ``any`` expression for ``text``: its words' forms, ORed, the uninformative left out."""
        terms: dict[str, Term] = {}  # one per phrase: "scanner" and "scanners" are one term
        for word in unique_words(text):
            term = self.term(conn, word)
            terms.setdefault(term.phrase, term)
        # A word no chunk holds matches nothing: leaving it out changes no result.
        present = [t for t in terms.values() if t.chunks != 0]
        kept = [t for t in present if (t.chunks or 0) <= COMMON_FRACTION * self.chunks] or present
        scored = sum(t.chunks or 0 for t in kept)
        for term in sorted(kept, key=lambda t: -(t.chunks or 0)):
            count = term.chunks or 0
            if scored <= ROW_BUDGET or count <= SPEED_FRACTION * self.chunks or len(kept) == 1:
                break
            kept.remove(term)
            scored -= count
        return KeywordAnswer(
            [],
            " OR ".join(t.phrase for t in kept),
            [t.word for t in kept],
            [t.word for t in present if t not in kept],
            [t.word for t in terms.values() if t.chunks == 0],
        )


# --------------------------------------------------------------------------- the query


def keyword_query(
    match: str, limit: int, source: str | None = None, since: int | None = None
) -> tuple[str, list[Any]]:
    """The SQL and parameters keyword search runs for an FTS5 ``match`` expression.

    Exposed so the same statement can run through another driver (the benchmark
    compares it with bare ``sqlite3``). Rows: chunk_id, document_id, bm25, snippet.
    ``ORDER BY bm25()`` rather than ``rank``: FTS5 then scores each row once and
    SQLite keeps only the best ``limit`` (measured: about twice as fast).
    """
    sql = (
        "SELECT chunks_fts.chunk_id, chunks_fts.document_id, bm25(chunks_fts) AS score, "
        "snippet(chunks_fts, 2, ?, ?, ?, ?) FROM chunks_fts"
    )
    params: list[Any] = [snippets.START, snippets.END, snippets.ELLIPSIS, snippets.TOKENS]
    if source is not None or since is not None:
        sql += " JOIN documents ON documents.id = chunks_fts.document_id"
    sql += " WHERE chunks_fts MATCH ?"
    params.append(match)
    if source is not None:
        sql += " AND documents.source = ?"
        params.append(source)
    if since is not None:
        sql += " AND documents.updated_at >= ?"
        params.append(since)
    sql += " ORDER BY score LIMIT ?"
    params.append(limit)
    return sql, params


def run(
    conn: sqlite3.Connection, match: str, limit: int, source: str | None, since: int | None
) -> list[Candidate]:
    """Keyword candidates for an FTS5 expression, best first, score = −bm25."""
    sql, params = keyword_query(match, limit, source, since)
    # FTS5's columns have no declared type: a BLOB another program wrote there reads as bytes.
    return [
        Candidate(as_text(chunk_id), as_text(document_id), -score, as_text(snippet))
        for chunk_id, document_id, score, snippet in conn.execute(sql, params).fetchall()
    ]


#: How FTS5 words its complaints about a query (fts5_expr.c); anything else is the database's.
FTS_QUERY_ERRORS = (
    "fts5: syntax error",
    "unterminated string",
    "no such column",
    "unknown special query",
    "expected integer",
)
