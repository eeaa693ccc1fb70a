"""Relevance of keyword, semantic and hybrid search: nDCG@10 and Recall@100 against a BM25 floor.

    python scripts/bench.py quality [--data DIR|demo] [--embedder NAME] [--sweep]
                                    [--limit-queries N]

``--data DIR`` reads a collection in the BEIR layout (``corpus.jsonl[.gz]``,
``queries_test.jsonl``, ``qrels_test.tsv``); ``--data demo`` (the default) uses
the demo corpus and its labelled questions. The collection is ingested into a
fresh database under ``--workdir``, then every judged query runs through four
searches: bare SQL BM25 through the standard library's ``sqlite3`` (the floor,
measured in the same run), ``keyword_search``, ``vector_search`` and
``hybrid_search``. ``--sweep`` then tries hybrid over a grid of fusion settings.
Metrics follow pytrec_eval / BEIR: linear gain (the qrels grade), log2 discount.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ctx_models
from ctx_models import embedders, search, store
from ctx_models.errors import EmbedderUnavailableError

from . import core
from .corpora import Collection, CollectionError, load_collection

#: Ranked documents kept per query, and the candidates fetched to fill them.
DEPTH = 100


FETCH = 300


#: BM25 nDCG@10 published for BEIR collections (Thakur et al. 2021, "BEIR", Table 2).
PUBLISHED_BM25 = {
    "nfcorpus": 0.325,
    "scifact": 0.665,
    "fiqa": 0.236,
    "arguana": 0.315,
    "scidocs": 0.158,
    "trec-covid": 0.656,
}


SWEEP_FUSIONS = ("rrf", "minmax")


SWEEP_ALPHAS = (0.1, 0.2, 0.25, 0.33, 0.4, 0.5, 0.6, 0.7)


SWEEP_CANDIDATES = (40, 80, 160)


SWEEP_RRF_K = (5, 10, 20, 60)


DEFAULT_CANDIDATES = 80


UPDATED_AT = 1_700_000_000


Ranker = Callable[[str, str], list[str]]  # (query id, text) -> document ids, best first


@dataclass
class RunResult:
    """One run's per-query metrics and timings, and their averages."""

    label: str
    ndcg: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    empty: int = 0
    ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """The averages reported in the table and the JSON."""
        return {
            "ndcg@10": statistics.fmean(self.ndcg.values()) if self.ndcg else 0.0,
            "recall@100": statistics.fmean(self.recall.values()) if self.recall else 0.0,
            "empty": self.empty,
            "ms_per_query_median": statistics.median(self.ms) if self.ms else 0.0,
        }


def unique(ranking: Iterable[str]) -> list[str]:
    """The ranking with repeats removed, each document keeping its first (best) position."""
    return list(dict.fromkeys(ranking))


def ndcg_at_k(ranking: Sequence[str], grades: dict[str, int], k: int = 10) -> float:
    """nDCG@k as pytrec_eval computes it: gain = grade, discount log2(rank + 1), ideal from qrels.

    Repeated documents count once, at their first rank; 0.0 when nothing is relevant.
    """
    dcg = sum(
        grades.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(unique(ranking)[:k], 1)
    )
    ideal_grades = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal_grades, 1))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at_k(ranking: Sequence[str], grades: dict[str, int], k: int = 100) -> float:
    """Relevant documents in the top k (each counted once) over all relevant documents."""
    relevant = {doc for doc, grade in grades.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(unique(ranking)[:k])) / len(relevant)


def ingest(collection: Collection, db: Any, embedder: embedders.Embedder) -> dict[str, Any]:
    """Load the collection into the (new, bound) database ``db``; returns sizes and timing."""
    items = [
        {
            "source": "bench",
            "source_id": doc_id,
            "title": title,
            "body": body,
            "updated_at": UPDATED_AT,
        }
        for doc_id, title, body in collection.documents
    ]
    started = time.perf_counter()
    summary = store.ingest_many(items, embedder=embedder, batch_size=500)
    seconds = time.perf_counter() - started
    if summary.created != len(items):
        raise RuntimeError(f"ingest created {summary.created} of {len(items)} documents")
    chunks = db.execute_sql("SELECT count(*) FROM chunks").fetchone()[0]
    return {"documents": len(items), "chunks": chunks, "seconds": seconds}


def document_ids(db: Any) -> dict[str, str]:
    """documents.id -> the collection's document id (documents.source_id)."""
    return dict(db.execute_sql("SELECT id, source_id FROM documents").fetchall())


FLOOR_SQL = (
    "SELECT d.source_id FROM chunks_fts JOIN documents AS d ON d.id = chunks_fts.document_id "
    f"WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT {FETCH}"
)


def floor_ranker(conn: sqlite3.Connection) -> Ranker:
    """BM25 through bare sqlite3: every word of the query quoted and OR-ed, best chunk first."""

    def rank(query_id: str, text: str) -> list[str]:
        words = re.findall(r"\w+", text)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        return [row[0] for row in conn.execute(FLOOR_SQL, (match,)).fetchall()]

    return rank


PG_FLOOR_SQL = (
    "SELECT d.source_id FROM chunks_fts AS f JOIN documents AS d ON d.id = f.document_id, "
    "to_tsquery('english', %s) AS q WHERE f.tsv @@ q ORDER BY ts_rank(f.tsv, q) DESC "
    f"LIMIT {FETCH}"
)


def pg_floor_ranker(conn: Any) -> Ranker:
    """ts_rank through bare psycopg: every word OR-ed, as PostgreSQL's own full-text search."""

    def rank(query_id: str, text: str) -> list[str]:
        words = [w.lower() for w in re.findall(r"[^\W_]+", text)]
        if not words:
            return []
        query = " | ".join(f"'{w}'" for w in words)
        return [row[0] for row in conn.execute(PG_FLOOR_SQL, (query,)).fetchall()]

    return rank


def keyword_ranker(ids: dict[str, str]) -> Ranker:
    """``keyword_search``: documents in the order their first chunk appears."""

    def rank(query_id: str, text: str) -> list[str]:
        return [ids[c.document_id] for c in search.keyword_search(text, limit=FETCH)]

    return rank


def semantic_ranker(ids: dict[str, str]) -> Ranker:
    """``vector_search`` on the text (embedded with the stored vectors' model)."""

    def rank(query_id: str, text: str) -> list[str]:
        return [ids[c.document_id] for c in search.vector_search(text, limit=FETCH)]

    return rank


def hybrid_ranker(vectors: dict[str, np.ndarray] | None = None, **options: Any) -> Ranker:
    """``hybrid_search`` with ``options``; with ``vectors``, each query's precomputed vector."""

    def rank(query_id: str, text: str) -> list[str]:
        vector = vectors[query_id] if vectors is not None else None
        return [r.source_id for r in search.hybrid_search(text, vector, limit=DEPTH, **options)]

    return rank


def evaluate(label: str, ranker: Ranker, collection: Collection) -> RunResult:
    """Run every query through ``ranker``, timing each call; a raising query is reported."""
    result = RunResult(label)
    for query_id, text in collection.queries:
        started = time.perf_counter()
        try:
            found = ranker(query_id, text)
        except Exception:
            print(f"{label}: query {query_id} {text!r:.80} raised:", file=sys.stderr)
            raise
        result.ms.append((time.perf_counter() - started) * 1000)
        ranking = unique(found)[:DEPTH]
        result.empty += not ranking
        grades = collection.qrels[query_id]
        result.ndcg[query_id] = ndcg_at_k(ranking, grades, 10)
        result.recall[query_id] = recall_at_k(ranking, grades, DEPTH)
    return result


def default_alpha(fusion: str, model: str | None = None) -> float:
    """The weight hybrid search uses by default: the model's own, else the fusion's."""
    return search.MODEL_ALPHA.get(model or "", {}).get(fusion, search.DEFAULT_ALPHA[fusion])


def hybrid_label(model: str | None = None) -> str:
    """The hybrid row's name, with the library's default fusion and weight (for ``model``)."""
    fusion = search.DEFAULT_FUSION
    return f"hybrid ({fusion}, alpha {default_alpha(fusion, model):.2f})"


def main_runs(
    collection: Collection, db: Any, where: Any, model: str | None = None
) -> list[RunResult]:
    """The floor, keyword, semantic and hybrid runs with the library's defaults."""
    ids = document_ids(db)
    if isinstance(where, Path):
        conn: Any = sqlite3.connect(where)
        floor = ("bm25 floor (bare sqlite3)", floor_ranker(conn))
    else:
        import psycopg

        conn = psycopg.connect(where)
        floor = ("ts_rank floor (bare psycopg)", pg_floor_ranker(conn))
    try:
        return [
            evaluate(floor[0], floor[1], collection),
            evaluate("keyword", keyword_ranker(ids), collection),
            evaluate("semantic", semantic_ranker(ids), collection),
            evaluate(hybrid_label(model), hybrid_ranker(), collection),
        ]
    finally:
        conn.close()


@dataclass
class Setting:
    """One point of the hybrid grid."""

    fusion: str
    alpha: float
    candidates: int
    rrf_k: int | None  # None for minmax, which has no rank offset
    model: str | None = None

    def is_default(self) -> bool:
        """True for the library's defaults (fusion, its alpha, 80 candidates, RRF_K)."""
        return (
            self.fusion == search.DEFAULT_FUSION
            and self.alpha == default_alpha(self.fusion, self.model)
            and self.candidates == DEFAULT_CANDIDATES
            and (self.rrf_k is None or self.rrf_k == search.RRF_K)
        )


def grid(model: str | None = None) -> list[Setting]:
    """The sweep's settings; a grid alpha within 0.005 of a fusion's default becomes the default.

    So 0.33 is run as rrf's exact 1/3, and the starred row reproduces the main hybrid run.
    """
    settings = []
    for fusion in SWEEP_FUSIONS:
        default = default_alpha(fusion, model)
        alphas = [default if abs(a - default) < 0.005 else a for a in SWEEP_ALPHAS]
        offsets: Sequence[int | None] = SWEEP_RRF_K if fusion == "rrf" else (None,)
        for alpha in alphas:
            for candidates in SWEEP_CANDIDATES:
                for rrf_k in offsets:
                    settings.append(Setting(fusion, alpha, candidates, rrf_k, model))
    return settings


def query_vectors(collection: Collection, embedder: embedders.Embedder) -> dict[str, np.ndarray]:
    """Each query embedded once, so the sweep times the search rather than the model."""
    return {query_id: embedder.embed([text])[0] for query_id, text in collection.queries}


def run_setting(
    setting: Setting, collection: Collection, vectors: dict[str, np.ndarray]
) -> RunResult:
    """Hybrid search at one grid point; RRF_K is set for the run and then restored."""
    original = search.RRF_K
    try:
        if setting.rrf_k is not None:
            search.RRF_K = setting.rrf_k
        ranker = hybrid_ranker(
            vectors,
            fusion=setting.fusion,
            alpha=setting.alpha,
            candidates_keyword=setting.candidates,
            candidates_vector=setting.candidates,
        )
        label = f"hybrid {setting.fusion} {setting.alpha:.2f} {setting.candidates} {setting.rrf_k}"
        return evaluate(label, ranker, collection)
    finally:
        search.RRF_K = original


def sweep(collection: Collection, embedder: embedders.Embedder) -> list[tuple[Setting, RunResult]]:
    """Every grid point, best nDCG@10 first."""
    vectors = query_vectors(collection, embedder)
    rows = [(s, run_setting(s, collection, vectors)) for s in grid(embedder.model)]
    rows.sort(key=lambda row: -row[1].summary()["ndcg@10"])
    return rows


def format_table(runs: Sequence[RunResult]) -> list[str]:
    """The main table: one row per run."""
    lines = [f"{'run':<29}{'nDCG@10':>7}{'Recall@100':>12}{'empty':>7}{'ms/query':>10}"]
    for run in runs:
        s = run.summary()
        lines.append(
            f"{run.label:<29}{s['ndcg@10']:>7.4f}{s['recall@100']:>12.4f}"
            f"{s['empty']:>7}{s['ms_per_query_median']:>10.1f}"
        )
    return lines


def format_sweep(rows: Sequence[tuple[Setting, RunResult]]) -> list[str]:
    """The sweep table, one row per setting as given; ``*`` marks the library's defaults."""
    lines = [
        f"  {'fusion':<8}{'alpha':>6}{'candidates':>12}{'rrf_k':>7}"
        f"{'nDCG@10':>9}{'Recall@100':>12}{'empty':>7}{'ms/query':>10}"
    ]
    for setting, run in rows:
        s = run.summary()
        rrf_k = "-" if setting.rrf_k is None else str(setting.rrf_k)
        lines.append(
            f"{'*' if setting.is_default() else ' '} {setting.fusion:<8}{setting.alpha:>6.2f}"
            f"{setting.candidates:>12}{rrf_k:>7}{s['ndcg@10']:>9.4f}{s['recall@100']:>12.4f}"
            f"{s['empty']:>7}{s['ms_per_query_median']:>10.1f}"
        )
    return lines


def run_json(run: RunResult) -> dict[str, Any]:
    """A run for the results file: averages, then per-query nDCG@10 and Recall@100."""
    return {
        **run.summary(),
        "per_query": {q: [run.ndcg[q], run.recall[q]] for q in run.ndcg},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``quality`` subcommand's options."""
    parser.add_argument(
        "--data", default="demo", help="a BEIR collection directory, or demo (the default)"
    )
    parser.add_argument(
        "--embedder", default=None, help="model name (default: ctx_models' default embedder)"
    )
    parser.add_argument(
        "--model-path",
        metavar="DIR",
        default=None,
        help="the folder of the --embedder model's files (one of ctx's transformer models)",
    )
    parser.add_argument("--sweep", action="store_true", help="also hybrid over a settings grid")
    parser.add_argument(
        "--limit-queries", type=int, default=None, help="evaluate only the first N queries"
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="measure on this PostgreSQL database (in a schema bench_quality, made anew) "
        "instead of a SQLite file under --workdir",
    )


def choose_embedder(name: str | None, path: str | None = None) -> embedders.Embedder:
    """The embedder named on the command line (from ``path`` if given), else the library's default.

    With a path, the model is registered under its name, so that the searches
    (which find the embedder by the stored vectors' model) load it from there too.
    """
    if path is not None:
        from ctx_models import model_files

        if name not in model_files.MODELS:
            raise EmbedderUnavailableError(
                f"--model-path needs --embedder naming one of ctx's models ({', '.join(model_files.MODELS)})"
            )
        embedder = model_files.load(name, path)
        embedders.register_embedder(name, lambda: embedder)
        return embedder
    if name is None:
        return embedders.default_embedder()
    return embedders.embedder_for_model(name)


def evaluate_all(
    collection: Collection, db: Any, where: Any, embedder: embedders.Embedder, with_sweep: bool
) -> dict[str, Any]:
    """Print the main table (and the sweep); returns the numbers for the results file."""
    runs = main_runs(collection, db, where, embedder.model)
    print("\n".join(format_table(runs)))
    published = PUBLISHED_BM25.get(collection.name.lower())
    if published is not None:
        print(
            f"published BM25 nDCG@10 on {collection.name}: {published:.3f} "
            "(BEIR paper, Thakur et al. 2021, Table 2)"
        )
    results: dict[str, Any] = {
        "published_bm25_ndcg@10": published,
        "runs": {run.label: run_json(run) for run in runs},
    }
    if with_sweep:
        started = time.perf_counter()
        rows = sweep(collection, embedder)
        print()
        print(
            f"sweep: hybrid over {len(rows)} settings, best nDCG@10 first "
            f"(* = the library's defaults; {time.perf_counter() - started:.0f} s)"
        )
        print("\n".join(format_sweep(rows)))
        results["sweep"] = [
            {
                "fusion": s.fusion,
                "alpha": s.alpha,
                "candidates": s.candidates,
                "rrf_k": s.rrf_k,
                "default": s.is_default(),
                **run.summary(),
            }
            for s, run in rows
        ]
    return results


def fresh_store(args: argparse.Namespace) -> Any:
    """A new SQLite file under --workdir, or a new schema in the --db PostgreSQL database."""
    if getattr(args, "db", None) is None:
        return core.fresh(Path(args.workdir) / "quality.sqlite")
    return core.fresh_schema(args.db, "bench_quality")


def bench_quality(args: argparse.Namespace) -> None:
    """``bench.py quality``: ingest, evaluate, print the tables and write quality.json."""
    try:
        collection = load_collection(args.data)
        embedder = choose_embedder(args.embedder, getattr(args, "model_path", None))
    except (CollectionError, EmbedderUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.limit_queries is not None:
        collection.queries = collection.queries[: args.limit_queries]
    # Importing wordllama sets the root logger to INFO, and hybrid search logs (at INFO) each
    # signal it leaves out: thousands of lines in a sweep. Warnings still show.
    library_log = logging.getLogger("ctx_models")
    log_level = library_log.level
    library_log.setLevel(logging.WARNING)
    where = fresh_store(args)
    db = ctx_models.connect(where)
    try:
        ctx_models.run_migrations(db)
        print(f"ingesting {len(collection.documents):,} documents ...", flush=True)
        loaded = ingest(collection, db, embedder)
        print(
            f"ingest: {loaded['chunks']:,} chunks in {loaded['seconds']:.1f} s "
            f"({loaded['chunks'] / loaded['seconds']:,.0f} chunks/s)",
            flush=True,
        )
        print()
        print(
            f"collection {collection.name}: {loaded['documents']:,} documents, "
            f"{loaded['chunks']:,} chunks, {len(collection.queries):,} queries; "
            f"embedder {embedder.model}"
        )
        numbers = evaluate_all(collection, db, where, embedder, args.sweep)
    finally:
        db.close()
        library_log.setLevel(log_level)
    results = {
        "collection": collection.name,
        "backend": "sqlite" if isinstance(where, Path) else "postgresql",
        "data": args.data,
        "documents": loaded["documents"],
        "chunks": loaded["chunks"],
        "queries": len(collection.queries),
        "limit_queries": args.limit_queries,
        "embedder": embedder.model,
        "ingest_seconds": loaded["seconds"],
        "ingest_chunks_per_s": loaded["chunks"] / loaded["seconds"],
        **numbers,
    }
    print(f"results: {core.write_results('quality', results)}")
