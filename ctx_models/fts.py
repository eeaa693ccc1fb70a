"""The FTS5 side of the store (SQLite only): writing, deleting and querying ``chunks_fts``.

``chunks_fts`` has no triggers and no link to ``chunks`` besides the UNINDEXED
``chunk_id`` column, which FTS5 cannot look up without reading every row. So
when we write FTS rows we give each the rowid of its chunk; deleting a
document's rows is then a handful of rowid lookups. Rows written by another
program need not be aligned: when the aligned delete finds fewer rows than
there are chunks, the slow delete by ``document_id`` finishes the job.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import snowballstemmer
from peewee import SQL, Database

from .models import Chunk, ChunkFTS
from .words import unique_words

__all__ = [
    "insert_fts_rows_since",
    "delete_fts_rows",
    "max_chunk_rowid",
    "user_query",
    "KeywordPlan",
    "KeywordStats",
    "MATCH_MODES",
    "SNIPPET_START",
    "SNIPPET_END",
    "SNIPPET_ELLIPSIS",
    "SNIPPET_TOKENS",
]

SNIPPET_START, SNIPPET_END, SNIPPET_ELLIPSIS, SNIPPET_TOKENS = ">>>", "<<<", "...", 48

#: ``any``: every word optional, BM25 ranks; ``all``: every word required, as the ctx tool does.
MATCH_MODES = ("any", "all")

_ROWID = SQL("rowid")


def max_chunk_rowid(db: Database) -> int:
    """The largest rowid in ``chunks`` (0 when empty); new chunks get larger ones."""
    return db.execute_sql("SELECT coalesce(max(rowid), 0) FROM chunks").fetchone()[0]


def insert_fts_rows_since(db: Database, rowid: int) -> int:
    """Write the FTS row of every chunk whose rowid is above ``rowid``; returns the count.

    The text is copied inside SQLite, not sent again from Python.
    """
    fts_max = db.execute_sql("SELECT coalesce(max(rowid), 0) FROM chunks_fts").fetchone()[0]
    new_chunks = Chunk.select(_ROWID, Chunk.id, Chunk.document, Chunk.text).where(_ROWID > rowid)
    if fts_max <= rowid:
        fields = [ChunkFTS.rowid, ChunkFTS.chunk_id, ChunkFTS.document_id, ChunkFTS.text]
    else:
        # Another program's rows sit above our rowids: let FTS5 number ours.
        new_chunks = new_chunks.select(Chunk.id, Chunk.document, Chunk.text).order_by(_ROWID)
        fields = [ChunkFTS.chunk_id, ChunkFTS.document_id, ChunkFTS.text]
    # Peewee returns lastrowid for inserts; the cursor knows how many rows went in.
    return db.execute(ChunkFTS.insert_from(new_chunks, fields)).rowcount


def delete_fts_rows(
    db: Database, document_ids: Sequence[str], *, always_scan: bool = False
) -> None:
    """Delete the FTS rows of these documents' chunks (call before deleting the chunks)."""
    chunk_rows = Chunk.select(_ROWID).where(Chunk.document.in_(document_ids))
    chunk_ids = Chunk.select(Chunk.id).where(Chunk.document.in_(document_ids))
    expected = Chunk.select().where(Chunk.document.in_(document_ids)).count()
    deleted = (
        ChunkFTS.delete()
        .where(ChunkFTS.rowid.in_(chunk_rows) & ChunkFTS.chunk_id.in_(chunk_ids))
        .execute()
    )
    if always_scan or deleted < expected:
        ChunkFTS.delete().where(ChunkFTS.document_id.in_(document_ids)).execute()


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


class _Stemmer:
    """Snowball's English stemmer, with memory; one at a time (the stemmer keeps state)."""

    def __init__(self) -> None:
        self._stemmer = snowballstemmer.stemmer("english")
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, word: str) -> str:
        stem = self._known.get(word)
        if stem is None:
            with self._lock:
                stem = self._stemmer.stemWord(word)
            if len(self._known) < 500_000:  # bounded on unbounded vocabularies
                self._known[word] = stem
        return stem


_stem = _Stemmer()


@dataclass(frozen=True)
class Term:
    """One word of a question as FTS5 searches it."""

    word: str
    phrase: str  # '"word"', or '"prefix"*' for all its forms
    chunks: int | None  # chunks holding it (its forms summed); None: not known, see _look_up


@dataclass
class KeywordPlan:
    """The FTS5 expression for a question, and which of its words it leaves out."""

    match: str
    used: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # too common to change the order
    absent: list[str] = field(default_factory=list)  # in no chunk at all


class KeywordStats:
    """Chunk counts per word, read through ``fts5vocab`` and kept while nothing changes.

    One per connection, like the vector index: the change counters it checks
    belong to one connection (see :func:`ctx_models.vector_index.change_stamp`).
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
        stem = _stem(key)
        for length in range(_MIN_PREFIX, len(key) + 1):
            prefix = key[:length]
            covered = [(term, count) for term, count in forms if term.startswith(prefix)]
            own = sum(count for term, count in covered if _stem(term) == stem)
            other = sum(count for term, count in covered if _stem(term) != stem)
            if own and other <= STRAY_FRACTION * own:
                chunks = min(self.chunks, own + other)
                if [term for term, _ in covered] == [key]:
                    return Term(word, f'"{word}"', chunks)
                return Term(word, f'"{prefix}"*', chunks)
        return Term(word, f'"{word}"', dict(forms).get(key, 0))

    def plan(self, conn: sqlite3.Connection, text: str) -> KeywordPlan:
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
        return KeywordPlan(
            " OR ".join(t.phrase for t in kept),
            [t.word for t in kept],
            [t.word for t in present if t not in kept],
            [t.word for t in terms.values() if t.chunks == 0],
        )
