#!/usr/bin/env python3
"""Speed of ctx_models against a baseline measured in the same run; prints ratios, writes JSON.

    python scripts/bench.py ingest [--docs 10000]
    python scripts/bench.py search [--large] [--text DIR]
    python scripts/bench.py sync [--files 10000]
    python scripts/bench.py backends --db URL [--chunks 100000]
    python scripts/bench.py quality [--data DIR] [--db URL] [--embedder NAME] [--model-path DIR]
    python scripts/bench.py embed [--model NAME] [--model-path DIR] [--texts N]
    python scripts/bench.py serve [--chunks 100000]

``ingest``: 10,000 synthetic documents x 10 chunks through ``store.ingest_many``,
first without vectors, then with 384-dim vectors; the floor loads the same
rows with the standard library's ``sqlite3.executemany`` into a fresh database
with the same schema and settings; sqlite-vec (through apsw, the ``bench``
extra) loads the same rows into a chunks table, an FTS5 index and a vec0 table.

``search``: corpora of 5,000 and 100,000 chunks x 384 dims (and 1,000,000 with
``--large``): vector search warm against a bare ``matrix @ q`` + ``argpartition``,
against a per-query scan done the ``ctx`` tool's way, and cold (open + first
query in a new process); the peak memory of the index build in a new process
against the matrix; sqlite-vec's vec0 warm and cold beside it when installed;
keyword search against the same SQL through bare ``sqlite3``; hybrid search
p50.

``sync``: a folder of 10,000 Markdown files of about 2 KB synced with the
hashing embedder (384 dims), against ``store.ingest_many`` of the same
documents already read into memory (the floor); then a second sync that finds
nothing changed.

``backends`` (``bench_backends.py``): PostgreSQL beside SQLite on one corpus of
100,000 one-chunk English documents with vectors: ingest against a floor on
each (sqlite3 ``executemany``; psycopg COPY), exact and HNSW vector top-80
with HNSW's recall, the in-memory alternative to pgvector's scan, keyword
p50/p95 and hybrid p50, in one table.

``quality`` (``bench_quality.py``): nDCG@10 and Recall@100 on a BEIR collection.

``embed`` (``bench_embed.py``): embedding throughput (chunks/s) and one
question's latency for a transformer model, beside sentence-transformers on
torch when installed.

``serve``: ``ctx-models serve --http`` on the ``search`` corpus (100,000 chunks
by default): p50/p95 of a keyword and a hybrid ``search`` through ctx's route
``POST /tools/search`` and through MCP (``tools/call`` with the SDK's client),
against the same call in-process; and the first call's latency after start.

Goals are printed beside the numbers. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

import ctx_models
from ctx_models import search, store
from ctx_models.backends.sqlite.connection import PRAGMAS
from ctx_models.backends.sqlite.keyword import keyword_query, user_query
from ctx_models.backends.sqlite.state import index_for, state_for
from ctx_models.chunking import chunk_text
from ctx_models.demo import synthetic
from ctx_models.demo.synthetic import BASE_TIME
from ctx_models.embedders import Embedder, HashingEmbedder, default_embedder
from ctx_models.hashing import chunk_hash, dedup_hash

ROOT = Path(__file__).resolve().parent.parent
DIMS = 384


# --------------------------------------------------------------------------- helpers


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def fresh_schema(url: str, schema: str) -> str:
    """``url`` pointed at a new, empty schema of that name (dropped first if it exists)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return schema_url(url, schema)


def schema_url(url: str, schema: str) -> str:
    """``url`` pointed at the schema ``schema`` (its search_path), which must exist."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"-c search_path={schema},public"
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def raw_connection(path: Path) -> sqlite3.Connection:
    """A bare sqlite3 connection with the same settings ctx_models uses."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    for name, value in PRAGMAS:
        conn.execute(f"PRAGMA {name} = {value}")
    return conn


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
        "n": len(samples),
    }


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def verdict(value: float, goal: float, lower_is_better: bool = True) -> str:
    met = value <= goal if lower_is_better else value >= goal
    return "met" if met else "NOT met"


def write_results(name: str, data: dict) -> Path:
    out = ROOT / "bench-results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    data["machine"] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    out.write_text(json.dumps(data, indent=2))
    return out


# --------------------------------------------------------------------------- ingest


class LookupEmbedder:
    """Returns precomputed vectors, so the benchmark times the store, not an embedding model."""

    model = "bench-random-384"
    dims = DIMS

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def floor_rows(
    items: list[dict], with_vectors: dict[str, np.ndarray] | None
) -> list[dict[str, list[tuple]]]:
    """Every row the floor inserts, prepared before the clock starts, in batches of 500 documents."""
    batches = []
    for start in range(0, len(items), 500):
        docs, chunks, fts, embeddings, vectors = [], [], [], [], []
        for item in items[start : start + 500]:
            doc_id = str(uuid.uuid4())
            body = item["body"]
            docs.append(
                (
                    doc_id,
                    item["source"],
                    item["source_id"],
                    None,
                    item["title"],
                    None,
                    item["created_at"],
                    item["updated_at"],
                    "text/plain",
                    body,
                    json.dumps(item["metadata"]),
                    None,
                    dedup_hash(item["source"], item["source_id"], item["updated_at"], body),
                )
            )
            for index, text in enumerate(chunk_text(body)):
                chunk_id = str(uuid.uuid4())
                digest = chunk_hash(text)
                chunks.append((chunk_id, doc_id, index, text, digest))
                fts.append((chunk_id, doc_id, text))
                if with_vectors is not None:
                    embeddings.append((chunk_id, LookupEmbedder.model, DIMS, 0, digest))
                    vectors.append((chunk_id, doc_id, with_vectors[text].astype("<f4").tobytes()))
        batches.append(
            {
                "docs": docs,
                "chunks": chunks,
                "fts": fts,
                "embeddings": embeddings,
                "vectors": vectors,
            }
        )
    return batches


def load_floor(path: Path, batches: list[dict[str, list[tuple]]]) -> float:
    conn = raw_connection(fresh(path))
    schema_db = ctx_models.connect(path, bind_models=False)
    ctx_models.run_migrations(schema_db)
    schema_db.close()
    started = time.perf_counter()
    for batch in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch["docs"])
        conn.executemany(
            "INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES (?,?,?,?,?)",
            batch["chunks"],
        )
        conn.executemany(
            "INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES (?,?,?)", batch["fts"]
        )
        if batch["vectors"]:
            conn.executemany("INSERT INTO embeddings VALUES (?,?,?,?,?)", batch["embeddings"])
            conn.executemany("INSERT INTO chunk_vectors VALUES (?,?,?)", batch["vectors"])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def load_ours(path: Path, items: list[dict], embedder: Embedder | None) -> float:
    db = ctx_models.connect(fresh(path))
    ctx_models.run_migrations(db)
    started = time.perf_counter()
    summary_ = store.ingest_many(items, embedder=embedder, batch_size=500)
    elapsed = time.perf_counter() - started
    assert summary_.created == len(items)
    db.close()
    return elapsed


def bench_ingest(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    print(f"generating {args.docs} documents x 10 chunks ...", flush=True)
    items = list(synthetic.synthetic_documents(args.docs, seed=7))
    texts = {text for item in items for text in chunk_text(item["body"])}
    chunks = sum(len(chunk_text(item["body"])) for item in items)
    rng = np.random.default_rng(7)
    vectors = {text: rng.standard_normal(DIMS).astype(np.float32) for text in sorted(texts)}
    results: dict[str, dict] = {"documents": len(items), "chunks": chunks}
    import bench_peers

    peer = bench_peers.sqlite_vec_available()
    print(f"peer: {peer or 'sqlite-vec not installed (pip install .[bench])'}")
    print(
        f"{'load':<24}{'ours (chunks/s)':>16}{'floor':>10}{'ratio':>7}  {'goal <= 1.50':<14}"
        f"{'sqlite-vec':>11}{'ratio':>7}  goal <= 2.00"
    )
    for label, with_vectors in (("chunks + FTS", None), ("chunks + FTS + vectors", vectors)):
        batches = floor_rows(items, with_vectors)
        floor_s, ours_s, peer_s = [], [], []
        for _ in range(args.repeat):  # alternate, so drift in the machine hits all three
            floor_s.append(load_floor(workdir / "ingest-floor.sqlite", batches))
            gc.collect()
            ours_s.append(
                load_ours(
                    workdir / "ingest-ours.sqlite",
                    items,
                    LookupEmbedder(vectors) if with_vectors else None,
                )
            )
            gc.collect()
            if peer and with_vectors is not None:
                peer_s.append(bench_peers.load_sqlite_vec(workdir / "ingest-peer.sqlite", batches, DIMS))
                gc.collect()
        floor_t, ours_t = statistics.median(floor_s), statistics.median(ours_s)
        ratio = ours_t / floor_t
        peer_part = ""
        if peer_s:
            peer_t = statistics.median(peer_s)
            peer_part = (
                f"{chunks / peer_t:>11,.0f}{ours_t / peer_t:>7.2f}  {verdict(ours_t / peer_t, 2.0)}"
            )
        print(
            f"{label:<24}{chunks / ours_t:>16,.0f}{chunks / floor_t:>10,.0f}{ratio:>7.2f}  "
            f"{verdict(ratio, 1.5):<14}{peer_part}",
            flush=True,
        )
        results[label] = {
            "ours_seconds": ours_s,
            "floor_seconds": floor_s,
            "ours_chunks_per_s": chunks / ours_t,
            "floor_chunks_per_s": chunks / floor_t,
            "ratio": ratio,
            "goal": 1.5,
        }
        if peer_s:
            results[label].update(
                peer=peer,
                peer_seconds=peer_s,
                peer_chunks_per_s=chunks / statistics.median(peer_s),
                peer_ratio=ours_t / statistics.median(peer_s),
                peer_goal=2.0,
            )
        del batches
    # The same documents embedded by the default embedder (WordLlama when installed): the
    # speed a user sees with a real model. No floor: the model's own time dominates.
    embedder = default_embedder()
    seconds = load_ours(workdir / "ingest-ours.sqlite", items, embedder)
    print(f"{'... embedded by model':<22}{chunks / seconds:>18,.0f}{'':>26}   {embedder.model}")
    results["default_embedder"] = {"model": embedder.model, "seconds": seconds,
                                   "chunks_per_s": chunks / seconds}
    print(f"results: {write_results('ingest', results)}")


# --------------------------------------------------------------------------- search


CORPORA = {5_000: 500, 100_000: 10_000, 1_000_000: 100_000}  # chunks -> documents
COLD_GOAL_MS = {100_000: 100, 1_000_000: 1_000}  # first vector query in a new process
SMALL_WARM_GOAL_MS = 0.5  # warm top-80 at 5,000 chunks


def build_corpus(workdir: Path, chunks: int) -> Path:
    """A database of ``chunks`` synthetic chunks with hashing-embedder vectors (reused when present)."""
    path = workdir / f"search-{chunks}.sqlite"
    marker = path.with_suffix(".done")
    if path.exists() and marker.exists():
        return path
    docs = CORPORA[chunks]
    print(f"building the {chunks:,}-chunk corpus ({docs:,} documents) ...", flush=True)
    # The 1M corpus uses short chunks (about 300 bytes) to keep the file to a few GB.
    large = chunks >= 1_000_000
    db = ctx_models.connect(fresh(path))
    ctx_models.run_migrations(db)
    store.ingest_many(
        synthetic.synthetic_documents(
            docs, seed=11, paragraph_bytes=300 if large else synthetic.PARAGRAPH_BYTES
        ),
        embedder=HashingEmbedder(DIMS),
        max_tokens=100 if large else 700,
        progress=sys.stderr.isatty(),
    )
    db.close()
    marker.write_text("ok")
    return path


def bare_keyword(conn: sqlite3.Connection, sql: str, params: list) -> list:
    return conn.execute(sql, params).fetchall()


def ctx_way_vector_search(conn: sqlite3.Connection, query: np.ndarray, k: int) -> list:
    """What the ctx tool does per query: read every vector with its chunk, decode, score, sort all."""
    rows = conn.execute(
        "SELECT cv.chunk_id, cv.document_id, cv.embedding, COALESCE(substr(c.text, 1, 240), '') "
        "FROM chunk_vectors cv JOIN chunks c ON c.id = cv.chunk_id"
    ).fetchall()
    q_norm = float(np.linalg.norm(query))
    scored = []
    for chunk_id, document_id, blob, snippet in rows:
        vector = np.frombuffer(blob, dtype="<f4")
        denominator = float(np.linalg.norm(vector)) * q_norm
        score = float(vector @ query) / denominator if denominator else 0.0
        scored.append((score, chunk_id, document_id, snippet))
    scored.sort(key=lambda row: row[0], reverse=True)
    return scored[:k]


def cold_search(path: Path, repeat: int) -> list[float]:
    """First vector search after opening the database, each in a new process."""
    code = (
        "import sys, time, numpy as np, ctx_models\n"
        "from ctx_models import search\n"
        "from ctx_models.embedders import HashingEmbedder\n"
        "q = HashingEmbedder(384).embed(['replica failover latency'])[0]\n"
        "t = time.perf_counter(); db = ctx_models.connect(sys.argv[1], create=False)\n"
        "search.vector_search(q, limit=80)\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    samples = []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # As installed: compiled bytecode on disk (a first, unmeasured run writes it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, env=env, check=True)
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        samples.append(float(out.stdout.strip()))
    return samples


BUILD_MEMORY = """
import sys, numpy as np, ctx_models
from ctx_models import search
from ctx_models.backends.sqlite.state import index_for
from ctx_models.embedders import HashingEmbedder

def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

q = HashingEmbedder(384).embed(["replica failover latency"])[0]
db = ctx_models.connect(sys.argv[1], create=False)
db.execute_sql("SELECT count(*) FROM documents").fetchone()
before, _ = rss()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak to now
search.vector_search(q, limit=80)
_, peak = rss()
print(peak - before, index_for(db, db.connection()).nbytes)
"""


def build_memory(path: Path) -> dict:
    """Peak RSS added by the index build in a new process, against the matrix it builds (Linux)."""
    if not Path("/proc/self/clear_refs").exists():
        return {}
    out = subprocess.run(
        [sys.executable, "-c", BUILD_MEMORY, str(path)], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    peak, index_bytes = map(int, out.stdout.split())
    return {"peak_bytes": peak, "index_bytes": index_bytes, "ratio": peak / index_bytes, "goal": 1.3}


def memory_kept_by(call) -> int:
    """Bytes of Python-traced memory still held after ``call`` returns."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    call()
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return kept


def bench_corpus(path: Path, chunks: int, rounds: int) -> dict:
    embedder = HashingEmbedder(DIMS)
    queries = synthetic.sample_queries(50, seed=3)
    query_vectors = embedder.embed(queries)
    db = ctx_models.connect(path, create=False)
    result: dict = {"chunks": chunks}

    # Vector search, warm: ours against a bare matmul + argpartition on the same matrix.
    search.vector_search(query_vectors[0], limit=80)  # builds the index
    index = index_for(db, db.connection())
    matrix = index._groups[DIMS].matrix
    ours, floor, in_memory = [], [], []
    for _ in range(rounds):
        for q in query_vectors:
            floor += timed(lambda: np.argpartition(-(matrix @ q), 80)[:80], 1)
            ours += timed(lambda: search.vector_search(q, limit=80), 1)
            # The part of ours that the floor models: scoring and top-k, without
            # the transaction and the SQL that fetches the winners' ids and snippets.
            in_memory += timed(lambda: index.search(q, 80), 1)
    assert index.builds == 1, "the index was rebuilt during warm queries"
    result["vector_warm"] = {
        "ours_ms": summary(ours),
        "floor_ms": summary(floor),
        "in_memory_ms": summary(in_memory),
        "ratio": statistics.median(ours) / statistics.median(floor),
        "in_memory_ratio": statistics.median(in_memory) / statistics.median(floor),
        "goal": 1.25,
    }

    # The ctx tool's way: every BLOB read, decoded and scored per query.
    bare = raw_connection(path)
    scan_rounds = 1 if chunks >= 100_000 else 3
    scan = []
    for q in query_vectors[: (5 if chunks >= 1_000_000 else 10)]:
        scan += timed(lambda: ctx_way_vector_search(bare, q, 80), scan_rounds)
    result["vector_ctx_way"] = {
        "ctx_way_ms": summary(scan),
        "ours_ms": summary(ours),
        "speedup": statistics.median(scan) / statistics.median(ours),
        "goal": 20.0,
    }

    # Memory held by the index, measured from outside: tracemalloc over a fresh build,
    # plus the matrices in memory mapped for them (on Linux), which it does not see.
    index.invalidate()
    gc.collect()
    held = memory_kept_by(lambda: search.vector_search(query_vectors[0], limit=80))
    held += sum(g.matrix.nbytes for g in index._groups.values() if not g.matrix.flags.owndata)
    raw_bytes = chunks_with_vectors(bare) * DIMS * 4
    # What a small index adds on its second search: each chunk's id, document and snippet.
    details = memory_kept_by(lambda: search.vector_search(query_vectors[1], limit=80))
    result["vector_memory"] = {
        "index_bytes": held,
        "raw_matrix_bytes": raw_bytes,
        "ratio": held / raw_bytes,
        "goal": 1.1,
        "details_bytes": details,
    }

    result["build_memory"] = build_memory(path)

    # Cold: a new process, connect, first search (which builds the index).
    result["vector_cold"] = {
        "ms": summary(cold_search(path, 5 if chunks < 1_000_000 else 3)),
        "goal_ms": COLD_GOAL_MS.get(chunks),
    }

    # The peer, on the same vectors: sqlite-vec's vec0 (exact, cosine), warm and cold.
    import bench_peers

    peer = bench_peers.sqlite_vec_available()
    if peer:
        peer_path = bench_peers.copy_vectors_to_sqlite_vec(
            path, path.with_name(path.stem + "-vec0.sqlite"), DIMS
        )
        result["sqlite_vec"] = {
            "version": peer,
            "warm_ms": summary(bench_peers.sqlite_vec_warm(peer_path, query_vectors[:20], 1)),
            "cold_ms": summary(bench_peers.sqlite_vec_cold(peer_path, query_vectors[0], 3)),
        }

    # Keyword search: ours against the same SQL through bare sqlite3.
    for label, source in (("keyword", None), ("keyword_source", "synthetic:beta")):
        ours_k, floor_k = [], []
        for _ in range(rounds):
            for text in queries:
                sql, params = keyword_query(user_query(text, "any"), 80, source)
                floor_k += timed(lambda: bare_keyword(bare, sql, params), 1)
                ours_k += timed(lambda: search.keyword_search(text, limit=80, source=source), 1)
        result[label] = {
            "ours_ms": summary(ours_k),
            "floor_ms": summary(floor_k),
            "ratio": statistics.median(ours_k) / statistics.median(floor_k),
            "goal": 1.3,
        }

    # Hybrid, end to end (query vector precomputed).
    hybrid = []
    for _ in range(rounds):
        for text, q in zip(queries, query_vectors):
            hybrid += timed(lambda: search.hybrid_search(text, q), 1)
    result["hybrid"] = {"ms": summary(hybrid), "goal_p50_ms": 25}
    bare.close()
    db.close()
    return result


def chunks_with_vectors(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0]


def print_search_table(results: list[dict]) -> None:
    print()
    print(
        f"{'measure':<34}{'chunks':>10}{'min':>10}{'median':>10}{'max':>10}  {'vs baseline':<22}{'goal':<18}"
    )
    for r in results:
        n = r["chunks"]
        w = r["vector_warm"]
        rows = [
            (
                "vector warm, ours (ms)",
                w["ours_ms"],
                f"{w['ratio']:.2f}x floor",
                f"<= 1.25x: {verdict(w['ratio'], 1.25)}",
            ),
            ("vector warm, matmul floor (ms)", w["floor_ms"], "", ""),
            (
                "  of ours: index.search (ms)",
                w["in_memory_ms"],
                f"{w['in_memory_ratio']:.2f}x floor",
                "",
            ),
            (
                "vector, ctx-way scan (ms)",
                r["vector_ctx_way"]["ctx_way_ms"],
                f"{r['vector_ctx_way']['speedup']:.0f}x slower",
                f">= 20x: {verdict(r['vector_ctx_way']['speedup'], 20, False)}",
            ),
            (
                "vector cold, new process (ms)",
                r["vector_cold"]["ms"],
                "open + first query",
                f"<= {goal:,} ms: {verdict(r['vector_cold']['ms']['median'], goal)}"
                if (goal := r["vector_cold"]["goal_ms"]) else "",
            ),
            (
                "keyword, ours (ms)",
                r["keyword"]["ours_ms"],
                f"{r['keyword']['ratio']:.2f}x sqlite3",
                f"<= 1.3x: {verdict(r['keyword']['ratio'], 1.3)}",
            ),
            (
                "keyword + source, ours (ms)",
                r["keyword_source"]["ours_ms"],
                f"{r['keyword_source']['ratio']:.2f}x sqlite3",
                f"<= 1.3x: {verdict(r['keyword_source']['ratio'], 1.3)}",
            ),
            ("keyword, bare sqlite3 (ms)", r["keyword"]["floor_ms"], "", ""),
            (
                "hybrid (ms)",
                r["hybrid"]["ms"],
                "",
                f"p50 < 25 ms: {verdict(r['hybrid']['ms']['median'], 25)}",
            ),
        ]
        if "sqlite_vec" in r:
            peer = r["sqlite_vec"]
            rows.insert(1, ("  sqlite-vec vec0, warm (ms)", peer["warm_ms"],
                            f"ours {w['ours_ms']['median'] / peer['warm_ms']['median']:.2f}x", ""))
            rows.insert(6, ("  sqlite-vec vec0, cold (ms)", peer["cold_ms"],
                            f"ours {r['vector_cold']['ms']['median'] / peer['cold_ms']['median']:.2f}x", ""))
        if n <= 5_000:
            rows[0] = (*rows[0][:3], f"{rows[0][3]}; <= {SMALL_WARM_GOAL_MS} ms: "
                       f"{verdict(w['ours_ms']['median'], SMALL_WARM_GOAL_MS)}")
        for label, s, against, goal in rows:
            print(
                f"{label:<34}{n:>10,}{s['min']:>10.3f}{s['median']:>10.3f}{s['max']:>10.3f}  {against:<22}{goal:<18}"
            )
        m = r["vector_memory"]
        print(
            f"{'vector index memory (MB)':<34}{n:>10,}{m['index_bytes'] / 1e6:>30.1f}  "
            f"{m['ratio']:.3f}x raw matrix{'':<6}<= 1.1x: {verdict(m['ratio'], 1.1)}"
        )
        print(
            f"{'  + chunk details, 2nd search (MB)':<34}{n:>10,}{m['details_bytes'] / 1e6:>30.1f}  "
            f"{m['details_bytes'] / m['raw_matrix_bytes']:.3f}x raw matrix"
        )
        if b := r.get("build_memory"):
            print(
                f"{'build, peak RSS added (MB)':<34}{n:>10,}{b['peak_bytes'] / 1e6:>30.1f}  "
                f"{b['ratio']:.2f}x the matrix{'':<6}<= 1.3x: {verdict(b['ratio'], 1.3)}"
            )
        print()
    if results and results[0]["chunks"] <= 5_000:
        median = results[0]["vector_warm"]["ours_ms"]["median"]
        print(
            f"5,000 chunks, exact search median {median:.3f} ms vs the ctx tool's published HNSW 0.77 ms "
            f"(and its scan, 112.56 ms at 4,917 chunks): {verdict(median, 0.77)}"
        )


# --------------------------------------------------------------------------- keyword speed, English


def english_sentences(text_dir: str | None) -> tuple[str, list[str]]:
    """Sentences of real English: a BEIR collection's texts, or the demo corpus's."""
    if text_dir is None:
        from ctx_models.demo.corpus import DOCUMENTS

        texts = [doc.body for doc in DOCUMENTS]
        name = "the demo corpus (small vocabulary: give --text DIR for a BEIR collection)"
    else:
        import bench_quality

        texts = [body for _, _, body in bench_quality.load_beir(Path(text_dir)).documents]
        name = Path(text_dir).name
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s) > 20]
    return name, sentences


def english_chunks(sentences: list[str], count: int, seed: int) -> Iterator[dict]:
    """Documents of one chunk each: sentences drawn at random until about 1,400 bytes."""
    rng = random.Random(seed)
    for number in range(count):
        parts, size = [], 0
        while size < 1_400:
            sentence = rng.choice(sentences)
            parts.append(sentence)
            size += len(sentence) + 1
        yield {
            "source": "english",
            "source_id": f"doc-{number:07d}",
            "body": " ".join(parts)[:2_700],
            "updated_at": BASE_TIME + number,
        }


def english_questions(sentences: list[str], count: int, seed: int) -> list[str]:
    """Questions of 8 to 20 words, cut from sentences: English's word frequencies, stopwords and all."""
    rng = random.Random(seed)
    questions: list[str] = []
    while len(questions) < count:
        found = re.findall(r"\w+", rng.choice(sentences))
        if len(found) >= 8:
            questions.append(" ".join(found[: rng.randint(8, 20)]))
    return questions


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


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "n": len(ordered),
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


def bench_search(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    sizes = [5_000, 100_000] + ([1_000_000] if args.large else [])
    results = []
    for chunks in sizes:
        path = build_corpus(workdir, chunks)
        print(f"measuring {chunks:,} chunks ...", flush=True)
        results.append(bench_corpus(path, chunks, args.rounds))
    print_search_table(results)
    english = [
        bench_keyword_english(workdir, args.text, chunks, args.rounds) for chunks in (5_000, 100_000)
    ]
    print_keyword_table(english)
    print(f"results: {write_results('search', {'corpora': results, 'keyword_english': english})}")


# --------------------------------------------------------------------------- sync


SYNC_FIRST_GOAL = 1.3  # first sync against ingest_many of the same documents
SYNC_AGAIN_GOAL_S = 2.0  # a sync that finds nothing changed


def build_folder(folder: Path, files: int) -> None:
    """``files`` Markdown files of about 2 KB (three paragraphs), in 100 folders, mtimes in the past."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(7)
    words = synthetic.vocabulary(5_000)
    for i in range(files):
        paragraphs = [" ".join(rng.choices(words, k=95)) for _ in range(3)]
        path = folder / f"area{i % 100:02}" / f"note{i:05}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Note {i}\n\n" + "\n\n".join(paragraphs), encoding="utf-8")
        os.utime(path, (BASE_TIME + i, BASE_TIME + i))


def folder_items(folder: Path) -> list[dict]:
    """The documents a sync writes for ``folder``, read beforehand: the floor's input."""
    from ctx_models.sync import STAT_KEY

    items = []
    for path in sorted(folder.rglob("*.md")):
        st = path.stat()
        rel = path.relative_to(folder).as_posix()
        items.append({
            "source": f"filesystem:{folder.name}", "source_id": rel, "body": path.read_text(),
            "title": path.name, "source_url": f"file://{path}", "created_at": int(st.st_mtime),
            "updated_at": int(st.st_mtime),
            "metadata": {STAT_KEY: {"size": st.st_size, "mtime_ns": st.st_mtime_ns}},
        })
    return items


def bench_sync(args: argparse.Namespace) -> None:
    from ctx_models.sync import sync_folder

    workdir = Path(args.workdir)
    folder = workdir / "sync-folder"
    print(f"writing {args.files:,} Markdown files of about 2 KB ...", flush=True)
    build_folder(folder, args.files)
    embedder = HashingEmbedder(DIMS)
    items = folder_items(folder)
    floor_s, first_s, again_s = [], [], []
    for _ in range(args.repeat):  # alternate, so drift in the machine hits both
        floor_s.append(load_ours(workdir / "sync-floor.sqlite", items, embedder))
        gc.collect()
        db = ctx_models.connect(fresh(workdir / "sync-ours.sqlite"))
        ctx_models.run_migrations(db)
        started = time.perf_counter()
        report = sync_folder(folder, embedder=embedder)
        first_s.append(time.perf_counter() - started)
        assert report.created == args.files, report.summary()
        started = time.perf_counter()
        report = sync_folder(folder, embedder=embedder)
        again_s.append(time.perf_counter() - started)
        assert report.unchanged == args.files and report.chunks == 0, report.summary()
        db.close()
        gc.collect()
    floor_t, first_t, again_t = (statistics.median(s) for s in (floor_s, first_s, again_s))
    ratio = first_t / floor_t
    print(f"{'sync':<28}{'files/s':>10}{'seconds':>10}{'ratio':>7}  goal")
    print(f"{'ingest_many (floor)':<28}{args.files / floor_t:>10,.0f}{floor_t:>10.2f}")
    print(f"{'first sync':<28}{args.files / first_t:>10,.0f}{first_t:>10.2f}{ratio:>7.2f}  "
          f"<= {SYNC_FIRST_GOAL} x floor: {verdict(ratio, SYNC_FIRST_GOAL)}")
    print(f"{'second sync, nothing changed':<28}{args.files / again_t:>10,.0f}{again_t:>10.2f}"
          f"{'':>7}  <= {SYNC_AGAIN_GOAL_S} s: {verdict(again_t, SYNC_AGAIN_GOAL_S)}")
    results = {
        "files": args.files, "model": embedder.model, "floor_seconds": floor_s,
        "first_seconds": first_s, "again_seconds": again_s, "ratio": ratio,
        "goal_ratio": SYNC_FIRST_GOAL, "goal_again_seconds": SYNC_AGAIN_GOAL_S,
    }
    print(f"results: {write_results('sync', results)}")


# --------------------------------------------------------------------------- serve


def http_search(conn, text: str, mode: str) -> dict:
    body = json.dumps({"query": text, "mode": mode, "limit": 12})
    conn.request("POST", "/tools/search", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"search failed: {answer}")
    return answer


def start_server(path: Path) -> tuple[subprocess.Popen, str, float]:
    """``serve --http`` on a free port; the process, its URL and when it was started."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "ctx_models", "serve", "--db", str(path), "--http", "--port", "0"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    for line in process.stderr:
        found = re.search(r"at (http://\S+)/mcp", line)
        if found:
            return process, found.group(1), started
    raise RuntimeError("the server did not start")


def bench_serve(args: argparse.Namespace) -> None:
    import http.client
    from urllib.parse import urlsplit

    import anyio
    from mcp import Client

    from ctx_models.server import tools

    path = build_corpus(Path(args.workdir), args.chunks)
    queries = synthetic.sample_queries(50, seed=3)
    modes = ("keyword", "hybrid")
    result: dict = {"chunks": args.chunks, "queries": len(queries), "rounds": args.rounds}

    # The first call after start: the server warms its index in the background as it starts.
    process, url, started = start_server(path)
    listening = time.perf_counter()
    conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=300)
    http_search(conn, queries[0], "hybrid")
    answered = time.perf_counter()
    result["first_call"] = {
        "from_listening_ms": (answered - listening) * 1000,
        "from_process_start_ms": (answered - started) * 1000,
        "listening_after_ms": (listening - started) * 1000,
    }

    over_http = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:
            for text in queries:
                over_http[mode] += timed(lambda: http_search(conn, text, mode), 1)

    def round_trip(method: str, route: str, body: str | None = None) -> None:
        conn.request(method, route, body, {"Content-Type": "application/json"})
        conn.getresponse().read()

    # What HTTP itself costs: a route that does no work, and a get of an id that is not there.
    result["transport"] = {
        "health_ms": percentiles(timed(lambda: round_trip("GET", "/health"), 100)),
        "get_missing_ms": percentiles(
            timed(lambda: round_trip("POST", "/tools/get", '{"id": "missing"}'), 100)
        ),
    }
    conn.close()

    over_mcp: dict[str, list[float]] = {mode: [] for mode in modes}

    async def mcp_calls() -> None:
        async with Client(url + "/mcp") as client:
            await client.call_tool("search", {"query": queries[0]})
            for _ in range(args.rounds):
                for mode in modes:
                    for text in queries:
                        begun = time.perf_counter()
                        await client.call_tool("search", {"query": text, "mode": mode})
                        over_mcp[mode].append((time.perf_counter() - begun) * 1000)

    anyio.run(mcp_calls)
    process.terminate()
    process.wait(60)

    # The same call in-process: the tool function on a read-only connection, warm.
    db = ctx_models.connect(path, readonly=True)
    in_process = {mode: [] for mode in modes}
    for mode in modes:
        tools.search(queries[0], mode=mode)
    for _ in range(args.rounds):
        for mode in modes:
            for text in queries:
                in_process[mode] += timed(lambda: tools.search(text, mode=mode), 1)
    db.close()

    for label, samples in (("in_process", in_process), ("http_route", over_http), ("mcp_http", over_mcp)):
        result[label] = {mode: percentiles(samples[mode]) for mode in modes}
    print()
    print(f"search at {args.chunks:,} chunks, limit 12: {len(queries)} questions x {args.rounds} rounds, ms")
    print(f"{'call':<34}{'keyword p50':>12}{'p95':>8}{'hybrid p50':>12}{'p95':>8}")
    for label, name in (
        ("in_process", "in-process (the tool function)"),
        ("http_route", "HTTP POST /tools/search"),
        ("mcp_http", "MCP tools/call over HTTP"),
    ):
        k, h = result[label]["keyword"], result[label]["hybrid"]
        print(f"{name:<34}{k['p50']:>12.1f}{k['p95']:>8.1f}{h['p50']:>12.1f}{h['p95']:>8.1f}")
    transport = result["transport"]
    print(
        f"HTTP itself: GET /health p50 {transport['health_ms']['p50']:.2f} ms, POST /tools/get "
        f"of a missing id p50 {transport['get_missing_ms']['p50']:.2f} ms"
    )
    first = result["first_call"]
    print(
        f"first call (hybrid) after start: {first['from_listening_ms']:.0f} ms from the server "
        f"listening ({first['listening_after_ms']:.0f} ms after the process started; "
        f"{first['from_process_start_ms']:.0f} ms start to first answer)"
    )
    print(f"results: {write_results('serve', result)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        default=str(ROOT / "bench-results" / "data"),
        help="where benchmark databases go",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("ingest", help="bulk load vs sqlite3 executemany")
    p.add_argument(
        "--docs", type=int, default=10_000, help="documents of 10 chunks (default 10,000)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs of each loader (default 1)")
    p.set_defaults(run=bench_ingest)
    p = commands.add_parser("sync", help="ctx-models sync of a folder vs ingest_many")
    p.add_argument("--files", type=int, default=10_000, help="Markdown files (default 10,000)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each (default 1)")
    p.set_defaults(run=bench_sync)
    p = commands.add_parser("search", help="vector, keyword and hybrid search")
    p.add_argument(
        "--large", action="store_true", help="also the 1,000,000-chunk corpus (slow to build)"
    )
    p.add_argument("--rounds", type=int, default=3, help="passes over the 50 queries (default 3)")
    p.add_argument(
        "--text",
        metavar="DIR",
        help="a BEIR collection whose English text the keyword-speed corpus is drawn from "
        "(default: the demo corpus)",
    )
    p.set_defaults(run=bench_search)
    import bench_backends  # scripts/ is on sys.path when this file is run
    import bench_embed
    import bench_quality

    p = commands.add_parser("quality", help="nDCG@10 and Recall@100, BEIR data or the demo")
    bench_quality.add_arguments(p)
    p.set_defaults(run=bench_quality.bench_quality)
    p = commands.add_parser("embed", help="embedding chunks/s and one question's latency")
    bench_embed.add_arguments(p)
    p.set_defaults(run=bench_embed.bench_embed)
    p = commands.add_parser("backends", help="PostgreSQL beside SQLite: ingest and search")
    bench_backends.add_arguments(p)
    p.set_defaults(run=bench_backends.bench_backends)
    p = commands.add_parser("serve", help="search latency through ctx-models serve --http")
    p.add_argument(
        "--chunks", type=int, choices=sorted(CORPORA), default=100_000,
        help="corpus size (default 100,000)",
    )
    p.add_argument("--rounds", type=int, default=2, help="passes over the 50 queries (default 2)")
    p.set_defaults(run=bench_serve)
    args = parser.parse_args()
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
