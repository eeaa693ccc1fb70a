"""PostgreSQL beside SQLite on the same data: ingest, vector, keyword and hybrid search.

    python scripts/bench.py backends --db URL [--chunks 100000] [--rounds 3] [--text DIR]
                                     [--repeat 1] [--skip-ingest] [--maintenance-work-mem SIZE]

One corpus for both backends: ``--chunks`` one-chunk documents of English
(``corpora.english_chunks``: sentences of the demo corpus, or of the BEIR
collection ``--text DIR``), each with a 384-dim float32 vector handed over by
a lookup embedder, so no embedding model is timed. The vectors are shaped like
embeddings (``LATENT_DIMS`` directions of variation, projected to 384, plus
noise): on uniformly random vectors no approximate index finds neighbours,
so HNSW recall would say nothing about real use.

``ingest``: ``store.ingest_many`` (batches of 500) into a new SQLite file and a
new PostgreSQL schema, each against a floor measured in the same run into the
same schema, with the same batches and transactions: on SQLite the standard
library's ``sqlite3.executemany`` (``core.load_floor``), on PostgreSQL plain
psycopg with COPY for documents, chunks, chunks_fts (a real table there, its
tsvector generated) and embeddings, and binary COPY for the vectors. Rows are
prepared before the clock starts.

Search runs on a corpus kept under ``--workdir`` (SQLite) and in the schema
``bench_backends_<chunks>_<text>`` (PostgreSQL, VACUUM ANALYZEd once built, as
autovacuum would leave it), rebuilt only when its marker is missing; the
store just ingested becomes that corpus when there is none. Measured, warm:
exact vector top-80 (``vector_search``); on PostgreSQL the HNSW index build,
top-80 through it (``exact=False``) and its recall@80 against exact search
(and, through bare SQL, at larger ``hnsw.ef_search`` than the library's 80);
the in-memory alternative to pgvector's scan on PostgreSQL (every vector read
into a numpy matrix, which any change forces again, and a matmul +
argpartition top-80 on it) beside what SQLite's in-memory index costs for the
same two steps; keyword search p50/p95 on natural-language questions
(``corpora.english_questions``); hybrid search p50.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import ctx_models
from ctx_models import search, store
from ctx_models.backends import backend_for
from ctx_models.backends.sqlite.state import index_for
from ctx_models.chunking import chunk_text

from . import core, corpora

DIMS = core.DIMS


K = 80


BATCH = 500


QUERIES = 50


QUESTIONS = 60


#: The directions the vectors vary along, and the isotropic noise on top (per component;
#: the signal's is about sqrt(LATENT_DIMS)).
LATENT_DIMS = 32


LATENT_NOISE = 0.5


#: How far a query vector lies from the stored vector it was drawn from (per component):
#: near enough to be its nearest neighbour.
NOISE = 0.5


DOCUMENT_COLUMNS = (
    "id, source, source_id, source_url, title, author, created_at, updated_at, "
    "content_type, body, metadata_json, raw_json, dedup_hash"
)


INGEST_GOAL = 1.5


RECALL_GOAL = 0.95


KEYWORD_P95_GOAL = 100.0  # ms, bench.py search's goal for English questions at 100,000 chunks


HYBRID_P50_GOAL = 25.0  # ms, bench.py search's goal


#: hnsw.ef_search values tried through bare SQL (the library sets it to the limit).
EF_SEARCH = (80, 200, 400, 800)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``backends`` subcommand's options."""
    parser.add_argument(
        "--db",
        metavar="URL",
        required=True,
        help="the PostgreSQL database (schemas bench_backends_* are made in it)",
    )
    parser.add_argument(
        "--chunks", type=int, default=100_000, help="one-chunk documents (default 100,000)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help=f"passes over the {QUERIES} query vectors and {QUESTIONS} questions (default 3)",
    )
    parser.add_argument(
        "--text",
        metavar="DIR",
        help="a BEIR collection whose English the corpus is drawn from (default: the demo corpus)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each loader (default 1)")
    parser.add_argument(
        "--skip-ingest", action="store_true", help="search measurements only (no ingest timing)"
    )
    parser.add_argument(
        "--maintenance-work-mem",
        metavar="SIZE",
        default=None,
        help="SET maintenance_work_mem for the HNSW build (default: the server's setting)",
    )


class Corpus:
    """The documents, their chunk texts and vectors, query vectors and questions."""

    def __init__(self, text_dir: str | None, chunks: int) -> None:
        self.text_name, sentences = corpora.english_sentences(text_dir)
        name = re.sub(r"[^a-z0-9]+", "_", Path(text_dir).name.lower()) if text_dir else "demo"
        self.tag = f"{name}_latent{LATENT_DIMS}"
        self.items = [
            # floor_rows reads these keys; ingest_many gets the same values.
            dict(item, title=None, created_at=item["updated_at"], metadata={})
            for item in corpora.english_chunks(sentences, chunks, seed=5)
        ]
        chunked = [chunk_text(item["body"]) for item in self.items]
        assert all(len(texts) == 1 for texts in chunked), "a document of several chunks"
        self.texts = [texts[0] for texts in chunked]
        # Like text embeddings, the vectors vary along few directions (LATENT_DIMS of the
        # 384): independent random 384-dim vectors are nothing like embeddings, and they
        # are HNSW's worst case (recall@80 0.17 at 100,000 where these give 0.95+).
        rng = np.random.default_rng(7)
        latent = rng.standard_normal((len(self.texts), LATENT_DIMS), dtype=np.float32)
        projection = rng.standard_normal((LATENT_DIMS, DIMS), dtype=np.float32)
        matrix = latent @ projection + LATENT_NOISE * rng.standard_normal(
            (len(self.texts), DIMS), dtype=np.float32
        )
        self.vectors = dict(zip(self.texts, matrix, strict=True))
        rng = np.random.default_rng(13)
        picks = rng.choice(len(self.texts), QUERIES, replace=False)
        self.query_vectors = [
            (self.vectors[self.texts[i]] + NOISE * rng.standard_normal(DIMS)).astype(np.float32)
            for i in picks
        ]
        self.questions = corpora.english_questions(sentences, QUESTIONS, seed=9)
        self.question_vectors = [
            (rng.standard_normal(LATENT_DIMS, dtype=np.float32) @ projection).astype(np.float32)
            for _ in self.questions
        ]

    def embedder(self) -> core.LookupEmbedder:
        return core.LookupEmbedder(self.vectors)


def pg(url: str, **options: Any) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, **options)


def schema_comment(url: str, schema: str) -> str | None:
    with pg(url) as conn:
        row = conn.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
            (schema,),
        ).fetchone()
    return None if row is None else row[0]


def drop_schema(url: str, schema: str) -> None:
    with pg(url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def load_pg_floor(url: str, batches: list[dict[str, list[tuple]]]) -> float:
    """Plain psycopg: COPY per table, binary COPY for the vectors, a transaction per batch."""
    from pgvector.psycopg import register_vector

    db = ctx_models.connect(url, bind_models=False)
    ctx_models.run_migrations(db)
    db.close()
    # The vectors as numpy arrays, the form pgvector's dumper takes (a view: no copy).
    for batch in batches:
        batch["pg_vectors"] = [
            (chunk_id, doc_id, np.frombuffer(blob, dtype="<f4"))
            for chunk_id, doc_id, blob in batch["vectors"]
        ]
    conn = pg(url)
    register_vector(conn)
    copies = (
        ("docs", f"COPY documents ({DOCUMENT_COLUMNS}) FROM STDIN", None),
        ("chunks", "COPY chunks (id, document_id, chunk_index, text, hash) FROM STDIN", None),
        ("fts", "COPY chunks_fts (chunk_id, document_id, text) FROM STDIN", None),
        (
            "embeddings",
            "COPY embeddings (chunk_id, model, dims, created_at, hash) FROM STDIN",
            None,
        ),
        (
            "pg_vectors",
            "COPY chunk_vectors (chunk_id, document_id, embedding) FROM STDIN (FORMAT BINARY)",
            ["text", "text", "vector"],
        ),
    )
    try:
        started = time.perf_counter()
        for batch in batches:
            with conn.transaction(), conn.cursor() as cursor:
                for key, sql, types in copies:
                    if not batch[key]:
                        continue
                    with cursor.copy(sql) as copy:
                        if types:
                            copy.set_types(types)
                        for row in batch[key]:
                            copy.write_row(row)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
        for batch in batches:
            del batch["pg_vectors"]
    return elapsed


def load_pg_ours(url: str, items: list[dict], embedder: Any) -> float:
    db = ctx_models.connect(url)
    ctx_models.run_migrations(db)
    started = time.perf_counter()
    summary = store.ingest_many(items, embedder=embedder, batch_size=BATCH)
    elapsed = time.perf_counter() - started
    assert summary.created == len(items), summary
    db.close()
    return elapsed


def read_all_vectors(conn: Any, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Every stored vector of ``dims`` with its chunk id, the fastest plain way: one binary
    COPY, decoded by numpy (rows of a fixed size when the ids are), then row-normalised."""
    sql = (
        "COPY (SELECT chunk_id, embedding FROM chunk_vectors "
        f"WHERE vector_dims(embedding) = {int(dims)}) TO STDOUT (FORMAT BINARY)"
    )
    with conn.cursor() as cursor, cursor.copy(sql) as copy:
        data = b"".join(bytes(block) for block in copy)
    header = 19 + struct.unpack_from(">i", data, 15)[0]  # signature, flags, extension length
    body = memoryview(data)[header : len(data) - 2]  # the trailer is a 16-bit -1
    vector_bytes = 4 + 4 * dims
    id_length = struct.unpack_from(">i", body, 2)[0] if len(body) else 0
    record = np.dtype(
        [
            ("fields", ">i2"),
            ("id_length", ">i4"),
            ("id", f"S{max(1, id_length)}"),
            ("vector_length", ">i4"),
            ("dims", ">u2"),
            ("unused", ">u2"),
            ("vector", ">f4", (dims,)),
        ]
    )
    rows = None
    if len(body) % record.itemsize == 0:
        rows = np.frombuffer(body, dtype=record)
        if not (
            (rows["fields"] == 2).all()
            and (rows["id_length"] == id_length).all()
            and (rows["vector_length"] == vector_bytes).all()
        ):
            rows = None
    if rows is not None:
        ids, matrix = rows["id"], rows["vector"].astype(np.float32)
    else:  # ids of different lengths: walk the rows
        found_ids, vectors, at = [], [], 0
        while at < len(body):
            (length,) = struct.unpack_from(">i", body, at + 2)
            found_ids.append(bytes(body[at + 6 : at + 6 + length]))
            at += 6 + length + 8
            vectors.append(np.frombuffer(body, dtype=">f4", count=dims, offset=at))
            at += 4 * dims
        ids, matrix = np.array(found_ids), np.array(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    matrix /= norms[:, None]
    return ids, matrix


def matmul_top(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = matrix @ (query / np.float32(np.linalg.norm(query)))
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def bench_ingest(args: argparse.Namespace, corpus: Corpus, result: dict) -> None:
    workdir = Path(args.workdir)
    chunks = len(corpus.items)
    batches = core.floor_rows(corpus.items, corpus.vectors)
    sqlite_floor, sqlite_ours, pg_floor, pg_ours = [], [], [], []
    for run in range(args.repeat):  # alternate, so drift in the machine hits every loader
        print(f"ingest {run + 1}/{args.repeat}: SQLite floor ...", flush=True)
        sqlite_floor.append(core.load_floor(workdir / "backends-floor.sqlite", batches))
        gc.collect()
        print("  SQLite ours ...", flush=True)
        sqlite_ours.append(
            core.load_ours(workdir / "backends-ours.sqlite", corpus.items, corpus.embedder())
        )
        gc.collect()
        print("  PostgreSQL floor ...", flush=True)
        pg_floor.append(load_pg_floor(core.fresh_schema(args.db, "bench_backends_floor"), batches))
        gc.collect()
        print("  PostgreSQL ours ...", flush=True)
        pg_ours.append(
            load_pg_ours(
                core.fresh_schema(args.db, "bench_backends_ours"), corpus.items, corpus.embedder()
            )
        )
        gc.collect()
    core.fresh(workdir / "backends-floor.sqlite").unlink(missing_ok=True)  # 100s of MB
    drop_schema(args.db, "bench_backends_floor")
    for name, floor_s, ours_s in (
        ("sqlite", sqlite_floor, sqlite_ours),
        ("postgresql", pg_floor, pg_ours),
    ):
        floor_t, ours_t = statistics.median(floor_s), statistics.median(ours_s)
        result[name]["ingest"] = {
            "ours_seconds": ours_s,
            "floor_seconds": floor_s,
            "ours_chunks_per_s": chunks / ours_t,
            "floor_chunks_per_s": chunks / floor_t,
            "ratio": ours_t / floor_t,
            "goal": INGEST_GOAL,
        }


def sqlite_corpus(args: argparse.Namespace, corpus: Corpus, ingested: bool) -> Path:
    """The SQLite corpus file: kept from an earlier run, else the store just ingested (when
    ``ingested``), else built."""
    workdir = Path(args.workdir)
    path = workdir / f"backends-{len(corpus.items)}-{corpus.tag}.sqlite"
    marker = path.with_suffix(".done")
    if path.exists() and marker.exists():
        return path
    core.fresh(path)
    if ingested:
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(workdir / "backends-ours.sqlite") + suffix)
            if source.exists():
                source.rename(str(path) + suffix)
    else:
        print(f"building the SQLite corpus ({len(corpus.items):,} chunks) ...", flush=True)
        db = ctx_models.connect(path)
        ctx_models.run_migrations(db)
        store.ingest_many(corpus.items, embedder=corpus.embedder(), batch_size=BATCH)
        db.close()
    marker.write_text("ok")
    return path


def postgres_corpus(args: argparse.Namespace, corpus: Corpus, ingested: bool) -> str:
    """The PostgreSQL corpus schema's URL, kept or made the same way as the SQLite file."""
    schema = f"bench_backends_{len(corpus.items)}_{corpus.tag}"
    marker = f"bench corpus: {len(corpus.items)} chunks of {corpus.tag}, ready"
    if schema_comment(args.db, schema) == marker:
        return core.schema_url(args.db, schema)
    drop_schema(args.db, schema)
    if ingested:
        with pg(args.db) as conn:
            conn.execute(f"ALTER SCHEMA bench_backends_ours RENAME TO {schema}")
        url = core.schema_url(args.db, schema)
    else:
        print(f"building the PostgreSQL corpus ({len(corpus.items):,} chunks) ...", flush=True)
        url = core.fresh_schema(args.db, schema)
        db = ctx_models.connect(url)
        ctx_models.run_migrations(db)
        store.ingest_many(corpus.items, embedder=corpus.embedder(), batch_size=BATCH)
        db.close()
    with pg(url) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum leaves behind a bulk load, made certain
        conn.execute(f"COMMENT ON SCHEMA {schema} IS '{marker}'")
    return url


def timed_each(fn: Any, inputs: Sequence[Any], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        for value in inputs:
            started = time.perf_counter()
            fn(value)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def exact_ids(queries: Sequence[np.ndarray], **options: Any) -> list[set[str]]:
    return [{c.chunk_id for c in search.vector_search(q, limit=K, **options)} for q in queries]


def by_source_id(db: Any, found: list[set[str]]) -> list[set[str]]:
    """Chunk ids as their documents' source ids, which both stores share (one chunk each)."""
    keys = dict(
        db.execute_sql(
            "SELECT c.id, d.source_id FROM chunks AS c JOIN documents AS d ON d.id = c.document_id"
        )
    )
    return [{keys[chunk_id] for chunk_id in ids} for ids in found]


def text_searches(corpus: Corpus, rounds: int) -> dict:
    """Keyword and hybrid search on the bound database, warmed first."""
    for text in corpus.questions:  # the page cache, and the word statistics kept per connection
        search.keyword_search(text, limit=K)
    keyword = timed_each(
        lambda text: search.keyword_search(text, limit=K), corpus.questions, rounds
    )
    pairs = list(zip(corpus.questions, corpus.question_vectors, strict=True))
    hybrid = timed_each(lambda pair: search.hybrid_search(pair[0], pair[1]), pairs, rounds)
    return {
        "keyword_ms": core.percentiles(keyword),
        "hybrid_ms": core.percentiles(hybrid),
    }


def measure_sqlite(path: Path, corpus: Corpus, rounds: int) -> tuple[dict, list[set[str]]]:
    db = ctx_models.connect(path, create=False)
    result: dict = {}
    search.vector_search(corpus.query_vectors[0], limit=K)  # builds the in-memory index
    exact = exact_ids(corpus.query_vectors)
    vector = timed_each(lambda q: search.vector_search(q, limit=K), corpus.query_vectors, rounds)
    result["vector_exact_ms"] = core.percentiles(vector)
    # The in-memory index's own two steps: its rebuild after a change, and scoring + top-k.
    backend = backend_for(db)
    conn = db.connection()
    index = index_for(db, conn)
    rebuilds = []
    for _ in range(3):
        with backend.read_snapshot():
            index.invalidate()
            started = time.perf_counter()
            index.ensure_fresh(conn)
            rebuilds.append((time.perf_counter() - started) * 1000)
    in_memory = timed_each(lambda q: index.search(q, K), corpus.query_vectors, rounds)
    result["in_memory"] = {
        "what": "SQLite's in-memory index: its rebuild; index.search top-80",
        "load_ms": core.summary(rebuilds),
        "top_ms": core.percentiles(in_memory),
    }
    result.update(text_searches(corpus, rounds))
    exact_documents = by_source_id(db, exact)
    db.close()
    return result, exact_documents


def measure_postgres(
    url: str, corpus: Corpus, rounds: int, work_mem: str | None
) -> tuple[dict, list[set[str]]]:
    db = ctx_models.connect(url)
    backend = backend_for(db)
    result: dict = {}
    db.execute_sql(f"DROP INDEX IF EXISTS {_hnsw_name()}")  # exact search first, without it
    exact = exact_ids(corpus.query_vectors)  # also warms the page cache
    vector = timed_each(lambda q: search.vector_search(q, limit=K), corpus.query_vectors, rounds)
    result["vector_exact_ms"] = core.percentiles(vector)

    # HNSW: the build, then top-80 through it, and its recall against exact search.
    if work_mem is not None:
        db.execute_sql(f"SET maintenance_work_mem = '{work_mem}'")
    memory = db.execute_sql("SHOW maintenance_work_mem").fetchone()[0]
    print(f"  HNSW build (maintenance_work_mem {memory}) ...", flush=True)
    notices: list[str] = []  # pgvector says when the graph outgrows maintenance_work_mem
    connection = db.connection()

    def notice(diag: Any) -> None:
        notices.append(diag.message_primary or "")

    connection.add_notice_handler(notice)
    started = time.perf_counter()
    built = backend.build_hnsw_indexes()
    build_s = time.perf_counter() - started
    connection.remove_notice_handler(notice)
    for message in notices:
        print(f"  server: {message}", flush=True)
    assert built == [(_hnsw_name(), DIMS)], built
    approximate = exact_ids(corpus.query_vectors, exact=False)
    hnsw = timed_each(
        lambda q: search.vector_search(q, limit=K, exact=False), corpus.query_vectors, rounds
    )
    recalls = [len(e & a) / len(e) for e, a in zip(exact, approximate, strict=True)]
    library_recall, sampled = search.hnsw_recall(DIMS, k=K, queries=QUERIES)
    result["hnsw"] = {
        "build_seconds": build_s,
        "maintenance_work_mem": memory,
        "build_notices": notices,
        "top_ms": core.percentiles(hnsw),
        "recall": statistics.mean(recalls),
        "recall_min": min(recalls),
        "recall_stored_vectors": library_recall,
        "recall_stored_vectors_queries": sampled,
        "goal_recall": RECALL_GOAL,
        "ef_search": ef_search_sweep(url, corpus, exact, rounds),
    }

    result["in_memory"] = in_memory_alternative(url, corpus, exact, rounds)
    result.update(text_searches(corpus, rounds))
    exact_documents = by_source_id(db, exact)
    db.close()
    return result, exact_documents


def ef_search_sweep(url: str, corpus: Corpus, exact: list[set[str]], rounds: int) -> dict:
    """HNSW top-80 through bare psycopg at several ``hnsw.ef_search`` values (the library sets
    it to the limit, 80): recall@80 against exact search, and p50."""
    from pgvector.psycopg import register_vector

    sql = (
        f"SELECT chunk_id FROM chunk_vectors WHERE vector_dims(embedding) = {DIMS} "
        f"ORDER BY embedding::vector({DIMS}) <=> %s::vector({DIMS}) LIMIT {K}"
    )
    found = {}
    with pg(url) as conn:
        register_vector(conn)

        def nearest(query: np.ndarray, ef: int) -> set[str]:
            with conn.transaction():
                conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                return {row[0] for row in conn.execute(sql, (query,))}

        for ef in EF_SEARCH:
            got = [nearest(q, ef) for q in corpus.query_vectors]
            samples = timed_each(lambda q, ef=ef: nearest(q, ef), corpus.query_vectors, rounds)
            found[str(ef)] = {
                "recall": statistics.mean(
                    len(e & a) / len(e) for e, a in zip(exact, got, strict=True)
                ),
                "top_ms": core.percentiles(samples),
            }
    return found


def in_memory_alternative(url: str, corpus: Corpus, exact: list[set[str]], rounds: int) -> dict:
    """What an in-memory index fed from PostgreSQL would cost: every vector read into a
    matrix (again after any change), then matmul + argpartition per query."""
    conn = pg(url)
    loads = []
    for _ in range(3):
        gc.collect()
        started = time.perf_counter()
        ids, matrix = read_all_vectors(conn, DIMS)
        loads.append((time.perf_counter() - started) * 1000)
    conn.close()
    assert len(ids) == len(corpus.items), (len(ids), len(corpus.items))
    top = timed_each(lambda q: matmul_top(matrix, q, K), corpus.query_vectors, rounds)
    agree = [
        len({i.decode() for i in ids[matmul_top(matrix, q, K)]} & e) / len(e)
        for q, e in zip(corpus.query_vectors, exact, strict=True)
    ]
    return {
        "what": "vectors read from PostgreSQL (binary COPY, numpy); matmul + argpartition top-80",
        "load_ms": core.summary(loads),
        "matrix_bytes": matrix.nbytes,
        "top_ms": core.percentiles(top),
        "agrees_with_exact": statistics.mean(agree),
    }


def _hnsw_name() -> str:
    from ctx_models.backends.postgres.vectors import hnsw_index_name

    return hnsw_index_name(DIMS)


def _both(goal: str, values: Sequence[float | None], target: float, lower: bool = True) -> str:
    verdicts = ["—" if v is None else core.verdict(v, target, lower) for v in values]
    return f"{goal}: {' | '.join(verdicts)}"


def print_table(result: dict) -> None:
    s, p = result["sqlite"], result["postgresql"]
    n = result["chunks"]

    def num(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    rows: list[tuple[str, str, str, str]] = []
    if "ingest" in s:
        si, pi = s["ingest"], p["ingest"]
        rows += [
            (
                "ingest, ours (chunks/s)",
                num(si["ours_chunks_per_s"], ",.0f"),
                num(pi["ours_chunks_per_s"], ",.0f"),
                "",
            ),
            (
                "ingest, floor (chunks/s)",
                num(si["floor_chunks_per_s"], ",.0f"),
                num(pi["floor_chunks_per_s"], ",.0f"),
                "executemany | COPY",
            ),
            (
                "ingest, ours / floor",
                f"{si['ratio']:.2f}x",
                f"{pi['ratio']:.2f}x",
                _both(f"<= {INGEST_GOAL}x", (si["ratio"], pi["ratio"]), INGEST_GOAL),
            ),
        ]
    h = p["hnsw"]
    rows += [
        (
            "vector exact top-80, p50 (ms)",
            num(s["vector_exact_ms"]["p50"], ".2f"),
            num(p["vector_exact_ms"]["p50"], ".2f"),
            "SQLite in memory | pgvector scan",
        ),
        (
            "vector exact top-80, p95 (ms)",
            num(s["vector_exact_ms"]["p95"], ".2f"),
            num(p["vector_exact_ms"]["p95"], ".2f"),
            "",
        ),
        (
            "HNSW build (s)",
            "—",
            num(h["build_seconds"], ".1f"),
            f"maintenance_work_mem {h['maintenance_work_mem']}",
        ),
        ("HNSW top-80, p50 (ms)", "—", num(h["top_ms"]["p50"], ".2f"), ""),
        (
            "HNSW recall@80 vs exact",
            "—",
            num(h["recall"], ".3f"),
            _both(f">= {RECALL_GOAL}", (h["recall"],), RECALL_GOAL, lower=False),
        ),
        (
            "  (hnsw_recall, stored vectors)",
            "—",
            num(h["recall_stored_vectors"], ".3f"),
            _both(f">= {RECALL_GOAL}", (h["recall_stored_vectors"],), RECALL_GOAL, lower=False),
        ),
        *[
            (
                f"  recall@80 at ef_search {ef} (bare SQL)",
                "—",
                f"{v['recall']:.3f}",
                f"p50 {v['top_ms']['p50']:.2f} ms; "
                + _both(f">= {RECALL_GOAL}", (v["recall"],), RECALL_GOAL, lower=False),
            )
            for ef, v in h["ef_search"].items()
        ],
        (
            "in memory: load every vector (ms)",
            num(s["in_memory"]["load_ms"]["median"], ",.0f"),
            num(p["in_memory"]["load_ms"]["median"], ",.0f"),
            "after every change",
        ),
        (
            "in memory: top-80 matmul, p50 (ms)",
            num(s["in_memory"]["top_ms"]["p50"], ".2f"),
            num(p["in_memory"]["top_ms"]["p50"], ".2f"),
            "",
        ),
        (
            "keyword, p50 (ms)",
            num(s["keyword_ms"]["p50"], ".1f"),
            num(p["keyword_ms"]["p50"], ".1f"),
            "",
        ),
        (
            "keyword, p95 (ms)",
            num(s["keyword_ms"]["p95"], ".1f"),
            num(p["keyword_ms"]["p95"], ".1f"),
            _both(
                f"<= {KEYWORD_P95_GOAL:.0f} ms",
                (s["keyword_ms"]["p95"], p["keyword_ms"]["p95"]),
                KEYWORD_P95_GOAL,
            )
            if n >= 100_000
            else "",
        ),
        (
            "hybrid, p50 (ms)",
            num(s["hybrid_ms"]["p50"], ".1f"),
            num(p["hybrid_ms"]["p50"], ".1f"),
            _both(
                f"< {HYBRID_P50_GOAL:.0f} ms",
                (s["hybrid_ms"]["p50"], p["hybrid_ms"]["p50"]),
                HYBRID_P50_GOAL,
            ),
        ),
    ]
    print()
    print(
        f"{n:,} one-chunk documents of English ({result['text']}), {DIMS}-dim embedding-like vectors; "
        f"{QUERIES} query vectors, {QUESTIONS} questions x {result['rounds']} rounds; "
        f"load average {result['load_average_at_start'][0]:.1f} at the start, "
        f"{result['load_average_at_end'][0]:.1f} at the end ({os.cpu_count()} CPUs)"
    )
    print(f"{'measure':<42}{'SQLite':>12}{'PostgreSQL':>14}   goal / verdict (SQLite | PostgreSQL)")
    for label, sqlite_value, pg_value, goal in rows:
        print(f"{label:<42}{sqlite_value:>12}{pg_value:>14}   {goal}")
    print(
        "in memory: SQLite = its index's rebuild and index.search; PostgreSQL = binary COPY of "
        f"every vector into numpy ({p['in_memory']['matrix_bytes'] / 1e6:,.0f} MB) and "
        "matmul + argpartition on it"
    )
    print(
        f"checks: the exact top-80s of SQLite and PostgreSQL share {result['exact_agreement']:.1%} "
        f"of their documents; the matmul top-80 shares {p['in_memory']['agrees_with_exact']:.1%} "
        "of pgvector's"
    )


def bench_backends(args: argparse.Namespace) -> None:
    """``bench.py backends``: measure both backends, print the table, write backends.json."""
    if args.chunks < 2 * K:
        raise SystemExit(f"--chunks must be at least {2 * K}")
    print(f"generating {args.chunks:,} one-chunk documents with vectors ...", flush=True)
    corpus = Corpus(args.text, args.chunks)
    result: dict = {
        "chunks": args.chunks,
        "text": corpus.text_name,
        "dims": DIMS,
        "rounds": args.rounds,
        "load_average_at_start": os.getloadavg(),
        "sqlite": {},
        "postgresql": {},
    }
    if not args.skip_ingest:
        bench_ingest(args, corpus, result)
    path = sqlite_corpus(args, corpus, ingested=not args.skip_ingest)
    url = postgres_corpus(args, corpus, ingested=not args.skip_ingest)
    Path(args.workdir, "backends-ours.sqlite").unlink(missing_ok=True)
    drop_schema(args.db, "bench_backends_ours")
    print("measuring SQLite ...", flush=True)
    sqlite_result, sqlite_exact = measure_sqlite(path, corpus, args.rounds)
    print("measuring PostgreSQL ...", flush=True)
    pg_result, pg_exact = measure_postgres(url, corpus, args.rounds, args.maintenance_work_mem)
    result["sqlite"].update(sqlite_result)
    result["postgresql"].update(pg_result)
    # Both exact searches rank by the same cosine: their top-80s should agree but for ties.
    result["exact_agreement"] = statistics.mean(
        len(a & b) / len(a) for a, b in zip(sqlite_exact, pg_exact, strict=True)
    )
    result["load_average_at_end"] = os.getloadavg()
    print_table(result)
    print(f"results: {core.write_results('backends', result)}")
    sys.stdout.flush()
