"""Keyword search on PostgreSQL: the question's words ORed as a tsquery, ranked by ``ts_rank_cd``.

The word rule is the SQLite backend's (:mod:`ctx_models.words`): every word is
optional, and each goes through ``plainto_tsquery('english', ...)``, which
stems it (Snowball, as the SQLite backend's word forms) and drops English stop
words, so no text can be tsquery syntax. ``match="all"`` requires every word;
``raw=True`` passes the text to ``to_tsquery`` as written.
"""

from __future__ import annotations

from typing import Any

from ... import snippets
from ...words import unique_words
from ..base import Candidate, KeywordAnswer

__all__ = ["plan", "run", "HEADLINE_OPTIONS", "RANK_NORMALIZATION"]

#: ts_rank_cd's normalization: 1 divides by 1 + the log of the chunk's length, so that a
#: longer chunk holding the same words ranks below a shorter one (BM25 does as much).
RANK_NORMALIZATION = 1

# ts_headline marks matches as FTS5's snippet does, around 48 words.
HEADLINE_OPTIONS = (
    f"StartSel={snippets.START}, StopSel={snippets.END}, MaxWords={snippets.TOKENS}, "
    f"MinWords={snippets.TOKENS // 2}, ShortWord=2, MaxFragments=1"
)


def plan(db: Any, text: str, match: str, raw: bool) -> KeywordAnswer:
    """The tsquery for a question (its text form), and which words counted."""
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
    lexemes = {word: query for word, query in rows}
    used = [w for w in words if lexemes.get(w)]
    joiner = " | " if match == "any" else " & "
    expression = joiner.join(f"({lexemes[w]})" for w in used)
    return KeywordAnswer([], expression, used=used, dropped=[w for w in words if not lexemes.get(w)])


def run(
    db: Any, expression: str, limit: int, source: str | None, since: int | None
) -> list[Candidate]:
    """The best ``limit`` chunks for a tsquery, with FTS5-like snippets for those only."""
    joins, filters = "", ""
    params: list[Any] = [expression, RANK_NORMALIZATION]
    if source is not None or since is not None:
        joins = " JOIN documents AS d ON d.id = f.document_id"
    if source is not None:
        filters += " AND d.source = %s"
        params.append(source)
    if since is not None:
        filters += " AND d.updated_at >= %s"
        params.append(since)
    params += [limit, HEADLINE_OPTIONS]
    sql = (
        "WITH q AS (SELECT %s::tsquery AS query), "
        "top AS (SELECT f.chunk_id, f.document_id, f.text, ts_rank_cd(f.tsv, q.query, %s) AS score "
        f"FROM chunks_fts AS f CROSS JOIN q{joins} WHERE f.tsv @@ q.query{filters} "
        "ORDER BY score DESC, f.chunk_id LIMIT %s) "
        "SELECT top.chunk_id, top.document_id, top.score, "
        "ts_headline('english', top.text, q.query, %s), top.text FROM top CROSS JOIN q "
        "ORDER BY top.score DESC, top.chunk_id"
    )
    return [
        Candidate(chunk_id, document_id, float(score), _with_ellipses(headline, text))
        for chunk_id, document_id, score, headline, text in db.execute_sql(sql, params).fetchall()
    ]


def _with_ellipses(headline: str, text: str) -> str:
    """``...`` where the headline cuts the text, as FTS5's snippet marks it."""
    plain = snippets.plain(headline)
    words = text.split()
    start = "" if not plain or " ".join(words).startswith(plain.split(" ", 1)[0]) else snippets.ELLIPSIS
    end = "" if not plain or " ".join(words).endswith(plain.rsplit(" ", 1)[-1]) else snippets.ELLIPSIS
    return f"{start}{headline}{end}"
