"""Keyword search on English text for ``bench.py search``: ours against every word ORed
through bare sqlite3, and against our own SQL through bare sqlite3, p50 and p95.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import ctx_models
from ctx_models import search, store
from ctx_models.backends.sqlite.keyword import keyword_query
from ctx_models.backends.sqlite.state import state_for

from .core import (
    fresh,
    percentiles,
    raw_connection,
    timed,
    verdict,
)
from .corpora import english_chunks, english_questions, english_sentences


def bare_or_query(text: str) -> str:
    """Every word of the question quoted and ORed: optional words with no planning at all."""
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(re.findall(r"\w+", text.lower())))


def bench_keyword_english(workdir: Path, text_dir: str | None, chunks: int, rounds: int) -> dict:
    """Keyword search on English text: ours, and the bare OR query through sqlite3, p50 and p95."""
    name, sentences = english_sentences(text_dir)
    path = workdir / f"english-{chunks}-{Path(text_dir).name if text_dir else 'demo'}.sqlite"
    marker = path.with_suffix(".done")
    if not (path.exists() and marker.exists()):
        print(f"building {chunks:,} chunks of English from {name} ...", flush=True)
        db = ctx_models.connect(fresh(path))
        ctx_models.run_migrations(db)
        store.ingest_many(english_chunks(sentences, chunks, seed=5), progress=sys.stderr.isatty())
        db.close()
        marker.write_text("ok")
    questions = english_questions(sentences, 60, seed=9)
    db = ctx_models.connect(path, create=False)
    bare = raw_connection(path)
    floor_sql = (
        "SELECT chunk_id, document_id, rank FROM chunks_fts WHERE chunks_fts MATCH ? "
        "ORDER BY rank LIMIT 80"
    )
    for text in questions:  # warm the page cache and the per-connection word statistics
        search.keyword_search(text, limit=80)
    ours, floor, same_sql = [], [], []
    for _ in range(rounds):
        for text in questions:
            ours += timed(lambda: search.keyword_search(text, limit=80), 1)
            floor += timed(lambda: bare.execute(floor_sql, (bare_or_query(text),)).fetchall(), 1)
            conn = db.connection()
            plan = state_for(db, conn).keywords.plan(conn, text)  # fresh: searched above
            sql, params = keyword_query(plan.expression, 80)
            same_sql += timed(lambda: bare.execute(sql, params).fetchall(), 1)
    bare.close()
    db.close()
    return {
        "chunks": chunks,
        "text": name,
        "questions": len(questions),
        "ours_ms": percentiles(ours),
        "bare_or_ms": percentiles(floor),
        "our_sql_bare_ms": percentiles(same_sql),
        "goal_p95_ms": 100,
    }


def print_keyword_table(results: list[dict]) -> None:
    print()
    print(f"keyword search on English text ({results[0]['text']}), {results[0]['questions']} "
          "questions of 8-20 words")
    print(f"{'measure':<46}{'chunks':>10}{'p50 ms':>10}{'p95 ms':>10}  goal")
    for r in results:
        rows = (
            ("ours (optional words, planned)", r["ours_ms"],
             f"p95 <= 100 ms: {verdict(r['ours_ms']['p95'], 100)}" if r["chunks"] >= 100_000 else ""),
            ("floor: bare sqlite3, every word ORed", r["bare_or_ms"], ""),
            ("our SQL through bare sqlite3", r["our_sql_bare_ms"],
             f"{r['ours_ms']['p50'] / r['our_sql_bare_ms']['p50']:.2f}x at p50"),
        )
        for label, value, goal in rows:
            print(f"{label:<46}{r['chunks']:>10,}{value['p50']:>10.1f}{value['p95']:>10.1f}  {goal}")
